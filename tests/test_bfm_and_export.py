"""The BFM loader on a small synthetic .mat with Deng's keys, and OBJ/PLY round trips."""

import numpy as np
import pytest
import torch
from scipy.io import savemat

from facelib.mesh.io import read_obj, read_ply, write_obj, write_ply
from facelib.morphable import ModelFileError, load_bfm


def _fake_bfm(v=120, f=200, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "meanshape": rng.normal(size=(1, 3 * v)), "meantex": rng.uniform(0, 255, (1, 3 * v)),
        "idBase": rng.normal(size=(3 * v, 80)), "exBase": rng.normal(size=(3 * v, 64)), "texBase": rng.normal(size=(3 * v, 80)),
        "tri": rng.integers(1, v + 1, (f, 3)).astype(np.float64), "keypoints": np.arange(1, 69, dtype=np.float64)[None],
        "skinmask": (rng.uniform(size=(1, v)) > 0.5).astype(np.float64), "point_buf": np.ones((v, 8)),
    }


def test_bfm_loader_reads_deng_layout(tmp_path):
    data = _fake_bfm()
    savemat(tmp_path / "BFM_model_front.mat", data)
    model = load_bfm(tmp_path / "BFM_model_front.mat")
    assert model.layout.total == 257 and model.num_vertices == 120
    assert model.triangles.min() == 0 and model.landmarks[0] == 0  # 1-based in the file
    assert torch.allclose(model.mean_shape.mean(0), torch.zeros(3), atol=1e-5)  # recentred
    assert model.mean_tex.max() <= 1.0
    c = model.sample(2)
    assert model.shape(c["id"], c["exp"]).shape == (2, 120, 3)


@pytest.mark.parametrize("key", ["idBase", "tri", "keypoints"])
def test_bfm_loader_names_the_missing_key(tmp_path, key):
    data = _fake_bfm()
    data.pop(key)
    savemat(tmp_path / "bfm.mat", data)
    with pytest.raises(ModelFileError, match=key):
        load_bfm(tmp_path / "bfm.mat")


def test_bfm_loader_names_the_wrong_shape(tmp_path):
    data = _fake_bfm()
    data["exBase"] = data["exBase"][:-3]
    savemat(tmp_path / "bfm.mat", data)
    with pytest.raises(ModelFileError, match=r"exBase must be \(3V=360"):
        load_bfm(tmp_path / "bfm.mat")


def test_obj_and_ply_round_trip(tmp_path, open_model):
    v, f, c = open_model.mean_shape, open_model.triangles, open_model.mean_tex.clamp(0, 1)
    rv, rf, rc = read_obj(write_obj(tmp_path / "face.obj", v, f, c))
    assert np.allclose(rv, v.numpy(), atol=1e-5) and np.array_equal(rf, f.numpy()) and np.allclose(rc, c.numpy(), atol=1e-5)
    rv, rf, rc = read_ply(write_ply(tmp_path / "face.ply", v, f, c))
    assert np.allclose(rv, v.numpy(), atol=1e-6) and np.array_equal(rf, f.numpy()) and np.abs(rc - c.numpy()).max() <= 0.5 / 255 + 1e-6
    rv, rf, rc = read_ply(write_ply(tmp_path / "plain.ply", v, f))
    assert rc is None
