"""Trained runs as benchmark methods, the ablation configurations, and the evaluate command."""

import pytest
import torch

from facelib.cli import main
from facelib.evaluate import evaluate
from facelib.train import TrainConfig
from facelib.train.checkpoint import CheckpointError
from facelib.evaluate.runs import BASELINE, ablation_configs, benchmark_faces, load_run, texture_methods, train_or_load

TINY = dict(batch=2, size=32, level=0, gcn="small", coarse="truth", allow_untrained_facenet=True, critic_steps=1, critic_width=8,
            synthetic_n=8, cache=True, progress=False, tensorboard=False, face_mask="none", lr=1e-3, critic_lr=1e-3, device="cpu")


def test_a_finished_run_scores_against_its_coarse_stage(tmp_path, capsys):
    config = TrainConfig(**TINY, out=str(tmp_path / "run"), steps=2)
    trained = train_or_load(config)
    assert trained.step == 2
    again = train_or_load(config)  # complete: loaded, not trained further
    assert again.step == 2
    run = load_run(tmp_path / "run")
    for k, v in trained.gcn.state_dict().items():
        assert torch.equal(run.gcn.state_dict()[k], v)
    faces = benchmark_faces(run.config, 3)
    methods = texture_methods(run)
    assert list(methods) == [BASELINE, "GCN"]
    batch = faces.batch([0, 1])
    # With the ground-truth coarse stage, "3DMM only" is the true 3DMM albedo without detail.
    assert torch.allclose(methods[BASELINE](batch).albedo, batch["albedo_base"], atol=1e-6)
    gcn = methods["GCN"](batch).albedo
    assert gcn.shape == batch["albedo"].shape and gcn.min() >= 0 and gcn.max() <= 1
    scores = evaluate(methods, faces, batch_size=3)
    assert scores["GCN"].albedo["face"].shape == (3,)
    # The command line scores the same run.
    assert main(["evaluate", "--run", str(tmp_path / "run"), "--n", "3", "--json", str(tmp_path / "scores.json")]) == 0
    out = capsys.readouterr().out
    assert BASELINE in out and "GCN (run)" in out and (tmp_path / "scores.json").exists()


def test_ablation_configs_name_their_folders_and_skip_what_changes_nothing(tmp_path, capsys):
    base = TrainConfig(**TINY, out=str(tmp_path / "study"), identity="off")
    configs = ablation_configs(base)
    assert list(configs) == ["full", "no Refiner", "no Decoder", "no adversarial loss"]
    assert "L_id is already off" in capsys.readouterr().out
    assert configs["no Refiner"].refiner is False and configs["no Decoder"].decoder is False
    assert configs["no adversarial loss"].adversarial is False
    assert len({c.out for c in configs.values()}) == 4
    with pytest.raises(ValueError, match="unknown ablation"):
        ablation_configs(base, ["no GCN"])


def test_evaluate_command_reports_a_missing_run(tmp_path, capsys):
    assert main(["evaluate", "--run", str(tmp_path / "nothing")]) == 1
    assert "no checkpoint" in capsys.readouterr().err


def test_load_run_rebuilds_the_identity_network_the_run_recorded(tmp_path, monkeypatch):
    from facelib.nets.dlib_resnet import dlib_model_path

    if dlib_model_path() is None:
        pytest.skip("dlib's network (face-recognition-models) is not installed")
    # Trained with the untrained FaceNet (512-D Decoder), while "auto" would pick dlib's network here.
    config = TrainConfig(**TINY, out=str(tmp_path / "run"), steps=1, identity_network="facenet_untrained")
    trained = train_or_load(config)
    run = load_run(tmp_path / "run")
    assert run.facenet.name == "facenet_untrained" and run.gcn.config.embedding_dim == 512
    for k, v in trained.gcn.state_dict().items():
        assert torch.equal(run.gcn.state_dict()[k], v)
    # A run whose recorded network cannot be built here is refused, naming both networks and what to do.
    import facelib.nets.dlib_resnet as dlib_resnet
    from facelib.train.identity_network import frozen_facenet

    dlib_run = TrainConfig(**TINY, out=str(tmp_path / "dlib"), steps=1, identity_network="dlib")
    train_or_load(dlib_run)
    frozen_facenet.cache_clear()
    monkeypatch.setattr(dlib_resnet, "dlib_model_path", lambda *a, **k: None)
    try:
        with pytest.raises(CheckpointError, match=r"trained with the identity network 'dlib_resnet_v1', which cannot be built "
                                                   r"here .*'facenet_untrained' would be used instead.*pip install --no-deps"):
            load_run(tmp_path / "dlib")
    finally:
        frozen_facenet.cache_clear()


def test_identity_ablation_runs_whenever_the_network_is_pretrained(tmp_path):
    from facelib.train.identity_network import resolve_identity_network

    base = TrainConfig(**TINY, out=str(tmp_path / "study"))
    pretrained = resolve_identity_network(base) in ("dlib_resnet_v1", "facenet_vggface2")
    assert ("no identity loss" in ablation_configs(base)) == pretrained
    assert "no identity loss" not in ablation_configs(TrainConfig(**TINY, out=str(tmp_path / "s2"), identity_network="facenet_untrained"))
