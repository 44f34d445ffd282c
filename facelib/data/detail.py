"""A detail layer on the per-vertex albedo: what the albedo PCA cannot represent.

A PCA albedo model is smooth by construction: its 80 components hold skin tone and broad regional
variation (lips, brows, cheeks), never a freckle at one spot of one face. Lin et al.'s GCNs exist
to recover exactly that kind of detail, so synthetic faces carry it, on top of the PCA albedo:

* **freckles**: many small light-brown spots, dense on the cheeks and the nose;
* **moles**: a few dark brown spots anywhere on the skin;
* **blemishes**: reddish spots with a red halo (acne, irritation);
* **stubble**: a dark, speckled shadow over the beard region (upper lip, chin, jaw);
* **lipstick**: a tint of the lips (red, pink, plum, coral, nude);
* **eyeliner**: a dark line along the upper lid (and a fainter one along the lower);
* **wrinkles**: baked shading of forehead lines, crow's feet and nasolabial folds.

Everything is per vertex: the layer works on any mesh level, and resolves finer detail on a
finer mesh (``model.subdivided(1)`` has a vertex every 2-2.5 mm, so a freckle is one vertex and
its ring; level 0 doubles that). Spots are Gaussians of a fixed physical size (in model units,
decimetres) centred on vertices, so they keep their size across levels down to the vertex spacing
(below it, a spot is one vertex wide). Regions are placed by the model's 68 landmarks on the mean
shape, so they travel with the vertices under any identity and expression. Spots and wrinkles
multiply the albedo by a tint; stubble, lipstick and eyeliner blend it towards a colour. Detail only touches skin vertices (``model.masks["skin"]``): the eyes keep their
colour. Random draws happen on the CPU with a ``torch.Generator`` (the same draws on any device);
the composition runs on the layer's device.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from matplotlib.path import Path as PolygonPath
from scipy.spatial import cKDTree

from facelib.morphable.model import MorphableModel

DETAIL_KINDS = ("freckles", "moles", "blemishes", "stubble", "lipstick", "eyeliner", "wrinkles")
"""The kinds of detail, in the order of :attr:`DetailParams.amounts`' columns."""

SPOT_SIGMAS = {"small": 0.012, "medium": 0.022, "large": 0.035}
"""Spot sizes: Gaussian standard deviations in model units (decimetres): 1.2, 2.2 and 3.5 mm."""

LIPSTICK_COLOURS = torch.tensor([[0.62, 0.08, 0.12], [0.80, 0.30, 0.42], [0.42, 0.10, 0.22],
                                 [0.88, 0.38, 0.28], [0.70, 0.45, 0.40]])
"""Red, pink, plum, coral and nude lipstick (linear albedo)."""

HAIR_COLOURS = torch.tensor([[0.05, 0.04, 0.035], [0.16, 0.10, 0.06], [0.35, 0.16, 0.07], [0.45, 0.43, 0.42]])
"""Black, dark brown, ginger and grey stubble."""


@dataclass(frozen=True)
class DetailConfig:
    """How often each kind of detail appears and how strong it is.

    Attributes:
        probability: per kind (in :data:`DETAIL_KINDS` order), the chance that a face has it.
        strength: per kind, the (low, high) range of its strength when present.
        max_spots: the most freckles, moles and blemishes per face.
    """

    probability: tuple[float, ...] = (0.35, 0.6, 0.4, 0.35, 0.35, 0.3, 0.5)
    strength: tuple[tuple[float, float], ...] = ((0.35, 0.85), (0.6, 1.0), (0.4, 0.85), (0.2, 0.6),
                                                 (0.4, 0.85), (0.5, 0.95), (0.25, 0.7))
    max_spots: tuple[int, int, int] = (160, 6, 12)

    def __post_init__(self) -> None:
        if len(self.probability) != len(DETAIL_KINDS) or len(self.strength) != len(DETAIL_KINDS):
            raise ValueError(f"probability and strength need one entry per kind {DETAIL_KINDS}")
        if any(not 0.0 <= p <= 1.0 for p in self.probability):
            raise ValueError(f"probabilities must lie in [0, 1], got {self.probability}")


@dataclass
class DetailParams:
    """The random part of the detail of a batch of faces (what :meth:`DetailLayer.draw` returns).

    Attributes:
        amounts: (B, 7) strength of each kind in :data:`DETAIL_KINDS` order, 0 where absent.
        spot_centres: (B, 3, M) vertex index of each spot (freckles, moles, blemishes).
        spot_amplitudes: (B, 3, M) spot amplitude at its centre in [0, 1]; 0 for unused slots.
        stubble_noise: (B, N_beard) speckle in [0, 1] on the beard region's vertices.
        lip_colour: (B, 3) lipstick albedo.
        hair_colour: (B, 3) stubble albedo.
        forehead: (B, 4, 3) forehead lines: height offset, waviness phase, presence (0 or 1).
        crow: (B, 2, 4) crow's feet line angles (radians from the outward horizontal), per eye.
        fold: (B,) strength of the nasolabial folds relative to the other wrinkles.
    """

    amounts: torch.Tensor
    spot_centres: torch.Tensor
    spot_amplitudes: torch.Tensor
    stubble_noise: torch.Tensor
    lip_colour: torch.Tensor
    hair_colour: torch.Tensor
    forehead: torch.Tensor
    crow: torch.Tensor
    fold: torch.Tensor

    def __len__(self) -> int:
        return self.amounts.shape[0]

    def to(self, device: str | torch.device) -> DetailParams:
        """A copy on ``device``."""
        return DetailParams(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    @staticmethod
    def cat(parts: list[DetailParams]) -> DetailParams:
        """Joins the batches of several draws (of the same layer)."""
        return DetailParams(**{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in fields(DetailParams)})


def _segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance from (N, 2) points to each segment a_k b_k, minimised over k.  a, b: (K, 2)."""
    ab = b - a
    t = np.clip(((points[:, None] - a) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12), 0, 1)
    nearest = a + t[..., None] * ab
    return np.linalg.norm(points[:, None] - nearest, axis=-1).min(1)


def _polyline_distance(points: np.ndarray, line: np.ndarray) -> np.ndarray:
    return _segment_distance(points, line[:-1], line[1:])


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0, 1)
    return t * t * (3 - 2 * t)


def _gaussian_kernel(vertices: np.ndarray, sigma: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """exp(-d^2 / 2 sigma^2) between vertices closer than 2.5 sigma, as CSR arrays (row pointers,
    columns, values): row c is the footprint of a spot centred on vertex c."""
    tree = cKDTree(vertices)
    pairs = tree.sparse_distance_matrix(tree, 2.5 * sigma, output_type="coo_matrix")
    # sparse_distance_matrix leaves the zero distances (the diagonal) out: add them back.
    weights = sp.coo_matrix((np.exp(-pairs.data ** 2 / (2 * sigma ** 2)), (pairs.row, pairs.col)), shape=pairs.shape)
    matrix = (weights + sp.identity(len(vertices), format="coo")).tocsr()
    return (torch.from_numpy(matrix.indptr).long(), torch.from_numpy(matrix.indices).long(),
            torch.from_numpy(matrix.data).float())


def _spread(kernel: tuple[torch.Tensor, torch.Tensor, torch.Tensor], centres: torch.Tensor, amplitudes: torch.Tensor,
            num_vertices: int) -> torch.Tensor:
    """Sum of spots: sum_c amplitude_c K[c, :] per face, touching only the spots' footprints.

    Args:
        kernel: CSR arrays from :func:`_gaussian_kernel`.
        centres: (B, M) centre vertices. amplitudes: (B, M), 0 for unused slots.

    Returns:
        (B, V) spot field.
    """
    rows, cols, values = kernel
    b = centres.shape[0]
    face, slot = amplitudes.nonzero(as_tuple=True)
    centre, amplitude = centres[face, slot], amplitudes[face, slot]
    # A ragged gather of the centres' kernel rows (a spot covers a few dozen vertices, a face has
    # at most a few hundred spots: far less work than a (V, V) product with every face).
    start, length = rows[centre], rows[centre + 1] - rows[centre]
    owner = torch.repeat_interleave(torch.arange(len(centre), device=centres.device), length)
    position = start[owner] + torch.arange(len(owner), device=centres.device) - (torch.cumsum(length, 0) - length)[owner]
    out = amplitudes.new_zeros(b * num_vertices)
    out.index_add_(0, face[owner] * num_vertices + cols[position], values[position] * amplitude[owner])
    return out.view(b, num_vertices)


def _vertex_areas(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """A third of the area of each vertex's triangles (so that spots land evenly on the surface)."""
    a, b, c = (vertices[triangles[:, i]] for i in range(3))
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    out = np.zeros(len(vertices))
    for i in range(3):
        np.add.at(out, triangles[:, i], area / 3)
    return out


class DetailLayer:
    """Adds freckles, moles, blemishes, stubble, make-up and wrinkle shading to per-vertex albedo.

    Args:
        model: the morphable model whose mesh carries the albedo (any subdivision level).
        config: frequencies and strengths of each kind of detail.
        device: where :meth:`apply` computes (the draws are on the CPU and moved there).

    Example:
        >>> layer = DetailLayer(model)
        >>> params = layer.draw(4, torch.Generator().manual_seed(0))
        >>> detailed = layer.apply(model.albedo(c_tex).clamp(0, 1), params)   # (4, V, 3)
    """

    # Multiplicative tints (albedo times colour) of the spots and wrinkles: the colour each tends to.
    _TINTS: ClassVar[dict[str, tuple[float, float, float]]] = {
        "freckles": (0.72, 0.52, 0.38), "blemish_halo": (1.0, 0.72, 0.72), "blemishes": (0.85, 0.45, 0.42),
        "moles": (0.38, 0.27, 0.22), "wrinkles": (0.6, 0.6, 0.6)}

    def __init__(self, model: MorphableModel, config: DetailConfig | None = None, device: str | torch.device = "cpu") -> None:
        if "skin" not in model.masks:
            raise ValueError(f"{model.name} has no 'skin' mask: the detail layer needs to know which vertices are skin "
                             "(the open face model has one; for BFM pass masks={'skin': ...})")
        if model.landmarks.numel() != 68:
            raise ValueError(f"the detail layer places its regions by the 68 landmarks; {model.name} has {model.landmarks.numel()}")
        self.config = config or DetailConfig()
        self.num_vertices = model.num_vertices
        mean = model.mean_shape.detach().cpu().double().numpy()
        lm = mean[model.landmarks.cpu().numpy()]
        xy = mean[:, :2]
        skin = model.masks["skin"].detach().cpu().numpy().astype(bool)
        regions = {name: w * skin for name, w in self._regions(xy, lm, mean).items()}
        # Spots land on skin, evenly over its area, denser where the region says so.
        area = _vertex_areas(mean, model.triangles.cpu().numpy()) * skin
        self.spot_weights = torch.from_numpy(np.stack([area * (0.02 + regions["freckles"]), area * (0.1 + regions["front"]),
                                                       area * (0.1 + regions["front"] + regions["blemish_zones"])])).float()
        kernels = {name: _gaussian_kernel(mean, sigma) for name, sigma in SPOT_SIGMAS.items()}
        # The region-bound kinds only ever touch their region's vertices: keep those indices and
        # the weights there (the beard is about a fifth of the mesh, the lips a few hundred vertices).
        local = {}
        for name in ("lips", "beard", "eyeliner"):
            index = np.flatnonzero(regions[name] > 1e-3)
            local[name] = (torch.from_numpy(index), torch.from_numpy(regions[name][index]).float())
        # Wrinkles: forehead lines, crow's feet and folds, on the vertices near any of them.
        polar = []
        for corner, outward in ((36, -1.0), (45, 1.0)):
            d = xy - lm[corner, :2]
            # Polar coordinates around each outer eye corner, angle from the outward horizontal.
            polar.append(np.stack([np.hypot(d[:, 0], d[:, 1]), np.arctan2(d[:, 1], d[:, 0] * outward)], -1))
        polar = np.stack(polar)  # (2, V, 2)
        near_corner = ((polar[..., 0] < 0.18) & (np.abs(polar[..., 1]) < 1.0)).any(0)
        near = (regions["forehead"] > 1e-3) | (regions["folds"] > 1e-3) | (near_corner & (regions["front"] > 1e-3))
        index = np.flatnonzero(skin & near)
        self._wrinkle_index = torch.from_numpy(index)
        self._wrinkle = {"xy": torch.from_numpy(xy[index]).float(), "polar": torch.from_numpy(polar[:, index]).float(),
                         "forehead": torch.from_numpy(regions["forehead"][index]).float(),
                         "folds": torch.from_numpy(regions["folds"][index]).float(),
                         "front": torch.from_numpy(regions["front"][index]).float()}
        self.forehead_base = float(lm[17:27, 1].max() + 0.07)
        self.regions = {name: torch.from_numpy(w).float() for name, w in regions.items()}
        self.skin = torch.from_numpy(skin)
        self._kernels, self._local = kernels, local
        self._tints = torch.tensor(list(self._TINTS.values()))
        self.device = torch.device("cpu")
        self.to(device)

    @property
    def beard_size(self) -> int:
        """The number of beard-region vertices (the length of a face's stubble noise)."""
        return len(self._local["beard"][0])

    # ---- fixed geometry ------------------------------------------------------------------------
    @staticmethod
    def _regions(xy: np.ndarray, lm: np.ndarray, mean: np.ndarray) -> dict[str, np.ndarray]:
        """Soft (V,) weights in [0, 1] of the face regions, from the mean shape's landmarks."""
        x, y = xy[:, 0], xy[:, 1]
        eyes = np.stack([lm[36:42].mean(0), lm[42:48].mean(0)])[:, :2]
        mouth_y = lm[[48, 54], 1].mean()
        # Only the front of the head: the mesh reaches round to the ears.
        front = _smoothstep(mean[:, 2], lm[[0, 16], 2].mean() - 0.05, lm[[0, 16], 2].mean() + 0.15)

        def blob(cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
            return np.exp(-0.5 * (((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2))

        cheeks = sum(blob(e[0] * 1.05, (e[1] + mouth_y) / 2 + 0.02, 0.17, 0.12) for e in eyes)
        nose = blob(0.0, lm[30, 1] + 0.08, 0.1, 0.16)
        freckles = np.clip(np.maximum(cheeks, 0.8 * nose), 0, 1)
        # Lips: inside the outer lip contour, with a soft edge of about 1.5 mm.
        outer = lm[48:60, :2]
        inside = PolygonPath(outer).contains_points(xy)
        edge = _polyline_distance(xy, np.concatenate([outer, outer[:1]]))
        lips = np.where(inside, 1.0, np.exp(-0.5 * (edge / 0.012) ** 2))
        # Beard: below a line from under the nose, round the mouth, up to the sideburns.
        boundary = np.array([[0.0, lm[33, 1] - 0.025], [0.2, lm[33, 1] - 0.04], [0.3, mouth_y + 0.01],
                             [0.5, lm[2, 1] - 0.1], [0.66, lm[1, 1] - 0.05], [0.9, lm[1, 1]]])
        line = np.interp(np.abs(x), boundary[:, 0], boundary[:, 1])
        beard = 1 / (1 + np.exp(-(line - y) / 0.015)) * (1 - lips) * front
        # Eyeliner: a band along each upper lid, with a short wing past the outer corner, and a
        # fainter one along the lower lid.
        liner = np.zeros(len(xy))
        for upper, lower, outer_corner, outward in (([36, 37, 38, 39], [39, 40, 41, 36], 36, -1.0),
                                                     ([45, 44, 43, 42], [42, 47, 46, 45], 45, 1.0)):
            wing = lm[outer_corner, :2] + np.array([0.05 * outward, 0.02])
            top = np.concatenate([wing[None], lm[upper, :2]])
            liner = np.maximum(liner, np.exp(-0.5 * (_polyline_distance(xy, top) / 0.01) ** 2))
            liner = np.maximum(liner, 0.45 * np.exp(-0.5 * (_polyline_distance(xy, lm[lower, :2]) / 0.008) ** 2))
        # Nasolabial folds: from beside each nose wing down past the mouth corner, bowed outwards.
        folds = np.zeros(len(xy))
        t = np.linspace(0, 1, 12)[:, None]
        for wing, corner, outward in ((31, 48, -1.0), (35, 54, 1.0)):
            p0 = lm[wing, :2] + np.array([0.05 * outward, 0.03])
            p2 = lm[corner, :2] + np.array([0.06 * outward, -0.07])
            p1 = (p0 + p2) / 2 + np.array([0.05 * outward, 0.0])
            curve = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2
            folds = np.maximum(folds, np.exp(-0.5 * (_polyline_distance(xy, curve) / 0.014) ** 2))
        brow_top = lm[17:27, 1].max()
        forehead = _smoothstep(y, brow_top + 0.03, brow_top + 0.1) * np.exp(-0.5 * (x / 0.3) ** 4) * front
        blemish_zones = np.clip(forehead + cheeks + blob(0.0, lm[8, 1] + 0.1, 0.15, 0.1), 0, 1)
        return {"front": front, "freckles": freckles * front, "lips": lips, "beard": beard, "eyeliner": liner,
                "folds": folds * front, "forehead": forehead, "blemish_zones": blemish_zones}

    def to(self, device: str | torch.device) -> DetailLayer:
        """Moves the layer's tensors to ``device`` (in place) and returns it."""
        self.device = torch.device(device)
        self._kernels = {k: tuple(t.to(self.device) for t in arrays) for k, arrays in self._kernels.items()}
        self._local = {k: tuple(t.to(self.device) for t in arrays) for k, arrays in self._local.items()}
        self._wrinkle = {k: t.to(self.device) for k, t in self._wrinkle.items()}
        self._wrinkle_index, self.skin, self._tints = (t.to(self.device) for t in (self._wrinkle_index, self.skin, self._tints))
        self.regions = {k: t.to(self.device) for k, t in self.regions.items()}
        return self

    # ---- random draws --------------------------------------------------------------------------
    def draw(self, n: int, generator: torch.Generator | None = None) -> DetailParams:
        """Draws the detail of ``n`` faces (on the CPU; the same generator state gives the same draws).

        Args:
            n: the number of faces.
            generator: a CPU ``torch.Generator`` (``None``: torch's global one).

        Returns:
            :class:`DetailParams` on the CPU (:meth:`apply` moves them).
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        cfg = self.config

        def rand(*shape: int) -> torch.Tensor:
            return torch.rand(*shape, generator=generator)

        present = rand(n, len(DETAIL_KINDS)) < torch.tensor(cfg.probability)
        lo, hi = torch.tensor(cfg.strength).unbind(-1)
        amounts = (lo + (hi - lo) * rand(n, len(DETAIL_KINDS))) * present
        most = max(cfg.max_spots)
        centres = torch.zeros(n, 3, most, dtype=torch.long)
        amplitudes = torch.zeros(n, 3, most)
        for kind, k in enumerate(cfg.max_spots):
            # A fixed number of draws per face whatever its count, so that the stream of random
            # numbers (and every later draw) does not depend on the values drawn here.
            if n and k:
                centres[:, kind, :k] = torch.multinomial(self.spot_weights[kind], n * k, replacement=True,
                                                         generator=generator).view(n, k)
            count = (rand(n, 1) * (k + 1)).floor()
            amplitudes[:, kind, :k] = (0.5 + 0.5 * rand(n, k)) * (torch.arange(k) < count)
        amplitudes *= present[:, :3, None]
        forehead = torch.stack([0.055 * torch.arange(4).float() + 0.03 * (rand(n, 4) - 0.5), 2 * np.pi * rand(n, 4),
                                (rand(n, 4) < 0.75).float()], -1)
        crow = (rand(n, 2, 4) - 0.5) * 1.4
        lips = LIPSTICK_COLOURS[torch.randint(len(LIPSTICK_COLOURS), (n,), generator=generator)] * (0.85 + 0.3 * rand(n, 3))
        hair = HAIR_COLOURS[torch.randint(len(HAIR_COLOURS), (n,), generator=generator)] * (0.8 + 0.4 * rand(n, 1))
        return DetailParams(amounts=amounts, spot_centres=centres, spot_amplitudes=amplitudes,
                            stubble_noise=rand(n, self.beard_size), lip_colour=lips.clamp(0, 1), hair_colour=hair.clamp(0, 1),
                            forehead=forehead, crow=crow, fold=0.5 + 0.5 * rand(n))

    # ---- composition ---------------------------------------------------------------------------
    def _weights(self, p: DetailParams) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Per-kind weights: full (B, V) ones for spots and wrinkles, and (B, N_region) ones on the
        region's vertices for lipstick, eyeliner and stubble. Already scaled by their strength."""
        if p.stubble_noise.shape[-1] != self.beard_size:
            raise ValueError(f"the detail was drawn for another mesh ({p.stubble_noise.shape[-1]} beard vertices, this layer "
                             f"has {self.beard_size}): draw it with this layer")
        b, v = len(p), self.num_vertices
        a = dict(zip(DETAIL_KINDS, p.amounts.T))
        centres, amps = p.spot_centres, p.spot_amplitudes
        full = {
            "freckles": _spread(self._kernels["small"], centres[:, 0], amps[:, 0], v).clamp(max=1) * a["freckles"][:, None],
            "moles": (1.6 * _spread(self._kernels["medium"], centres[:, 1], amps[:, 1], v)).clamp(max=1) * a["moles"][:, None],
            "blemishes": _spread(self._kernels["medium"], centres[:, 2], amps[:, 2], v).clamp(max=1) * a["blemishes"][:, None],
            # Blemishes come with a wider red halo.
            "blemish_halo": (0.6 * _spread(self._kernels["large"], centres[:, 2], amps[:, 2], v)).clamp(max=1) * a["blemishes"][:, None],
        }
        # Wrinkles, baked as darkening: gently wavy forehead lines, crow's feet (lines fanning out
        # from the outer eye corners), nasolabial folds.
        w = self._wrinkle
        x, y = w["xy"].unbind(-1)
        offset, phase, on = p.forehead.unbind(-1)  # (B, 4) each
        line_y = self.forehead_base + offset[:, :, None] + 0.012 * torch.sin(8 * x + phase[:, :, None])
        forehead = (on[:, :, None] * torch.exp(-0.5 * ((y - line_y) / 0.008) ** 2)).amax(1) * w["forehead"]
        radius, angle = w["polar"].unbind(-1)  # (2, N) each
        gap = (angle[None, :, None] - p.crow[..., None]) * radius[None, :, None]  # (B, 2, 4, N): arc length off each line
        fan = torch.exp(-0.5 * (gap / 0.006) ** 2).amax(2)
        reach = torch.sigmoid((radius - 0.035) / 0.006) * torch.sigmoid((0.15 - radius) / 0.012) * (angle.abs() < 1.0)
        crow = (fan * reach).amax(1) * w["front"]
        wrinkles = torch.maximum(torch.maximum(forehead, crow), w["folds"] * p.fold[:, None]) * a["wrinkles"][:, None]
        full["wrinkles"] = amps.new_zeros(b, v).index_copy_(1, self._wrinkle_index, wrinkles.clamp(0, 1))
        local = {
            "stubble": self._local["beard"][1] * (0.3 + 0.7 * p.stubble_noise) * a["stubble"][:, None],
            "lipstick": self._local["lips"][1] * a["lipstick"][:, None],
            "eyeliner": self._local["eyeliner"][1] * a["eyeliner"][:, None],
        }
        return full, local

    def layers(self, params: DetailParams) -> dict[str, torch.Tensor]:
        """The per-vertex weight of each kind of detail, scaled by its strength (to look at or test).

        Returns:
            {kind: (B, V) in [0, 1]} for every kind in :data:`DETAIL_KINDS` and "blemish_halo",
            zero off the skin.
        """
        full, local = self._weights(params.to(self.device))
        for name, region in (("stubble", "beard"), ("lipstick", "lips"), ("eyeliner", "eyeliner")):
            full[name] = local[name].new_zeros(len(params), self.num_vertices).index_copy_(1, self._local[region][0], local[name])
        skin = self.skin.to(full["freckles"].dtype)
        return {k: (w * skin).clamp(0, 1) for k, w in full.items()}

    def apply(self, albedo: torch.Tensor, params: DetailParams) -> torch.Tensor:
        """The albedo with the detail painted on.

        Args:
            albedo: (B, V, 3) per-vertex albedo in [0, 1] (the clipped PCA albedo).
            params: the detail of these B faces, from :meth:`draw` with this layer.

        Returns:
            (B, V, 3) in [0, 1]; equal to ``albedo`` off the skin and where no detail falls.
        """
        if albedo.ndim != 3 or albedo.shape[1:] != (self.num_vertices, 3):
            raise ValueError(f"albedo must be (B, V={self.num_vertices}, 3), got {tuple(albedo.shape)}")
        if len(params) != albedo.shape[0]:
            raise ValueError(f"{len(params)} detail draws for {albedo.shape[0]} faces")
        p = params.to(albedo.device)
        full, local = self._weights(p)
        # Spots and wrinkles multiply the albedo by a tint. They rarely overlap, so one linear
        # blend of all five is as good as five in a row, and one small matmul is much cheaper on
        # a CPU than five passes over (B, V, 3).
        weights = torch.stack([full[k] for k in self._TINTS], -1).to(albedo.dtype)  # (B, V, 5)
        out = albedo * (1 + weights @ (self._tints.to(albedo.dtype) - 1)).clamp(min=0.05)
        # Stubble, lipstick and eyeliner replace colour, only on their region's vertices.
        for name, region in (("stubble", "beard"), ("lipstick", "lips"), ("eyeliner", "eyeliner")):
            index = self._local[region][0]
            base = out[:, index]
            weight = local[name][..., None].to(albedo.dtype)
            if name == "stubble":
                colour = p.hair_colour[:, None]
            elif name == "lipstick":
                # A tint keeps a little of the lips' own variation (multiplied in).
                colour = p.lip_colour[:, None] * (base / base.mean(-1, keepdim=True).clamp(min=1e-3)).clamp(0.7, 1.3)
                weight = 0.9 * weight
            else:
                colour = base.new_tensor([0.04, 0.03, 0.03])
            out[:, index] = base + weight * (colour - base)
        # Exactly the input off the skin (spots spread a little past it).
        return torch.where(self.skin[:, None], out.clamp(0, 1), albedo)
