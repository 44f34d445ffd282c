"""Loading Deng et al.'s ``BFM_model_front.mat`` (BFM09 front face) into a ``MorphableModel``.

BFM cannot ship with the course; a user who has registered for it and prepared the file with
Deep3DFaceRecon's script switches with one call: ``facelib.morphable.load_bfm(path)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from facelib.mesh.symmetry import mirror_by_position
from facelib.morphable.model import ModelFileError, MorphableModel

BFM_KEYS = ("meanshape", "meantex", "idBase", "exBase", "texBase", "tri", "keypoints")


def load_bfm(path: str | Path, recenter: bool = True) -> MorphableModel:
    """Reads a BFM_model_front.mat.

    Args:
        path: the .mat file (keys meanshape (1, 3V), meantex (1, 3V) in 0..255, idBase (3V, 80),
            exBase (3V, 64), texBase (3V, 80) in 0..255 units, tri (F, 3) 1-based, keypoints
            (1, 68) 1-based; optional skinmask).
        recenter: subtract the mean vertex, as Deng et al. do.

    Raises:
        ModelFileError: naming the missing key or the array with the wrong shape.
    """
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path} does not exist: BFM must be obtained from its authors and prepared with Deep3DFaceRecon's script")
    try:
        mat = loadmat(str(path))
    except Exception as err:  # scipy raises several types for a corrupt file
        raise ModelFileError(f"{path} is not a readable .mat file ({err})") from err
    missing = [k for k in BFM_KEYS if k not in mat]
    if missing:
        raise ModelFileError(f"{path} lacks the key(s) {', '.join(missing)} (expected Deng et al.'s BFM_model_front.mat)")
    mean = np.asarray(mat["meanshape"], dtype=np.float64).reshape(-1)
    if mean.size % 3:
        raise ModelFileError(f"meanshape has {mean.size} values, not a multiple of 3")
    v = mean.size // 3

    def base(key: str) -> np.ndarray:
        b = np.asarray(mat[key], dtype=np.float64)
        if b.ndim != 2 or b.shape[0] != 3 * v:
            raise ModelFileError(f"{key} must be (3V={3 * v}, k), got {b.shape}")
        return b

    id_base, exp_base, tex_base = base("idBase"), base("exBase"), base("texBase")
    mean_tex = np.asarray(mat["meantex"], dtype=np.float64).reshape(-1)
    if mean_tex.size != 3 * v:
        raise ModelFileError(f"meantex must hold 3V={3 * v} values, got {mean_tex.size}")
    tri = np.asarray(mat["tri"], dtype=np.int64)
    if tri.ndim != 2 or tri.shape[1] != 3:
        raise ModelFileError(f"tri must be (F, 3), got {tri.shape}")
    keypoints = np.asarray(mat["keypoints"], dtype=np.int64).reshape(-1)
    if keypoints.size != 68:
        raise ModelFileError(f"keypoints must hold 68 indices, got {keypoints.size}")
    shape = mean.reshape(v, 3)
    if recenter:
        shape = shape - shape.mean(0, keepdims=True)
    mirror = mirror_by_position(shape)
    masks = {}
    if "skinmask" in mat:
        masks["skin"] = torch.from_numpy(np.asarray(mat["skinmask"]).reshape(-1)[:v] > 0)

    def t(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))

    return MorphableModel(
        t(shape), t(id_base), t(exp_base), t(mean_tex.reshape(v, 3) / 255.0), t(tex_base / 255.0),
        torch.from_numpy(tri - 1), torch.from_numpy(keypoints - 1), torch.from_numpy(mirror), masks, name=f"BFM ({path.name})",
    )
