"""The test session runs with its own temporary FACELIB_CACHE (see the root conftest.py): tests, their
subprocesses and the notebook kernels that nbval starts never write into the user's cache."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from facelib import config


def _listing(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and modification time (empty when there is no folder)."""
    if not folder.is_dir():
        return {}
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_session_cache_is_a_fresh_temporary_folder(test_cache_dir, user_cache_dir):
    assert config.CACHE_DIR == test_cache_dir == Path(os.environ["FACELIB_CACHE"])
    assert test_cache_dir.name.startswith("facelib-test-cache-")
    assert test_cache_dir.resolve().is_relative_to(Path(tempfile.gettempdir()).resolve())
    assert config.CACHE_DIR.resolve() != user_cache_dir.resolve()
    assert not user_cache_dir.resolve().is_relative_to(test_cache_dir.resolve())
    # Under pytest-xdist too: a worker's "user cache" is the user's, not the controller's temporary one.
    assert not user_cache_dir.resolve().is_relative_to(Path(os.environ["FACELIB_TEST_ROOT"]).resolve())
    assert test_cache_dir.resolve().is_relative_to(Path(os.environ["FACELIB_TEST_ROOT"]).resolve())


def test_a_cache_write_lands_in_the_temporary_folder_not_the_users(test_cache_dir, user_cache_dir):
    from facelib.mesh.hierarchy import MeshHierarchy

    before = _listing(user_cache_dir)
    # A small grid mesh with a random bump: its hash (the cache key) is new, so build() writes a file.
    n = 12
    ys, xs = np.meshgrid(np.linspace(0, 1, n), np.linspace(0, 1, n), indexing="ij")
    z = np.random.default_rng().normal(0, 0.01, (n, n))
    vertices = np.stack([xs, ys, z], -1).reshape(-1, 3).astype(np.float32)
    i = (np.arange(n - 1)[:, None] * n + np.arange(n - 1)[None]).ravel()
    faces = np.concatenate([np.stack([i, i + 1, i + n], 1), np.stack([i + 1, i + n + 1, i + n], 1)])
    path = MeshHierarchy.cache_path(vertices, faces, 0, (2.0,))
    assert not path.exists()
    MeshHierarchy.build(vertices, faces, factors=(2,))
    assert path.is_file() and path.resolve().is_relative_to(test_cache_dir.resolve())
    assert _listing(user_cache_dir) == before  # nothing created or modified there


def test_the_users_expensive_cache_files_are_copied_in(test_cache_dir, user_cache_dir):
    model = sorted(user_cache_dir.glob("open_face_model_*.npz"))
    if not model:
        pytest.skip(f"the user's cache {user_cache_dir} has no open model to copy")
    copy = test_cache_dir / model[0].name
    assert copy.is_file() and copy.read_bytes() == model[0].read_bytes()


def test_subprocesses_inherit_the_temporary_cache(test_cache_dir):
    out = subprocess.run([sys.executable, "-c", "import facelib.config as c; print(c.CACHE_DIR)"], capture_output=True,
                         text=True, check=True, timeout=120)
    assert Path(out.stdout.strip()) == test_cache_dir


def test_notebook_kernels_inherit_the_temporary_cache(test_cache_dir):
    """The kernel nbval starts for ``--nbval-current-env`` (as pyproject.toml asks) sees the same cache."""
    kernel_module = pytest.importorskip("nbval.kernel")
    kernel = kernel_module.RunningKernel(kernel_module.CURRENT_ENV_KERNEL_NAME, startup_timeout=120)
    try:
        msg_id = kernel.execute_cell_input("import facelib.config as c; print(c.CACHE_DIR)", allow_stdin=False)
        printed = []
        while True:
            msg = kernel.get_message("iopub", timeout=120)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                printed.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                pytest.fail("\n".join(msg["content"]["traceback"]))
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
    finally:
        kernel.stop()
    assert Path("".join(printed).strip()) == test_cache_dir
