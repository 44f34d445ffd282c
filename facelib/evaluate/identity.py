"""Measures the identity network on facelib's own inputs: ``python -m facelib.evaluate.identity``.

A measurement, so it lives with the other scores: it composes :mod:`facelib.data` (alignment,
synthetic faces, the bundled photos) with :mod:`facelib.nets`. It reports:

- **parity**: the torch network against dlib's own ``compute_face_descriptor`` on dlib's own chips of
  the bundled photos (needs the test-only package ``dlib-bin``; skipped without it);
- **crop vs chip**: for each photo, the descriptor of facelib's aligned crop (MTCNN's 5 points, our
  template, resampled by :func:`~facelib.nets.dlib_chip.crop_to_chip`) against the descriptor of
  dlib's own chip (dlib's HOG detector and 5-point predictor, ``get_face_chip(size=150, padding=0.25)``),
  and where dlib's 5 points land in our crop against :data:`~facelib.nets.dlib_chip.TEMPLATE_DLIB_POINTS`;
- **photos**: each photo against its mirror image (same person) and the two photos against each
  other (different people);
- **synthetic**: renders of a few synthetic identities, each under several poses, lights and
  expressions: the distances within an identity against those between identities.

Every distance is the Euclidean distance of raw descriptors (dlib's rule: same person below 0.6).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import torch

from facelib.data import PHOTOS, SyntheticConfig, SyntheticFaces, align_face
from facelib.data.align import apply_affine
from facelib.data.images import load_rgb
from facelib.nets import IdentityEncoder
from facelib.nets.dlib_chip import CHIP_PADDING, TEMPLATE_DLIB_POINTS
from facelib.nets.dlib_resnet import CHIP_SIZE, DLIB_SHAPE_PREDICTOR_FILE, dlib_model_path


def _stats(values: list[float] | np.ndarray) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()), "max": float(v.max()), "n": int(v.size)}


def _dlib_chip(image: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """dlib's own 150 x 150 chip of the largest face and its 5 points (dlib's convention), or None."""
    import dlib  # test-only (dlib-bin): imported here so that the module loads without it

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(dlib_model_path(DLIB_SHAPE_PREDICTOR_FILE)))
    rects = detector(image, 1)
    if not rects:
        return None
    rect = max(rects, key=lambda r: r.area())
    shape = predictor(image, rect)
    points = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], dtype=np.float64)
    return np.asarray(dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=CHIP_PADDING)), points


def measure_photos(encoder: Any, size: int = 224) -> dict[str, Any]:
    """Parity, crop-vs-chip, mirror and cross-photo distances on the bundled photos (see the module docstring)."""
    try:
        import dlib
    except ImportError:
        dlib = None
    out: dict[str, Any] = {"photos": {}}
    crops, mirrors = {}, {}
    parity = []
    for name, path in PHOTOS.items():
        image = load_rgb(path)
        pixels = np.asarray(image)
        crops[name] = align_face(image, size).image
        mirrors[name] = align_face(image.transpose(0), size).image  # PIL's FLIP_LEFT_RIGHT
        row: dict[str, Any] = {}
        if dlib is not None:
            found = _dlib_chip(pixels)
            if found is not None:
                chip, points = found
                reference = np.array(dlib.face_recognition_model_v1(str(dlib_model_path())).compute_face_descriptor(chip))
                with torch.no_grad():
                    x = torch.from_numpy(chip).float()[None] / 255.0
                    ours_on_chip = encoder.net(encoder.net.normalise(x))[0].double().numpy()
                    ours_on_crop = encoder.descriptors(crops[name][None])[0].double().numpy()
                parity.append(float(np.abs(ours_on_chip - reference).max()))
                aligned = align_face(image, size)
                in_crop = apply_affine(aligned.matrix.double(), torch.from_numpy(points + 0.5)).numpy() / size
                row.update(crop_vs_dlib_chip=float(np.linalg.norm(ours_on_crop - reference)),
                           descriptor_norm=float(np.linalg.norm(reference)),
                           dlib_points_offset_px=float(np.linalg.norm(in_crop - TEMPLATE_DLIB_POINTS, axis=1).mean() * size))
        out["photos"][name] = row
    names = list(PHOTOS)
    with torch.no_grad():
        d = {n: encoder.descriptors(torch.stack([crops[n], mirrors[n]])) for n in names}
    for n in names:
        out["photos"][n]["vs_mirror"] = float((d[n][0] - d[n][1]).norm())
    out["photos_against_each_other"] = float((d[names[0]][0] - d[names[1]][0]).norm())
    out["photos_against_each_other_mirrored"] = float((d[names[0]][1] - d[names[1]][1]).norm())
    if parity:
        out["parity_max_abs_diff"] = max(parity)
    return out


def synthetic_renders(identities: int = 6, views: int = 5, size: int = 224, seed: int = 0,
                      max_yaw: float = 30.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Renders ``identities`` synthetic faces, each under ``views`` poses, lights and expressions.

    Identity (shape and albedo, detail included) comes from item i of :class:`facelib.data.SyntheticFaces`;
    each view takes the expression, pose, translation and light of another item, over a flat grey
    background (so that only the face differs).

    Returns:
        ((identities * views, size, size, 3) images in [0, 1], (identities * views,) identity labels).
    """
    config = SyntheticConfig(max_yaw=max_yaw)
    faces = SyntheticFaces(n=identities * (views + 1), size=size, seed=seed, level=0, device="cpu", config=config)
    ids = faces.batch(range(identities))
    looks = faces.batch(range(identities, identities * (views + 1)))
    images, labels = [], []
    with torch.no_grad():
        for i in range(identities):
            j = torch.arange(views) + i * views
            vertices = faces.model.shape(ids["id"][i:i + 1].expand(views, -1), looks["exp"][j])
            albedo = ids["albedo"][i:i + 1].expand(views, -1, -1)
            out = faces.renderer.render(vertices, albedo, looks["angles"][j], looks["translation"][j], looks["gamma"][j])
            alpha = out.mask[..., None]
            images.append((out.image * alpha + 0.5 * (1 - alpha)).clamp(0, 1))
            labels += [i] * views
    return torch.cat(images), torch.tensor(labels)


def measure_synthetic(encoder: Any, identities: int = 6, views: int = 5, size: int = 224, seed: int = 0) -> dict[str, Any]:
    """Same- vs different-identity descriptor distances on synthetic renders (see :func:`synthetic_renders`)."""
    images, labels = synthetic_renders(identities, views, size, seed)
    with torch.no_grad():
        descriptors = torch.cat([encoder.descriptors(b) for b in images.split(8)])
    distances = torch.cdist(descriptors.double(), descriptors.double())
    upper = torch.triu(torch.ones_like(distances, dtype=torch.bool), diagonal=1)
    same = (labels[:, None] == labels[None]) & upper
    other = (labels[:, None] != labels[None]) & upper
    return {"same_identity": _stats(distances[same].numpy()), "different_identity": _stats(distances[other].numpy()),
            "identities": identities, "views": views, "size": size, "seed": seed}


def measure(size: int = 224, identities: int = 6, views: int = 5, seed: int = 0) -> dict[str, Any]:
    """Every measurement of the module docstring with the encoder ``IdentityEncoder()`` picks."""
    encoder = IdentityEncoder(allow_untrained=True)
    start = time.perf_counter()
    out: dict[str, Any] = {"network": encoder.name, "source": encoder.source}
    out.update(measure_photos(encoder, size))
    out["synthetic"] = measure_synthetic(encoder, identities, views, size, seed)
    out["seconds"] = round(time.perf_counter() - start, 1)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=224, help="crop and render side in pixels")
    parser.add_argument("--identities", type=int, default=6)
    parser.add_argument("--views", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.size, args.identities, args.views, args.seed), indent=2))


if __name__ == "__main__":
    main()
