"""facelib.files: every saved file is written atomically."""

import pytest
import torch

from facelib.files import atomic_open, atomic_save, atomic_write_bytes, atomic_write_text


def test_writes_create_the_folder_and_leave_no_temporary_files(tmp_path):
    text = atomic_write_text(tmp_path / "a" / "b.json", "{\"é\": 1}\n")
    data = atomic_write_bytes(tmp_path / "a" / "c.bin", b"\x00\x01")
    saved = atomic_save({"w": torch.ones(2)}, tmp_path / "a" / "d.pt")
    assert text.read_text(encoding="utf-8") == "{\"é\": 1}\n" and data.read_bytes() == b"\x00\x01"
    assert torch.equal(torch.load(saved, weights_only=True)["w"], torch.ones(2))
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b.json", "c.bin", "d.pt"]


def test_a_failure_mid_write_keeps_the_old_file_and_cleans_up(tmp_path):
    path = atomic_write_text(tmp_path / "summary.json", "old")
    with pytest.raises(RuntimeError, match="disk gone"):
        with atomic_open(path, "w") as handle:
            handle.write("half of the new")
            raise RuntimeError("disk gone")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["summary.json"]
    with pytest.raises(ValueError, match="mode"):
        with atomic_open(path, "a"):
            pass
