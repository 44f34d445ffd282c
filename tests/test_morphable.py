"""The open face model: determinism, bases, landmarks, subdivision, file errors."""

import numpy as np
import pytest
import torch

from facelib.morphable import ModelFileError, MorphableModel
from facelib.morphable.builder import BuildConfig, build_open_model
from facelib.morphable.landmarks import MIDLINE_68, MIRROR_68

SMALL = BuildConfig(identity_samples=300, expression_samples=300, albedo_samples=200)


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not(tmp_path):
    a, b, c = tmp_path / "a.npz", tmp_path / "b.npz", tmp_path / "c.npz"
    build_open_model(a, SMALL, verbose=False)
    build_open_model(b, SMALL, verbose=False)
    build_open_model(c, BuildConfig(**{**SMALL.__dict__, "seed": 1}), verbose=False)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_layout_is_bfms_257(open_model):
    layout = open_model.layout
    assert (layout.n_id, layout.n_exp, layout.n_tex, layout.total) == (80, 64, 80, 257)
    parts = layout.split(torch.zeros(2, 257))
    assert parts["gamma"].shape == (2, 27) and parts["trans"].shape == (2, 3)


def test_bases_are_orthogonal_with_decreasing_standard_deviations(open_model):
    for base in (open_model.id_base, open_model.exp_base, open_model.tex_base):
        b = base.double()
        gram = b.T @ b
        std = gram.diagonal().sqrt()
        off = gram / (std[:, None] * std[None, :]) - torch.eye(len(std), dtype=torch.float64)
        assert off.abs().max() < 1e-4, "columns are not orthogonal"
        assert (std[1:] <= std[:-1] * (1 + 1e-4)).all(), "standard deviations should decrease"


def test_shapes_albedo_and_gradients(open_model, generator):
    coeffs = open_model.sample(3, generator)
    coeffs["id"].requires_grad_(True)
    shape = open_model.shape(coeffs["id"], coeffs["exp"])
    albedo = open_model.albedo(coeffs["tex"])
    v = open_model.num_vertices
    assert shape.shape == (3, v, 3) and albedo.shape == (3, v, 3)
    shape.sum().backward()
    assert coeffs["id"].grad is not None and torch.isfinite(coeffs["id"].grad).all()
    assert 0.3 < open_model.mean_tex[open_model.masks["skin"]].mean() < 0.8
    zero = {k: torch.zeros_like(c) for k, c in coeffs.items()}
    assert torch.allclose(open_model.shape(zero["id"].detach(), zero["exp"])[0], open_model.mean_shape)


def test_landmarks_are_mirror_consistent(open_model):
    lm, mirror = open_model.landmarks, open_model.mirror
    assert lm.shape == (68,) and len(set(lm.tolist())) == 68
    for i, j in enumerate(MIRROR_68):
        assert mirror[lm[i]] == lm[j], f"landmark {i} does not mirror onto landmark {j}"
    x = open_model.mean_shape[lm, 0]
    assert x[list(MIDLINE_68)].abs().max() < 2e-3  # within 0.2 mm of the symmetry plane
    # Person's right (-x) is on the image's left: jaw point 0 and the right eye lie at negative x.
    assert x[0] < 0 and x[36:42].mean() < 0 < x[42:48].mean()


def test_landmarks_are_where_a_face_has_them(open_model):
    y = open_model.mean_shape[open_model.landmarks, 1]
    assert not open_model.masks["eyes"][open_model.landmarks].any(), "a landmark sits on an eyeball"
    brows, eyes, nose_tip, mouth, chin = y[17:27].mean(), y[36:48].mean(), y[30], y[48:68].mean(), y[8]
    assert brows > eyes > nose_tip > mouth > chin
    five = open_model.five_points(open_model.mean_shape[None])[0]
    assert five.shape == (5, 3) and five[0, 0] < 0 < five[1, 0] and five[3, 0] < 0 < five[4, 0]
    assert five[2, 2] == open_model.mean_shape[open_model.landmarks, 2].max()  # the nose tip is the front-most landmark


def test_subdivision_carries_bases_exactly(open_model, generator):
    fine = open_model.subdivided(1)
    v, f = open_model.num_vertices, open_model.triangles.shape[0]
    assert fine.triangles.shape[0] == 4 * f and fine.num_vertices > 3 * v
    coeffs = open_model.sample(2, generator)
    coarse_shape = open_model.shape(coeffs["id"], coeffs["exp"])
    fine_shape = fine.shape(coeffs["id"], coeffs["exp"])
    assert torch.allclose(fine_shape[:, :v], coarse_shape, atol=1e-5)
    # A midpoint vertex is the average of its edge's ends, for every coefficient vector.
    a, b = open_model.triangles[0, 0], open_model.triangles[0, 1]
    mids = ((fine.mean_shape[v:] - (open_model.mean_shape[a] + open_model.mean_shape[b]) / 2).norm(dim=1) < 1e-6).nonzero()
    assert len(mids) == 1
    m = v + int(mids[0])
    assert torch.allclose(fine_shape[:, m], (coarse_shape[:, a] + coarse_shape[:, b]) / 2, atol=1e-5)
    assert (fine.mirror[fine.mirror] == torch.arange(fine.num_vertices)).float().mean() > 0.99


def test_a_model_file_with_a_missing_key_says_which(tmp_path, open_model):
    path = tmp_path / "broken.npz"
    np.savez(path, mean_shape=open_model.mean_shape.numpy(), triangles=open_model.triangles.numpy())
    with pytest.raises(ModelFileError, match="id_base"):
        MorphableModel.load(path)
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"not a zip file")
    with pytest.raises(ModelFileError, match="not a readable model file"):
        MorphableModel.load(corrupt)
