"""dlib's face-recognition ResNet in torch: parity with dlib, gradients, bad files, the cache, the encoder's choice."""

import numpy as np
import pytest
import torch

from facelib import config as settings
from facelib.losses.identity import identity_distance
from facelib.nets import dlib_chip, dlib_resnet, identity
from facelib.nets.dlib_resnet import (CHIP_SIZE, DLIB_RESNET_FILE, DlibResNet, DlibWeightsError, dlib_model_path,
                                      load_dlib_resnet, load_dlib_state, read_dlib_resnet_file)
from facelib.nets.dlib_chip import TEMPLATE_DLIB_POINTS, crop_to_chip, dlib_chip_to_image
from facelib.nets.identity import FaceNetWeightsError, IdentityEncoder

DAT = dlib_model_path()
needs_weights = pytest.mark.skipif(DAT is None, reason="face-recognition-models is not installed (make setup installs it with --no-deps)")


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """A facelib cache of the test's own (the open face model is not in it: do not load it here)."""
    monkeypatch.setattr(settings, "CACHE_DIR", tmp_path / "facelib-cache")


@pytest.fixture(scope="module")
def net():
    if DAT is None:
        pytest.skip("face-recognition-models is not installed")
    return load_dlib_resnet(cache=False)


@pytest.fixture(scope="module")
def crops():
    """(2, 128, 128, 3) facelib's aligned crops of the bundled photos."""
    from facelib.data import PHOTOS, align_face

    return torch.stack([align_face(path, 128).image for path in PHOTOS.values()])


@needs_weights
def test_torch_network_matches_dlibs_own_descriptors(net):
    dlib = pytest.importorskip("dlib", reason="dlib-bin (test only) is not installed: pip install dlib-bin==20.0.1.post1")
    from facelib.data import PHOTOS
    from facelib.data.images import load_rgb

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(dlib_model_path(dlib_resnet.DLIB_SHAPE_PREDICTOR_FILE)))
    chips = []
    for path in PHOTOS.values():
        image = np.asarray(load_rgb(path))
        rect = max(detector(image, 1), key=lambda r: r.area())
        chips.append(np.asarray(dlib.get_face_chip(image, predictor(image, rect), size=CHIP_SIZE, padding=0.25)))
    chips.append((np.random.default_rng(0).random((CHIP_SIZE, CHIP_SIZE, 3)) * 255).astype(np.uint8))  # not a face
    reference = np.stack([np.array(dlib.face_recognition_model_v1(str(DAT)).compute_face_descriptor(c)) for c in chips])
    with torch.no_grad():
        ours = net(net.normalise(torch.from_numpy(np.stack(chips)).float() / 255.0)).double().numpy()
    assert np.abs(ours - reference).max() < 1e-4
    assert 1.0 < np.linalg.norm(reference[0]) < 2.0  # raw descriptors: not normalised


def test_chip_geometry_is_dlibs():
    """dlib_chip_to_image is the map dlib's get_face_chip samples with."""
    dlib = pytest.importorskip("dlib", reason="dlib-bin (test only) is not installed")
    rng = np.random.default_rng(1)
    # A smooth image, so that bilinear sampling at slightly different places differs only a little.
    yy, xx = np.mgrid[0:300, 0:300]
    image = np.stack([127 + 120 * np.sin(xx / 9.0 + c) * np.cos(yy / 13.0 - c) for c in range(3)], -1).astype(np.uint8)
    points = np.array([[190, 120], [160, 122], [100, 121], [130, 123], [146, 170]]) + rng.integers(-4, 5, (5, 2))
    shape = dlib.full_object_detection(dlib.rectangle(80, 80, 220, 220), [dlib.point(int(x), int(y)) for x, y in points])
    chip = np.asarray(dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=0.25)).astype(np.float64)
    m = dlib_chip_to_image(points)
    rows, cols = np.mgrid[0:CHIP_SIZE, 0:CHIP_SIZE]
    xy = np.stack([cols.ravel(), rows.ravel(), np.ones(rows.size)]).T @ m[:2].T
    grid = torch.from_numpy((xy + 0.5) / 300 * 2 - 1).view(1, CHIP_SIZE, CHIP_SIZE, 2)
    ours = torch.nn.functional.grid_sample(torch.from_numpy(image).double().permute(2, 0, 1)[None], grid, align_corners=False)
    assert np.abs(ours[0].permute(1, 2, 0).numpy() - chip)[5:-5, 5:-5].mean() < 1.0  # 8-bit levels


def test_template_points_come_from_the_face_model():
    assert np.allclose(dlib_chip.template_dlib_points(224), TEMPLATE_DLIB_POINTS, atol=1e-6)


@needs_weights
def test_gradients_reach_the_crop_and_not_the_weights(crops):
    encoder = IdentityEncoder(network="dlib")
    encoder.train()  # a surrounding model switching to training mode must not unfreeze it
    assert not encoder.net.training and encoder.embedding_dim == 128 and encoder.name == "dlib_resnet_v1"
    images = crops.clone().requires_grad_(True)
    out = encoder(images)
    assert out.shape == (2, 128) and torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-5)
    (1 - (out[0] * out[1]).sum()).backward()
    assert images.grad.abs().sum() > 0 and torch.isfinite(images.grad).all()
    assert all(p.grad is None and not p.requires_grad for p in encoder.parameters())


@needs_weights
def test_identity_distance(crops):
    encoder = IdentityEncoder(network="dlib")
    with torch.no_grad():
        same = identity_distance(encoder, crops, crops)
        other = identity_distance(encoder, crops, crops.flip(0))
        one = identity_distance(encoder, crops[0], crops[1])
    assert torch.allclose(same.distance, torch.zeros(2), atol=1e-5) and torch.allclose(same.cosine, torch.ones(2), atol=1e-5)
    assert same.same_person.all() and not other.same_person.any()  # Grace Hopper is not the astronaut
    assert one.distance.ndim == 0 and torch.isclose(one.distance, other.distance[0], atol=1e-5)
    with pytest.raises(ValueError, match="same shape"):
        identity_distance(encoder, crops, crops[:1])


def test_crop_checks_name_the_problem():
    with pytest.raises(ValueError, match="square"):
        crop_to_chip(torch.rand(1, 64, 80, 3))
    with pytest.raises(ValueError, match="/ 255"):
        crop_to_chip(torch.rand(1, 64, 64, 3) * 255)
    with pytest.raises(ValueError, match="permute"):
        crop_to_chip(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="float"):
        crop_to_chip(torch.zeros(1, 64, 64, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="too small"):
        crop_to_chip(torch.rand(1, 16, 16, 3))
    with pytest.raises(ValueError, match="NaN"):
        crop_to_chip(torch.full((1, 64, 64, 3), float("nan")))
    chips = crop_to_chip(torch.rand(2, 400, 400, 3) * 1.2)  # unclamped renders overshoot a little: accepted
    assert chips.shape == (2, CHIP_SIZE, CHIP_SIZE, 3) and chips.max() <= 1


@needs_weights
def test_bad_dat_files(tmp_path):
    with pytest.raises(DlibWeightsError, match="does not exist.*pip install --no-deps face-recognition-models"):
        read_dlib_resnet_file(tmp_path / DLIB_RESNET_FILE)
    truncated = tmp_path / "truncated.dat"
    truncated.write_bytes(DAT.read_bytes()[:200_000])
    with pytest.raises(DlibWeightsError, match=r"truncated\.dat.*truncated.*force-reinstall"):
        read_dlib_resnet_file(truncated)
    other = tmp_path / "other.dat"
    other.write_bytes(dlib_model_path(dlib_resnet.DLIB_SHAPE_PREDICTOR_FILE).read_bytes()[:4096])
    with pytest.raises(DlibWeightsError, match="other.dat is not a readable"):
        load_dlib_state(other, cache=False)


@needs_weights
def test_cache_round_trip_and_bad_caches(private_cache):
    state, source = load_dlib_state()
    cached = dlib_resnet.dlib_cache_path(source)
    assert cached.is_file() and source == DAT
    payload = torch.load(cached, weights_only=True)  # a plain state dict: loads without pickled code
    again, _ = load_dlib_state()
    assert all(torch.equal(state[k], again[k]) and torch.equal(state[k], payload["state_dict"][k]) for k in state)
    assert not list(cached.parent.glob("*.tmp"))
    try:  # the cache is derived data: each damage is named, with what to do
        wrong = dict(payload, state_dict={**payload["state_dict"], "fc.weight": torch.zeros(64, 256)})
        torch.save(wrong, cached)
        with pytest.raises(DlibWeightsError, match=r"fc.weight has shape \(64, 256\).*\(128, 256\).*delete"):
            load_dlib_state()
        cached.write_bytes(b"not a torch file")
        with pytest.raises(DlibWeightsError, match="cannot read the cached"):
            load_dlib_state()
        torch.save({"format": "something else"}, cached)
        with pytest.raises(DlibWeightsError, match="not a facelib cache"):
            load_dlib_state()
    finally:
        cached.unlink(missing_ok=True)
    net = DlibResNet()
    net.load_state_dict(load_dlib_state()[0])  # rebuilt from the .dat


@pytest.fixture
def no_facenet(tmp_path, monkeypatch):
    """No FaceNet weights anywhere, and a download would fail the test."""
    monkeypatch.delenv("FACELIB_FACENET_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def no_download(*args, **kwargs):
        raise AssertionError("IdentityEncoder tried to download")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)


@needs_weights
def test_encoder_picks_dlib_before_the_untrained_net_and_downloads_nothing(no_facenet, capsys):
    encoder = IdentityEncoder(allow_untrained=True)  # what refine, reconstruct and the trainer ask for
    assert (encoder.name, encoder.embedding_dim, encoder.pretrained) == ("dlib_resnet_v1", 128, True)
    assert encoder.same_person_threshold == 0.6 and "dlib" in encoder.source
    assert "untrained" not in capsys.readouterr().out.lower()
    assert IdentityEncoder().name == "dlib_resnet_v1"


def test_encoder_prefers_facenet_when_its_weights_are_here(tmp_path, no_facenet, monkeypatch):
    from facenet_pytorch import InceptionResnetV1

    path = tmp_path / "torch" / "checkpoints" / identity.FACENET_VGGFACE2_FILE
    path.parent.mkdir(parents=True)
    torch.save(InceptionResnetV1(pretrained=None, classify=False).state_dict(), path)
    encoder = IdentityEncoder()
    assert (encoder.name, encoder.embedding_dim, encoder.pretrained) == ("facenet_vggface2", 512, True)
    assert encoder.same_person_threshold is None
    if DAT is not None:
        assert IdentityEncoder(network="dlib").name == "dlib_resnet_v1"  # asked for by name (e.g. a checkpoint's)


def test_untrained_only_when_asked(no_facenet, monkeypatch, capsys):
    monkeypatch.setattr(identity, "dlib_model_path", lambda *a: None)  # as without face-recognition-models
    with pytest.raises(FaceNetWeightsError, match="face-recognition-models==0.3.0.*allow_untrained=True"):
        IdentityEncoder()
    encoder = IdentityEncoder(allow_untrained=True)
    assert (encoder.name, encoder.embedding_dim, encoder.pretrained) == ("facenet_untrained", 512, False)
    assert "untrained" in capsys.readouterr().out
    assert IdentityEncoder(network="facenet_untrained").name == "facenet_untrained"
    with pytest.raises(ValueError, match="network='arcface'"):
        IdentityEncoder(network="arcface")
