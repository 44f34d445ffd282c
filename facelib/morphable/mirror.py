"""``CoefficientMirror``: the unknowns of a face's mirror image (left and right swapped).

A photo flipped left to right shows the mirrored face: each vertex i moves to its partner's place
m(i) with x negated. For a model whose mean and bases are symmetric under that map, the mirrored
face is again a face of the model, and its coefficients are a fixed linear map of the original's:

    c' = B^+ (M(S_mean + B c) - S_mean) = (B^+ M(B)) c + B^+ (M(S_mean) - S_mean),

with M the mirror (permute by ``model.mirror``, negate x for shapes; permute only for albedo) and
B^+ the least-squares inverse of the basis. Each group (identity, expression, albedo) is mapped on
its own: exact for a model whose bases are each closed under the mirror, as the open model's are
(``residual`` about 1-2 %, measured by ``tests/test_coefficient_mirror.py``). The pose mirrors with
it: facelib's rotation is R = Rz(roll) Ry(yaw) Rx(pitch) (:func:`facelib.render.camera.euler_rotation`),
and with M = diag(-1, 1, 1), M R M = Rz(-roll) Ry(-yaw) Rx(pitch), factor by factor (M Rx(a) M = Rx(a),
M Ry(b) M = Ry(-b), M Rz(c) M = Rz(-c)). The translation's x changes sign, since the camera's
principal point is the image centre, so flipping the image's columns is x -> -x in the camera. Of
the nine SH bands, those odd in x (-x, xy and -xz: bands 3, 4 and 7) change sign.

Why: the regressor predicts a face from one view of it, and the same face flipped is a second view
that costs one more forward pass. Averaging a prediction with the mirror of the flipped image's
prediction (:meth:`facelib.nets.Regressor.forward` with ``mirror_average``) cancels the part of the
network's error that is not symmetric. ``residual`` says how far the model's bases are from closed
under the mirror (0 for an exactly symmetric model).
"""

from __future__ import annotations

import torch

from facelib.morphable.model import MorphableModel

SH_ODD_IN_X = (3, 4, 7)
"""The SH bands (of :func:`facelib.render.lighting.sh_basis`) that are odd in x: -x, xy and -xz."""

FIT_VERTICES = 4000
"""The least-squares maps are fitted on at most this many vertices (every k-th): a subdivided mesh adds
vertices interpolated from the coarse ones, which add nothing to the fit but cost memory (level 3:
a 600,000 x 80 basis)."""


class CoefficientMirror:
    """The coefficients, pose and light of the mirror image of faces of one model.

    Args:
        model: a morphable model with a mirror map (``model.mirror``).

    Attributes:
        mirror: (V,) each vertex's mirror partner (the model's ``mirror``).
        maps: {"id", "exp", "tex"}: (k, k) the linear parts, float32.
        offsets: {"id", "exp", "tex"}: (k,) the constant parts (from the mean's asymmetry), float32.
        residual: {"id", "exp", "tex"}: the relative part of each mirrored basis outside the basis's
            span (||M(B) - B B^+ M(B)|| / ||B||, Frobenius, on the fitted vertices; 0 for an exactly
            symmetric model).

    Raises:
        ValueError: the model has no mirror map.
    """

    def __init__(self, model: MorphableModel) -> None:
        if model.mirror is None:
            raise ValueError(f"{model.name} has no mirror map (model.mirror): its faces cannot be mirrored")
        self.mirror = model.mirror
        self.maps: dict[str, torch.Tensor] = {}
        self.offsets: dict[str, torch.Tensor] = {}
        self.residual: dict[str, float] = {}
        v = model.num_vertices
        rows = torch.arange(0, v, max(1, -(-v // FIT_VERTICES)), device=model.mirror.device)  # every k-th vertex
        partners = self.mirror[rows]
        means = {"id": model.mean_shape, "exp": model.mean_shape, "tex": model.mean_tex}
        bases = {"id": model.id_base, "exp": model.exp_base, "tex": model.tex_base}
        for name, base in bases.items():
            sign = torch.tensor([-1.0 if name != "tex" else 1.0, 1.0, 1.0], dtype=torch.float64, device=base.device)
            per_vertex = base.double().view(v, 3, -1)  # (V, 3, k)
            b = per_vertex[rows].reshape(-1, per_vertex.shape[-1])  # B on the fitted vertices: (3n, k)
            mirrored = (per_vertex[partners] * sign[:, None]).reshape(b.shape)  # M(B) there: each takes its partner's
            mean = means[name].double()
            shift = (mean[partners] * sign - mean[rows]).reshape(-1)  # M(mean) - mean: (3n,)
            pinv = torch.linalg.pinv(b)
            linear = pinv @ mirrored
            self.maps[name] = linear.float()
            self.offsets[name] = (pinv @ shift).float()
            self.residual[name] = float((mirrored - b @ linear).norm() / b.norm())

    def __call__(self, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The unknowns of the mirrored faces.

        Args:
            params: the layout of :func:`facelib.fit.initial_params`: "id", "exp", "tex" (B, k),
                "angles" (B, 3) pitch, yaw, roll; "translation" (B, 3); "gamma" (B, 27).

        Returns:
            The same keys for the faces mirrored left to right (keys other than these pass unchanged).
        """
        out = dict(params)
        for name, linear in self.maps.items():
            if name in params:
                c = params[name]
                linear, offset = linear.to(c.device), self.offsets[name].to(c.device)
                out[name] = (c.float() @ linear.T + offset).to(c.dtype)
        if "angles" in params:
            out["angles"] = params["angles"] * params["angles"].new_tensor([1.0, -1.0, -1.0])
        if "translation" in params:
            out["translation"] = params["translation"] * params["translation"].new_tensor([-1.0, 1.0, 1.0])
        if "gamma" in params:
            sign = torch.ones(9, dtype=params["gamma"].dtype, device=params["gamma"].device)
            sign[list(SH_ODD_IN_X)] = -1.0
            out["gamma"] = (params["gamma"].reshape(-1, 3, 9) * sign).reshape(params["gamma"].shape)
        return out
