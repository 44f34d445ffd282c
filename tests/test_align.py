"""Photo loading that survives bad input, MTCNN detection and 5-point alignment."""

import numpy as np
import pytest
import torch
from PIL import Image

from facelib.data import PHOTOS, ImageError, NoFaceError, align_face, load_rgb, similarity_transform, template_points
from facelib.data.align import apply_affine, invert_affine, warp_affine


@pytest.fixture(scope="module")
def hopper():
    return align_face(PHOTOS["grace_hopper"])


def test_similarity_transform_recovers_a_known_map():
    angle, scale = 0.3, 1.7
    rot = torch.tensor([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], dtype=torch.float32)
    src = torch.rand(5, 2) * 100
    dst = scale * src @ rot.T + torch.tensor([3.0, -7.0])
    m = similarity_transform(src, dst)
    assert torch.allclose(apply_affine(m, src), dst, atol=1e-3)
    assert torch.allclose(apply_affine(invert_affine(m), dst), src, atol=1e-3)


def test_warp_with_identity_returns_the_image():
    image = torch.rand(20, 30, 3)
    out = warp_affine(image, torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]), (20, 30))
    assert torch.allclose(out, image, atol=1e-5)


@pytest.mark.parametrize("name", ["grace_hopper", "astronaut"])
def test_aligned_photos_put_the_eyes_on_the_template(name, hopper):
    aligned = hopper if name == "grace_hopper" else align_face(PHOTOS[name])
    assert aligned.image.shape == (224, 224, 3) and aligned.detection.score > 0.9
    eyes_error = (aligned.points[:2] - template_points(224)[:2]).norm(dim=-1)
    assert eyes_error.max() < 4.0, f"eyes {eyes_error.tolist()} px from the template"


def test_paste_puts_the_crop_back_where_it_came_from(hopper):
    photo = torch.from_numpy(np.asarray(load_rgb(PHOTOS["grace_hopper"]), dtype=np.float32) / 255)
    mask = torch.zeros(224, 224)
    mask[60:160, 60:160] = 1
    pasted = hopper.paste(photo, hopper.image, mask)
    changed = (pasted - photo).abs().mean(-1)
    region = hopper.paste(torch.zeros_like(photo), torch.ones(224, 224, 3), mask)[..., 0] > 0.99
    assert region.sum() > 1000 and changed[region].mean() < 0.03  # the crop resampled twice


def test_a_photo_without_a_face_says_so(tmp_path):
    y, x = np.mgrid[0:200, 0:200]
    Image.fromarray(np.stack([x, y, x * 0 + 128], -1).astype(np.uint8)).save(tmp_path / "sky.png")
    with pytest.raises(NoFaceError, match="no face found"):
        align_face(tmp_path / "sky.png")


def test_bad_files_get_specific_messages(tmp_path):
    (tmp_path / "notes.jpg").write_text("this is not a picture")
    with pytest.raises(ImageError, match="not an image"):
        load_rgb(tmp_path / "notes.jpg")
    with pytest.raises(ImageError, match="no such file"):
        load_rgb(tmp_path / "missing.jpg")
    with pytest.raises(ImageError, match="is a folder"):
        load_rgb(tmp_path)
    data = PHOTOS["grace_hopper"].read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageError, match="damaged or truncated"):
        load_rgb(tmp_path / "cut.jpg")
    Image.new("RGB", (16, 16)).save(tmp_path / "tiny.png")
    with pytest.raises(ImageError, match="too small"):
        align_face(tmp_path / "tiny.png")


def test_unusual_modes_load_as_upright_rgb(tmp_path):
    base = load_rgb(PHOTOS["grace_hopper"]).resize((60, 40))
    base.convert("L").save(tmp_path / "gray.png")
    base.convert("RGBA").save(tmp_path / "rgba.png")
    base.convert("P").save(tmp_path / "palette.png")
    base.convert("CMYK").save(tmp_path / "cmyk.jpg")
    Image.fromarray((np.asarray(base.convert("L"), dtype=np.uint16) * 257)).save(tmp_path / "deep.png")
    rotated = base.copy()
    exif = rotated.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    rotated.save(tmp_path / "phone.jpg", exif=exif)
    for name in ["gray.png", "rgba.png", "palette.png", "cmyk.jpg", "deep.png"]:
        image = load_rgb(tmp_path / name)
        assert image.mode == "RGB" and image.size == (60, 40), name
    assert load_rgb(tmp_path / "phone.jpg").size == (40, 60)
