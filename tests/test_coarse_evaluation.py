"""The coarse stage's scores: the aligned shape error and ``evaluate_regressor`` with its fits and subsets."""

import math

import torch

from facelib.evaluate.metrics import aligned_vertex_error
from facelib.evaluate.regressor import (EXPRESSIVE_MOUTH_MM, FIT_FROM_MEAN, FIT_FROM_REGRESSOR, MEAN_FACE, REGRESSOR, SCORES,
                                        coarse_table, evaluate_regressor, mouth_region)


def _rotation(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=torch.float64)


def test_aligned_error_ignores_a_similarity_and_nothing_else():
    g = torch.Generator().manual_seed(0)
    truth = torch.randn(2, 50, 3, generator=g, dtype=torch.float64)
    moved = 1.7 * truth @ _rotation(0.6).T + torch.tensor([0.3, -2.0, 1.0], dtype=torch.float64)
    weights = torch.ones(50)
    assert float(aligned_vertex_error(moved, truth, weights).max()) < 1e-9
    noisy = truth + 0.1 * torch.randn(truth.shape, generator=g, dtype=torch.float64)
    plain = (noisy - truth).norm(dim=-1).mean(1)
    aligned = aligned_vertex_error(noisy, truth, weights)
    # Moving the noisy shape by any similarity first changes nothing, and aligning never does worse than not aligning.
    again = aligned_vertex_error(0.5 * noisy @ _rotation(-1.1).T + 4.0, truth, weights)
    assert torch.allclose(aligned, again, atol=1e-9) and bool((aligned <= plain + 1e-12).all())
    # A mirror image is not a similarity: it keeps its error.
    mirrored = truth * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    assert float(aligned_vertex_error(mirrored, truth, weights).min()) > 0.1
    # Vertices with weight 0 neither move the alignment nor count.
    spoiled = moved.clone()
    spoiled[:, :5] += 10.0
    weights[:5] = 0
    assert float(aligned_vertex_error(spoiled, truth, weights).max()) < 1e-9


def test_mouth_region_surrounds_the_mouth(open_model):
    mouth = mouth_region(open_model)
    assert 50 < int(mouth.sum()) < 0.2 * open_model.num_vertices
    centre = open_model.mean_shape.view(-1, 3)[open_model.landmarks[48:68]].mean(0)
    assert float((open_model.mean_shape.view(-1, 3)[mouth] - centre).norm(dim=-1).max()) < 0.4


def test_evaluate_regressor_scores_four_methods_and_the_subsets(capsys):
    from facelib.nets import load_regressor

    regressor = load_regressor(verbose=False)
    result = evaluate_regressor(regressor, n=4, size=64, batch=4, fit_steps=3, refit_steps=1, turned_faces=2, verbose=True)
    assert list(result["methods"]) == [MEAN_FACE, REGRESSOR, FIT_FROM_MEAN, FIT_FROM_REGRESSOR]
    for scores in result["methods"].values():
        assert set(scores) == set(SCORES) and all(math.isfinite(v) for v in scores.values()), scores
    # The mean face's expression is zero, so on the expressive mouths its error is the truth's own: ratio 1.
    mouth = result["expressive_mouth"]
    assert mouth["threshold_mm"] == EXPRESSIVE_MOUTH_MM
    if mouth["n"]:
        assert abs(mouth["vs_neutral"][MEAN_FACE] - 1.0) < 1e-6
    assert sum(row["n"] for row in result["skin_tone"].values()) == 4
    assert set(result["fit_vs_fit"]) == set(SCORES) and set(result["seconds"]) == {FIT_FROM_MEAN, FIT_FROM_REGRESSOR}
    assert result["methods"][MEAN_FACE]["angle_deg"] > 0 and "68-lm px" in capsys.readouterr().out
    assert "skin tone" in coarse_table(result)
    # The benchmark stops at 60 degrees of yaw; the far-turned faces, 60-75, are scored beside it.
    far = result["far_turned"]
    assert far["n"] == 2 and far["yaw_range_deg"] == [60.0, 75.0] and set(far["yaw_deg"]) == set(result["methods"])
    assert far["yaw_deg"][MEAN_FACE] >= 60 - 1e-3 and "turned 60-75 deg (2 more faces)" in coarse_table(result)
    assert set(far["yaw_deg_with_turned"]) == set(result["methods"])
    without = evaluate_regressor(None, n=2, size=64, batch=2, verbose=False)
    assert list(without["methods"]) == [MEAN_FACE] and "vs_mean_face" not in without


def test_evaluate_photos_fits_the_landmarks_reconstruct_fits(monkeypatch):
    from facelib.evaluate import regressor as evaluation
    from facelib.evaluate.regressor import evaluate_photos
    from facelib.fit import PRIOR_AT_INIT_WEIGHT, FitConfig
    from facelib.nets import load_regressor
    from facelib.nets.dlib_files import DLIB_LANDMARKS_68_FILE, dlib_model_path

    weights, real = [], evaluation.fit

    def spy(*args, config=None, prior_mean=None, **kwargs):
        weights.append((prior_mean is not None, config.coef_weight))
        return real(*args, config=config, prior_mean=prior_mean, **kwargs)

    monkeypatch.setattr(evaluation, "fit", spy)
    result = evaluate_photos(load_regressor(verbose=False), verbose=False)  # 128 px, 100 steps, as eval-regressor --photos
    # the prior weighed as reconstruct weighs it: loose at the regressor's guess, the default at the mean face
    assert weights == [(True, PRIOR_AT_INIT_WEIGHT), (False, FitConfig().coef_weight)] * len(result)
    for rows in result.values():
        if dlib_model_path(DLIB_LANDMARKS_68_FILE) is None:
            assert rows["landmarks"] == 5 and "start_68pt_px" not in rows["regressor"]
            continue
        assert rows["landmarks"] == 68
        for row in (rows["regressor"], rows["mean_face"]):  # the fit follows dlib's landmarks, from either start
            assert row["fit_68pt_px"] < min(row["start_68pt_px"], 2.0)
