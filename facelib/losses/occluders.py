"""Which of the photo's readings at the mesh's vertices show an occluder, not the face's albedo.

The texture stage reads the photo at every projected vertex and de-lights it (D = T_p / E). Where a
glasses frame, a hat's brim or a fringe of hair covers the face, that reading is the occluder's
colour, and copying it paints the occluder onto the skin. M_face (:func:`~facelib.losses.skin_mask`)
knows where the photo is not skin-coloured, but it is a single colour model for the whole face: it
also leaves out the lips, brows, eyes, shadowed skin, moles, stubble and make-up, which are exactly
the detail the texture stage is for. The gate here keeps M_face's verdict only where it points at
an occluder, by two tests that tell occluders from detail:

1. **Disagreement with the 3DMM.** The 3DMM albedo T has the regional colours of a face (red lips,
   dark brows), so where the de-lit reading D is near T, the reading is face, whatever M_face says.
   Per vertex and channel, in log space and after the face's own median tint (the photo's colour
   balance against the model),

       e_i = max_c | log((D_ic + eps) / (T_ic + eps)) - median_j log((D_jc + eps) / (T_jc + eps)) |,

   and the agreement a_i = clamp((outlier - e_i) / (outlier - inlier), 0, 1): 1 for readings within a
   factor exp(inlier) of T (after the tint), 0 beyond exp(outlier).
2. **Size.** A vertex is *suspect* where max(M_face(p_i), a_i) < 1/2: neither skin-coloured nor
   face-coloured. Suspect vertices are grouped into connected parts of the mesh (two suspects with
   one vertex between them count as connected: a thin frame read from a small crop breaks where
   its colour blends with the skin's); a part of at least ``min_share`` of the mesh's vertices is an
   occluder (a frame's rim, a brim, a strand of hair runs over many vertices), a smaller one is
   detail (a mole, a freckle, a blemish). Occluders grow by ``rings`` rings of neighbours, since
   their edges blend into the skin around them.

The gate is max(M_face(p_i), a_i) on occluders and 1 elsewhere:

    g_i = max(M_face(p_i), a_i)   if i is on (or within ``rings`` of) an occluder,   else 1.

Vertices the caller declares ``exempt`` are never suspect: they neither start an occluder nor count
towards one's size, though an occluder's edge (its ``rings``) can still reach them. The texture
stage exempts the lips and the skin around them (:func:`lips_vertices`): lipstick tints the whole
mouth away from both the skin and the 3DMM's lip colour, over a part of the mesh as large as a frame's.

Its thresholds were chosen on synthetic faces of another seed than the benchmark's and on the two
bundled photos (``data/README.md`` has the numbers). What it cannot do: an occluder of the face's own colours (a hand), or a
large one of the 3DMM's colours at that place; with ``exempt``, anything over the mouth (a moustache,
a hand, a microphone) is read as the lips' colour.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

EPS = 0.02
"""Added to both albedos before the log ratio, so that near-black readings do not dominate it."""

LIPS_MARGIN = 0.06
"""How far around the model's lips :func:`lips_vertices` reaches, on its mean shape, in model units (0.06: 6 mm
on the open model, whose unit is the decimetre): lipstick and a real mouth's make-up spill a little past the
lips' vertex mask."""


def lips_vertices(model, margin: float = LIPS_MARGIN) -> torch.Tensor:
    """The model's lips and the vertices within ``margin`` of them on the mean shape.

    :func:`occluder_gate`'s ``exempt`` in the texture stage: make-up is the face's own colour, so these
    vertices never make an occluder.

    Args:
        model: a :class:`~facelib.morphable.MorphableModel`.
        margin: the reach around the lips, in model units (0: the lips alone).

    Returns:
        (V,) bool on the CPU, a new tensor; all False for a model without a "lips" mask.

    Raises:
        ValueError: a negative margin.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    lips = model.masks.get("lips")
    if lips is None:
        return torch.zeros(model.num_vertices, dtype=torch.bool)
    lips = lips.bool().cpu().clone()
    if margin == 0 or not bool(lips.any()):
        return lips
    points = model.mean_shape.detach().reshape(-1, 3).cpu().double().numpy()
    nearest, _ = cKDTree(points[lips.numpy()]).query(points)
    return torch.from_numpy(nearest <= margin)


def agreement(delit: torch.Tensor, coarse: torch.Tensor, confidence: torch.Tensor, inlier: float = 0.4,
              outlier: float = 0.8) -> torch.Tensor:
    """a_i: how well the de-lit reading agrees with the 3DMM albedo, after the face's median tint (see the module).

    Args:
        delit: (B, V, 3) D, the photo de-lit by the fitted light. coarse: (B, V, 3) T, the 3DMM albedo.
        confidence: (B, V) the reading's confidence; vertices above 1/2 set the median tint.
        inlier, outlier: log-ratio deviations where a is 1 and where it reaches 0.

    Returns:
        (B, V) a in [0, 1].
    """
    if not 0 <= inlier < outlier:
        raise ValueError(f"need 0 <= inlier < outlier, got {inlier} and {outlier}")
    if delit.shape != coarse.shape or delit.shape[:2] != confidence.shape or delit.shape[-1] != 3:
        raise ValueError(f"delit and coarse must be (B, V, 3) and confidence (B, V), got {tuple(delit.shape)}, "
                         f"{tuple(coarse.shape)} and {tuple(confidence.shape)}")
    ratio = torch.log((delit + EPS) / (coarse + EPS))
    out = torch.zeros_like(confidence)
    for i in range(ratio.shape[0]):
        read = confidence[i] > 0.5
        # Too few readings to say what the face's tint is: no tint (a = agreement with T as it is).
        tint = ratio[i][read].median(0).values if int(read.sum()) >= 20 else torch.zeros(3, dtype=ratio.dtype, device=ratio.device)
        deviation = (ratio[i] - tint).abs().amax(-1)
        out[i] = ((outlier - deviation) / (outlier - inlier)).clamp(0, 1)
    return out


def occluder_gate(delit: torch.Tensor, coarse: torch.Tensor, confidence: torch.Tensor, skin: torch.Tensor,
                  graph: sp.csr_matrix, inlier: float = 0.4, outlier: float = 0.8, min_share: float = 0.01,
                  rings: int = 2, bridge: int = 1, exempt: torch.Tensor | None = None) -> torch.Tensor:
    """The per-vertex weight of the photo's reading: M_face where an occluder covers the face, 1 elsewhere.

    Args:
        delit: (B, V, 3) D, the photo de-lit by the fitted light (0 where it cannot be read).
        coarse: (B, V, 3) T, the 3DMM albedo.
        confidence: (B, V) the reading's confidence before any M_face (0: not read).
        skin: (B, V) M_face at the projected vertices, in [0, 1].
        graph: (V, V) the mesh's adjacency (:func:`facelib.mesh.graph.scipy_adjacency`).
        inlier, outlier: see :func:`agreement`.
        min_share: the smallest occluder, as a share of the mesh's vertices (0.01: 124 vertices of the
            level-1 open model, about 6 cm^2 of face).
        rings: how many rings of neighbours an occluder grows by.
        bridge: suspects up to 2 x ``bridge`` edges apart count as one part.
        exempt: (V,) or (B, V) bool, vertices that are never suspect (:func:`lips_vertices`; None: none);
            an occluder's ``rings`` can still reach them.

    Returns:
        (B, V) gate g in [0, 1] (see the module docstring); multiply the confidence by it.
    """
    b, v = confidence.shape
    if skin.shape != (b, v) or graph.shape != (v, v):
        raise ValueError(f"skin must be (B, V) = {(b, v)} and graph (V, V), got {tuple(skin.shape)} and {graph.shape}")
    if not 0 < min_share < 1 or rings < 0 or bridge < 0:
        raise ValueError(f"need 0 < min_share < 1, rings >= 0 and bridge >= 0, got {min_share}, {rings} and {bridge}")
    face_like = torch.maximum(skin.clamp(0, 1), agreement(delit, coarse, confidence, inlier, outlier))
    suspect = (face_like < 0.5) & (confidence > 0)
    if exempt is not None:
        if tuple(exempt.shape) not in ((v,), (b, v)):
            raise ValueError(f"exempt must be (V,) or (B, V) = {(b, v)}, got {tuple(exempt.shape)}")
        suspect = suspect & ~exempt.to(suspect.device).bool()
    suspect = suspect.cpu().numpy()
    smallest = max(1, int(round(min_share * v)))
    occluded = np.zeros((b, v), dtype=bool)
    for i in range(b):
        flags = suspect[i].astype(np.float32)
        if flags.sum() < smallest:
            continue
        # Suspects one ring apart belong together: a thin frame sampled from a small crop breaks into
        # pieces where its colour blends with the skin's.
        joined = flags.copy()
        for _ in range(bridge):
            joined = np.minimum(joined + graph @ joined, 1.0)
        index = np.flatnonzero(joined)
        _, labels = connected_components(graph[index][:, index], directed=False)
        sizes = np.bincount(labels, weights=flags[index])  # suspects per part, not the bridging ring
        region = np.zeros(v, dtype=np.float32)
        region[index[sizes[labels] >= smallest]] = 1.0
        region *= flags  # the part's own suspects; the rings below grow them
        for _ in range(rings):
            region = np.minimum(region + graph @ region, 1.0)
        occluded[i] = region > 0
    occluded_t = torch.from_numpy(occluded).to(confidence.device)
    return torch.where(occluded_t, face_like, torch.ones_like(face_like))
