"""A pool of fitted synthetic faces: the coarse inputs a texture GCN sees in ``reconstruct``, with the truth.

A texture network trained on the true shape and light learns to trust them; at run time it gets a
fit, whose light is a little off, whose geometry is a little off, and whose M_face lets some hair
through. So the texture stage trains on what :func:`facelib.reconstruct.reconstruct` hands it:
each synthetic face (its own split, :data:`POOL_SPLIT`, disjoint from the benchmark) is regressed and
fitted with M_face exactly as ``reconstruct`` does (:func:`~facelib.fit.fit_with_skin_mask`
on the pool's mesh, level ``level``), and what the texture stage reads is stored beside the truth:

=============  ==============  =====================================================================
key            shape           meaning
=============  ==============  =====================================================================
image          (N, S, S, 3)    the photo, uint8
m_face         (N, S, S)       the fit's skin mask M_face, uint8 (0-255)
skin           (N, S, S)       the true skin coverage (for scores), uint8
params         dict of (N, k)  the fitted id, exp, tex, angles, translation, gamma
albedo         (N, V, 3)       the true albedo on the level-``level`` mesh, fp16
albedo_base    (N, V, 3)       its PCA part (the detail band is where the two differ), fp16
index          (N,)            the item of the synthetic split
=============  ==============  =====================================================================

Fitting is the expensive part (about 5 s a face at 224 px on two CPU cores), so the pool is built
once, in chunks that are each written atomically under ``CACHE_DIR / "fitted_pool"``: a build that
is stopped keeps its finished chunks and goes on from there.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from facelib import config as settings
from facelib.data import SyntheticFaces
from facelib.fit import fit_with_skin_mask
from facelib.morphable import load_open_model
from facelib.morphable.landmarks import five_from_68
from facelib.nets.regressor import find_regressor_weights, load_regressor
from facelib.train.checkpoint import atomic_save

POOL_FORMAT = "facelib.fitted_pool/7"
"""Written into every chunk and part of the pool's folder name: bump it when anything that decides a
chunk changes (the fit's recipe, the bundled regressor). /2: the 2026-12 regressor, and the fit's prior
centred on its guess. /3: the refit compares the lips too (:func:`facelib.fit.lips_region`). /4: the
regressor fine-tuned on the aligned shape error (2026-12-05). /5: fine-tuned again on new faces, and
each face predicted from its image and its mirror image, averaged (2026-12-05). /6: the prior centred on the
regressor's guess weighs :data:`facelib.fit.PRIOR_AT_INIT_WEIGHT` (2026-12-07). /7: the fit runs on the
pool's own mesh (level ``level``) rather than level 0, as ``reconstruct``'s does (2026-12-07)."""
POOL_SPLIT = "texture-train"
"""The synthetic split of the pool: never the benchmark's ("benchmark"), whatever the seeds."""
PARAM_KEYS = ("id", "exp", "tex", "angles", "translation", "gamma")


@dataclass(frozen=True)
class PoolSpec:
    """What a pool holds: ``n`` faces of split :data:`POOL_SPLIT` with ``seed``, at ``size`` px, albedo on ``level``,
    fitted with ``fit_steps`` + ``refit_steps`` from the bundled regressor's prediction."""

    n: int = 320
    size: int = 224
    level: int = 1
    seed: int = 0
    fit_steps: int = 100
    refit_steps: int = 60
    chunk: int = 16
    root: Path | None = None
    """Where pools live (None: ``CACHE_DIR / "fitted_pool"``)."""

    @property
    def folder(self) -> Path:
        root = self.root if self.root is not None else settings.CACHE_DIR / "fitted_pool"
        version = POOL_FORMAT.rsplit("/", 1)[1]
        return Path(root) / f"seed{self.seed}-s{self.size}-level{self.level}-fit{self.fit_steps}+{self.refit_steps}-v{version}"


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def build_chunk(spec: PoolSpec, start: int, regressor: torch.nn.Module | None) -> dict:
    """Renders, regresses and fits faces ``start .. start + spec.chunk - 1`` of the pool (on the CPU)."""
    faces = SyntheticFaces(n=spec.n, size=spec.size, seed=spec.seed, level=spec.level, device="cpu", split=POOL_SPLIT)
    indices = list(range(start, min(start + spec.chunk, spec.n)))
    batch = faces.batch(indices)
    photo = batch["image"]
    init = None
    if regressor is not None:
        with torch.no_grad():
            init = regressor(photo)
    first, second, m_face = fit_with_skin_mask(faces.model, photo, five_from_68(batch["landmarks"]),
                                               faces.renderer, spec.fit_steps, spec.refit_steps, init,
                                               prior_at_init=True)  # as reconstruct fits
    params = (second or first).params
    return {"format": POOL_FORMAT, "image": _to_uint8(photo), "m_face": _to_uint8(m_face), "skin": _to_uint8(batch["skin"]),
            "params": {k: params[k].detach().float() for k in PARAM_KEYS},
            "albedo": batch["albedo"].half(), "albedo_base": batch["albedo_base"].half(), "index": torch.tensor(indices)}


def build_pool(spec: PoolSpec | None = None, verbose: bool = True) -> Path:
    """Builds (or completes) the pool of ``spec`` chunk by chunk; returns its folder.

    The regressor is the bundled one (:func:`facelib.nets.regressor.find_regressor_weights`), as in
    ``reconstruct``; without it the fits start from the mean face, and that is said.
    """
    spec = spec or PoolSpec()
    folder = spec.folder
    folder.mkdir(parents=True, exist_ok=True)
    path = find_regressor_weights(None)
    regressor = None
    if path is None:
        print("fitted pool: no regressor weights found, the fits start from the mean face (reconstruct does the same then)")
    else:
        regressor = load_regressor(path, torch.device("cpu"), verbose=False, model=load_open_model(level=0, verbose=False))
    chunks = math.ceil(spec.n / spec.chunk)
    begin = time.perf_counter()
    for c in range(chunks):
        target = folder / f"chunk{c:04d}.pt"
        if target.is_file():
            continue
        t = time.perf_counter()
        atomic_save(build_chunk(spec, c * spec.chunk, regressor), target)
        if verbose:
            print(f"fitted pool: chunk {c + 1}/{chunks} in {time.perf_counter() - t:.0f} s "
                  f"({time.perf_counter() - begin:.0f} s so far) -> {target}", flush=True)
    return folder


def load_pool(spec: PoolSpec | None = None, complete: bool = True) -> dict:
    """The pool's chunks concatenated (``torch.load(weights_only=True)``).

    Args:
        spec: which pool.
        complete: raise when chunks are missing (False: use the finished ones).

    Raises:
        FileNotFoundError: no chunk (or, with ``complete``, not all of them): build it with :func:`build_pool`.
    """
    spec = spec or PoolSpec()
    expected = math.ceil(spec.n / spec.chunk)
    files = [f for f in (spec.folder / f"chunk{c:04d}.pt" for c in range(expected)) if f.is_file()]
    if not files or (complete and len(files) < expected):
        raise FileNotFoundError(f"the fitted pool in {spec.folder} has {len(files)} of {expected} chunks: "
                                "build it with `python -m facelib train-texture --build-pool-only` (or let train-texture build it)")
    parts = [torch.load(f, map_location="cpu", weights_only=True) for f in files]
    bad = [f.name for f, p in zip(files, parts) if p.get("format") != POOL_FORMAT]
    if bad:
        raise ValueError(f"{spec.folder}: {bad} are not {POOL_FORMAT} chunks; delete the folder and build it again")
    n = spec.n if complete else None  # a pool built larger than asked for gives its first n faces
    out: dict = {k: torch.cat([p[k] for p in parts])[:n] for k in ("image", "m_face", "skin", "albedo", "albedo_base", "index")}
    out["params"] = {k: torch.cat([p["params"][k] for p in parts])[:n] for k in PARAM_KEYS}
    return out


if __name__ == "__main__":  # python -m facelib.train.fitted_pool [n]
    import sys

    torch.set_num_threads(2)
    build_pool(PoolSpec(n=int(sys.argv[1])) if len(sys.argv) > 1 else None)
