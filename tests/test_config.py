import pytest
import torch

from facelib import config


@pytest.mark.parametrize(
    "environ, expected",
    [({}, False), ({"CI": "true"}, True), ({"FACELIB_FAST": "1"}, True), ({"FACELIB_FAST": "0", "CI": "1"}, False), ({"FACELIB_FAST": "yes"}, True)],
)
def test_fast_mode_from_environment(environ, expected):
    assert config._fast_from_env(environ) is expected


def test_fast_mode_rejects_unclear_values():
    with pytest.raises(ValueError, match="FACELIB_FAST"):
        config._fast_from_env({"FACELIB_FAST": "maybe"})


def test_device_falls_back_to_cpu_with_a_note(capsys, monkeypatch):
    monkeypatch.delenv("FACELIB_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert config.get_device() == torch.device("cpu")
    assert "CPU" in capsys.readouterr().out


def test_asking_for_cuda_without_it_says_what_to_do(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        config.get_device("cuda")


def test_repeatable_turns_deterministic_kernels_on_for_the_cpu_only_and_restores_the_setting():
    from facelib.config import repeatable

    assert not torch.are_deterministic_algorithms_enabled()
    with repeatable(torch.device("cpu")):
        assert torch.are_deterministic_algorithms_enabled()
    assert not torch.are_deterministic_algorithms_enabled()
    with pytest.raises(RuntimeError, match="inside"):
        with repeatable(torch.device("cpu")):
            raise RuntimeError("inside")
    assert not torch.are_deterministic_algorithms_enabled()  # restored after an error too
    with repeatable(torch.device("cuda")):  # nothing changes there (no device needed to check it)
        assert not torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with repeatable(torch.device("cpu")):
            pass
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
