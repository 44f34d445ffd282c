"""Exercises of lesson 06 (reconstruct your own photo), with facelib's reference implementations."""

from __future__ import annotations

import torch

from facelib.course.check import Exercise, expect, expect_close, expect_tensor
# The references are facelib's own functions.
from facelib.evaluate import albedo_error
from facelib.gcn import TextureGCN, TextureGCNConfig
from facelib.gcn.weights import texture_hierarchy
from facelib.morphable import load_open_model
from facelib.morphable.model import CoefficientLayout
from facelib.render.lighting import sh_shading, unshade


def split_coefficients(vector: torch.Tensor, layout: CoefficientLayout) -> dict[str, torch.Tensor]:
    """Deng et al.'s coefficient vector cut into named parts (facelib's :meth:`CoefficientLayout.split`)."""
    return layout.split(vector)


def _test_split(answer) -> None:
    layout = CoefficientLayout(n_id=5, n_exp=4, n_tex=6)
    vector = torch.arange(2 * layout.total, dtype=torch.float32).view(2, layout.total)
    out = answer(vector, layout)
    ref = layout.split(vector)
    expect(isinstance(out, dict), "return a dict of named parts")
    expect(set(out) == set(ref), f"the parts are named {sorted(ref)} (see layout.sizes)")
    for name in ref:
        got = expect_tensor(out[name], f"part {name!r}", tuple(ref[name].shape))
        expect(torch.equal(got, ref[name]), f"part {name!r} holds the wrong entries: the parts follow each other in the "
                                            "order of layout.sizes, each as long as its size")
    other = CoefficientLayout(n_id=3, n_exp=2, n_tex=1)
    out = answer(torch.zeros(1, other.total), other)
    expect(out["id"].shape[-1] == 3 and out["trans"].shape[-1] == 3, "use the layout you are given, not fixed sizes")


split_exercise = Exercise(
    "Exercise 6.1: cut the coefficient vector into named parts", split_coefficients, _test_split,
    "Walk through layout.sizes in order, keeping a running start index; vector[:, start:start + size] is each part.",
)


def delight(colors: torch.Tensor, normals: torch.Tensor, gamma: torch.Tensor, min_irradiance: float = 0.05) -> torch.Tensor:
    """The albedo that shows ``colors`` under the SH light ``gamma`` (facelib's :func:`~facelib.render.unshade`)."""
    return unshade(colors, normals, gamma, min_irradiance)[0]


def _test_delight(answer) -> None:
    g = torch.Generator().manual_seed(61)
    normals = torch.nn.functional.normalize(torch.randn(2, 50, 3, generator=g), dim=-1)
    gamma = 0.3 * torch.randn(2, 27, generator=g)
    albedo = 0.1 + 0.8 * torch.rand(2, 50, 3, generator=g)
    albedo[:, ::5] *= 1.6  # every fifth reading is brighter than the light allows (a highlight)
    colors = albedo * sh_shading(normals, gamma)
    out = expect_tensor(answer(colors, normals, gamma), "the albedo", (2, 50, 3))
    lit = sh_shading(normals, gamma) >= 0.05
    expect(lit.any(), "internal: the test light lights nothing")
    plain = (lit.all(-1) & (albedo <= 1).all(-1)).unsqueeze(-1).expand_as(lit)  # every channel lit and in range
    expect(bool((lit.all(-1) & (albedo > 1).any(-1)).any()), "internal: the test has no reading brighter than white")
    expect_close(out[plain], albedo[plain], "the albedo where the light reaches (divide each channel by its irradiance, "
                 "facelib.render.sh_shading(normals, gamma))", atol=1e-4)
    expect(bool((out >= 0).all() and (out <= 1).all()), "an albedo is a reflectance in [0, 1]: bring the result into it")
    expect(bool((out[~lit] == 0).all()), "where a channel's irradiance is below min_irradiance, nothing can be recovered: return 0 there "
                                          "(dividing by a tiny irradiance turns noise into huge colours)")
    expect_close(out, delight(colors, normals, gamma), "the albedo of a reading brighter than white (divide its three channels "
                 "by the largest, so it keeps its hue; clipping each channel at 1 takes red out of warm skin)")


delight_exercise = Exercise(
    "Exercise 6.2: take the light off the photo's colours", delight, _test_delight,
    "irradiance = sh_shading(normals, gamma) is (B, N, 3); divide where irradiance >= min_irradiance "
    "(torch.where), put 0 elsewhere; then clamp(min=0), and divide each vertex by max(1, its largest channel) "
    "(x.amax(-1, keepdim=True).clamp(min=1)) so a too-bright reading keeps its hue.",
)


def scale_invariant_error(albedo: torch.Tensor, truth: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Per-face L1 albedo error after the best per-channel gain (facelib's :func:`~facelib.evaluate.albedo_error`)."""
    return albedo_error(albedo, truth, weights, scale_invariant=True)


def _test_scale_invariant_error(answer) -> None:
    g = torch.Generator().manual_seed(62)
    truth = 0.2 + 0.6 * torch.rand(3, 40, 3, generator=g)
    weights = (torch.rand(3, 40, generator=g) > 0.3).float()
    scaled = truth * torch.tensor([0.5, 1.3, 0.9])
    out = expect_tensor(answer(scaled, truth, weights), "the errors", (3,))
    expect(bool(out.abs().max() < 1e-5), "an albedo that differs from the truth only by a gain per channel should score 0: "
                                         "fit g_c over the weighted vertices, then compare g_c * albedo with the truth")
    noisy = truth + 0.1 * torch.randn(3, 40, 3, generator=g)
    expect_close(answer(noisy, truth, weights), scale_invariant_error(noisy, truth, weights),
                 "the errors of a noisy albedo (least-squares gain per face and channel, sum_v w T' T* / sum_v w T'^2; "
                 "then the weighted mean over vertices of the L1 distance averaged over RGB)", atol=1e-5)
    half = weights.clone()
    half[:, :20] = 0
    expect_close(answer(noisy, truth, half), scale_invariant_error(noisy, truth, half),
                 "the errors with zero weights on half the vertices: those vertices count neither in the gain nor in the mean", atol=1e-5)


scale_invariant_exercise = Exercise(
    "Exercise 6.3: a fair albedo error", scale_invariant_error, _test_scale_invariant_error,
    "The least-squares gain of one face and channel is a ratio of two weighted sums over the vertices (keepdim=True "
    "keeps it broadcastable); scale the albedo by it, then take the weighted mean of the L1 distance averaged over RGB.",
)


def residual_albedo(coarse: torch.Tensor, confidence: torch.Tensor, delit: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """The shipped ("fidelity") TextureGCN's output from its CombineNet's pre-activation z:

        B = T + c (D - T)    (T, c and D clamped to [0, 1]),      T' = clamp(B + tanh(z), 0, 1).

    Args:
        coarse: (B, V, 3) the 3DMM albedo T. confidence: (B, V) c. delit: (B, V, 3) the de-lit photo D.
        z: (B, V, 3) the CombineNet's output before its tanh (:meth:`~facelib.gcn.TextureGCN.preactivation`).

    Returns:
        (B, V, 3) T'.
    """
    t = coarse.clamp(0, 1)
    start = t + confidence.clamp(0, 1).unsqueeze(-1) * (delit.clamp(0, 1) - t)
    return (start + torch.tanh(z)).clamp(0, 1)


def _test_residual_albedo(answer) -> None:
    g = torch.Generator().manual_seed(64)
    b, v = 2, 40
    coarse, delit = torch.rand(b, v, 3, generator=g, dtype=torch.float64), torch.rand(b, v, 3, generator=g, dtype=torch.float64)
    confidence = torch.rand(b, v, generator=g, dtype=torch.float64)
    zero = torch.zeros(b, v, 3, dtype=torch.float64)
    out = expect_tensor(answer(coarse, confidence, delit, zero), "T' with z = 0", (b, v, 3)).double()
    expect_close(answer(coarse, torch.zeros(b, v, dtype=torch.float64), delit, zero).double(), coarse,
                 "T' with c = 0 and z = 0 (where the photo cannot be read the network starts at the 3DMM albedo T)")
    expect_close(answer(coarse, torch.ones(b, v, dtype=torch.float64), delit, zero).double(), delit,
                 "T' with c = 1 and z = 0 (where the photo is read fully it starts at the de-lit photo D)")
    expect_close(out, coarse + confidence[..., None] * (delit - coarse), "T' with z = 0 (B = T + c (D - T), c per vertex)")
    big = torch.full((b, v, 3), 5.0, dtype=torch.float64)
    high = answer(coarse, confidence, delit, big).double()
    expect(bool((high <= 1).all() and (high >= 0).all()), "T' must stay in [0, 1]: clamp B + tanh(z)")
    expect(bool((high > out).all() | (high == 1).all()), "a large z should raise T': add tanh(z) to B (the change is bounded by 1)")
    z = torch.randn(b, v, 3, generator=g, dtype=torch.float64)
    mine = answer(coarse, confidence, delit, z).double()
    unsquashed = (coarse + confidence[..., None] * (delit - coarse) + z).clamp(0, 1)
    expect(not torch.allclose(mine, unsquashed), "T' adds z itself: squash it with tanh first (the change is at most 1 per channel)")
    expect_close(mine, residual_albedo(coarse, confidence, delit, z), "T' = clamp(B + tanh(z), 0, 1)")
    # The real network: its forward pass is exactly this, from its own pre-activation.
    model = load_open_model(level=0, verbose=False)
    torch.manual_seed(6)
    net = TextureGCN(texture_hierarchy(model, 0), TextureGCNConfig.fidelity(embedding_dim=8)).eval()
    for p in net.combine.parameters():  # a trained-looking CombineNet, not the zero start
        torch.nn.init.normal_(p, 0.0, 0.3)
    n = model.num_vertices
    t, d = torch.rand(1, n, 3), torch.rand(1, n, 3)
    c = (torch.rand(1, n) > 0.4).float()
    args = (t, d, c, torch.randn(1, 8), d)
    with torch.no_grad():
        expect_close(answer(t, c, d, net.preactivation(*args)).float(), net(*args), "T' against facelib's TextureGCN", atol=1e-5)


residual_albedo_exercise = Exercise(
    "Exercise 6.4: the CombineNet's output, in residual form", residual_albedo, _test_residual_albedo,
    "t = coarse.clamp(0, 1); B = t + confidence.clamp(0, 1)[..., None] * (delit.clamp(0, 1) - t); return (B + torch.tanh(z)).clamp(0, 1).",
)
