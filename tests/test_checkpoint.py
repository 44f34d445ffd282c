"""Checkpoints: atomic writes, safe and checked loading, keep-last-k, the CSV cut on resume, and SIGKILL then resume."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from facelib.config import REPO_DIR
from facelib.train import CHECKPOINT_FORMAT, CheckpointError, CheckpointManager, Records, TrainConfig, Trainer, atomic_save, load_checkpoint
from facelib.train.records import read_log


def payload(value: float) -> dict:
    return {"gcn": {"w": torch.full((3,), value)}, "config": {"steps": 1}}


def test_keeps_the_last_k_and_finds_the_latest(tmp_path):
    manager = CheckpointManager(tmp_path, keep=2)
    for step in (2, 4, 6):
        manager.save(step, payload(step))
    assert manager.steps() == [4, 6] and manager.latest().name == "step-00000006.pt"
    loaded = manager.load_latest()
    assert loaded["step"] == 6 and loaded["format"] == CHECKPOINT_FORMAT and torch.equal(loaded["gcn"]["w"], torch.full((3,), 6.0))


def test_a_crash_mid_write_leaves_the_old_checkpoint_intact(tmp_path, monkeypatch):
    manager = CheckpointManager(tmp_path, keep=3)
    manager.save(2, payload(2))

    def crashing_save(obj, handle):
        handle.write(b"PK\x03\x04 half a zip file")
        raise OSError("simulated crash: disk gone")

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(OSError, match="simulated crash"):
        manager.save(4, payload(4))
    monkeypatch.undo()
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))  # the partial write was cleared away
    assert manager.steps() == [2] and manager.load_latest()["step"] == 2
    manager.save(4, payload(4))  # the next save goes through
    assert manager.steps() == [2, 4]


def test_damaged_and_foreign_files_give_clear_errors(tmp_path):
    good = atomic_save({"format": CHECKPOINT_FORMAT, "step": 1, "gcn": {}, "config": {}}, tmp_path / "good.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(truncated)
    (tmp_path / "noise.pt").write_bytes(os.urandom(2000))
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(tmp_path / "noise.pt")
    torch.save({"format": "facelib.TextureGCN/1", "state_dict": {}}, tmp_path / "gcn.pt")
    with pytest.raises(CheckpointError, match="load_texture_gcn"):
        load_checkpoint(tmp_path / "gcn.pt")
    torch.save({"w": torch.zeros(2)}, tmp_path / "bare.pt")
    with pytest.raises(CheckpointError, match="not a facelib training checkpoint"):
        load_checkpoint(tmp_path / "bare.pt")
    torch.save({"format": CHECKPOINT_FORMAT, "step": 1, "gcn": {}, "config": {}, "code": TrainConfig()}, tmp_path / "pickled.pt")
    with pytest.raises(CheckpointError, match="not plain tensor data"):  # weights_only refuses arbitrary objects
        load_checkpoint(tmp_path / "pickled.pt")
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "missing.pt")


def test_records_cut_back_to_the_checkpoint_on_resume(tmp_path):
    records = Records(tmp_path, tensorboard=False)
    for step in range(1, 6):
        records.log({"step": step, "total": 1.0 / step, "s1": 0.5})
    records.close()
    resumed = Records(tmp_path, resume_rows=3, tensorboard=False)
    assert resumed.history["step"] == [1.0, 2.0, 3.0]
    resumed.log({"step": 4, "total": 9.0})
    resumed.close()
    log = read_log(tmp_path / "log.csv")
    assert log["step"] == [1.0, 2.0, 3.0, 4.0] and log["total"][-1] == 9.0


# The tiny run of the resume test (see tests/test_train.py): 8 steps, a checkpoint every 2.
RUN = dict(steps=8, batch=2, size=32, level=0, gcn="small", coarse="truth", allow_untrained_facenet=True, critic_steps=1, critic_width=8,
           synthetic_n=8, cache=True, progress=False, tensorboard=False, face_mask="none", lr=1e-3, critic_lr=1e-3, checkpoint_every=2,
           keep=5)


def flags(settings: dict) -> list[str]:
    out = []
    for key, value in settings.items():
        flag = "--" + key.replace("_", "-")
        out += ([flag] if value else ["--no-" + flag[2:]]) if isinstance(value, bool) else [flag, str(value)]
    return out


def test_sigkill_then_resume_continues_from_the_last_checkpoint_and_matches_an_uninterrupted_run(tmp_path):
    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO_DIR)}
    process = subprocess.Popen([sys.executable, "-m", "facelib", "train", *flags({**RUN, "out": killed})], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    manager = CheckpointManager(killed / "checkpoints")
    deadline = time.monotonic() + 240
    try:
        while not any(step >= 4 for step in manager.steps()):
            assert process.poll() is None, f"training ended before it could be killed: {process.stderr.read().decode()[-2000:]}"
            assert time.monotonic() < deadline, "no checkpoint of step 4 within 240 s"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    last = max(manager.steps())
    assert 4 <= last < RUN["steps"]
    rows_then = len(read_log(killed / "log.csv")["step"])
    assert rows_then >= last  # the CSV may hold steps past the checkpoint: they are cut and run again

    resumed = Trainer(TrainConfig(**{**RUN, "out": str(killed)}), resume=True)
    assert resumed.step == last  # lost at most checkpoint_every steps
    resumed.train()
    assert read_log(killed / "log.csv")["step"] == [float(s) for s in range(1, RUN["steps"] + 1)]

    straight = Trainer(TrainConfig(**{**RUN, "out": str(tmp_path / "straight"), "checkpoint_every": 0}))
    straight.train()
    for key, value in straight.gcn.state_dict().items():
        assert torch.allclose(resumed.gcn.state_dict()[key], value, atol=1e-6), key
    for key, value in straight.critic.state_dict().items():
        assert torch.allclose(resumed.critic.state_dict()[key], value, atol=1e-6), key
