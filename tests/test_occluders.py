"""The occluder gate: M_face's verdict kept on large parts that are neither skin- nor face-coloured, dropped elsewhere."""

from collections import deque

import numpy as np
import pytest
import torch

from facelib.losses import agreement, lips_vertices, occluder_gate
from facelib.losses.occluders import LIPS_MARGIN
from facelib.mesh.graph import scipy_adjacency


def grid_mesh(n: int) -> tuple[torch.Tensor, int]:
    """An n x n vertex grid, two triangles per cell: vertex (r, c) is r * n + c."""
    triangles = []
    for r in range(n - 1):
        for c in range(n - 1):
            a, b, d, e = r * n + c, r * n + c + 1, (r + 1) * n + c, (r + 1) * n + c + 1
            triangles += [(a, b, d), (b, e, d)]
    return torch.tensor(triangles), n * n


def flat_scene(n: int, albedo: float = 0.6):
    """An n x n grid whose 3DMM albedo is flat, read exactly and all skin: (graph, coarse, delit, skin, rows, cols)."""
    triangles, v = grid_mesh(n)
    coarse = torch.full((1, v, 3), albedo)
    return scipy_adjacency(triangles, v), coarse, coarse.clone(), torch.ones(1, v), torch.arange(v) // n, torch.arange(v) % n


def reference_components(flags: np.ndarray, graph) -> list[set[int]]:
    """Connected parts of the flagged vertices by breadth-first search: the plain version of connected_components."""
    seen, parts = set(), []
    for start in np.flatnonzero(flags):
        if start in seen:
            continue
        part, queue = set(), deque([int(start)])
        seen.add(int(start))
        while queue:
            i = queue.popleft()
            part.add(i)
            for j in graph.indices[graph.indptr[i]:graph.indptr[i + 1]]:
                if flags[j] and int(j) not in seen:
                    seen.add(int(j))
                    queue.append(int(j))
        parts.append(part)
    return parts


def test_scipy_adjacency_is_the_symmetric_vertex_adjacency():
    triangles, v = grid_mesh(4)
    graph = scipy_adjacency(triangles, v)
    dense = graph.toarray()
    assert (dense == dense.T).all() and set(np.unique(dense)) == {0.0, 1.0} and dense.trace() == 0
    assert dense[0].sum() == 2 and dense[5].sum() == 6  # a corner and an inner vertex of the grid


def test_agreement_ignores_the_face_tint_and_flags_what_departs_from_the_3dmm():
    coarse = torch.rand(1, 200, 3, generator=torch.Generator().manual_seed(0)) * 0.6 + 0.2
    tint = torch.tensor([1.3, 1.0, 0.8])
    delit = coarse * tint
    delit[0, :10] = 0.03  # a dark occluder
    a = agreement(delit, coarse, torch.ones(1, 200))
    assert torch.allclose(a[0, 10:], torch.ones(190), atol=1e-4)  # the photo's colour balance is not a disagreement
    assert (a[0, :10] == 0).all()
    with pytest.raises(ValueError, match="inlier < outlier"):
        agreement(delit, coarse, torch.ones(1, 200), inlier=0.8, outlier=0.4)


def test_the_gate_keeps_large_occluders_out_and_small_spots_and_face_coloured_readings_in():
    graph, coarse, delit, skin, rows, cols = flat_scene(30)
    v = coarse.shape[1]
    frame = (rows >= 10) & (rows < 13)  # a band three vertices high across the mesh: 90 vertices
    spot = (rows >= 20) & (rows < 22) & (cols >= 5) & (cols < 7)  # a 2 x 2 mole
    lips = (rows >= 25) & (cols >= 10) & (cols < 20)  # not skin-coloured, but the 3DMM's own colour there
    for region in (frame, spot):
        delit[0, region] = 0.05
        skin[0, region] = 0.0
    skin[0, lips] = 0.0
    gate = occluder_gate(delit, coarse, torch.ones(1, v), skin, graph, min_share=0.05, rings=1)[0]
    assert (gate[frame] == 0).all()
    assert (gate[spot] == 1).all() and (gate[lips] == 1).all()
    # the ring around the band is the band's edge: weighed by M_face (skin there), so 1; nothing else changed
    assert (gate[~frame] == 1).all()

    # The components are those of a breadth-first search, and the size threshold is applied to each.
    suspect = (skin[0] < 0.5) & (agreement(delit, coarse, torch.ones(1, v))[0] < 0.5)
    parts = sorted(len(p) for p in reference_components(suspect.numpy(), graph))
    assert parts == [4, 90]
    # Below the smallest occluder's size, the band is detail too.
    assert (occluder_gate(delit, coarse, torch.ones(1, v), skin, graph, min_share=0.2)[0] == 1).all()


def test_the_gate_takes_soft_values_of_m_face_on_occluders_and_grows_them_by_rings():
    graph, coarse, delit, skin, rows, _ = flat_scene(20, albedo=0.5)
    v = coarse.shape[1]
    band = (rows >= 8) & (rows < 12)
    delit[0, band] = 0.05
    skin[0, band] = 0.2
    ring = (rows == 7) | (rows == 12)
    delit[0, ring] = 0.05
    skin[0, ring] = 0.7  # the occluder's blurred edge: dark, M_face unsure, so not suspect itself, but next to the band
    gate = occluder_gate(delit, coarse, torch.ones(1, v), skin, graph, min_share=0.05, rings=1)[0]
    assert torch.allclose(gate[band], torch.full((int(band.sum()),), 0.2))
    assert torch.allclose(gate[ring], torch.full((int(ring.sum()),), 0.7))
    assert (gate[~band & ~ring] == 1).all()


def test_the_gate_checks_its_inputs():
    triangles, v = grid_mesh(5)
    graph = scipy_adjacency(triangles, v)
    x = torch.rand(1, v, 3)
    with pytest.raises(ValueError, match="skin must be"):
        occluder_gate(x, x, torch.ones(1, v), torch.ones(1, v + 1), graph)
    with pytest.raises(ValueError, match="min_share"):
        occluder_gate(x, x, torch.ones(1, v), torch.ones(1, v), graph, min_share=0)
    with pytest.raises(ValueError, match="must be"):
        agreement(x, x[..., :2], torch.ones(1, v))


def test_on_a_face_with_a_dark_band_the_gate_drops_the_band_and_keeps_more_than_m_face():
    """A synthetic face with a glasses-like dark band painted across its eyes, M_face from the photo.

    "occluders" must keep the band out as "skin" does, and read more of the rest of the face than
    "skin" (lips, brows' surroundings, shadowed skin).
    """
    from facelib.data import benchmark
    from facelib.losses import skin_mask
    from facelib.texture_inputs import texture_inputs

    faces = benchmark(n=1, size=128, level=0, device="cpu")
    batch = faces.batch([0])
    params = {k: batch[k] for k in ("id", "exp", "tex", "angles", "translation", "gamma")}
    model, renderer = faces.model, faces.renderer
    photo = batch["image"].clone()
    eyes = model.landmarks[36:48]
    shape = model.shape(params["id"], params["exp"])
    rendered = renderer.render(shape, model.albedo(params["tex"]).clamp(0, 1), params["angles"], params["translation"], params["gamma"])
    eye_rows = rendered.screen[0, eyes, 1]
    top, bottom = int(eye_rows.min()) - 4, int(eye_rows.max()) + 4
    photo[0, top:bottom] = torch.tensor([0.08, 0.05, 0.04])  # the band, across the whole crop
    m_face = skin_mask(photo, rendered.mask * batch["skin"])
    strict = texture_inputs(model, renderer, photo, params, m_face)
    gated = texture_inputs(model, renderer, photo, params, m_face, occluders=True)
    plain = texture_inputs(model, renderer, photo, params)
    y = rendered.screen[0, :, 1]
    on_band = (y >= top) & (y < bottom) & (plain.confidence[0] > 0.5)
    assert on_band.sum() > 50
    assert float(gated.confidence[0, on_band].mean()) < 0.1
    off_band = ~((y >= top - 3) & (y < bottom + 3))
    kept_gated = float(gated.confidence[0, off_band].sum())
    kept_strict = float(strict.confidence[0, off_band].sum())
    assert kept_gated > 1.05 * kept_strict, (kept_gated, kept_strict)
    assert (gated.delit[0][gated.confidence[0] == 0] == 0).all()


def test_suspects_one_vertex_apart_make_one_occluder():
    """A dashed band (pieces of 2 x 2 suspects, one clean vertex between them) is one occluder with bridge=1, detail without."""
    graph, coarse, delit, skin, rows, cols = flat_scene(40)
    v = coarse.shape[1]
    dashes = (rows >= 10) & (rows < 12) & (cols % 3 != 2)
    delit[0, dashes] = 0.05
    skin[0, dashes] = 0.0
    args = (delit, coarse, torch.ones(1, v), skin, graph)
    assert (occluder_gate(*args, min_share=0.02, bridge=0)[0] == 1).all()  # 4-vertex pieces: detail
    bridged = occluder_gate(*args, min_share=0.02, bridge=1)[0]  # 54 suspects, 32 needed
    assert (bridged[dashes] == 0).all()
    assert (bridged[(rows >= 10) & (rows < 12) & ~dashes] == 1).all()  # the clean vertices between agree with the 3DMM


def test_exempt_vertices_never_make_an_occluder():
    """The band of the first test, declared exempt (as the lips are): the gate leaves it in; half of it exempt,
    the other half is still an occluder whose edge reaches one column into the exempt half; checks the mask's shape."""
    graph, coarse, delit, skin, rows, cols = flat_scene(30)
    v = coarse.shape[1]
    band = (rows >= 10) & (rows < 13)
    delit[0, band] = 0.05
    skin[0, band] = 0.0
    args = (delit, coarse, torch.ones(1, v), skin, graph)
    assert (occluder_gate(*args, min_share=0.05, rings=1)[0][band] == 0).all()  # without: an occluder
    assert (occluder_gate(*args, min_share=0.05, rings=1, exempt=band)[0] == 1).all()
    half = band & (cols < 15)  # 45 suspects left, 45 needed: still an occluder
    gate = occluder_gate(*args, min_share=0.05, rings=1, exempt=half[None])[0]
    assert (gate[band & ~half] == 0).all()
    assert (gate[band & (cols < 14)] == 1).all() and (gate[band & (cols == 14)] == 0).all()  # one ring into it
    # One mask per face: the second face's band is exempt, the first face's is not.
    two = occluder_gate(delit.expand(2, -1, -1), coarse.expand(2, -1, -1), torch.ones(2, v), skin.expand(2, -1), graph,
                        min_share=0.05, rings=1, exempt=torch.stack([torch.zeros_like(band), band]))
    assert (two[0, band] == 0).all() and (two[1] == 1).all()
    for bad in (band[:-1], torch.stack([band] * 3), band[None, None]):
        with pytest.raises(ValueError, match="exempt must be"):
            occluder_gate(*args, exempt=bad)


def test_lips_vertices_are_the_lips_and_a_margin_on_the_mean_shape(open_model):
    """All the lips, the vertices within the margin of them (a brute-force reference), nothing of the eyes or nose."""
    model = open_model
    lips = model.masks["lips"].bool()
    region = lips_vertices(model)
    assert region.dtype == torch.bool and region.shape == (model.num_vertices,)
    assert region[lips].all() and int(region.sum()) > int(lips.sum())
    assert not (region & model.masks["eyes"].bool()).any() and not (region & model.masks["nose"].bool()).any()
    # every vertex in it lies within the margin of a lip vertex (the plain reference of the k-d tree)
    points = model.mean_shape.double()
    nearest = torch.cdist(points, points[lips]).amin(1)
    assert torch.equal(region, nearest <= LIPS_MARGIN)
    alone = lips_vertices(model, margin=0.0)
    assert torch.equal(alone, lips) and alone.data_ptr() != model.masks["lips"].data_ptr()  # a copy, not the model's
    bare = type("Bare", (), {"masks": {}, "num_vertices": 7})()
    assert not lips_vertices(bare).any() and lips_vertices(bare).shape == (7,)
    with pytest.raises(ValueError, match="margin"):
        lips_vertices(model, margin=-0.01)


def test_on_a_face_with_plum_lipstick_the_gate_reads_the_lips():
    """A synthetic face whose lips are painted plum (the detail layer's darkest lipstick), M_face from the photo.

    M_face leaves the lips out and they disagree with the 3DMM's lip colour, in a part large enough for an
    occluder: without the exemption the gate drops them; with it, "occluders" reads them as the plain reading does.
    """
    from facelib.data import benchmark
    from facelib.data.detail import LIPSTICK_COLOURS
    from facelib.losses import skin_mask
    from facelib.texture_inputs import mask_at_vertices, texture_inputs

    faces = benchmark(n=1, size=128, level=0, device="cpu")
    batch = faces.batch([0])
    params = {k: batch[k] for k in ("id", "exp", "tex", "angles", "translation", "gamma")}
    model, renderer = faces.model, faces.renderer
    painted = lips_vertices(model)  # lipstick spilling to the whole exempt region: a part large enough for an occluder
    albedo = batch["albedo"].clone()
    albedo[0, painted] = LIPSTICK_COLOURS[2]
    rendered = renderer.render(model.shape(params["id"], params["exp"]), albedo, params["angles"], params["translation"], params["gamma"])
    photo = torch.where(rendered.mask[..., None] > 0, rendered.image.clamp(0, 1), batch["image"])
    m_face = skin_mask(photo, rendered.mask * batch["skin"])
    plain = texture_inputs(model, renderer, photo, params)
    gated = texture_inputs(model, renderer, photo, params, m_face, occluders=True)
    lips = painted & (plain.confidence[0] > 0.5)
    assert lips.sum() > 30
    assert torch.allclose(gated.confidence[0, lips], plain.confidence[0, lips])
    # The same reading without the exemption: the painted lips are taken for an occluder.
    skin = mask_at_vertices(m_face, plain.fitted)
    bare = occluder_gate(plain.delit, plain.coarse, plain.confidence, skin, scipy_adjacency(model.triangles, model.num_vertices))
    assert float(bare[0, lips].mean()) < 0.5
