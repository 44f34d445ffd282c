"""``MorphableModel``: a linear 3D face model with BFM's interface (Deng et al.'s layout).

    S = S_mean + I_base c_id + E_base c_exp        (shape, (V, 3))
    T = T_mean + T_base c_tex                       (albedo, (V, 3), values in [0, 1])

Bases are (3V, k) with rows ordered x0, y0, z0, x1, ... and columns scaled by their standard
deviations, so coefficients are about N(0, 1). The full coefficient vector of a face image is laid
out as id | exp | tex | angles (3) | gamma (27, SH lighting) | trans (3): 80 + 64 + 80 + 3 + 27 + 3 =
257 for BFM and for facelib's open model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facelib.mesh.subdivide import subdivision_levels
from facelib.mesh.symmetry import mirror_by_position
from facelib.morphable.landmarks import five_from_68

REGION_NAMES = ("skin", "eyes", "brows", "lips", "nose")
REQUIRED_KEYS = ("mean_shape", "id_base", "exp_base", "mean_tex", "tex_base", "triangles", "landmarks")


class ModelFileError(ValueError):
    """A model file is missing a key or holds an array of the wrong shape (the message says which)."""


@dataclass(frozen=True)
class CoefficientLayout:
    """Named slices of the coefficient vector (Deng et al.'s order)."""

    n_id: int = 80
    n_exp: int = 64
    n_tex: int = 80

    @property
    def sizes(self) -> dict[str, int]:
        return {"id": self.n_id, "exp": self.n_exp, "tex": self.n_tex, "angles": 3, "gamma": 27, "trans": 3}

    @property
    def slices(self) -> dict[str, slice]:
        out, start = {}, 0
        for name, size in self.sizes.items():
            out[name] = slice(start, start + size)
            start += size
        return out

    @property
    def total(self) -> int:
        return sum(self.sizes.values())

    def split(self, coeffs: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, total) -> {"id": (B, n_id), ..., "trans": (B, 3)}."""
        if coeffs.shape[-1] != self.total:
            raise ValueError(f"expected {self.total} coefficients, got {coeffs.shape[-1]}")
        return {name: coeffs[..., s] for name, s in self.slices.items()}


class MorphableModel:
    """A linear face model on one triangle mesh, batched and differentiable.

    Attributes:
        mean_shape: (V, 3). id_base, exp_base, tex_base: (3V, k). mean_tex: (V, 3).
        triangles: (F, 3) long. landmarks: (68,) vertex indices in iBUG order.
        mirror: (V,) index of each vertex's mirror partner.
        masks: region name -> (V,) bool (skin, eyes, brows, lips, nose).
        meta: how the model was made (builder version, seed, settings), empty when unknown.
    """

    def __init__(
        self,
        mean_shape: torch.Tensor,
        id_base: torch.Tensor,
        exp_base: torch.Tensor,
        mean_tex: torch.Tensor,
        tex_base: torch.Tensor,
        triangles: torch.Tensor,
        landmarks: torch.Tensor,
        mirror: torch.Tensor | None = None,
        masks: dict[str, torch.Tensor] | None = None,
        name: str = "model",
        meta: dict | None = None,
    ) -> None:
        v = mean_shape.shape[0]
        for label, base in (("id_base", id_base), ("exp_base", exp_base), ("tex_base", tex_base)):
            if base.ndim != 2 or base.shape[0] != 3 * v:
                raise ModelFileError(f"{label} must be (3V={3 * v}, k), got {tuple(base.shape)}")
        if mean_tex.shape != (v, 3):
            raise ModelFileError(f"mean_tex must be (V={v}, 3), got {tuple(mean_tex.shape)}")
        if triangles.ndim != 2 or triangles.shape[1] != 3:
            raise ModelFileError(f"triangles must be (F, 3), got {tuple(triangles.shape)}")
        for label, idx in (("triangles", triangles), ("landmarks", landmarks), ("mirror", mirror)):
            if idx is not None and idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= v):
                raise ModelFileError(f"{label} hold vertex indices in [{int(idx.min())}, {int(idx.max())}], outside [0, {v}) (1-based indices from a .mat file?)")
        self.mean_shape, self.id_base, self.exp_base = mean_shape, id_base, exp_base
        self.mean_tex, self.tex_base = mean_tex, tex_base
        self.triangles, self.landmarks = triangles.long(), landmarks.long()
        self.mirror = mirror.long() if mirror is not None else None
        self.masks = masks or {}
        self.name = name
        self.meta = meta or {}
        self.layout = CoefficientLayout(id_base.shape[1], exp_base.shape[1], tex_base.shape[1])

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, level: int = 0) -> "MorphableModel":
        """Loads a model written by the open-model builder; ``level`` > 0 subdivides it."""
        path = Path(path)
        try:
            data = dict(np.load(path, allow_pickle=False))
        except Exception as err:  # OSError, ValueError, zipfile.BadZipFile, EOFError: all mean "not a model file"
            raise ModelFileError(f"{path} is not a readable model file ({err}); rebuild it with `python -m facelib build-model`") from err
        missing = [k for k in REQUIRED_KEYS if k not in data]
        if missing:
            raise ModelFileError(f"{path} lacks {', '.join(missing)}; rebuild it with `python -m facelib build-model`")
        t = {k: torch.from_numpy(data[k]) for k in data if k != "meta"}
        masks = {r: t[f"mask_{r}"].bool() for r in REGION_NAMES if f"mask_{r}" in t}
        meta = json.loads(bytes(data["meta"]).decode()) if "meta" in data else {}
        model = cls(t["mean_shape"], t["id_base"], t["exp_base"], t["mean_tex"], t["tex_base"], t["triangles"],
                    t["landmarks"], t.get("mirror"), masks, name=f"open face model ({path.name})", meta=meta)
        return model.subdivided(level) if level else model

    def subdivided(self, levels: int = 1) -> "MorphableModel":
        """The same model on a mesh subdivided ``levels`` times (midpoint rule; bases carried exactly).

        Vertex indices of the coarse mesh keep their meaning, so landmarks stay valid; a new vertex
        lies in a region when both of its parents do; the mirror map is recomputed by position.
        """
        if levels <= 0:
            return self
        v = self.mean_shape.shape[0]
        tris, matrix = subdivision_levels(self.triangles.numpy(), v, levels)

        def up(x: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(np.asarray(matrix @ x.numpy().astype(np.float64), dtype=np.float32))

        def up_base(base: torch.Tensor) -> torch.Tensor:
            k = base.shape[1]
            return up(base.reshape(v, 3 * k)).reshape(-1, k)

        masks = {key: torch.from_numpy(np.asarray(matrix @ mask.numpy().astype(np.float64)) > 0.999) for key, mask in self.masks.items()}
        mean = up(self.mean_shape)
        mirror = None
        if self.mirror is not None:
            mirror = torch.from_numpy(mirror_by_position(mean.numpy()))
            mirror[:v] = self.mirror
        return MorphableModel(mean, up_base(self.id_base), up_base(self.exp_base), up(self.mean_tex), up_base(self.tex_base),
                              torch.from_numpy(tris), self.landmarks, mirror, masks, name=f"{self.name}, level {levels}", meta=self.meta)

    # ---- the model ------------------------------------------------------------------------------
    @property
    def num_vertices(self) -> int:
        return self.mean_shape.shape[0]

    @property
    def device(self) -> torch.device:
        return self.mean_shape.device

    def shape(self, c_id: torch.Tensor, c_exp: torch.Tensor | None = None) -> torch.Tensor:
        """S = S_mean + I_base c_id + E_base c_exp.  (B, n_id), (B, n_exp) -> (B, V, 3)."""
        offsets = c_id @ self.id_base.T
        if c_exp is not None:
            offsets = offsets + c_exp @ self.exp_base.T
        return self.mean_shape + offsets.view(c_id.shape[0], -1, 3)

    def albedo(self, c_tex: torch.Tensor) -> torch.Tensor:
        """T = T_mean + T_base c_tex.  (B, n_tex) -> (B, V, 3); not clipped (clip for display)."""
        return self.mean_tex + (c_tex @ self.tex_base.T).view(c_tex.shape[0], -1, 3)

    def sample(self, n: int, generator: torch.Generator | None = None, scale: float = 1.0) -> dict[str, torch.Tensor]:
        """Random coefficients, N(0, scale^2) each: {"id": (n, n_id), "exp": ..., "tex": ...}."""
        def draw(k: int) -> torch.Tensor:
            return torch.randn(n, k, generator=generator).to(self.device) * scale

        return {"id": draw(self.layout.n_id), "exp": draw(self.layout.n_exp), "tex": draw(self.layout.n_tex)}

    def landmarks_3d(self, vertices: torch.Tensor) -> torch.Tensor:
        """The 68 landmark positions of shapes.  (B, V, 3) -> (B, 68, 3)."""
        return vertices[:, self.landmarks]

    def five_points(self, vertices: torch.Tensor) -> torch.Tensor:
        """The 5 alignment points (eye centres, nose tip, mouth corners) of shapes.  (B, V, 3) -> (B, 5, 3)."""
        return five_from_68(self.landmarks_3d(vertices))

    def to(self, device: str | torch.device) -> "MorphableModel":
        """A copy on ``device``."""
        return MorphableModel(
            self.mean_shape.to(device), self.id_base.to(device), self.exp_base.to(device), self.mean_tex.to(device),
            self.tex_base.to(device), self.triangles.to(device), self.landmarks.to(device),
            None if self.mirror is None else self.mirror.to(device), {k: m.to(device) for k, m in self.masks.items()}, self.name,
            self.meta,
        )

    def __repr__(self) -> str:
        return (f"MorphableModel({self.name}: {self.num_vertices} vertices, {self.triangles.shape[0]} triangles, "
                f"id {self.layout.n_id}, exp {self.layout.n_exp}, tex {self.layout.n_tex}, {self.layout.total} coefficients)")
