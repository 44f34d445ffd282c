"""The frozen FaceNet identity encoder and the critic (dlib's network: tests/test_identity_dlib.py)."""

import pytest
import torch

from facelib.nets import Discriminator, FaceNetWeightsError, IdentityEncoder


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """A FaceNet state dict as facenet-pytorch publishes it (with a classifier), from random weights."""
    from facenet_pytorch import InceptionResnetV1

    torch.manual_seed(5)
    net = InceptionResnetV1(pretrained=None, classify=True, num_classes=7).eval()
    path = tmp_path_factory.mktemp("facenet") / "facenet.pt"
    torch.save(net.state_dict(), path)
    return path, net


def test_identity_encoder_loads_a_local_file(weights_file):
    path, reference = weights_file
    encoder = IdentityEncoder(weights=path, download=False)
    assert encoder.pretrained and str(path) in encoder.source
    assert (encoder.name, encoder.embedding_dim) == ("facenet_vggface2", 512)
    images = torch.rand(2, 112, 112, 3)
    with torch.no_grad():
        expected = torch.nn.functional.normalize(
            reference.last_bn(reference.last_linear(torch.flatten(
                reference.avgpool_1a(_trunk(reference, IdentityEncoder.preprocess(images))), 1))), dim=1)
    out = encoder(images)
    assert out.shape == (2, 512) and torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-5)
    assert torch.allclose(out, expected, atol=1e-5)


def _trunk(net, x):
    for name in ["conv2d_1a", "conv2d_2a", "conv2d_2b", "maxpool_3a", "conv2d_3b", "conv2d_4a", "conv2d_4b", "repeat_1",
                 "mixed_6a", "repeat_2", "mixed_7a", "repeat_3", "block8"]:
        x = getattr(net, name)(x)
    return x


def test_identity_encoder_is_frozen_but_passes_gradients(weights_file):
    encoder = IdentityEncoder(weights=weights_file[0], download=False)
    encoder.train()  # a surrounding model switching to training mode must not unfreeze it
    assert not encoder.net.training
    images = torch.rand(1, 96, 96, 3, requires_grad=True)
    encoder(images).sum().backward()
    assert images.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in encoder.parameters())


def test_identity_encoder_refuses_missing_or_bad_files(tmp_path, monkeypatch):
    with pytest.raises(FaceNetWeightsError, match="does not exist"):
        IdentityEncoder(weights=tmp_path / "nothing.pt", download=False)
    (tmp_path / "broken.pt").write_bytes(b"not a torch file")
    with pytest.raises(FaceNetWeightsError, match="cannot read"):
        IdentityEncoder(weights=tmp_path / "broken.pt", download=False)
    torch.save({"conv2d_1a.conv.weight": torch.zeros(32, 3, 3, 3)}, tmp_path / "partial.pt")
    with pytest.raises(FaceNetWeightsError, match="entries are missing"):
        IdentityEncoder(weights=tmp_path / "partial.pt", download=False)
    monkeypatch.setenv("FACELIB_FACENET_WEIGHTS", str(tmp_path / "elsewhere.pt"))
    with pytest.raises(FaceNetWeightsError, match="is not a file"):
        IdentityEncoder(download=False)


def test_untrained_fallback_only_when_asked(tmp_path, monkeypatch, capsys):
    from facelib.nets import identity

    monkeypatch.delenv("FACELIB_FACENET_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache
    monkeypatch.setattr(identity, "dlib_model_path", lambda *a: None)  # and no dlib network (tests/test_identity_dlib.py has it)
    with pytest.raises(FaceNetWeightsError, match="allow_untrained=True"):
        IdentityEncoder(download=False)
    encoder = IdentityEncoder(download=False, allow_untrained=True, seed=3)
    assert not encoder.pretrained and "UNTRAINED" in encoder.source
    assert "untrained" in capsys.readouterr().out
    again = IdentityEncoder(download=False, allow_untrained=True, seed=3)
    images = torch.rand(1, 64, 64, 3)
    assert torch.equal(encoder(images), again(images))  # reproducible


def test_discriminator_shapes_and_checks():
    for size in (64, 224):
        critic = Discriminator(size, width=4)
        assert critic(torch.rand(2, size, size, 3)).shape == (2,)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in Discriminator(64).modules()) == 6
    with pytest.raises(ValueError, match="multiple of 32"):
        Discriminator(100)
    with pytest.raises(ValueError, match="takes"):
        Discriminator(64)(torch.rand(1, 3, 64, 64))
