"""Shared fixtures. Tests run headless and in fast mode (the Makefile sets both; so does this).

They also run with their own temporary ``FACELIB_CACHE``, never the user's: the root conftest.py sets
it up for tests/, notebooks/ and solutions/ alike (tests must not write into a user's files).
"""

import os

os.environ.setdefault("FACELIB_FAST", "1")
os.environ.setdefault("FACELIB_HEADLESS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` are skipped, and say so, where there is no CUDA device."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (run on a GPU: python -m pytest -m cuda tests)")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def open_model():
    """The open face model at level 0 (from the session's temporary cache: seeded from the user's, or built)."""
    from facelib.morphable import load_open_model

    return load_open_model(level=0)


@pytest.fixture
def fitted_meshes(monkeypatch):
    """``watch(*modules)`` wraps each module's ``fit_with_skin_mask`` to record the vertex count of the mesh it
    fits (and to check that its renderer draws that mesh); returns the list the records go into."""
    seen: list[int] = []

    def watch(*modules) -> list[int]:
        for module in modules:
            def fit_with_skin_mask(model, photo, points, renderer, *args, real=module.fit_with_skin_mask, **kwargs):
                assert renderer.triangles.shape == model.triangles.shape  # it renders the mesh it fits
                seen.append(model.num_vertices)
                return real(model, photo, points, renderer, *args, **kwargs)
            monkeypatch.setattr(module, "fit_with_skin_mask", fit_with_skin_mask)
        return seen

    return watch


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(0)


@pytest.fixture(scope="session")
def mean_face_scene(open_model):
    """A function (batch, size=64) -> (params, renderer, photo, rendering): the mean face rendered under
    a frontal light over a grey background, enough to exercise the texture stage's plumbing."""
    from facelib.fit import initial_params
    from facelib.render import FaceRenderer

    def make(batch: int = 1, size: int = 64):
        params = initial_params(open_model, batch)
        renderer = FaceRenderer.for_model(open_model, size)
        with torch.no_grad():
            out = renderer.render(open_model.shape(params["id"], params["exp"]), open_model.albedo(params["tex"]).clamp(0, 1))
        photo = out.image.clamp(0, 1) * out.mask[..., None] + 0.4 * (1 - out.mask[..., None])
        return params, renderer, photo, out

    return make
