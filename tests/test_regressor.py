"""The coarse-stage regressor: zero head, inputs, weights files, training, the shipped weights, reconstruct's use of it."""

import pytest
import torch

from facelib import config as settings
from facelib.fit import initial_params
from facelib.nets import Regressor, RegressorWeightsError, load_regressor, save_regressor
from facelib.nets.regressor import GROUPS, REGRESSOR_WEIGHTS_ENV, WEIGHTS_FORMAT, default_weights_path
from facelib.evaluate.regressor import evaluate_regressor
from facelib.train.regressor import RegressorTrainConfig, augment, regressor_losses, train_regressor
from facelib.render import Camera


@pytest.fixture(autouse=True)
def no_weights_env(monkeypatch):
    monkeypatch.delenv(REGRESSOR_WEIGHTS_ENV, raising=False)


@pytest.fixture(scope="module")
def small(open_model):
    torch.manual_seed(0)
    return Regressor(open_model.layout, "resnet10", input_size=32).eval()


def test_zero_head_predicts_exactly_the_mean_face_start(open_model, small):
    images = torch.rand(2, 40, 40, 3)
    with torch.no_grad():
        params, feature = small(images, return_features=True)
    expected = initial_params(open_model, 2)
    assert list(params) == list(GROUPS) == list(expected)
    for name in GROUPS:
        assert params[name].shape == expected[name].shape
        assert torch.equal(params[name], expected[name]), name
    assert feature.shape == (2, small.feature_dim) == (2, 512)
    assert torch.equal(small.features(images), feature) and feature.abs().sum() > 0


def test_output_scales_put_every_group_in_its_units(open_model, small):
    z = torch.ones(1, small.scales.numel())
    decoded = small.decode(z)
    assert decoded["angles"][0, 1] == pytest.approx(0.6) and decoded["translation"][0, 2] == pytest.approx(0.35)
    assert {k: v.shape[1] for k, v in decoded.items()} == {"id": 80, "exp": 64, "tex": 80, "angles": 3, "translation": 3, "gamma": 27}


@pytest.mark.parametrize("images, message", [
    (torch.rand(1, 3, 64, 64), "channels last"),
    (torch.rand(64, 64, 3), r"\(B, H, W, 3\)"),
    ((torch.rand(1, 64, 64, 3) * 255).to(torch.uint8), "float in \\[0, 1\\]"),
    (torch.rand(1, 64, 64, 3) * 255, "values in \\[0, 1\\]"),
    (torch.rand(1, 8, 8, 3), "too small"),
])
def test_inputs_are_checked(small, images, message):
    with pytest.raises(ValueError, match=message):
        small(images)


def test_unknown_arch_and_tiny_input_size_are_refused(open_model):
    with pytest.raises(ValueError, match="arch must be one of"):
        Regressor(open_model.layout, "vgg16")
    with pytest.raises(ValueError, match="input_size"):
        Regressor(open_model.layout, input_size=16)


def _trained_looking(open_model) -> Regressor:
    torch.manual_seed(1)
    net = Regressor(open_model.layout, input_size=32).eval()
    torch.nn.init.normal_(net.head.weight, std=0.01)
    return net


def test_save_load_round_trip_in_fp16_with_weights_only(open_model, tmp_path, capsys):
    net = _trained_looking(open_model)
    path = save_regressor(tmp_path / "sub" / "r.pt", net, steps=3, seed=7, metrics={"x": 1.5})
    assert not list(path.parent.glob("*.tmp"))  # written through a temporary file
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == WEIGHTS_FORMAT and payload["arch"] == "resnet10" and payload["input_size"] == 32
    assert payload["layout"] == {"n_id": 80, "n_exp": 64, "n_tex": 80} and payload["steps"] == 3
    assert payload["state_dict"]["head.weight"].dtype == torch.float16
    loaded = load_regressor(path, layout=open_model.layout)
    assert "resnet10 at 32 px" in capsys.readouterr().out and not loaded.training
    assert loaded.meta["seed"] == 7 and loaded.meta["metrics"] == {"x": 1.5}
    images = torch.rand(2, 48, 48, 3)
    with torch.no_grad():
        a, b = net(images), loaded(images)
    for name in GROUPS:
        torch.testing.assert_close(a[name], b[name], atol=2e-3, rtol=2e-2)


def test_weights_files_are_refused_with_what_to_do(open_model, tmp_path):
    net = _trained_looking(open_model)
    with pytest.raises(RegressorWeightsError, match="no such file.*train-regressor"):
        load_regressor(tmp_path / "absent.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RegressorWeightsError, match="cannot read.*FACELIB_REGRESSOR_WEIGHTS"):
        load_regressor(tmp_path / "junk.pt")
    torch.save(net.state_dict(), tmp_path / "bare.pt")
    with pytest.raises(RegressorWeightsError, match="not a facelib regressor weights file"):
        load_regressor(tmp_path / "bare.pt")
    path = save_regressor(tmp_path / "r.pt", net)
    payload = torch.load(path, weights_only=True)
    payload["state_dict"] = {k: v for k, v in payload["state_dict"].items() if not k.startswith("head.")}
    torch.save(payload, tmp_path / "headless.pt")
    with pytest.raises(RegressorWeightsError, match="lacks 2 of the .* weights.*head"):
        load_regressor(tmp_path / "headless.pt")
    with pytest.raises(RegressorWeightsError, match="coefficient layout"):
        load_regressor(path, layout=type("Layout", (), {"n_id": 40, "n_exp": 64, "n_tex": 80})())


def test_weights_are_found_by_env_then_bundled_else_announced(open_model, tmp_path, monkeypatch, capsys):
    path = save_regressor(tmp_path / "env.pt", _trained_looking(open_model))
    monkeypatch.setenv(REGRESSOR_WEIGHTS_ENV, str(path))
    assert load_regressor(verbose=False).source == f"trained weights from {path}"
    monkeypatch.setenv(REGRESSOR_WEIGHTS_ENV, str(tmp_path / "missing.pt"))
    with pytest.raises(RegressorWeightsError, match="is not a file"):
        load_regressor()
    monkeypatch.delenv(REGRESSOR_WEIGHTS_ENV)
    monkeypatch.setattr(settings, "DATA_DIR", tmp_path / "empty")
    assert default_weights_path() == tmp_path / "empty" / "weights" / "regressor.pt"
    with pytest.raises(RegressorWeightsError, match="no regressor weights found"):
        load_regressor()
    capsys.readouterr()
    untrained = load_regressor(allow_untrained=True)
    assert "untrained regressor" in capsys.readouterr().out and "UNTRAINED" in untrained.source
    assert all(v.abs().sum() == 0 for v in untrained(torch.rand(1, 64, 64, 3)).values())


def test_a_few_training_steps_lower_the_loss(open_model):
    from facelib.render import FaceRenderer

    # Eight random faces rendered directly (SyntheticFaces' backgrounds take longer to set up than this test).
    g = torch.Generator().manual_seed(5)
    truth = {**open_model.sample(8, g), "angles": (torch.rand(8, 3, generator=g) - 0.5) * torch.tensor([0.3, 1.2, 0.2]),
             "translation": torch.zeros(8, 3), "gamma": torch.zeros(8, 27)}
    with torch.no_grad():
        out = FaceRenderer.for_model(open_model, 40).render(open_model.shape(truth["id"], truth["exp"]),
                                                           open_model.albedo(truth["tex"]).clamp(0, 1), truth["angles"])
    images = out.image.clamp(0, 1) * out.mask[..., None] + 0.5 * (1 - out.mask[..., None])
    truth |= {"landmarks": out.landmarks, "visible": torch.ones(8, 68, dtype=torch.bool)}
    config = RegressorTrainConfig(pool=8, batch=8, steps=10, photo_size=20, eval_n=0)
    torch.manual_seed(0)
    net = Regressor(open_model.layout, input_size=40).train()
    scales = {k: v[0] for k, v in net.decode(torch.ones(1, net.scales.numel())).items()}
    photo = (FaceRenderer.for_model(open_model, 20), torch.nn.functional.interpolate(images.permute(0, 3, 1, 2), size=20).permute(0, 2, 3, 1),
             torch.ones(8, 20, 20))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(10):
        terms = regressor_losses(open_model, net(images), truth, config, scales, Camera.deng(40), photo)
        optimizer.zero_grad()
        terms["total"].backward()
        optimizer.step()
        losses.append(float(terms["total"].detach()))
    assert {"coef_id", "coef_angles", "vertex_id", "vertex_exp", "vertex_tex", "landmarks", "photometric", "prior", "lighting"} <= set(terms)
    assert losses[-1] < 0.7 * losses[0], losses
    augmented = augment(images, torch.Generator().manual_seed(0))
    assert augmented.shape == images.shape and 0 <= augmented.min() and augmented.max() <= 1 and not torch.equal(augmented, images)


def test_the_vertex_terms_weigh_a_component_by_what_it_does(open_model):
    """An error in the first identity component (the largest change of shape) costs more than the same error in
    the last; the coefficient term cannot tell them apart."""
    from facelib.train.regressor import VERTEX_SCALES

    zero = initial_params(open_model, 1)  # the mean face: every unknown zero
    truth = zero | {"landmarks": torch.zeros(1, 68, 2), "visible": torch.zeros(1, 68, dtype=torch.bool)}
    scales = {k: torch.ones(v.shape[1]) for k, v in zero.items()}
    config = RegressorTrainConfig(pool=8, batch=1, photo_size=0)
    first, last = dict(zero), dict(zero)
    first["id"], last["id"] = torch.eye(80)[:1], torch.eye(80)[-1:]
    t_first = regressor_losses(open_model, first, truth, config, scales, Camera.deng(64))
    t_last = regressor_losses(open_model, last, truth, config, scales, Camera.deng(64))
    assert t_first["coef_id"] == t_last["coef_id"] and t_first["vertex_id"] > 10 * t_last["vertex_id"]
    column = open_model.id_base[:, 0].view(-1, 3)
    assert torch.isclose(t_first["vertex_id"], column.pow(2).sum(-1).mean() / VERTEX_SCALES["id"] ** 2)


def test_the_aligned_shape_term_is_the_benchmarks_shape_error(open_model):
    """The aligned term is the benchmark's shape error (skin, identity and expression, after a similarity
    alignment) over its scale, and it gives the coefficients a finite gradient; off by default."""
    from facelib.evaluate.metrics import aligned_vertex_error
    from facelib.train.regressor import SHAPE_SCALE

    g = torch.Generator().manual_seed(3)
    zero = initial_params(open_model, 2)
    truth = zero | {"id": torch.randn(2, 80, generator=g), "exp": torch.randn(2, 64, generator=g) * 0.5,
                    "landmarks": torch.zeros(2, 68, 2), "visible": torch.zeros(2, 68, dtype=torch.bool)}
    predicted = zero | {"id": (truth["id"] * 0.5).requires_grad_()}
    scales = {k: torch.ones(v.shape[1]) for k, v in zero.items()}
    config = RegressorTrainConfig(pool=8, batch=2, photo_size=0, aligned_weight=1.0)
    terms = regressor_losses(open_model, predicted, truth, config, scales, Camera.deng(64))
    expected = aligned_vertex_error(open_model.shape(predicted["id"], predicted["exp"]), open_model.shape(truth["id"], truth["exp"]),
                                    open_model.masks["skin"]).mean() / SHAPE_SCALE
    assert torch.isclose(terms["shape_aligned"], expected.to(terms["shape_aligned"].dtype)) and terms["shape_aligned"] > 0.1
    terms["shape_aligned"].backward()
    assert torch.isfinite(predicted["id"].grad).all() and predicted["id"].grad.abs().sum() > 0
    right = regressor_losses(open_model, truth, truth, config, scales, Camera.deng(64))
    assert right["shape_aligned"] < 1e-3 * terms["shape_aligned"]
    without = regressor_losses(open_model, predicted, truth, RegressorTrainConfig(pool=8, batch=2, photo_size=0), scales, Camera.deng(64))
    assert "shape_aligned" not in without  # off by default, and when on it is in the total with its weight
    assert torch.isclose(terms["total"] - without["total"], terms["shape_aligned"])


def test_train_regressor_fine_tunes_given_weights(open_model, tmp_path):
    """--init starts from a weights file (and refuses one of another size); the aligned term trains."""
    base = RegressorTrainConfig(out=str(tmp_path / "a.pt"), input_size=32, pool=8, batch=4, steps=1, photo_size=0, eval_n=0,
                                cache=False, device="cpu", lr=0.0)
    first = load_regressor(train_regressor(base, model=open_model, verbose=False), verbose=False)
    tuned_config = RegressorTrainConfig(**{**base.__dict__, "out": str(tmp_path / "b.pt"), "init": base.out, "aligned_weight": 1.0,
                                           "seed": 1, "steps": 2})
    tuned = load_regressor(train_regressor(tuned_config, model=open_model, verbose=False), verbose=False)
    assert tuned.meta["config"]["init"] == base.out and "shape_aligned" in tuned.meta["metrics"]["final_losses"]
    assert tuned.meta["init_run"]["steps"] == 1 and tuned.meta["init_run"]["config"]["seed"] == 0  # the recipe's first run
    # lr 0 everywhere: the fine-tuned network's weights are its start's, exactly (batch norm's running
    # statistics move in training mode, so only the parameters are compared)
    for (name, a), b in zip(first.named_parameters(), tuned.parameters()):
        assert torch.equal(a, b), name
    # with a learning rate, the start's weights move
    moved = load_regressor(train_regressor(RegressorTrainConfig(**{**tuned_config.__dict__, "lr": 1e-3, "out": str(tmp_path / "c.pt")}),
                                           model=open_model, verbose=False), verbose=False)
    assert any(not torch.equal(a, b) for a, b in zip(first.parameters(), moved.parameters()))
    with pytest.raises(ValueError, match="--arch resnet10 --input-size 32"):  # refused before any face is rendered
        train_regressor(RegressorTrainConfig(**{**tuned_config.__dict__, "input_size": 48}), model=open_model, verbose=False)
    with pytest.raises(ValueError, match="pass one of them"):
        RegressorTrainConfig(init=base.out, pretrained=True)


def test_train_regressor_writes_a_loadable_file_with_its_run(open_model, tmp_path):
    config = RegressorTrainConfig(out=str(tmp_path / "r.pt"), input_size=32, pool=8, batch=4, steps=2, photo_size=0, eval_n=0,
                                  cache=False, device="cpu")
    path = train_regressor(config, model=open_model, verbose=False)
    loaded = load_regressor(path, verbose=False)
    assert loaded.meta["steps"] == 2 and loaded.meta["images_seen"] == 8 and loaded.meta["seed"] == 0
    assert loaded.meta["config"]["pool"] == 8 and "final_losses" in loaded.meta["metrics"]


def test_the_shipped_weights_beat_the_mean_face_on_benchmark_faces():
    """data/weights/regressor.pt is committed; on benchmark faces it must place landmarks and pose better than the mean face."""
    assert default_weights_path().is_file(), "data/weights/regressor.pt is missing: it ships with the repository"
    regressor = load_regressor(default_weights_path(), verbose=False)
    assert regressor.meta["format"] == WEIGHTS_FORMAT and regressor.meta["images_seen"] >= 5_000
    result = evaluate_regressor(regressor, n=8, size=224, device="cpu", batch=8, verbose=False)
    ours, mean_face = result["methods"]["regressor"], result["methods"]["mean face"]
    assert ours["landmark_px"] < 0.6 * mean_face["landmark_px"], result
    assert ours["angle_deg"] < 0.6 * mean_face["angle_deg"], result
    assert ours["shape_mm"] < mean_face["shape_mm"] and ours["skin_de00"] < 0.5 * mean_face["skin_de00"], result


def test_reconstruct_starts_from_the_regressor_or_says_why_not(tmp_path, monkeypatch, capsys):
    from facelib.data import PHOTOS
    from facelib.refine import RefineConfig
    from facelib.reconstruct import ReconstructConfig, reconstruct

    config = dict(size=96, fit_steps=4, refit_steps=0, refine=RefineConfig(steps=1))
    result = reconstruct(PHOTOS["astronaut"], tmp_path / "a", ReconstructConfig(**config), verbose=False)
    assert result.summary["init"].startswith("regressor (resnet10, 112 px, averaged with the mirror image") and "regress" in result.timings
    monkeypatch.setattr(settings, "DATA_DIR", tmp_path / "empty")
    result = reconstruct(PHOTOS["astronaut"], tmp_path / "b", ReconstructConfig(**config))
    assert "no regressor weights" in capsys.readouterr().out
    assert result.summary["init"] == "mean face (no regressor weights found)"


def test_cli_refuses_a_broken_regressor_file(tmp_path, capsys):
    from facelib.cli import main
    from facelib.data import PHOTOS

    (tmp_path / "junk.pt").write_bytes(b"junk")
    assert main(["reconstruct", str(PHOTOS["astronaut"]), "--out", str(tmp_path / "out"), "--size", "96",
                 "--regressor-weights", str(tmp_path / "junk.pt")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot read regressor weights") and "--no-regressor" in err and "Traceback" not in err


def test_pool_cache_is_reused_only_for_the_same_distribution(tmp_path, monkeypatch, capsys):
    from facelib import config as settings
    from facelib.train.regressor import render_pool

    monkeypatch.setattr(settings, "CACHE_DIR", tmp_path)
    first = render_pool(2, 32, seed=1, verbose=True)
    assert "rendered 2 faces" in capsys.readouterr().out
    again = render_pool(2, 32, seed=1, verbose=True)
    printed = capsys.readouterr().out
    assert "faces at 32 px from" in printed and "rendered" not in printed and "key" not in again
    assert torch.equal(first["image"], again["image"])
    (path,) = (tmp_path / "regressor_pool").iterdir()
    stale = torch.load(path, weights_only=True) | {"key": "made by an older facelib"}
    torch.save(stale, path)
    render_pool(2, 32, seed=1, verbose=True)
    printed = capsys.readouterr().out
    assert "another face distribution" in printed and "rendered 2 faces" in printed
