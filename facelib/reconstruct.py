"""Reconstruct one photo end to end: detect, align, fit, refine the texture, export.

    photo --MTCNN--> 5 points --similarity--> aligned crop I (S x S) --dlib's shape predictor--> 68 landmarks
          --fit (landmarks + pixels)--> coefficients, pose, light     (the mean face, or ``init``)
          --M_face from the fitted skin, refit with it (and the lips)--> (lesson 04: keep hair and hats out)
          --TextureGCN (per image, or trained weights)--> refined albedo T'
          --> OBJ + PLY (3DMM and GCN), overlay on the photo, HTML viewer, summary JSON

Coefficients do not depend on the mesh level (a subdivided model carries its bases exactly), and
the fit runs on the mesh the albedo is refined, rendered and exported on (level ``config.level``).
A coarser mesh has the same surface but shades it more coarsely (the light is computed at its
vertices and interpolated over triangles four times as large), and the geometry bends to make up
for it: on synthetic faces the fit on level 0 put the vertices 0.97 px from their true places and
the fit on level 1 0.84 px (on faces rendered on level 2, which neither fit shares, 1.27 and 1.14 px),
for about a quarter more time (``data/README.md``).

The fit starts from the regressor's prediction (the paper's stage 1, :class:`~facelib.nets.Regressor`)
when its weights load: the bundled ``data/weights/regressor.pt``, ``FACELIB_REGRESSOR_WEIGHTS`` or
``config.regressor_weights``. Without weights it starts from the mean face and says so; with
``use_regressor=False`` it starts from the mean face on purpose. ``init`` overrides both: a dict of
start values for the fit, or a callable that maps the aligned crop (1, S, S, 3) to one.

The fit matches dlib's 68 landmarks of the crop (:func:`~facelib.nets.dlib_landmarks.fit_landmarks`): five points fix where the
face is, but not how wide it is, where the brows sit or how far the lips part. On the bundled photos
the 68 make the fitted face narrower and keep the astronaut's smile (``data/README.md``).
The synthetic benchmark keeps the true five points by default (``eval-reconstruct --true-landmarks 68``
fits all 68, hidden ones included): dlib's detector, trained on photos, misplaces
the landmarks of the synthetic faces (about 9 px at 224 px), which have no hair and little contrast.

The open face model has no UV coordinates, so there is no texture map: colours live on the
vertices (OBJ ``v x y z r g b`` and PLY red/green/blue), as the paper's GCNs produce them.

:func:`facelib.evaluate.pipeline.benchmark_methods` runs the same stages on the synthetic benchmark, where
the true albedo is known (``python -m facelib eval-reconstruct``), beside a yardstick,
:func:`~facelib.texture_inputs.delit_reference`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from facelib import config as settings
from facelib.data import AlignedFace, align_faces, load_rgb
from facelib.data.images import image_to_tensor
from facelib.evaluate.photos import photo_scores
from facelib.files import atomic_write_text
from facelib.fit import FitResult, fit_with_skin_mask, project_landmarks
from facelib.losses import grayscale as grayscale_colours, grayscale_photometric_loss, photometric_loss
from facelib.gcn.weights import bundled_texture_weights, find_texture_weights, texture_hierarchy
from facelib.mesh.io import write_obj, write_ply
from facelib.morphable import MorphableModel, load_open_model
from facelib.refine import RefineConfig, RefineResult, refine
from facelib.render import FaceRenderer, paste_alpha
from facelib.texture_inputs import input_options
from facelib.viz.overlay import write_overlay
from facelib.nets import IdentityEncoder
from facelib.nets.dlib_landmarks import fit_landmarks
from facelib.nets.regressor import MIRROR_AVERAGED, default_weights_path, find_regressor_weights, load_regressor
from facelib.viz.viewer import write_viewer

NO_UV_NOTE = ("no texture map: the open face model has no UV coordinates, so the colours are stored per vertex "
              "(OBJ 'v x y z r g b', PLY red/green/blue)")

Init = dict[str, torch.Tensor] | Callable[[torch.Tensor], dict[str, torch.Tensor]]


class OutputFolderError(ValueError):
    """The output folder cannot be used (it names a file): raised before any work is done."""


class FaceChoiceError(ValueError):
    """``ReconstructConfig.face`` asks for a face the photo does not have."""


GRAYSCALE_NOTE = ("the photo is grayscale: it is fitted on brightness alone, and the albedo is written in gray, "
                  "since a gray photo holds no hue to read the skin's colour from")


@dataclass
class ReconstructConfig:
    """Settings of :func:`reconstruct` (fast mode: CPU-sized; full mode: the paper's 224 px).

    Attributes:
        size: the side of the aligned crop, in pixels (fast 128, full 224).
        level: subdivision level of the mesh that is fitted and carries the refined albedo (None: 1,
            12,414 vertices, where the trained TextureGCN works, in both modes; per-image optimisation:
            fast 0, 3,141 vertices, full 1; 2: 49,368 works too, slowly on a CPU, fit included).
        fit_steps: steps of the first fit, from the mean face or ``init`` (fast 100, full 300).
        refit_steps: steps of the refit with M_face, from the first fit (fast 60, full 150).
        refine: :class:`~facelib.refine.RefineConfig` of the texture refinement.
        gcn_weights: dataset-trained TextureGCN weights (None: ``FACELIB_TEXTURE_WEIGHTS``, then the
            bundled ``data/weights/texture_gcn.pt``, see :func:`~facelib.gcn.weights.find_texture_weights`);
            one forward pass replaces per-image optimisation. Without any, per-image optimisation
            runs, and ``texture_note`` says so.
        per_image: optimise a fresh network on the photo instead of running trained weights.
        regressor_weights: a regressor weights file (default: ``FACELIB_REGRESSOR_WEIGHTS``, then the
            bundled ``data/weights/regressor.pt``).
        use_regressor: start the fit from the regressor's prediction (False: from the mean face).
        prior_at_regressor: centre the fit's coefficient prior on the regressor's prediction, not on the
            mean face, so that the fit keeps the identity and expression the regressor saw where the
            landmarks and the skin's colours cannot tell (measured by ``python -m facelib eval-regressor``;
            ``data/README.md`` gives the numbers), and weigh it :data:`facelib.fit.PRIOR_AT_INIT_WEIGHT`
            rather than the mean face's 2e-3 (False: both as for a fit from the mean face).
        facenet_weights: a local FaceNet weights file (see :class:`~facelib.nets.IdentityEncoder`).
        download_facenet: try to download FaceNet's weights when none are here (off: offline first;
            without them dlib's pretrained network is the identity network, see
            :class:`~facelib.nets.IdentityEncoder`).
        overlay_max_side: the longest side of each panel of the overlay PNG.
        device: where fitting and refinement run (None: CUDA when available).
        face: which of the photo's faces to reconstruct, counted from the largest (0) down; what was
            found and which one was used is said on screen and in ``summary.json``.
        landmarks: what the fit matches: 68, dlib's landmarks of the aligned crop
            (:mod:`facelib.nets.dlib_landmarks`: the brows, the lids, the lips' inner edge and the jaw
            line as well), or 5, MTCNN's eye centres, nose tip and mouth corners. With 68 the fit falls
            back to the five, and says so, when the detector's file is not installed or its points
            disagree with MTCNN's (:data:`~facelib.nets.dlib_landmarks.AGREEMENT`).
    """

    size: int = field(default_factory=lambda: int(settings.pick(128, 224)))
    level: int | None = None
    fit_steps: int = field(default_factory=lambda: int(settings.pick(100, 300)))
    refit_steps: int = field(default_factory=lambda: int(settings.pick(60, 150)))
    refine: RefineConfig = field(default_factory=RefineConfig)
    gcn_weights: str | Path | None = None
    per_image: bool = False
    regressor_weights: str | Path | None = None
    use_regressor: bool = True
    prior_at_regressor: bool = True
    facenet_weights: str | Path | None = None
    download_facenet: bool = False
    overlay_max_side: int = 768
    device: str | None = None
    face: int = 0
    landmarks: int = 68

    texture_note: str | None = field(default=None, init=False)
    """Set when no trained TextureGCN weights were found: what runs instead, and how to get them."""

    def __post_init__(self) -> None:
        if self.landmarks not in (5, 68):
            raise ValueError(f"landmarks={self.landmarks}: the fit matches 68 (dlib's detector) or 5 (MTCNN's) landmarks")
        if self.per_image and self.gcn_weights is not None:
            raise ValueError("per_image optimises a fresh network, gcn_weights runs trained ones: give one of them")
        if not self.per_image:
            self.gcn_weights = find_texture_weights(self.gcn_weights)
            if self.gcn_weights is None:
                self.texture_note = (f"no trained TextureGCN weights (none at {bundled_texture_weights()}): the texture is "
                                     "optimised on the photo itself (per image, slower and far less detailed); train them "
                                     "with `python -m facelib train-texture` or pass --gcn-weights PATH")
        if self.level is None:
            self.level = 1 if self.gcn_weights is not None else int(settings.pick(0, 1))
        if self.size < 64:
            raise ValueError(f"size={self.size}: the face detector's landmarks and the fit need at least 64 pixels (128-224 work well)")
        if not 0 <= self.level <= 3:
            raise ValueError(f"level must be 0-3 (0: 3,141 vertices, each level about 4x more), got {self.level}")
        if self.fit_steps < 1 or self.refit_steps < 0:
            raise ValueError(f"need fit_steps >= 1 and refit_steps >= 0, got {self.fit_steps} and {self.refit_steps}")
        if self.face < 0:
            raise ValueError(f"face={self.face}: faces are counted from 0, the largest")


@dataclass
class Reconstruction:
    """What :func:`reconstruct` returns (tensors on the CPU, batch axis 1).

    Attributes:
        photo: (H, W, 3) the original photo in [0, 1].
        aligned: the detection and the aligned crop.
        model: the morphable model of the fit and the export (level ``config.level``).
        params: the fitted unknowns (id, exp, tex, angles, translation, gamma).
        shape: (1, V, 3) the fitted shape in model space.
        albedo_3dmm: (1, V, 3) the fitted 3DMM albedo, clamped to [0, 1].
        albedo_gcn: (1, V, 3) the refined albedo.
        skin: (1, S, S) M_face, the photo's skin mask.
        fits: the first fit and the refit with M_face.
        refinement: the texture refinement's result.
        timings: stage -> seconds.
        files: what was written, name -> path.
        summary: the JSON summary as a dict.
    """

    photo: torch.Tensor
    aligned: AlignedFace
    model: MorphableModel
    params: dict[str, torch.Tensor]
    shape: torch.Tensor
    albedo_3dmm: torch.Tensor
    albedo_gcn: torch.Tensor
    skin: torch.Tensor
    fits: tuple[FitResult, FitResult | None]
    refinement: RefineResult
    timings: dict[str, float] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)


# ---- stages --------------------------------------------------------------------------------------
def start_regressor(config: ReconstructConfig, device: torch.device, model: MorphableModel
                    ) -> tuple[torch.nn.Module | None, str, str | None]:
    """The regressor whose prediction starts the fit, found as ``config`` says, for faces of ``model``
    (its layout is checked, and each face is predicted from its image and its mirror image, averaged).

    Returns:
        (the regressor or None, a label of the start for summaries, a note to print when there is
        no regressor: the weights are neither configured nor bundled, so the fit starts from the mean face).

    Raises:
        facelib.nets.RegressorWeightsError: weights were given (or found) but cannot be used.
    """
    path = find_regressor_weights(config.regressor_weights)
    if path is None:
        return None, "mean face (no regressor weights found)", (
            f"no regressor weights (none at {default_weights_path()}): the fit starts from the mean face; "
            "train them with `python -m facelib train-regressor` or pass --regressor-weights PATH")
    regressor = load_regressor(path, device, verbose=False, model=model)
    return regressor, f"regressor ({regressor.arch}, {regressor.input_size} px, {MIRROR_AVERAGED}, {path})", None


def overlay_crop(aligned: AlignedFace, size: int) -> tuple[AlignedFace, int]:
    """The alignment re-scaled to a crop of about the photo's own resolution (for a sharp overlay).

    The fit works at ``size`` pixels, which on a large photo is coarser than the photo; rendering
    again at k x size (at most 1024), with the crop transform scaled by k, pastes a face as sharp
    as the photo.
    Deng's camera scales its focal length and principal point with the image, so the rendering at
    k x size is the same picture, k times finer.

    Returns:
        (the scaled alignment, its crop side).
    """
    photo_per_crop = float(torch.linalg.det(aligned.inverse[:, :2]).abs().sqrt())  # photo pixels per crop pixel
    side = int(min(max(size, math.ceil(size * photo_per_crop / 8) * 8), 1024))
    k = side / size
    inverse = torch.cat([aligned.inverse[:, :2] / k, aligned.inverse[:, 2:]], 1)
    matrix = aligned.matrix * k
    return dataclasses.replace(aligned, matrix=matrix, inverse=inverse, image=aligned.image, points=aligned.points * k), side


def face_box(aligned: AlignedFace, margin: float = 0.35) -> tuple[float, float, float, float]:
    """A square box around the detected face, widened by ``margin`` on each side, clipped to the photo."""
    x0, y0, x1, y1 = aligned.detection.box.tolist()
    h, w = aligned.photo_size
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    side = min(side, w, h)
    left = min(max(cx - side / 2, 0.0), w - side)
    top = min(max(cy - side / 2, 0.0), h - side)
    return left, top, left + side, top + side


def _floats(x: torch.Tensor) -> list[float]:
    return [round(float(v), 5) for v in x.flatten()]


# ---- the pipeline --------------------------------------------------------------------------------
def reconstruct(photo_path: str | Path, out_dir: str | Path, config: ReconstructConfig | None = None, init: Init | None = None,
                verbose: bool = True) -> Reconstruction:
    """Reconstructs the largest face of a photo and writes the results into ``out_dir``.

    On the CPU the same photo and settings give the same result every time
    (:func:`facelib.config.repeatable`).

    Args:
        photo_path: a photo (JPEG, PNG, ... anything :func:`~facelib.data.load_rgb` reads).
        out_dir: the output folder (created). Written there: ``face_3dmm.obj/.ply`` (fitted shape,
            3DMM albedo as vertex colours), ``face_gcn.obj/.ply`` (the same shape, refined albedo),
            ``overlay.png`` (the photo and both renderings pasted onto it, with face close-ups), ``viewer.html`` (a
            self-contained 3D viewer), ``summary.json`` (settings, coefficients, losses, timings, files).
        config: :class:`ReconstructConfig`.
        init: start values for the fit (a regressor's prediction): a dict with some of "id", "exp",
            "tex", "angles", "translation", "gamma", each (1, k), or a callable mapping the aligned
            crop (1, S, S, 3) in [0, 1] to such a dict.
        verbose: print each stage's time and where the files went.

    Returns:
        :class:`Reconstruction`.

    Raises:
        facelib.data.ImageError: the photo is missing, unreadable or too small.
        facelib.data.NoFaceError: no face was found in it.
        OutputFolderError: ``out_dir`` names a file (checked before any work).
        FaceChoiceError: ``config.face`` is not one of the faces found.
        facelib.gcn.weights.TextureWeightsError: ``config.gcn_weights`` cannot be used.
        facelib.nets.RegressorWeightsError: regressor weights were given (or found) but cannot be used.
    """
    config = config or ReconstructConfig()
    device = settings.get_device(config.device, verbose=False)
    with settings.repeatable(device):
        return _reconstruct(photo_path, out_dir, config, init, verbose, device)


def _reconstruct(photo_path: str | Path, out_dir: str | Path, config: ReconstructConfig, init: Init | None,
                 verbose: bool, device: torch.device) -> Reconstruction:
    """:func:`reconstruct`'s stages (its docstring says what they do)."""
    photo_path, out_dir = Path(photo_path), Path(out_dir)
    timings: dict[str, float] = {}
    say = print if verbose else (lambda *args, **kwargs: None)
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = now - clock
        clock = now
        say(f"  {stage:<24} {timings[stage]:6.1f} s")

    if out_dir.exists() and not out_dir.is_dir():
        raise OutputFolderError(f"the output folder {out_dir} is a file: name a folder (it is created if missing)")
    say(f"facelib reconstruct: {photo_path} ({'fast' if settings.FAST else 'full'} mode: {config.size} px, mesh level {config.level})")
    if config.texture_note:
        say(f"  note: {config.texture_note}")
    image = load_rgb(photo_path)  # ImageError with the file's name for missing, damaged and non-image files
    faces = align_faces(image, size=config.size, name=str(photo_path))  # read once; largest first
    if config.face >= len(faces):
        raise FaceChoiceError(f"{photo_path}: {len(faces)} face{'s' if len(faces) > 1 else ''} found, so --face takes "
                              f"0 to {len(faces) - 1} (0 is the largest), not {config.face}")
    aligned = faces[config.face]
    choice = "the largest" if config.face == 0 else f"number {config.face} by size (--face {config.face})"
    if len(faces) > 1:
        say(f"  {len(faces)} faces found; reconstructing {choice}, box {_floats(aligned.detection.box)}"
            + ("; --face K picks another (0 is the largest)" if config.face == 0 else ""))
    photo_full = image_to_tensor(image)
    grayscale = bool((photo_full.amax(-1) - photo_full.amin(-1)).max() < 2.5 / 255)
    if grayscale:
        say(f"  note: {GRAYSCALE_NOTE}")
    lap("detect + align")

    base = load_open_model(level=0, verbose=verbose)  # subdivision and hierarchies are built on the CPU
    hierarchy = texture_hierarchy(base, config.level)
    # The regressor only checks its layout and builds its mirror map on a model: level 0 is enough there.
    coarse, model = base.to(device), base.subdivided(config.level).to(device)
    encoder = IdentityEncoder(weights=config.facenet_weights, download=config.download_facenet, allow_untrained=True).to(device)
    regressor, init_label = None, "given (callable)" if callable(init) else ("given" if init else "mean face")
    if init is None and config.use_regressor:
        regressor, init_label, note = start_regressor(config, device, coarse)
        if note:
            say(f"  note: {note}")
    lap("model + networks")

    crop = aligned.image[None].to(device)
    points, landmark_report, note = fit_landmarks(crop, aligned.points[None].to(device), config.landmarks)
    if note:
        say(f"  note: {note}")
    lap("landmarks")
    if regressor is not None:
        with torch.no_grad():
            start = regressor(crop)
        lap("regress")
    else:
        start = init(crop) if callable(init) else init
    renderer = FaceRenderer.for_model(model, config.size)
    first, second, m_face = fit_with_skin_mask(model, crop, points, renderer, config.fit_steps, config.refit_steps, start,
                                               prior_at_init=config.prior_at_regressor and regressor is not None,
                                               photometric=grayscale_photometric_loss if grayscale else photometric_loss)
    fitted = second or first
    params = fitted.params
    if points.shape[1] == 68:  # how closely the fitted face's landmarks follow dlib's (at the crop's size)
        with torch.no_grad():
            residual = (project_landmarks(model, params, renderer.camera) - points).norm(dim=-1).mean()
        landmark_report["fit_residual_px"] = round(float(residual), 2)  # unweighted (the fit weighs the nose and inner lips 20x)
    lap("fit + skin mask + refit")

    refinement = refine(model, crop, params, encoder, renderer, m_face, hierarchy, config.refine, weights=config.gcn_weights)
    lap("texture refinement")

    shape = model.shape(params["id"], params["exp"]).detach()
    albedo_3dmm, albedo_gcn = refinement.coarse.detach(), refinement.albedo.detach()
    if grayscale:  # the hues came from the colour model's prior, not from the photo: do not show them as if read
        albedo_3dmm, albedo_gcn = grayscale_colours(albedo_3dmm), grayscale_colours(albedo_gcn)
    scores = photo_scores(model, renderer, crop, params, m_face, {"3dmm": albedo_3dmm, "gcn": albedo_gcn}, encoder,
                          start_options=input_options(refinement.network))
    lap("scores")
    files = {}
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, albedo in (("3dmm", albedo_3dmm), ("gcn", albedo_gcn)):
        files[f"obj_{name}"] = write_obj(out_dir / f"face_{name}.obj", shape[0], model.triangles, albedo[0])
        files[f"ply_{name}"] = write_ply(out_dir / f"face_{name}.ply", shape[0], model.triangles, albedo[0])
    big, side = overlay_crop(aligned, config.size)
    overlay_renderer = FaceRenderer.for_model(model, side)
    # M_face at the overlay's size (the same alignment, k times finer): near the face's outline the
    # rendering is pasted only on skin, so hair, ears and collars stay the photo's; the edge is feathered.
    skin_big = F.interpolate(m_face[:, None].float().cpu(), size=(side, side), mode="bilinear", align_corners=False)[0, 0]
    panels = {}
    with torch.no_grad():
        for label, albedo in (("3DMM only", albedo_3dmm), ("GCN refined", albedo_gcn)):
            r = overlay_renderer.render(shape, albedo, params["angles"], params["translation"], params["gamma"])
            panels[label] = big.paste(photo_full, r.image[0].clamp(0, 1).cpu(), paste_alpha(r.mask[0].cpu(), skin_big))
    files["overlay"] = write_overlay(out_dir / "overlay.png", photo_full, panels, config.overlay_max_side, face_box(aligned))
    files["viewer"] = write_viewer(out_dir / "viewer.html", shape[0].cpu(), model.triangles.cpu(),
                                   {"GCN-refined albedo": albedo_gcn[0].cpu(), "3DMM albedo": albedo_3dmm[0].cpu()},
                                   title=f"{photo_path.name}: {model.num_vertices:,} vertices")
    lap("export")

    files["summary"] = out_dir / "summary.json"
    det = aligned.detection
    summary = {
        "photo": str(photo_path), "photo_size": list(aligned.photo_size),
        "detection": {"box": _floats(det.box), "score": round(det.score, 4), "points": [_floats(p) for p in det.points]},
        "faces": {"found": len(faces), "used": config.face, "why": choice,
                  "boxes": [_floats(f.detection.box) for f in faces]},
        "grayscale": grayscale,
        "mode": "fast" if settings.FAST else "full", "device": str(device),
        "crop_size": config.size, "mesh": {"level": config.level, "vertices": model.num_vertices, "triangles": int(model.triangles.shape[0])},
        "init": init_label,
        "landmarks": landmark_report,
        "fit": {"steps": [config.fit_steps, config.refit_steps],
                "final": {k: round(v[-1], 6) for k, v in fitted.history.items() if v},
                "skin_mask_share": round(float(m_face.mean()), 4)},
        "refine": {"mode": refinement.mode, "steps": len(refinement.history.get("total", [])), "notes": refinement.notes,
                   "final": {k: round(v[-1], 6) for k, v in refinement.history.items() if v},
                   "mean_albedo_change": round(float((albedo_gcn - albedo_3dmm).abs().mean()), 6)},
        "scores": scores,
        "coefficients": {k: _floats(v) for k, v in params.items()},
        "texture_map": NO_UV_NOTE,
        "timings_s": {k: round(v, 2) for k, v in timings.items()} | {"total": round(sum(timings.values()), 2)},
        "files": {k: str(v) for k, v in files.items()},
    }
    atomic_write_text(files["summary"], json.dumps(summary, indent=2) + "\n")

    say(f"  {'total':<24} {sum(timings.values()):6.1f} s")
    shown = [(label, scores[key]) for key, label in (("3dmm", "3DMM"), ("photo de-lit", "de-lit photo"), ("gcn", "GCN"))]
    say("  re-rendering (PSNR inside the face and M_face" + (", identity distance" if encoder is not None else "") + "): "
        + ", ".join(f"{label} {row['psnr']:.2f} dB" + (f" / {row['identity']:.3f}" if "identity" in row else "") for label, row in shown))
    for note in refinement.notes:
        say(f"  note: {note}")
    say(f"  note: {NO_UV_NOTE}")
    say(f"wrote to {out_dir.resolve()}:")
    for key, path in files.items():
        say(f"  {key:<10} {path}")
    return Reconstruction(photo_full, aligned, model, {k: v.cpu() for k, v in params.items()}, shape.cpu(), albedo_3dmm.cpu(),
                          albedo_gcn.cpu(), m_face.cpu(), (first, second), refinement, timings, files, summary)
