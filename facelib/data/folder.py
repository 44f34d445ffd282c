"""``PhotoFolder``: a folder of face photos, aligned once and cached, as a dataset.

Point it at any folder of images: a flat one, CelebA's ``img_align_celeba/``, FFHQ's numbered
sub-folders, a phone's export. The first use finds and aligns the faces (MTCNN and the 5-point
template of :mod:`facelib.data.align`) with a progress bar and writes, in a cache folder:

* ``crops/<relative path>.<k>.png``: the aligned crop of face k of each photo;
* ``log.jsonl``: one JSON line per photo as it is done (its faces' 5 points, crop-from-photo
  matrix and inverse, detection box and score; or why it was skipped), so an interrupted run
  resumes where it stopped and a rerun redoes nothing;
* ``manifest.json``: the settings, the counts, and every skipped photo with the reason (no face,
  too small, not an image, truncated, ...).

The source folder is only read: nothing is written into it, ever. A cache folder is only written
to if it is new or was made by PhotoFolder (its ``manifest.json`` says so). A photo that changes
(size or modification time) is aligned again on the next run.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from facelib.config import CACHE_DIR
from facelib.data.align import AlignedFace, align_faces
from facelib.data.images import ImageError, image_to_tensor, load_rgb
from facelib.files import atomic_write_text
from facelib.data.align import template_points
from facelib.viz import image_grid

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
"""Files with these extensions (any case) are treated as photos; other files are ignored."""

CACHE_FORMAT = 1
"""Bumped when the cache layout changes (an old cache is then refused with a message)."""


@dataclass(frozen=True)
class FolderEntry:
    """One aligned face of the folder.

    Attributes:
        source: the photo's path relative to the folder (POSIX separators).
        face: which face of the photo (0 = the largest).
        crop: the crop's path relative to the cache folder.
        points: (5, 2) the detected five points in crop pixels.
        matrix: (2, 3) affine map from photo pixels to crop pixels.
        inverse: (2, 3) affine map from crop pixels to photo pixels (to paste results back).
        box: (4,) detection box x0, y0, x1, y1 in photo pixels.
        score: the detector's confidence.
        photo_size: (H, W) of the photo (after EXIF rotation).
    """

    source: str
    face: int
    crop: str
    points: torch.Tensor
    matrix: torch.Tensor
    inverse: torch.Tensor
    box: torch.Tensor
    score: float
    photo_size: tuple[int, int]


def _default_cache(root: Path, size: int, all_faces: bool) -> Path:
    digest = hashlib.sha1(str(root).encode()).hexdigest()[:10]
    return CACHE_DIR / "aligned" / f"{root.name or 'root'}-{digest}-{size}{'-all' if all_faces else ''}"


def _is_inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


class PhotoFolder(torch.utils.data.Dataset):
    """The aligned faces of a folder of photos, cached (see the module docstring).

    Args:
        root: the folder of photos; sub-folders are searched too (hidden ones are skipped).
        cache: where crops and the manifest go (default: ``~/.cache/facelib/aligned/<name>-<hash>-<size>``).
            Must not be ``root`` itself; when inside ``root`` it is left out of the search.
        size: the side of the aligned crops.
        all_faces: keep every face of a photo (largest first) instead of the largest only.
        device: where MTCNN runs.
        progress: show a progress bar while aligning.
        retry_skipped: try the photos skipped by an earlier run again (by default they stay skipped).
        max_side: photos larger than this on their longer side are shrunk before detection (the
            crop is then cut from the shrunk photo; the stored matrices still refer to the original).

    ``folder[i]`` is ``(image, points)``: the (S, S, 3) float crop in [0, 1] and its (5, 2) points
    in crop pixels; :attr:`entries` holds the rest (source, matrices, box), :attr:`skipped` the
    photos left out and why.

    Example:
        >>> faces = PhotoFolder("~/data/celeba/img_align_celeba", size=224)
        >>> image, points = faces[0]
        >>> faces.skipped[:3]    # [{"source": "broken.jpg", "error": "ImageError", "reason": "..."}]
    """

    def __init__(self, root: str | Path, cache: str | Path | None = None, size: int = 224, all_faces: bool = False,
                 device: str = "cpu", progress: bool = True, retry_skipped: bool = False, max_side: int = 2048) -> None:
        self.root = Path(root).expanduser().resolve()
        if not self.root.exists():
            raise FileNotFoundError(f"{self.root}: no such folder")
        if not self.root.is_dir():
            raise NotADirectoryError(f"{self.root} is a file; PhotoFolder takes a folder (align one photo with align_face)")
        if size < 16:
            raise ValueError(f"size={size}: crops need at least 16 pixels (224 is the standard)")
        self.size, self.all_faces, self.device, self.max_side = size, all_faces, device, max_side
        self.cache = Path(cache).expanduser().resolve() if cache is not None else _default_cache(self.root, size, all_faces)
        if self.cache == self.root or _is_inside(self.root, self.cache):
            raise ValueError(f"the cache {self.cache} would hold the photos' folder {self.root}: give a cache folder "
                             "outside it (or inside it, as a new sub-folder)")
        self._open_cache()
        self._log = self.cache / "log.jsonl"
        self._records = self._read_log()
        todo, self.ignored = self._scan(retry_skipped)
        if todo:
            self._align(todo, progress)
        self._build_index()
        self._write_manifest()

    # ---- the cache ------------------------------------------------------------------------------
    def _settings(self) -> dict:
        return {"format": CACHE_FORMAT, "size": self.size, "all_faces": self.all_faces, "root": str(self.root)}

    def _open_cache(self) -> None:
        manifest = self.cache / "manifest.json"
        if manifest.is_file():
            try:
                settings = json.loads(manifest.read_text())["settings"]
            except (ValueError, KeyError) as err:
                raise ValueError(f"{manifest} is not a PhotoFolder manifest ({err}); give another cache folder") from err
            mine = self._settings()
            different = {k: (settings.get(k), v) for k, v in mine.items() if k != "root" and settings.get(k) != v}
            if different:
                raise ValueError(f"the cache {self.cache} was made with other settings "
                                 f"({', '.join(f'{k}: {a} there, {b} here' for k, (a, b) in different.items())}); "
                                 "give another cache folder, or delete that one to rebuild it")
        elif self.cache.exists() and any(self.cache.iterdir()):
            # Not ours: refuse rather than risk writing over somebody's files.
            raise ValueError(f"the cache folder {self.cache} exists and holds files that PhotoFolder did not write; "
                             "give an empty or new folder")
        (self.cache / "crops").mkdir(parents=True, exist_ok=True)
        if not manifest.is_file():
            self._write_json(manifest, {"settings": self._settings(), "faces": 0, "photos": 0, "skipped": []})

    @staticmethod
    def _write_json(path: Path, data: dict) -> None:
        atomic_write_text(path, json.dumps(data, indent=1))  # a crash leaves the old manifest, never half of one

    def _read_log(self) -> dict[str, dict]:
        """The latest record of every photo in the log (a rerun of a changed photo appends a newer one)."""
        records = {}
        if self._log.is_file():
            with open(self._log, encoding="utf-8") as log:
                for line in log:
                    try:
                        record = json.loads(line)
                        records[record["source"]] = record
                    except (ValueError, KeyError):
                        continue  # a line cut short by a crash: that photo is simply done again
        return records

    def _scan(self, retry_skipped: bool) -> tuple[list[Path], int]:
        """The photos still to align, and how many files were ignored (not image extensions)."""
        todo, ignored = [], 0
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            folder = Path(dirpath)
            # Hidden folders (.git, .ipynb_checkpoints) and the cache are not photo folders.
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and (folder / d).resolve() != self.cache)
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                path = folder / name
                if path.suffix.lower() not in IMAGE_EXTENSIONS:
                    ignored += 1
                    continue
                record = self._records.get(self._relative(path))
                stat = path.stat()
                unchanged = record is not None and record.get("bytes") == stat.st_size and record.get("mtime_ns") == stat.st_mtime_ns
                if unchanged and (record["status"] == "ok" or not retry_skipped):
                    continue
                todo.append(path)
        return todo, ignored

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    # ---- aligning -------------------------------------------------------------------------------
    def _align_one(self, path: Path) -> list[AlignedFace]:
        image = load_rgb(path)
        photo_size, scale = (image.height, image.width), 1.0
        if max(image.size) > self.max_side:
            # Huge photos: detect and crop on a smaller copy (the crop is 224 pixels anyway).
            scale = self.max_side / max(image.size)
            image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BILINEAR)
        faces = align_faces(image, self.size, self.device, largest_only=not self.all_faces)
        if scale != 1.0:
            to_small = torch.tensor([[scale, 0.0, 0.0], [0.0, scale, 0.0]])
            for face in faces:
                full = torch.cat([face.matrix, face.matrix.new_tensor([[0.0, 0.0, 1.0]])])
                face.matrix = full[:2] @ torch.cat([to_small, to_small.new_tensor([[0.0, 0.0, 1.0]])])
                face.inverse = torch.linalg.inv(torch.cat([face.matrix, face.matrix.new_tensor([[0.0, 0.0, 1.0]])]))[:2]
                face.detection.box = face.detection.box / scale
                face.detection.points = face.detection.points / scale
                face.photo_size = photo_size
        return faces

    def _align(self, todo: list[Path], progress: bool) -> None:
        from tqdm.auto import tqdm

        bar = tqdm(todo, desc=f"aligning {self.root.name}", unit="photo", disable=not progress)
        skipped = 0
        with open(self._log, "a", encoding="utf-8") as log:
            for path in bar:
                source = self._relative(path)
                stat = path.stat()
                record = {"source": source, "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
                try:
                    faces = self._align_one(path)
                except ImageError as err:  # NoFaceError included: the expected ways a photo fails
                    record.update(status="skipped", error=type(err).__name__, reason=str(err))
                except Exception as err:  # noqa: BLE001 - one odd photo must not end a run of thousands
                    record.update(status="skipped", error=type(err).__name__, reason=f"{source}: {err}")
                else:
                    record.update(status="ok", faces=[self._save_face(source, k, face) for k, face in enumerate(faces)])
                if record["status"] == "skipped":
                    skipped += 1
                    bar.set_postfix(skipped=skipped)
                # One line per photo, flushed: the log is the resume point.
                log.write(json.dumps(record) + "\n")
                log.flush()
                self._records[source] = record

    def _save_face(self, source: str, k: int, face: AlignedFace) -> dict:
        crop = Path("crops") / f"{source}.{k}.png"
        path = self.cache / crop
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = (face.image.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        tmp = path.with_name(path.name + ".tmp.png")
        Image.fromarray(pixels).save(tmp)
        os.replace(tmp, path)

        def plain(t: torch.Tensor, decimals: int = 4) -> list:
            return np.round(t.detach().double().numpy(), decimals).tolist()

        return {"crop": crop.as_posix(), "points": plain(face.points), "matrix": plain(face.matrix, 9), "inverse": plain(face.inverse, 9),
                "box": plain(face.detection.box), "score": round(face.detection.score, 5), "photo_size": list(face.photo_size)}

    # ---- the dataset ----------------------------------------------------------------------------
    def _build_index(self) -> None:
        present = set()
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".") and (Path(dirpath) / d).resolve() != self.cache]
            present.update(self._relative(Path(dirpath) / f) for f in filenames)
        self.entries: list[FolderEntry] = []
        self.skipped: list[dict] = []
        for source in sorted(self._records):
            record = self._records[source]
            if source not in present:
                continue  # the photo was removed from the folder since
            if record["status"] == "skipped":
                self.skipped.append({k: record[k] for k in ("source", "error", "reason")})
                continue
            for k, face in enumerate(record["faces"]):
                self.entries.append(FolderEntry(source, k, face["crop"], torch.tensor(face["points"], dtype=torch.float32),
                                                torch.tensor(face["matrix"], dtype=torch.float32),
                                                torch.tensor(face["inverse"], dtype=torch.float32),
                                                torch.tensor(face["box"], dtype=torch.float32), face["score"], tuple(face["photo_size"])))

    def _write_manifest(self) -> None:
        self._write_json(self.cache / "manifest.json", {
            "settings": self._settings(), "photos": len({e.source for e in self.entries}) + len(self.skipped),
            "faces": len(self.entries), "ignored_files": self.ignored, "skipped": self.skipped})

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(image, points): the (S, S, 3) aligned crop in [0, 1] and its (5, 2) points in crop pixels."""
        entry = self.entries[index]
        path = self.cache / entry.crop
        try:
            with Image.open(path) as image:
                pixels = image_to_tensor(image)
        except OSError as err:
            raise ImageError(f"{path}: the cached crop is missing or damaged ({err}); delete {self.cache} to rebuild the cache") from err
        return pixels, entry.points

    def __repr__(self) -> str:
        return f"PhotoFolder({self.root}: {len(self.entries)} faces, {len(self.skipped)} photos skipped; cache {self.cache})"

    def grid(self, n: int = 16, ncols: int = 4, template: bool = True):
        """A matplotlib figure of the first ``n`` aligned faces with their five points (green) and,
        with ``template``, the template's (red crosses): they coincide when alignment worked."""
        if not self.entries:
            raise ValueError(f"{self.root} has no aligned faces to show (skipped: {len(self.skipped)}; see {self.cache / 'manifest.json'})")
        shown = self.entries[:n]
        fig = image_grid([self[i][0] for i in range(len(shown))], titles=[f"{e.source} #{e.face}" for e in shown],
                         ncols=min(ncols, len(shown)), size=3.0)
        target = template_points(self.size)
        for ax, entry in zip(fig.axes, shown):
            ax.scatter(entry.points[:, 0], entry.points[:, 1], s=14, c="lime")
            if template:
                ax.scatter(target[:, 0], target[:, 1], s=30, c="red", marker="x", linewidths=1)
            ax.title.set_fontsize(8)
        return fig

