"""The de-lit photo's denoising (facelib.texture_inputs.denoise_confidence) against a plain reference, and the settings of the
fidelity network's inputs (denoise, mirror_weight)."""

import pytest
import torch

from facelib.mesh.graph import ring_mean, scipy_adjacency
from facelib.texture_inputs import denoise_confidence


def grid(n: int) -> torch.Tensor:
    """(F, 3) triangles of an n x n vertex grid."""
    tris = []
    for r in range(n - 1):
        for c in range(n - 1):
            a, b, d, e = r * n + c, r * n + c + 1, (r + 1) * n + c, (r + 1) * n + c + 1
            tris += [(a, b, d), (b, e, d)]
    return torch.tensor(tris)


def test_ring_mean_is_the_mean_over_the_closed_one_ring():
    triangles = grid(5)
    values = torch.rand(2, 25)
    a = torch.from_numpy(scipy_adjacency(triangles, 25).toarray()).float() + torch.eye(25)
    reference = values @ a.T / a.sum(1)
    assert torch.allclose(ring_mean(values, triangles), reference, atol=1e-6)


def test_denoising_drops_the_noise_and_keeps_the_detail():
    # T grey; D = T + small noise everywhere + one large spot over a 3 x 3 patch (the detail).
    n = 12
    triangles = grid(n)
    g = torch.Generator().manual_seed(0)
    coarse = torch.full((1, n * n, 3), 0.5)
    delit = coarse + 0.02 * torch.randn(1, n * n, 3, generator=g)
    spot = torch.tensor([r * n + c for r in range(4, 7) for c in range(4, 7)])
    delit[0, spot] -= 0.3
    confidence = torch.ones(1, n * n)
    confidence[0, :n] = 0.0  # a row that cannot be read stays unread
    kept = denoise_confidence(coarse, delit, confidence, triangles, strength=1.0)
    assert kept.shape == confidence.shape and (kept <= confidence).all() and (kept >= 0).all()
    assert (kept[0, :n] == 0).all()
    assert float(kept[0, spot].mean()) > 0.7  # the detail is kept
    others = torch.ones(n * n, dtype=torch.bool)
    others[spot], others[:n] = False, False
    assert float(kept[0, others].mean()) < 0.35  # most of the noise is not
    # The start T + c (D - T) comes closer to the truth (T with the spot) than the raw reading.
    truth = coarse.clone()
    truth[0, spot] -= 0.3
    start = lambda c: coarse + c.unsqueeze(-1) * (delit - coarse)  # noqa: E731
    assert (start(kept) - truth).abs().mean() < 0.6 * (start(confidence) - truth).abs().mean()
    # Strength 0 changes nothing; a stronger threshold keeps less.
    assert torch.equal(denoise_confidence(coarse, delit, confidence, triangles, 0.0), confidence)
    assert (denoise_confidence(coarse, delit, confidence, triangles, 2.0) <= kept + 1e-7).all()
    with pytest.raises(ValueError, match="strength"):
        denoise_confidence(coarse, delit, confidence, triangles, -1.0)


def test_the_denoising_is_an_opt_in_of_the_fidelity_network():
    import dataclasses

    from facelib.gcn import TextureGCNConfig
    from facelib.train.texture import TextureTrainConfig

    assert TextureGCNConfig.fidelity().denoise == 0.0 == TextureTrainConfig().denoise  # the shipped recipe
    dataclasses.replace(TextureGCNConfig.fidelity(), denoise=1.0).check(5)
    with pytest.raises(ValueError, match="denoise"):
        dataclasses.replace(TextureGCNConfig.paper(), denoise=1.0).check(5)  # it needs the de-lit photo
    with pytest.raises(ValueError, match="denoise"):
        TextureTrainConfig(denoise=-1.0)


def test_the_mirror_weight_is_a_weight_of_the_fidelity_network():
    import dataclasses

    from facelib.gcn import TextureGCNConfig
    from facelib.train.texture import TextureTrainConfig

    assert TextureGCNConfig.fidelity().mirror_weight == 1.0  # what a file that does not record it was trained with
    dataclasses.replace(TextureGCNConfig.fidelity(), mirror_weight=0.5).check(5)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="mirror_weight"):
            dataclasses.replace(TextureGCNConfig.fidelity(), mirror_weight=bad).check(5)
        with pytest.raises(ValueError, match="mirror_weight"):
            TextureTrainConfig(mirror_weight=bad)
    with pytest.raises(ValueError, match="mirror_weight"):
        dataclasses.replace(TextureGCNConfig.paper(), mirror_weight=0.5).check(5)  # only the de-lit photo is mirror-filled
