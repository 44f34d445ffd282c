"""Golden values of the synthetic benchmark (seed 2020): it is the same on every machine, and stays so.

Many recorded results (README, DESIGN, results files) were measured on ``facelib.data.benchmark``;
they stay comparable only while its items do. Each pinned item is checked two ways:

* an exact sha256 of what is integer: the items' indices and the name of the image each background
  was cropped from (or "procedural");
* statistics of what is computed in floating point: each sampled coefficient group's sum and norm
  (id, exp, tex, angles, translation, detail strengths: torch's CPU kernels differ in the last bits
  between instruction sets, so rounding them and hashing is not portable), per-channel mean and std of
  the image and the albedo, mean and std of the skin mask and mask coverage, the lighting's sum and norm. These are compared to an absolute tolerance of 1e-4 (:data:`TOL`): float32 sums and
  matrix products differ between CPUs (SIMD width, BLAS kernels) by about 1e-6 here, far below it,
  while a change of content (another background crop, another face, a missing background image, a
  change of the renderer or the compositing) moves some statistic by 1e-3 or (much) more.

At each size the indices cover every background source: the two course photos, matplotlib's four
sample images, procedural ones, and an item whose photo crop found no place clear of Grace Hopper's
face (so it falls back to a procedural background). The two levels need different indices: the
detail layer draws spot positions over the mesh's vertices, so the random numbers drawn after it
(the background among them) depend on the level.

If the benchmark changes on purpose, regenerate the literals with ``python tests/test_benchmark_golden.py``
and say so (and re-measure every recorded number) in the same commit.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import facelib.data.backgrounds as backgrounds
from facelib.data import benchmark

TOL = 1e-4
"""Absolute tolerance of the floating-point statistics (see the module docstring)."""

CASES = {
    # (size, level): the indices pinned. 64 px at level 0 is the kind of benchmark fast-mode tests use;
    # 224 px at level 1 is the full-mode benchmark.
    (64, 0): (0, 1, 2, 5, 7, 19, 21, 23, 24, 28),
    (224, 1): (0, 3, 12, 13, 14, 28, 29, 56),
}

COEFF_KEYS = ("id", "exp", "tex", "angles", "translation", "detail")
STAT_NAMES = ("image_mean", "image_std", "albedo_mean", "albedo_std", "skin", "mask", "gamma", "coefficients")


def render(size: int, level: int, indices) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The benchmark items ``indices`` at ``size``/``level``, and the source of each one's background."""
    sources: dict[int, str] = {}
    current = [None]
    original = backgrounds.image_background

    def recording(source, size, generator):
        image = original(source, size, generator)
        if image is not None:
            sources[current[0]] = source.name
        return image

    faces = benchmark(n=max(indices) + 1, size=size, level=level, device="cpu")
    draw = faces._draw

    def drawing(index):
        current[0] = index
        return draw(index)

    backgrounds.image_background, faces._draw = recording, drawing
    try:
        batch = faces.batch(list(indices))
    finally:
        backgrounds.image_background = original
    return batch, [sources.get(i, "procedural") for i in indices]


def rng_digest(batch: dict[str, torch.Tensor], backgrounds: list[str]) -> str:
    """sha256 of what is exact on every CPU: the items' indices and their background sources. (The sampled
    coefficients go through float kernels that differ in the last bits between CPU instruction sets, so
    they are pinned by :func:`statistics` with a tolerance instead.)"""
    digest = hashlib.sha256()
    digest.update(batch["index"].cpu().numpy().astype("<i8").tobytes())
    digest.update("|".join(backgrounds).encode())
    return digest.hexdigest()


def statistics(batch: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Per item: (B, 3) image and albedo channel means and stds, (B, 2) skin mean and std, (B, 1) mask mean,
    (B, 2) the lighting's sum and norm, (B, 12) each sampled coefficient group's sum and norm."""
    image, albedo = batch["image"].double(), batch["albedo"].double()
    skin, mask, gamma = batch["skin"].double().flatten(1), batch["mask"].double().flatten(1), batch["gamma"].double()
    stats = {"image_mean": image.mean((1, 2)), "image_std": image.std((1, 2)),
             "albedo_mean": albedo.mean(1), "albedo_std": albedo.std(1),
             "skin": torch.stack([skin.mean(1), skin.std(1)], 1), "mask": mask.mean(1, keepdim=True),
             "gamma": torch.stack([gamma.sum(1), gamma.norm(dim=1)], 1),
             "coefficients": torch.stack([part for key in COEFF_KEYS for part in (batch[key].double().flatten(1).sum(1),
                                                                               batch[key].double().flatten(1).norm(dim=1))], 1)}
    return {k: v.cpu().numpy() for k, v in stats.items()}


# ---- the golden values (computed once from the code of the commit that added this file) --------
GOLDEN_DIGEST = {
    (64, 0): 'e108b8835a3dd3e510315e34526a95fdad2b09bf28e7f51bd23ca6502d23900b',
    (224, 1): '03ccbf9667e2123937105aa4e855dc134a84d940be813cfdc9b8dc4eabfba5c1',
}

GOLDEN_BACKGROUNDS = {
    (64, 0): ['procedural', 'procedural', 'topobathy.npz', 'logo2.png', 'logo2.png', 'astronaut',
              'Minduka_Present_Blue_Pack.png', 'grace_hopper', 'jacksboro_fault_dem.npz', 'procedural'],
    (224, 1): ['procedural', 'astronaut', 'procedural', 'Minduka_Present_Blue_Pack.png', 'grace_hopper',
               'topobathy.npz', 'jacksboro_fault_dem.npz', 'logo2.png'],
}

GOLDEN_STATS: dict[tuple[int, int], dict[str, list[list[float]]]] = {
    (64, 0): {
        'image_mean': [
            [0.4960844, 0.3926768, 0.4744193],
            [0.5622826, 0.4575067, 0.3515012],
            [0.7736221, 0.7642361, 0.5694951],
            [0.2628669, 0.2390746, 0.3045338],
            [0.2702963, 0.2952146, 0.1909591],
            [0.5027125, 0.3068547, 0.2268513],
            [0.6122155, 0.6695166, 0.7489714],
            [0.5488702, 0.4400416, 0.4055284],
            [0.5232264, 0.6030535, 0.4873028],
            [0.6033362, 0.5673839, 0.5155992],
        ],
        'image_std': [
            [0.1109263, 0.1049125, 0.1616363],
            [0.1758709, 0.2252330, 0.2118905],
            [0.0949919, 0.1553606, 0.1253595],
            [0.2215227, 0.0835537, 0.0853753],
            [0.1586712, 0.0737449, 0.1258996],
            [0.1779781, 0.1016052, 0.1022420],
            [0.2743124, 0.1387286, 0.2303753],
            [0.4117478, 0.3401439, 0.3031419],
            [0.2038204, 0.1230934, 0.0997373],
            [0.1954038, 0.1146884, 0.0911009],
        ],
        'albedo_mean': [
            [0.5490427, 0.4245132, 0.3994808],
            [0.3808544, 0.2211782, 0.1060110],
            [0.7367664, 0.5103262, 0.3612764],
            [0.4049318, 0.2383770, 0.1725613],
            [0.4323929, 0.2229444, 0.0993254],
            [0.5309122, 0.4000396, 0.3099368],
            [0.8614565, 0.6844759, 0.5775816],
            [0.7146131, 0.5052539, 0.4129428],
            [0.8865536, 0.6888379, 0.5798045],
            [0.8366907, 0.6460587, 0.5742154],
        ],
        'albedo_std': [
            [0.0763240, 0.0863187, 0.0850438],
            [0.0945622, 0.1139334, 0.1305839],
            [0.0780920, 0.0842059, 0.0966793],
            [0.1766070, 0.1169269, 0.1234990],
            [0.0849946, 0.1149489, 0.1347808],
            [0.1093732, 0.1019214, 0.1016319],
            [0.0916989, 0.0761120, 0.0708212],
            [0.1667824, 0.1634958, 0.1416858],
            [0.0775168, 0.0712881, 0.0691147],
            [0.1394898, 0.1350122, 0.1118678],
        ],
        'skin': [
            [0.4470215, 0.4972461],
            [0.3649902, 0.4814862],
            [0.3498535, 0.4769817],
            [0.4128418, 0.4924050],
            [0.4797363, 0.4996502],
            [0.4577637, 0.4982737],
            [0.3854980, 0.4867722],
            [0.4653320, 0.4988576],
            [0.4963379, 0.5000476],
            [0.4291992, 0.4950223],
        ],
        'mask': [
            [0.4533691],
            [0.3686523],
            [0.3525391],
            [0.4172363],
            [0.4863281],
            [0.4624023],
            [0.3894043],
            [0.4697266],
            [0.5026855],
            [0.4348145],
        ],
        'gamma': [
            [0.6537370, 0.4261353],
            [0.5420063, 0.6674628],
            [1.1518744, 0.5254220],
            [2.0766166, 0.8617268],
            [1.9002801, 0.4154823],
            [0.3492696, 0.2859743],
            [1.4367336, 0.3874505],
            [2.3657791, 0.7545304],
            [0.1969778, 0.5689426],
            [0.5435787, 0.4677368],
        ],
        'coefficients': [
            [4.6338123, 8.5870337, 7.8438642, 5.7703298, -3.4837949, 10.0842046, 0.4092186, 0.2742077, 0.4555365, 0.5025003, 1.2029782, 0.8709779],
            [-4.2714444, 8.0079346, -4.8017379, 6.2801685, -15.6063068, 8.2544049, 0.6302287, 0.5315689, -0.2163040, 0.3256647, 1.2241957, 0.8675119],
            [10.3325243, 9.3839032, -1.9086164, 6.0955660, 0.2473429, 8.6683175, 0.5663801, 0.7329394, -0.5259591, 0.5281846, 0.6996169, 0.6996169],
            [-2.3781645, 8.5952299, -2.3509690, 5.8713507, -7.3293358, 8.9361612, 0.2918495, 0.2033139, 0.0841956, 0.1003553, 2.9074606, 1.5118180],
            [-7.7563851, 9.4212835, 15.4842861, 6.6854534, 8.3843125, 9.1176078, 0.3171331, 0.1921755, 0.3032728, 0.4150047, 0.9406993, 0.9406993],
            [3.6584947, 8.6527874, -1.5060851, 6.4535276, 9.2367516, 8.6897309, -0.8838437, 0.8279085, -0.1501098, 0.2109370, 2.3639359, 1.2406130],
            [3.3917201, 9.1730818, -4.2069788, 5.5212897, -1.0653869, 8.0465953, 0.6280548, 0.4540976, 0.0731739, 0.0668259, 0.5923710, 0.4292057],
            [-2.5305317, 8.8858148, 5.9219934, 6.3208594, 0.8925154, 8.7303698, 0.7908521, 0.6301784, 0.2083825, 0.1911483, 3.0107287, 1.5298124],
            [4.9325670, 8.5653081, -2.1187660, 6.3507988, 9.5601121, 8.6127994, -0.4190323, 0.2897164, 0.0990127, 0.1148993, 1.1058955, 0.7929033],
            [-6.7584610, 8.8887890, 5.8329585, 6.6056425, 5.2522322, 7.4911444, -0.0818610, 0.1344740, 0.3693220, 0.3326048, 2.6876952, 1.3471200],
        ],
    },
    (224, 1): {
        'image_mean': [
            [0.3932047, 0.3491508, 0.3367971],
            [0.5551451, 0.4491836, 0.3964170],
            [0.6276811, 0.5334998, 0.5408067],
            [0.5265216, 0.5329446, 0.4845065],
            [0.4332905, 0.3510421, 0.2925812],
            [0.6402372, 0.6488689, 0.4597351],
            [0.5126861, 0.4853005, 0.4572526],
            [0.3860456, 0.5189339, 0.2966905],
        ],
        'image_std': [
            [0.0908350, 0.0681361, 0.0659824],
            [0.1248869, 0.1729804, 0.2180277],
            [0.1462206, 0.1258620, 0.1134751],
            [0.2691322, 0.2298259, 0.3578769],
            [0.3464004, 0.2773445, 0.2266264],
            [0.2002438, 0.1366815, 0.1306988],
            [0.4002077, 0.2226345, 0.1206339],
            [0.1037131, 0.2407042, 0.0979167],
        ],
        'albedo_mean': [
            [0.5495080, 0.4248626, 0.3999021],
            [0.4132230, 0.2629691, 0.1937174],
            [0.7159731, 0.5681020, 0.4974080],
            [0.5709590, 0.3438821, 0.2059590],
            [0.7687189, 0.5459098, 0.3930336],
            [0.8365689, 0.6456060, 0.5738568],
            [0.8146984, 0.5907606, 0.4568986],
            [0.6508808, 0.4677612, 0.3645470],
        ],
        'albedo_std': [
            [0.0735343, 0.0843709, 0.0831542],
            [0.1085480, 0.1129681, 0.1178651],
            [0.0631962, 0.0643718, 0.0675278],
            [0.1499644, 0.1023587, 0.1087618],
            [0.0613388, 0.0655541, 0.0805449],
            [0.1378216, 0.1334462, 0.1100019],
            [0.0751755, 0.0716527, 0.0748844],
            [0.0614489, 0.0834681, 0.0827968],
        ],
        'skin': [
            [0.4470464, 0.4971930],
            [0.4124083, 0.4922728],
            [0.3921197, 0.4882280],
            [0.5003189, 0.5000049],
            [0.4172911, 0.4931167],
            [0.4294284, 0.4949995],
            [0.4020249, 0.4903118],
            [0.4642060, 0.4987221],
        ],
        'mask': [
            [0.4539421],
            [0.4177894],
            [0.3974211],
            [0.5074139],
            [0.4214764],
            [0.4348493],
            [0.4066087],
            [0.4679129],
        ],
        'gamma': [
            [0.6537370, 0.4261353],
            [1.1584546, 0.7143546],
            [0.9444081, 0.4602648],
            [-0.0742406, 0.7245672],
            [-0.8097216, 0.7083078],
            [0.5435787, 0.4677368],
            [0.9691826, 0.7147524],
            [0.0026192, 0.3721915],
        ],
        'coefficients': [
            [4.6338123, 8.5870337, 7.8438642, 5.7703298, -3.4837949, 10.0842046, 0.4092186, 0.2742077, 0.4555365, 0.5025003, 1.2029782, 0.8709779],
            [7.4639141, 9.6763659, -5.2156944, 6.2241829, -14.1026106, 8.2821473, 0.3757513, 0.4025303, -0.0265978, 0.0992606, 2.2705080, 1.3446883],
            [2.9752860, 9.0608090, 9.9069760, 6.4936266, 6.9227527, 7.8554871, -0.6533464, 0.7608783, -0.2186625, 0.2569564, 0.0000000, 0.0000000],
            [12.1083597, 9.8578333, 1.4656730, 5.9391055, -7.5646106, 9.9056248, 0.0777540, 0.4693460, 0.0254112, 0.1852153, 4.0295292, 1.6971989],
            [8.2791853, 8.2946014, -4.1217518, 6.8857575, -5.0583285, 9.7624272, -0.4730465, 0.5335576, -0.5294609, 0.4724206, 0.7258658, 0.7258658],
            [-6.7584610, 8.8887890, 5.8329585, 6.6056425, 5.2522322, 7.4911444, -0.0818610, 0.1344740, 0.3693220, 0.3326048, 2.6876952, 1.3471200],
            [2.5071334, 9.7365771, 6.3686130, 6.3625582, -1.4873980, 8.2828331, 0.1994731, 0.4719897, -0.2928716, 0.4066903, 0.8865577, 0.8865577],
            [1.9032971, 7.7222169, 11.2140221, 7.1103641, 6.0955152, 8.6536537, 0.5748055, 0.8135940, 0.0455348, 0.0832593, 1.4437147, 0.8369508],
        ],
    },
}


@pytest.fixture(scope="module", params=list(CASES), ids=lambda case: f"{case[0]}px-level{case[1]}")
def rendered(request):
    batch, backgrounds = render(*request.param, CASES[request.param])
    return request.param, batch, backgrounds


def test_backgrounds_are_the_pinned_ones(rendered):
    case, _, backgrounds = rendered
    assert backgrounds == GOLDEN_BACKGROUNDS[case]


def test_items_and_backgrounds_are_exactly_the_pinned_ones(rendered):
    case, batch, backgrounds = rendered
    assert rng_digest(batch, backgrounds) == GOLDEN_DIGEST[case], (
        "the benchmark's items or their backgrounds changed: they are no longer those every recorded number was measured on")


@pytest.mark.parametrize("name", STAT_NAMES)
def test_rendered_content_matches_within_tolerance(rendered, name):
    case, batch, _ = rendered
    got, want = statistics(batch)[name], np.asarray(GOLDEN_STATS[case][name])
    assert got.shape == want.shape
    worst = np.abs(got - want).max()
    assert worst <= TOL, (f"{name} of the {case[0]} px, level {case[1]} benchmark moved by {worst:.2e} "
                          f"(tolerance {TOL}): items {CASES[case]}")



# ---- every background is required --------------------------------------------------------------
SAMPLE_FILES = ("Minduka_Present_Blue_Pack.png", "logo2.png", "jacksboro_fault_dem.npz", "topobathy.npz")


@pytest.fixture
def fresh_backgrounds():
    """background_images() is loaded once per process: forget it around a test that hides a file."""
    backgrounds.background_images.cache_clear()
    yield
    backgrounds.background_images.cache_clear()


@pytest.mark.parametrize("missing", SAMPLE_FILES)
def test_a_missing_matplotlib_sample_file_is_an_error_naming_it(missing, tmp_path, monkeypatch, fresh_backgrounds):
    import matplotlib

    real = Path(matplotlib.get_data_path()) / "sample_data"
    (tmp_path / "sample_data").mkdir()
    for name in SAMPLE_FILES:
        if name != missing:
            (tmp_path / "sample_data" / name).symlink_to(real / name)
    monkeypatch.setattr(matplotlib, "get_data_path", lambda: str(tmp_path))
    with pytest.raises(FileNotFoundError, match=re.escape(missing)) as err:
        backgrounds.background_images()
    assert "Reinstall matplotlib" in str(err.value) and "pip install --force-reinstall" in str(err.value)
    assert "benchmark" in str(err.value)


@pytest.mark.parametrize("missing", ["grace_hopper", "astronaut"])
def test_a_missing_course_photo_is_an_error_naming_it(missing, tmp_path, monkeypatch, fresh_backgrounds):
    from facelib.data import PHOTOS

    monkeypatch.setitem(PHOTOS, missing, tmp_path / f"{missing}.jpg")
    with pytest.raises(FileNotFoundError, match=f"{missing}.jpg is missing") as err:
        backgrounds.background_images()
    assert "data/photos" in str(err.value)


def test_all_six_backgrounds_are_loaded_in_their_order(fresh_backgrounds):
    names = [source.name for source in backgrounds.background_images()]
    assert names == ["grace_hopper", "astronaut", *SAMPLE_FILES]


def test_the_golden_values_catch_a_background_left_out(monkeypatch):
    """What the old code did silently when a file was missing (leave it out) changes the pinned values."""
    case = (64, 0)
    sources = backgrounds.background_images()
    monkeypatch.setattr(backgrounds, "background_images", lambda: sources[:-1])  # as if topobathy.npz were missing
    batch, used = render(*case, CASES[case])
    assert rng_digest(batch, used) != GOLDEN_DIGEST[case]
    moved = np.abs(statistics(batch)["image_mean"] - np.asarray(GOLDEN_STATS[case]["image_mean"])).max()
    assert moved > 100 * TOL


def _literals() -> str:  # pragma: no cover (run by hand to regenerate)
    lines = ["GOLDEN_DIGEST = {"]
    out_bg = ["GOLDEN_BACKGROUNDS = {"]
    out_stats = ["GOLDEN_STATS: dict[tuple[int, int], dict[str, list[list[float]]]] = {"]
    for case, indices in CASES.items():
        batch, backgrounds = render(*case, indices)
        lines.append(f"    {case}: {rng_digest(batch, backgrounds)!r},")
        out_bg.append(f"    {case}: {backgrounds!r},")
        out_stats.append(f"    {case}: {{")
        for name, values in statistics(batch).items():
            out_stats.append(f"        {name!r}: [")
            out_stats += ["            [" + ", ".join(f"{v:.7f}" for v in row) + "]," for row in values]
            out_stats.append("        ],")
        out_stats.append("    },")
    return "\n".join(lines + ["}", ""] + out_bg + ["}", ""] + out_stats + ["}"])


if __name__ == "__main__":  # pragma: no cover
    print(_literals())
