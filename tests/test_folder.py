"""PhotoFolder: a folder with good and bad photos is aligned once, cached, resumed, and left untouched."""

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import facelib.data.folder as folder_module
from facelib.data import PHOTOS, PhotoFolder, load_rgb, template_points
from facelib.data.align import apply_affine, warp_affine
from facelib.data.images import image_to_tensor
from facelib.data.backgrounds import FACE_BOXES

SIZE = 112


def _snapshot(root):
    """Every file under root with its bytes' hash and modification time."""
    return {p.relative_to(root).as_posix(): (hashlib.sha1(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A CelebA-like nested folder: two real photos, and four bad files of different kinds."""
    root = tmp_path_factory.mktemp("photos")
    (root / "img_align_celeba").mkdir()
    shutil.copy(PHOTOS["grace_hopper"], root / "img_align_celeba" / "hopper.jpg")
    shutil.copy(PHOTOS["astronaut"], root / "astronaut.JPG")
    data = PHOTOS["grace_hopper"].read_bytes()
    (root / "img_align_celeba" / "cut.jpg").write_bytes(data[: len(data) // 3])
    (root / "notes.png").write_text("not a picture")
    y, x = np.mgrid[0:200, 0:200]
    Image.fromarray(np.stack([x, y, x * 0 + 128], -1).astype(np.uint8)).save(root / "sky.png")
    Image.new("RGB", (16, 16), (200, 150, 120)).save(root / "tiny.png")
    (root / "list_attr_celeba.txt").write_text("an annotation file: ignored, not skipped")
    return root


@pytest.fixture(scope="module")
def aligned(photos, tmp_path_factory):
    before = _snapshot(photos)
    cache = tmp_path_factory.mktemp("cache") / "aligned"
    result = PhotoFolder(photos, cache=cache, size=SIZE, progress=False)
    assert _snapshot(photos) == before, "the photos' folder must not change"
    return result


def test_good_photos_are_aligned_and_cached(aligned):
    assert len(aligned) == 2
    assert sorted(e.source for e in aligned.entries) == ["astronaut.JPG", "img_align_celeba/hopper.jpg"]
    for index, entry in enumerate(aligned.entries):
        image, points = aligned[index]
        assert image.shape == (SIZE, SIZE, 3) and 0 <= image.min() and image.max() <= 1
        assert points.shape == (5, 2)
        assert (points[:2] - template_points(SIZE)[:2]).norm(dim=-1).max() < 3.0, "eyes on the template"
        assert (aligned.cache / entry.crop).is_file()
        # The stored matrices take the crop back onto the photo, into the detected box.
        x0, y0, x1, y1 = entry.box.tolist()
        back = apply_affine(entry.inverse, points)
        assert ((back[:, 0] > x0) & (back[:, 0] < x1) & (back[:, 1] > y0) & (back[:, 1] < y1)).all()
        assert torch.allclose(apply_affine(entry.matrix, back), points, atol=1e-2)


def test_bad_files_are_skipped_with_their_reasons(aligned):
    reasons = {s["source"]: s["reason"] for s in aligned.skipped}
    assert set(reasons) == {"img_align_celeba/cut.jpg", "notes.png", "sky.png", "tiny.png"}
    assert "damaged or truncated" in reasons["img_align_celeba/cut.jpg"]
    assert "not an image" in reasons["notes.png"]
    assert "no face found" in reasons["sky.png"]
    assert "too small" in reasons["tiny.png"]
    manifest = json.loads((aligned.cache / "manifest.json").read_text())
    assert manifest["faces"] == 2 and manifest["photos"] == 6 and manifest["ignored_files"] == 1
    assert {s["source"] for s in manifest["skipped"]} == set(reasons)
    assert {s["error"] for s in manifest["skipped"]} == {"ImageError", "NoFaceError"}


def test_a_rerun_resumes_without_redoing_work(aligned, photos, monkeypatch):
    calls = []

    def counting(*args, **kwargs):
        calls.append(args)
        return align_faces(*args, **kwargs)

    align_faces = folder_module.align_faces
    monkeypatch.setattr(folder_module, "align_faces", counting)
    again = PhotoFolder(photos, cache=aligned.cache, size=SIZE, progress=False)
    assert calls == [] and len(again) == 2 and len(again.skipped) == 4
    assert torch.equal(again[0][0], aligned[0][0])
    # A photo that changes is done again, alone; the log keeps its newest result.
    Image.new("RGB", (20, 20), (90, 90, 90)).save(photos / "tiny.png")
    before = _snapshot(photos)
    third = PhotoFolder(photos, cache=aligned.cache, size=SIZE, progress=False)
    assert len(calls) == 1 and len(third.skipped) == 4
    assert _snapshot(photos) == before


def test_the_cache_never_takes_over_other_files(photos, tmp_path):
    with pytest.raises(ValueError, match="outside it"):
        PhotoFolder(photos, cache=photos, progress=False)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(ValueError, match="did not write"):
        PhotoFolder(photos, cache=foreign, progress=False)
    assert (foreign / "thesis.tex").read_text() == "precious"
    with pytest.raises(NotADirectoryError, match="takes a folder"):
        PhotoFolder(photos / "sky.png", progress=False)


def test_other_settings_need_another_cache(aligned, photos):
    with pytest.raises(ValueError, match="other settings"):
        PhotoFolder(photos, cache=aligned.cache, size=SIZE * 2, progress=False)


def test_all_faces_of_a_large_photo(tmp_path):
    """Two faces side by side in a photo larger than max_side: both found, largest first, and the
    stored matrices refer to the full-size photo."""
    hopper, astronaut = load_rgb(PHOTOS["grace_hopper"]), load_rgb(PHOTOS["astronaut"])
    pair = Image.new("RGB", (hopper.width + astronaut.width, hopper.height))
    pair.paste(hopper, (0, 0))
    pair.paste(astronaut, (hopper.width, 0))
    (tmp_path / "photos").mkdir()
    pair.save(tmp_path / "photos" / "pair.png")
    faces = PhotoFolder(tmp_path / "photos", cache=tmp_path / "cache", size=SIZE, all_faces=True, max_side=700, progress=False)
    assert [(e.source, e.face) for e in faces.entries] == [("pair.png", 0), ("pair.png", 1)]
    assert faces.entries[0].box[0] < hopper.width < faces.entries[1].box[0], "Hopper's face is the larger"
    full = image_to_tensor(pair)
    for index, entry in enumerate(faces.entries):
        assert entry.photo_size == (pair.height, pair.width)
        again = warp_affine(full, entry.matrix, SIZE)
        assert (again - faces[index][0]).abs().mean() < 0.03
    # The background crops of the synthetic faces stay clear of these faces.
    for entry, (name, offset) in zip(faces.entries, (("grace_hopper", 0), ("astronaut", hopper.width))):
        x0, y0, x1, y1 = FACE_BOXES[name]
        bx0, by0, bx1, by1 = (entry.box - torch.tensor([offset, 0, offset, 0])).tolist()
        assert x0 <= bx0 and y0 <= by0 and bx1 <= x1 and by1 <= y1, name


def test_the_data_grids_command_writes_both_grids(aligned, photos, tmp_path):
    from facelib.cli import main

    assert main(["data-grids", "--out", str(tmp_path), "-n", "2", "--size", str(SIZE), "--level", "0",
                 "--photos", str(photos), "--cache", str(aligned.cache), "--device", "cpu"]) == 0
    for name in ("synthetic_faces.png", "aligned_photos.png"):
        with Image.open(tmp_path / name) as image:
            assert min(image.size) > 100, name

