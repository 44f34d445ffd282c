"""Synthetic faces with ground truth: the open face model rendered on the fly, with detail.

Every item is a face drawn at random from the open model (identity, expression, albedo), given a
detail layer the albedo PCA cannot represent (:mod:`facelib.data.detail`), posed (yaw up to about
+-60 degrees, small pitch and roll, a little translation), lit by random spherical harmonics,
rendered with :class:`~facelib.render.FaceRenderer` and composited over a background (procedural
gradients and noise, or blurred crops of the offline images: the course's two photos away from
their faces, and matplotlib's sample images). Because the truth is known, these items measure what
real photos cannot: how close a reconstructed per-vertex albedo comes to the true one.

Design: :class:`SyntheticFaces` is a map-style ``torch.utils.data.Dataset`` whose item ``i`` is a
pure function of ``(seed, split, i)`` and the settings: every item draws its random numbers from
its own CPU generator, so an item is the same alone or in any batch, on any device, in any order,
and the benchmark split (:func:`benchmark`) is a fixed list of items. Rendering is batched:

* ``faces[i]`` renders one item (tensors without a batch axis);
* ``faces[[i, j, k]]`` or ``faces.batch(indices)`` renders several at once (with a batch axis);
* ``for batch in faces.batches(16)`` renders the dataset batch by batch (the fast way);
* with a DataLoader, pass a batch sampler so that each call renders a whole batch:
  ``DataLoader(faces, sampler=BatchSampler(RandomSampler(faces), 16, False), batch_size=None)``.

Images are channels-last, (H, W, 3) floats in [0, 1] as everywhere in facelib (a CNN wants
``image.permute(0, 3, 1, 2)``). What an item holds (batch axis B omitted for a single item):

=====================  ===============  ====================================================
key                    shape            meaning
=====================  ===============  ====================================================
image                  (B, S, S, 3)     the rendered face over its background, in [0, 1]
mask                   (B, S, S)        coverage: 1 where the face mesh is seen
skin                   (B, S, S)        1 where skin is seen (the face less the eyes)
landmarks              (B, 68, 2)       the 68 landmarks in pixels (x right, y down)
landmarks_visible      (B, 68)          1 where the landmark's vertex is seen
id, exp, tex           (B, 80/64/80)    the true 3DMM coefficients
angles                 (B, 3)           pitch, yaw, roll in radians (Deng's order)
translation            (B, 3)           in model units (decimetres)
gamma                  (B, 27)          SH lighting (the 0.8 ambient offset not included)
coeffs                 (B, 257)         all of them in the model's layout (id|exp|tex|angles|gamma|trans)
albedo                 (B, V, 3)        the true per-vertex albedo, detail included, in [0, 1]
albedo_base            (B, V, 3)        the PCA albedo alone (``model.albedo(tex)`` clipped to [0, 1])
detail                 (B, 7)           strength of each kind in ``DETAIL_KINDS`` (0: absent)
index                  (B,)             the item's index
=====================  ===============  ====================================================
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from facelib.config import get_device, pick
from facelib.data.backgrounds import random_background
from facelib.data.detail import DETAIL_KINDS, DetailConfig, DetailLayer, DetailParams
from facelib.morphable.model import MorphableModel
from facelib.render import FaceRenderer, vertex_visibility
from facelib.morphable import load_open_model
from facelib.viz import image_grid

BENCHMARK_SEED = 2020
"""The default seed of the benchmark split (the year of Lin et al.); :func:`benchmark` takes another."""

BENCHMARK_SIZE = 200
"""The default number of benchmark faces; any shorter benchmark is a prefix of it."""


@dataclass(frozen=True)
class SyntheticConfig:
    """The distributions of :class:`SyntheticFaces` (the defaults are the documented dataset).

    Attributes:
        id_scale, exp_scale, tex_scale: standard deviations of the coefficients (1 = the model's prior).
        limit: coefficients are clipped to +-limit standard deviations.
        max_yaw, max_pitch, max_roll: pose ranges in degrees, drawn uniformly in +-max.
        min_yaw: with min_yaw > 0 the yaw's size is drawn uniformly in [min_yaw, max_yaw] instead,
            either side (a set of turned heads).
        max_translation: (x, y, z) translation range in model units (decimetres), uniform in +-max.
            At 224 px, 0.08 in x or y moves the face about 8 pixels; 0.6 in z scales it by about 6 %.
        brightness: range of the SH ambient term added to the 0.8 offset (the overall light level).
        directional: the largest strength of the directional (first order) SH light.
        photo_backgrounds: the share of backgrounds cropped from offline images (the rest are procedural).
        max_noise: the largest standard deviation of the pixel noise.
        detail: the detail layer's settings; ``None`` turns the detail off.
    """

    id_scale: float = 1.0
    exp_scale: float = 0.8
    tex_scale: float = 1.0
    limit: float = 2.5
    max_yaw: float = 60.0
    min_yaw: float = 0.0
    max_pitch: float = 15.0
    max_roll: float = 10.0
    max_translation: tuple[float, float, float] = (0.08, 0.08, 0.6)
    brightness: tuple[float, float] = (-0.25, 0.35)
    directional: float = 0.45
    photo_backgrounds: float = 0.5
    max_noise: float = 0.02
    detail: DetailConfig | None = field(default_factory=DetailConfig)

    def __post_init__(self) -> None:
        if not 0.0 <= self.photo_backgrounds <= 1.0:
            raise ValueError(f"photo_backgrounds is a share in [0, 1], got {self.photo_backgrounds}")
        if min(self.max_yaw, self.min_yaw, self.max_pitch, self.max_roll, self.limit, self.max_noise) < 0:
            raise ValueError("pose ranges, limit and max_noise must be >= 0")
        if self.min_yaw > self.max_yaw:
            raise ValueError(f"min_yaw={self.min_yaw} is above max_yaw={self.max_yaw}")
        if self.max_yaw > 90:
            raise ValueError(f"max_yaw={self.max_yaw} degrees: beyond 90 the camera sees the inside of the face mask; use <= 90")


# ---- backgrounds ---------------------------------------------------------------------------------
# ---- the dataset ---------------------------------------------------------------------------------
def _inside_polygon(points: torch.Tensor, polygon: torch.Tensor) -> torch.Tensor:
    """Even-odd test of pixel positions against polygons.  points: (P, 2); polygon: (B, K, 2) -> (B, P)."""
    a, b = polygon[:, :, None], polygon.roll(-1, 1)[:, :, None]  # (B, K, 1, 2)
    px, py = points[None, None, :, 0], points[None, None, :, 1]
    crosses = (a[..., 1] > py) != (b[..., 1] > py)
    x_at = a[..., 0] + (py - a[..., 1]) * (b[..., 0] - a[..., 0]) / (b[..., 1] - a[..., 1]).where(crosses, torch.ones_like(px))
    return ((crosses & (px < x_at)).sum(1) % 2).bool()


def _item_generator(seed: int, split: str, index: int) -> torch.Generator:
    """The CPU generator of one item: a pure function of (seed, split, index)."""
    state = np.random.SeedSequence([seed, zlib.crc32(split.encode()), index]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


class SyntheticFaces(torch.utils.data.Dataset):
    """Faces of the open model rendered on the fly, with ground truth (see the module docstring).

    Args:
        n: the number of items (``None``: 64 in fast mode, 100,000 otherwise). Items are rendered
            when asked for, so a large ``n`` costs nothing up front.
        size: image side in pixels (224 by default; smaller is fine, e.g. 64-112 on a CPU).
        seed: the dataset's seed; item ``i`` depends only on ``(seed, split, i)`` and the settings.
        level: subdivision level of the mesh that carries the albedo (``None``: 0 in fast mode,
            1 otherwise; level 1 has 12,414 vertices, a vertex every 2-2.5 mm).
        device: where rendering runs and the tensors live (``None``: CUDA when available).
        config: the distributions (:class:`SyntheticConfig`).
        split: a name mixed into every item's seed: "train" (default), "benchmark", ... Different
            splits never share items, whatever their seeds.
        model: a morphable model to use instead of the open model at ``level``.
        backend: the rasterizer backend of :class:`~facelib.render.FaceRenderer`.

    Example:
        >>> faces = SyntheticFaces(n=32, size=112, seed=0)
        >>> item = faces[0]                        # one face: item["image"] is (112, 112, 3)
        >>> for batch in faces.batches(16):        # two batches: batch["image"] is (16, 112, 112, 3)
        ...     pass
    """

    def __init__(self, n: int | None = None, size: int = 224, seed: int = 0, level: int | None = None,
                 device: str | torch.device | None = None, config: SyntheticConfig | None = None, split: str = "train",
                 model: MorphableModel | None = None, backend: str = "auto") -> None:
        n = int(pick(64, 100_000)) if n is None else n
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if size < 16:
            raise ValueError(f"size={size}: faces need at least 16 pixels (64-224 is the useful range)")
        self.n, self.size, self.seed, self.split = n, size, int(seed), split
        self.config = config or SyntheticConfig()
        # Quietly: datasets are made often, and a CPU note per dataset is noise.
        self.device = get_device(device, verbose=False)
        if model is None:
            model = load_open_model(level=int(pick(0, 1)) if level is None else level)
        self.model = model.to(self.device)
        self.renderer = FaceRenderer.for_model(self.model, size, backend)
        self.detail = DetailLayer(self.model, self.config.detail, self.device) if self.config.detail is not None else None
        # A triangle is skin when most of its corners are (eyes are separate meshes, so all are).
        skin = self.model.masks.get("skin")
        self._skin_faces = skin[self.model.triangles].sum(1) >= 2 if skin is not None else None

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return (f"SyntheticFaces(n={self.n}, size={self.size}, seed={self.seed}, split={self.split!r}, "
                f"{self.model.num_vertices} vertices, device={self.device})")

    def __getitem__(self, index: int | Sequence[int] | slice | torch.Tensor) -> dict[str, torch.Tensor]:
        """One item (``int``: tensors without a batch axis) or a batch (a sequence, slice or tensor of indices)."""
        if isinstance(index, slice):
            return self.batch(range(*index.indices(self.n)))
        if isinstance(index, torch.Tensor) and index.ndim == 0:
            index = int(index)
        if isinstance(index, (int, np.integer)):
            return {k: v[0] for k, v in self.batch([int(index)]).items()}
        return self.batch([int(i) for i in index])

    def batches(self, batch_size: int = 16, indices: Sequence[int] | None = None) -> Iterator[dict[str, torch.Tensor]]:
        """Renders the dataset (or ``indices``) in order, ``batch_size`` items at a time."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        order = list(range(self.n)) if indices is None else list(indices)
        for start in range(0, len(order), batch_size):
            yield self.batch(order[start:start + batch_size])

    # ---- drawing ---------------------------------------------------------------------------------
    def _draw(self, index: int) -> dict:
        """Every random choice of one item, on the CPU, in a fixed order."""
        cfg, layout = self.config, self.model.layout
        gen = _item_generator(self.seed, self.split, index)

        def rand(*shape: int) -> torch.Tensor:
            return torch.rand(*shape, generator=gen)

        def normal(k: int, scale: float) -> torch.Tensor:
            return (torch.randn(1, k, generator=gen) * scale).clamp(-cfg.limit, cfg.limit)

        draw = {"id": normal(layout.n_id, cfg.id_scale), "exp": normal(layout.n_exp, cfg.exp_scale),
                "tex": normal(layout.n_tex, cfg.tex_scale)}
        ranges = torch.tensor([cfg.max_pitch, cfg.max_yaw, cfg.max_roll]) * math.pi / 180
        draw["angles"] = (rand(1, 3) * 2 - 1) * ranges
        if cfg.min_yaw > 0:  # only then: the default draws stay bit for bit what they were
            yaw, low = draw["angles"][:, 1], cfg.min_yaw * math.pi / 180
            side = torch.where(yaw >= 0, 1.0, -1.0)  # not sign(): a yaw of exactly 0 must turn too
            draw["angles"][:, 1] = side * (low + (ranges[1] - low) * yaw.abs() / ranges[1])
        draw["translation"] = (rand(1, 3) * 2 - 1) * torch.tensor(cfg.max_translation)
        draw["gamma"] = self._draw_light(rand, gen)
        draw["detail"] = self.detail.draw(1, gen) if self.detail is not None else None
        draw["noise"] = float(rand(1)) * cfg.max_noise
        draw["cavity"] = 0.05 + 0.1 * rand(3) * torch.tensor([1.0, 0.4, 0.4])
        draw["background"] = random_background(self.size, gen, cfg.photo_backgrounds)
        draw["pixel_noise"] = torch.randn(self.size, self.size, 3, generator=gen)
        return draw

    def _draw_light(self, rand, gen: torch.Generator) -> torch.Tensor:
        """(1, 27) SH coefficients: brightness, a coloured tint, one directional light, a little of the rest."""
        cfg = self.config
        gamma = torch.zeros(3, 9)
        lo, hi = cfg.brightness
        gamma[:, 0] = lo + (hi - lo) * rand(1) + 0.06 * (rand(3) * 2 - 1)
        # A light from the front hemisphere: SH band 1 is (-y, z, -x) up to a constant.
        direction = torch.randn(3, generator=gen)
        direction[2] = direction[2].abs() + 0.5
        direction = direction / direction.norm()
        strength = cfg.directional * rand(1)
        gamma[:, 1:4] = strength * torch.stack([-direction[1], direction[2], -direction[0]]) * (1 + 0.1 * (rand(3, 1) * 2 - 1))
        gamma[:, 4:] = 0.05 * torch.randn(1, 5, generator=gen) + 0.01 * torch.randn(3, 5, generator=gen)
        return gamma.view(1, 27)

    # ---- rendering -------------------------------------------------------------------------------
    @torch.no_grad()
    def batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        """Renders the items ``indices`` together (see the module docstring for the keys).

        Raises:
            IndexError: an index outside [0, len).
        """
        indices = list(indices)
        if not indices:
            raise ValueError("batch needs at least one index")
        for i in indices:
            if not 0 <= i < self.n:
                raise IndexError(f"index {i} is outside this dataset of {self.n} items")
        draws = [self._draw(i) for i in indices]
        dev, b, s = self.device, len(indices), self.size

        def stack(key: str) -> torch.Tensor:
            return torch.cat([d[key] for d in draws]).to(dev)

        c = {k: stack(k) for k in ("id", "exp", "tex", "angles", "translation", "gamma")}
        vertices = self.model.shape(c["id"], c["exp"])
        albedo_base = self.model.albedo(c["tex"]).clamp(0, 1)
        if self.detail is not None:
            params = DetailParams.cat([d["detail"] for d in draws])
            albedo = self.detail.apply(albedo_base, params)
            amounts = params.amounts.to(dev)
        else:
            albedo, amounts = albedo_base, albedo_base.new_zeros(b, len(DETAIL_KINDS))
        out = self.renderer.render(vertices, albedo, c["angles"], c["translation"], c["gamma"])
        mask = out.mask
        face = out.image
        # The open model's mouth is a hole: behind the lips a dark cavity, not the background.
        # It is what is uncovered inside the outer lip contour; only pixels in its bounding box can be.
        lips = out.landmarks[:, 48:60]
        x0, y0 = (lips.amin((0, 1)).floor().clamp(0, s - 1)).long().tolist()
        x1, y1 = (lips.amax((0, 1)).ceil().clamp(0, s - 1)).long().tolist()
        cavity = torch.zeros_like(mask, dtype=torch.bool)
        ys, xs = torch.meshgrid(torch.arange(y0, y1 + 1, device=dev) + 0.5, torch.arange(x0, x1 + 1, device=dev) + 0.5, indexing="ij")
        inside = _inside_polygon(torch.stack([xs, ys], -1).view(-1, 2).to(face.dtype), lips)
        cavity[:, y0:y1 + 1, x0:x1 + 1] = inside.view(b, y1 - y0 + 1, x1 - x0 + 1)
        cavity &= mask < 0.5
        cavity_colour = torch.stack([d["cavity"] for d in draws]).to(dev)
        face = torch.where(cavity[..., None], cavity_colour[:, None, None], face)
        cover = torch.maximum(mask, cavity.to(mask.dtype))
        # Soften the silhouette over a 3 x 3 neighbourhood (cheap anti-aliasing): outside pixels
        # next to the face take their covered neighbours' mean colour, weighted by how many there are.
        alpha = F.avg_pool2d(cover[:, None], 3, 1, 1, count_include_pad=False)[:, 0]
        spread = F.avg_pool2d((face * cover[..., None]).permute(0, 3, 1, 2), 3, 1, 1, count_include_pad=False).permute(0, 2, 3, 1)
        colour = torch.where(cover[..., None] > 0.5, face, spread / alpha.clamp(min=1e-6)[..., None])
        background = torch.stack([d["background"] for d in draws]).to(dev)
        image = colour * alpha[..., None] + background * (1 - alpha[..., None])
        noise = torch.tensor([d["noise"] for d in draws], device=dev).view(b, 1, 1, 1)
        image = (image + noise * torch.stack([d["pixel_noise"] for d in draws]).to(dev)).clamp(0, 1)
        if self._skin_faces is not None:
            skin = self._skin_faces[out.pix_to_face.clamp(min=0)].to(mask.dtype) * mask
        else:
            skin = mask
        lm = self.model.landmarks
        visible = vertex_visibility(out.screen[:, lm], out.depth, out.normals[:, lm], out.points[:, lm], self.renderer.camera.distance)
        coeffs = torch.cat([c["id"], c["exp"], c["tex"], c["angles"], c["gamma"], c["translation"]], 1)
        return {"image": image, "mask": mask, "skin": skin, "landmarks": out.landmarks, "landmarks_visible": visible,
                **c, "coeffs": coeffs, "albedo": albedo, "albedo_base": albedo_base, "detail": amounts,
                "index": torch.tensor(indices, device=dev)}


def benchmark(seed: int = BENCHMARK_SEED, n: int = BENCHMARK_SIZE, size: int = 224, level: int | None = None,
              device: str | torch.device | None = None) -> SyntheticFaces:
    """The fixed benchmark split of synthetic faces, for the evaluation code.

    Item ``i`` depends only on ``(seed, i)``, ``size`` and ``level``: the split is the same on every
    run and every machine with the same torch, a shorter one is a prefix of a longer one, and it
    shares no item with a training set (its items are drawn in the "benchmark" split). It uses the
    default :class:`SyntheticConfig`, so its distribution is the documented one.

    Args:
        seed: the benchmark's seed (default :data:`BENCHMARK_SEED` = 2020); report it with results.
        n: the number of faces (default :data:`BENCHMARK_SIZE` = 200).
        size: image side in pixels.
        level: mesh level of the albedo (``None``: 0 in fast mode, 1 otherwise); report it too.
        device: where it renders.
    """
    return SyntheticFaces(n=n, size=size, seed=seed, level=level, device=device, config=SyntheticConfig(), split="benchmark")


def sample_grid(faces: SyntheticFaces, n: int = 16, landmarks: bool = True, ncols: int = 4):
    """A matplotlib figure of the first ``n`` items, with their landmarks (green: visible, red: hidden).

    Args:
        faces: the dataset to show.
        n: how many items (at most ``len(faces)``).
        landmarks: draw the 68 landmarks.
        ncols: columns of the grid.
    """
    n = min(n, len(faces))
    items = faces.batch(range(n))
    titles = [", ".join(k for k, a in zip(DETAIL_KINDS, amounts) if a > 0) or "no detail" for amounts in items["detail"].tolist()]
    titles = [f"yaw {math.degrees(yaw):+.0f}: {t}" for yaw, t in zip(items["angles"][:, 1].tolist(), titles)]
    fig = image_grid(items["image"].cpu(), titles=titles, ncols=ncols, size=3.0)
    if landmarks:
        for ax, points, seen in zip(fig.axes, items["landmarks"].cpu(), items["landmarks_visible"].cpu()):
            ax.scatter(points[:, 0], points[:, 1], s=4, c=["lime" if v > 0 else "red" for v in seen.tolist()])
    for ax in fig.axes:
        ax.title.set_fontsize(7)
    return fig

