"""The dataset-trained "fidelity" TextureGCN: its de-lit start, its recipe end to end on a tiny pool, the shipped weights."""

import dataclasses
import math

import pytest
import torch

from facelib.gcn import TextureGCN, TextureGCNConfig
from facelib.gcn.weights import (TextureWeightsError, bundled_texture_weights, load_texture_gcn, save_texture_gcn,
                                 texture_hierarchy)
from facelib.texture_inputs import CLIP_LEVEL, fidelity_inputs, input_options, texture_inputs
from facelib.refine import refine
from facelib.render import FaceRenderer
from facelib.train.fitted_pool import POOL_FORMAT, POOL_SPLIT, PoolSpec, build_pool, load_pool
from facelib.train.texture import TextureTrainConfig, scale_invariant_l1, train_texture


class StubEncoder(torch.nn.Module):
    """A cheap identity network with the interface refine and the trainer read."""

    pretrained, source, name, embedding_dim = True, "a test stub", "stub_net", 512

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pooled = torch.nn.functional.adaptive_avg_pool2d(images.permute(0, 3, 1, 2), 8).flatten(1)
        return torch.nn.functional.normalize(torch.cat([pooled, pooled, pooled[:, :128]], 1), dim=-1)


@pytest.fixture(scope="module")
def scene(open_model, mean_face_scene):
    """The mean face at 64 px under a frontal light, and what the texture stage reads of it."""
    params, renderer, photo, _ = mean_face_scene(2)
    photo[1] = photo[1] * 0.8  # a darker second face: the de-lit start must follow it
    return params, renderer, photo, texture_inputs(open_model, renderer, photo, params)


def test_an_untrained_fidelity_network_returns_the_delit_photo(open_model, scene):
    params, renderer, photo, x = scene
    network = TextureGCN(texture_hierarchy(open_model, 0), TextureGCNConfig.fidelity())
    with torch.no_grad():
        albedo = network(x.coarse, x.samples.colors, x.confidence, torch.randn(2, 512), x.delit)
    torch.testing.assert_close(albedo, x.yardstick())
    # It moved where the photo is read and stayed at T where it is not.
    assert (x.confidence > 0).float().mean() > 0.2
    hidden = x.confidence == 0
    torch.testing.assert_close(albedo[hidden], x.coarse[hidden])
    with pytest.raises(ValueError, match="reads the de-lit photo"):
        network(x.coarse, x.samples.colors, x.confidence, torch.randn(2, 512))
    paper = TextureGCN(texture_hierarchy(open_model, 0), "small")
    with pytest.raises(ValueError, match="does not read a de-lit photo"):
        paper(x.coarse, x.samples.colors, x.confidence, torch.randn(2, 512), x.delit)
    with pytest.raises(ValueError, match="needs residual=True"):
        TextureGCNConfig("bad", 512, delit=True).check(5)


def test_gradients_reach_every_branch_of_the_fidelity_network(open_model, scene):
    _, _, _, x = scene
    torch.manual_seed(0)
    network = TextureGCN(texture_hierarchy(open_model, 0), TextureGCNConfig.fidelity())
    # A small step: at lr 1e-3 one plain SGD step could push every output past the clamp to [0, 1] (2 seeds in
    # 40), where no gradient flows at all.
    optimizer = torch.optim.SGD(network.parameters(), lr=1e-4)
    embedding = torch.randn(2, 512)
    # The zero-initialised CombineNet passes no gradient back at first; its own gradient is not zero, so one
    # step opens the way to the Refiner and the Decoder.
    for _ in range(2):
        optimizer.zero_grad()
        albedo = network(x.coarse, x.samples.colors, x.confidence, embedding, x.delit)
        (albedo - 0.3).abs().mean().backward()
        assert any(p.grad.abs().sum() > 0 for p in network.combine.parameters())
        optimizer.step()
    for part in ("refiner", "decoder", "combine"):
        grads = [p.grad for p in getattr(network, part).parameters()]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), part


def test_the_mirror_fill_reads_a_hidden_vertex_from_its_partner(open_model):
    """A turned head: vertices the camera cannot read take their mirror partner's de-lit colour."""
    from facelib.fit import initial_params

    params = initial_params(open_model, 1)
    params["angles"] = torch.tensor([[0.0, 0.7, 0.0]])  # about 40 degrees of yaw
    renderer = FaceRenderer.for_model(open_model, 96)
    with torch.no_grad():
        out = renderer.render(open_model.shape(params["id"], params["exp"]), open_model.albedo(params["tex"]).clamp(0, 1) * 0.7,
                              params["angles"], params["translation"], params["gamma"])
    photo = out.image.clamp(0, 1) * out.mask[..., None]
    plain = texture_inputs(open_model, renderer, photo, params)
    filled = texture_inputs(open_model, renderer, photo, params, mirror=open_model.mirror)
    gained = (plain.confidence == 0) & (filled.confidence > 0)
    assert gained.float().mean() > 0.05 and (filled.confidence >= plain.confidence - 1e-6).all()
    partner = open_model.mirror[gained[0].nonzero()[:, 0]]
    torch.testing.assert_close(filled.delit[0, gained[0]], plain.delit[0, partner], atol=1e-5, rtol=0)
    # The partner's reading weighed by mirror_weight: the same colour, trusted half as much, and a vertex's own
    # reading, where it has one, still counts in full.
    half = texture_inputs(open_model, renderer, photo, params, mirror=open_model.mirror, mirror_weight=0.5)
    torch.testing.assert_close(half.delit[gained], filled.delit[gained], atol=1e-5, rtol=0)
    torch.testing.assert_close(half.confidence[gained], 0.5 * filled.confidence[gained])
    # Against the formula written out, at every vertex, the partly read ones included (0 < c < 1, partner read).
    c, d = plain.confidence, plain.delit
    cm, dm = 0.5 * c[:, open_model.mirror], d[:, open_model.mirror]
    expected_c = c + (1 - c) * cm
    expected_d = (c[..., None] * d + ((1 - c) * cm)[..., None] * dm) / expected_c.clamp(min=1e-6)[..., None]
    both = (expected_c > 0) & (c > 0) & (c < 1) & (cm > 0)
    assert both.any()
    torch.testing.assert_close(half.confidence, expected_c)
    read = expected_c > 0
    torch.testing.assert_close(half.delit[read], expected_d[read], atol=1e-5, rtol=0)
    # Weight 0 is no fill at all.
    none = texture_inputs(open_model, renderer, photo, params, mirror=open_model.mirror, mirror_weight=0.0)
    assert torch.equal(none.confidence, plain.confidence)
    with pytest.raises(ValueError, match="mirror_weight"):
        texture_inputs(open_model, renderer, photo, params, mirror=open_model.mirror, mirror_weight=2.0)


def test_scale_invariant_l1_ignores_a_gain_per_channel():
    truth = torch.rand(2, 50, 3) * 0.8 + 0.1
    weights = torch.ones(50)
    assert float(scale_invariant_l1(truth * torch.tensor([0.5, 1.2, 0.9]), truth, weights)) < 1e-6
    assert float(scale_invariant_l1(torch.rand(2, 50, 3), truth, weights)) > 0.05


def test_fp16_weights_round_trip_with_their_record(open_model, scene, tmp_path):
    params, renderer, photo, x = scene
    hierarchy = texture_hierarchy(open_model, 0)
    torch.manual_seed(0)
    # With the denoising experiment on and the mirror fill at half weight: refine must make the inputs with the
    # values the file records.
    network = TextureGCN(hierarchy, dataclasses.replace(TextureGCNConfig.fidelity(), denoise=1.0, mirror_weight=0.5))
    for p in network.combine.parameters():  # a trained network's change is not zero
        torch.nn.init.normal_(p, 0, 0.05)
    path = save_texture_gcn(tmp_path / "w.pt", network, half=True, identity_network="stub_net", split=POOL_SPLIT)
    loaded = load_texture_gcn(path, hierarchy)
    assert loaded.config.delit and loaded.config.denoise == network.config.denoise > 0 and loaded.meta["identity_network"] == "stub_net"
    assert loaded.config.mirror_weight == 0.5 and input_options(loaded) == {"denoise": 1.0, "mirror_weight": 0.5}
    assert all(v.dtype == torch.float16 for v in torch.load(path, weights_only=True)["state_dict"].values())
    result = refine(open_model, photo, params, StubEncoder(), renderer, None, hierarchy, weights=path)
    x = fidelity_inputs(open_model, renderer, photo, params, **input_options(loaded))  # what the trained network reads
    full_mirror = fidelity_inputs(open_model, renderer, photo, params, denoise=1.0)
    with torch.no_grad():
        expected = loaded(x.coarse, x.samples.colors, x.confidence, StubEncoder()(photo), x.delit)
        full = network(x.coarse, x.samples.colors, x.confidence, StubEncoder()(photo), x.delit)
    assert result.mode == "trained" and "fidelity" in result.notes[-1]
    torch.testing.assert_close(result.albedo, expected)
    with torch.no_grad():  # the inputs made with the partner's reading in full give another albedo
        other_inputs = loaded(full_mirror.coarse, full_mirror.samples.colors, full_mirror.confidence, StubEncoder()(photo),
                              full_mirror.delit)
    assert float((other_inputs - result.albedo).abs().max()) > 0.01
    assert float((expected - full).abs().max()) < 0.02  # fp16 weights change the output by rounding only
    other = StubEncoder()
    other.name = "another_net"
    with pytest.raises(TextureWeightsError, match="trained with the identity network 'stub_net'"):
        refine(open_model, photo, params, other, renderer, None, hierarchy, weights=path)
    # A file written before mirror_weight existed was trained with the partner's reading in full.
    payload = torch.load(path, weights_only=True)
    del payload["config"]["mirror_weight"]
    torch.save(payload, tmp_path / "older.pt")
    assert load_texture_gcn(tmp_path / "older.pt", hierarchy).config.mirror_weight == 1.0


def test_the_recipe_runs_end_to_end_and_resumes(open_model, tmp_path, monkeypatch, capsys):
    """A tiny pool (2 faces at 64 px, a few fit steps) through build, train, checkpoint, resume and the weights file."""
    import facelib.train.texture

    monkeypatch.setattr(facelib.train.texture, "IdentityEncoder", lambda **kwargs: StubEncoder())
    weighed = []  # (T_p, the photo term's weights) at each step
    real_loss = facelib.train.texture.projected_color_loss

    def spy(colors, shaded, weights, *args, **kwargs):
        weighed.append((colors.detach(), weights.detach()))
        return real_loss(colors, shaded, weights, *args, **kwargs)

    monkeypatch.setattr(facelib.train.texture, "projected_color_loss", spy)
    made_with = []  # the mirror weight of every batch of inputs the trainer makes
    real_inputs = facelib.train.texture.fidelity_inputs

    def inputs_spy(*args, **kwargs):
        made_with.append(kwargs.get("mirror_weight"))
        return real_inputs(*args, **kwargs)

    monkeypatch.setattr(facelib.train.texture, "fidelity_inputs", inputs_spy)
    spec = PoolSpec(n=2, size=64, level=0, fit_steps=4, refit_steps=2, chunk=2, root=tmp_path / "pools")
    build_pool(spec, verbose=False)
    pool = load_pool(spec)
    assert pool["image"].shape == (2, 64, 64, 3) and pool["image"].dtype == torch.uint8
    assert set(pool["params"]) == {"id", "exp", "tex", "angles", "translation", "gamma"}
    config = TextureTrainConfig(pool=spec, steps=2, batch=2, sizes=(64,), checkpoint_every=1, identity_every=1, holdout=1, minutes=0)
    run = tmp_path / "run"
    train_texture(run, config, verbose=True)
    assert "held out: 3dmm detail SI" in capsys.readouterr().out
    held = (run / "holdout.csv").read_text().splitlines()
    assert held[0] == "step,albedo,detail_si,face_si,psnr" and [r.split(",")[:2] for r in held[1:3]] == [["1", "3dmm"], ["1", "delit"]]
    assert len(held) == 1 + 2 * 4  # two checkpoints, four albedos each
    log = (run / "log.csv").read_text().splitlines()
    assert len(log) == 3 and all(math.isfinite(float(v)) for v in log[-1].split(",") if v != "nan")
    # The photo term weighs only the vertices read themselves: a vertex filled from its mirror partner has
    # no T_p of its own (0), and weighing it would pull its shaded albedo towards black.
    assert weighed and all(bool((w[c.abs().sum(-1) == 0] == 0).all()) and bool((w > 0).any()) for c, w in weighed)
    assert made_with and set(made_with) == {config.mirror_weight}
    # Resume refuses a checkpoint trained on inputs made otherwise, and goes on from one made the same way.
    with pytest.raises(ValueError, match="--mirror-weight"):
        train_texture(run, dataclasses.replace(config, steps=4, mirror_weight=1.0), resume=True, verbose=False)
    # Resume goes on from the checkpoint: two more steps, one log.
    config.steps = 4
    weights = train_texture(run, config, resume=True, verbose=False)
    assert len((run / "log.csv").read_text().splitlines()) == 5
    assert len((run / "holdout.csv").read_text().splitlines()) == 1 + 4 * 4  # scored without printing, appended on resume
    network = load_texture_gcn(weights, texture_hierarchy(open_model, 0))
    assert network.meta["steps"] == 4 and network.meta["split"] == POOL_SPLIT and network.meta["identity_network"] == "stub_net"
    # What the inputs were: the pool's format (its fits) and the clip level of the readings.
    assert network.meta["pool_format"] == POOL_FORMAT and network.meta["clip_level"] == CLIP_LEVEL
    # The recipe's mirror weight travels in the network's configuration, where refine reads it.
    assert network.config.mirror_weight == TextureTrainConfig().mirror_weight < 1


def test_the_pool_never_draws_benchmark_faces():
    """The training split is its own: item i of it is not item i of the benchmark, whatever the seeds."""
    from facelib.data import SyntheticFaces, benchmark

    assert POOL_SPLIT != "benchmark"
    ours = SyntheticFaces(n=2, size=32, seed=2020, level=0, device="cpu", split=POOL_SPLIT)[[0, 1]]
    theirs = benchmark(n=2, size=32, level=0, device="cpu")[[0, 1]]
    assert not torch.allclose(ours["coeffs"], theirs["coeffs"])


def test_the_pool_fits_on_its_own_mesh_as_reconstruct_does(fitted_meshes):
    """The pool's faces are fitted on the level their albedo lives on, as reconstruct fits a photo."""
    import facelib.train.fitted_pool as fitted_pool

    seen = fitted_meshes(fitted_pool)  # the renderer of each fit draws its mesh, too
    chunk = fitted_pool.build_chunk(PoolSpec(n=1, size=48, level=1, fit_steps=2, refit_steps=1, chunk=1), 0, None)
    assert seen == [chunk["albedo"].shape[1]] and seen[0] > 12000  # level 1, not level 0's 3,141


def test_the_shipped_weights_were_trained_on_the_pool_split():
    path = bundled_texture_weights()
    if not path.is_file():
        pytest.fail(f"{path} is missing: the course ships trained TextureGCN weights (python -m facelib train-texture)")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    assert payload["meta"]["split"] == POOL_SPLIT != "benchmark"
    # It read T_p as reconstruct reads it now (clipped readings dropped), and says which fits it saw.
    assert payload["meta"].get("clip_level") == CLIP_LEVEL and str(payload["meta"].get("pool_format", "")).startswith("facelib.fitted_pool/")
    assert payload["config"]["delit"] and path.stat().st_size < 15 * 2**20
    # ... and its mirror fill at the recipe's weight, which refine reads from the file.
    assert payload["config"].get("mirror_weight") == TextureTrainConfig().mirror_weight
    assert all(v.dtype == torch.float16 for v in payload["state_dict"].values() if v.is_floating_point())
