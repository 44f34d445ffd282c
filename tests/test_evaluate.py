"""Benchmark metrics: albedo error, PSNR and SSIM against hand-computed values, and the benchmark loop."""

import math

import pytest
import torch

from facelib.data import benchmark
from facelib.evaluate import Prediction, albedo_error, evaluate, ground_truth, psnr, ssim, table, truth_masks


def test_albedo_error_is_the_weighted_mean_l1():
    truth = torch.zeros(2, 3, 3)
    albedo = torch.tensor([[[0.3, 0.0, 0.0], [0.0, 0.6, 0.0], [9.0, 9.0, 9.0]],
                           [[0.1, 0.1, 0.1], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    weights = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    err = albedo_error(albedo, truth, weights)
    assert err[0] == pytest.approx((0.1 + 0.2) / 2)
    assert math.isnan(err[1])  # nothing to measure is not a perfect score
    with pytest.raises(ValueError, match="must both be"):
        albedo_error(albedo[..., :2], truth[..., :2], weights)


def test_psnr_of_a_known_error():
    target = torch.full((1, 8, 8, 3), 0.5)
    image = target + 0.1  # MSE 0.01 -> 20 dB
    mask = torch.zeros(1, 8, 8)
    mask[:, 2:6, 2:6] = 1
    assert psnr(image, target, mask).item() == pytest.approx(20.0, abs=1e-4)
    image[:, 0] = 0  # outside the mask: no effect
    assert psnr(image, target, mask).item() == pytest.approx(20.0, abs=1e-4)
    assert math.isnan(psnr(image, target, torch.zeros(1, 8, 8)).item())


def test_ssim_is_one_for_equal_images_and_drops_with_noise():
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(2, 32, 32, 3, generator=gen)
    mask = torch.ones(2, 32, 32)
    assert torch.allclose(ssim(target, target, mask), torch.ones(2), atol=1e-5)
    noisy = (target + 0.2 * torch.randn(2, 32, 32, 3, generator=gen)).clamp(0, 1)
    worse = (target + 0.4 * torch.randn(2, 32, 32, 3, generator=gen)).clamp(0, 1)
    s1, s2 = ssim(noisy, target, mask), ssim(worse, target, mask)
    assert (s1 < 0.95).all() and (s2 < s1).all()
    # A brightness shift of a flat image barely changes the structure term but lowers the luminance term.
    flat = torch.full((1, 16, 16, 3), 0.5, dtype=torch.float64)  # float64: the variances cancel exactly
    assert ssim(flat + 0.1, flat, torch.ones(1, 16, 16, dtype=torch.float64)).item() == pytest.approx((2 * 0.3 + 1e-4) / (0.36 + 0.25 + 1e-4), abs=1e-4)
    with pytest.raises(ValueError, match="odd"):
        ssim(target, target, mask, window=4)


def test_benchmark_scores_truth_perfectly_and_the_3dmm_albedo_not():
    faces = benchmark(n=6, size=64, level=0, device="cpu")
    scores = evaluate({"truth": ground_truth, "3dmm": lambda b: ground_truth(b, base=True)}, faces, batch_size=4)
    truth, coarse = scores["truth"].mean(), scores["3dmm"].mean()
    assert truth["albedo_face"] == 0 and truth["albedo_visible"] == 0
    assert coarse["albedo_face"] > 0.005
    assert coarse["albedo_detail"] > coarse["albedo_face"]  # the detail band is where a 3DMM fails
    assert truth["psnr"] > coarse["psnr"] and truth["ssim"] >= coarse["ssim"]
    assert scores["truth"].albedo["face"].shape == (6,)
    # each face's detail share, from the truth: the same for every method, across the batches of 4
    masks = [truth_masks(faces, batch) for batch in faces.batches(6, list(range(6)))][0]
    expected = masks["detail"].sum(1) / masks["face"].sum(1)
    assert torch.allclose(scores["truth"].detail_share, expected) and torch.equal(scores["3dmm"].detail_share, expected)
    assert 0 < float(expected.max()) <= 1
    text = table(scores, baseline="3dmm")
    assert "truth" in text and "-100.0 %" in text


def test_evaluate_rejects_a_wrong_albedo():
    faces = benchmark(n=2, size=32, level=0, device="cpu")

    def broken(batch):
        good = ground_truth(batch)
        return Prediction(good.albedo[:, :10], good.params)

    with pytest.raises(ValueError, match="broken.*shape"):
        evaluate({"broken": broken}, faces)


def test_paired_improvement_and_its_interval():
    from facelib.evaluate import paired_improvement

    gen = torch.Generator().manual_seed(3)
    base = 0.1 + 0.02 * torch.rand(40, generator=gen)
    better = base * 0.8 + 0.002 * torch.randn(40, generator=gen)
    r, low, high = paired_improvement(base, better)
    assert r == pytest.approx(1 - better.mean().item() / base.mean().item())
    assert 0.15 < low < r < high < 0.25
    same = base + 0.01 * torch.randn(40, generator=gen)
    r, low, high = paired_improvement(base, same)
    assert low < 0 < high  # noise alone: the interval holds 0
    with pytest.raises(ValueError, match="at least two"):
        paired_improvement(torch.tensor([0.1, float("nan")]), torch.tensor([0.1, 0.2]))


def test_improvement_table_reports_each_method_against_the_baseline():
    from facelib.evaluate import Scores, improvement_table

    gen = torch.Generator().manual_seed(5)
    base = 0.1 + 0.02 * torch.rand(30, generator=gen)
    errors = {"face": base, "detail": base * 2}
    scores = {"base": Scores("base", albedo=errors),
              "better": Scores("better", albedo={k: v * 0.8 for k, v in errors.items()}),
              "worse": Scores("worse", albedo={k: v * 1.1 for k, v in errors.items()})}
    text = improvement_table(scores, "base", errors=("face", "detail"))
    lines = text.splitlines()
    assert len(lines) == 1 + 2 * 2  # a heading, then two methods x two errors; not the baseline against itself
    assert "better" in lines[1] and "face" in lines[1] and "-20.00 %" in lines[1] and lines[1].endswith(": lower")
    assert "95 % interval -2" in lines[1]
    assert "+10.00 %" in lines[3] and lines[3].endswith(": higher")
    same = {"base": scores["base"], "noisy": Scores("noisy", albedo={k: v + 0.01 * torch.randn(30, generator=gen) for k, v in errors.items()})}
    assert improvement_table(same, "base", errors=("face",)).splitlines()[1].endswith(": no clear change")
    with pytest.raises(ValueError, match="baseline 'nope'"):
        improvement_table(scores, "nope")


def test_detail_split_scores_the_detailed_and_the_plain_faces_apart():
    from facelib.evaluate import DETAIL_SHARE_SPLIT, Scores, detail_split, detail_split_table

    gen = torch.Generator().manual_seed(6)
    base = 0.02 + 0.01 * torch.rand(40, generator=gen)
    share = torch.cat([torch.full((25,), 0.3), torch.full((15,), 0.02)])  # 25 detailed faces, then 15 plain ones
    method = torch.cat([base[:25] * 0.9, base[25:] * 1.5])  # better where there is detail, worse where there is none
    scores = {"base": Scores("base", albedo={"face_si": base}, detail_share=share),
              "gcn": Scores("gcn", albedo={"face_si": method}, detail_share=share)}
    split = detail_split(scores, "base")
    assert list(split) == ["gcn"] and split["gcn"]["detailed"]["faces"] == 25 and split["gcn"]["plain"]["faces"] == 15
    assert split["gcn"]["detailed"]["change"] == pytest.approx(-0.10) and split["gcn"]["plain"]["change"] == pytest.approx(0.50)
    # every detailed face changes by exactly -10 %, so every bootstrap draw does too
    assert split["gcn"]["detailed"]["low"] == pytest.approx(-0.10) and split["gcn"]["detailed"]["high"] == pytest.approx(-0.10)
    assert split["gcn"]["plain"]["baseline"] == pytest.approx(float(base[25:].mean()))
    plain = split["gcn"]["plain"]  # the plain faces' ratios vary: a proper interval around the change, on its side
    assert plain["low"] < plain["change"] < plain["high"] and plain["low"] > 0
    lines = detail_split_table(split, "base").splitlines()
    assert f"at least {100 * DETAIL_SHARE_SPLIT:.0f} %" in lines[0] and len(lines) == 3
    assert "detailed (25 faces)" in lines[1] and "-10.00 %" in lines[1] and "plain (15 faces)" in lines[2] and "+50.00 %" in lines[2]
    one = {k: Scores(k, albedo={"face_si": v.albedo["face_si"]}, detail_share=torch.cat([share[:39], torch.tensor([0.5])]))
           for k, v in scores.items()}  # a face moved: 14 plain faces left, still enough
    assert detail_split(one, "base")["gcn"]["plain"]["faces"] == 14
    lone = {k: Scores(k, albedo={"face_si": v.albedo["face_si"]}, detail_share=torch.full((40,), 0.3).index_fill(0, torch.tensor([0]), 0.0))
            for k, v in scores.items()}  # one plain face: no interval for that group
    line = detail_split_table(detail_split(lone, "base"), "base").splitlines()[2]
    assert "plain (1 faces)" in line and line.endswith("n/a (fewer than two faces)")
    gaps = {k: Scores(k, albedo={"face_si": v.albedo["face_si"].clone().index_fill(0, torch.arange(25, 39), float("nan"))},
                      detail_share=share) for k, v in scores.items()}  # plain faces without this error are not counted
    assert detail_split(gaps, "base")["gcn"]["plain"]["faces"] == 1
    with pytest.raises(ValueError, match="error 'nope'"):
        detail_split(scores, "base", error="nope")
    with pytest.raises(ValueError, match="no detail share"):
        detail_split({k: Scores(k, albedo={"face_si": base}) for k in ("base", "gcn")}, "base")
    with pytest.raises(ValueError, match="baseline 'nope'"):
        detail_split(scores, "nope")


def test_once_per_batch_runs_its_work_once_for_each_batch():
    from facelib.evaluate import once_per_batch

    calls = []

    @once_per_batch
    def work(batch):
        calls.append(batch["image"])
        return float(batch["image"].sum())

    first, second = {"image": torch.ones(2, 3)}, {"image": torch.zeros(2, 3)}
    assert work(first) == work(first) == 6.0  # two methods on one batch: one run
    assert work(second) == 0.0 and work(first) == 6.0  # a new batch, then the first one again: runs again
    assert len(calls) == 3
