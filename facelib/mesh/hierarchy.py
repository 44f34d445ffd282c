"""Mesh hierarchies for graph networks: coarser meshes with down- and up-sampling matrices.

A hierarchy is a list of meshes, level 0 the input (finest) and each next level about ``factor``
times fewer vertices, with two sparse matrices per step l -> l + 1 (as in CoMA, Ranjan et al. 2018):

    D_l  (V_{l+1}, V_l)   down-sampling: x_{l+1} = D_l x_l; each coarse vertex copies one fine vertex.
    U_l  (V_l, V_{l+1})   up-sampling:   x_l = U_l x_{l+1}; each fine vertex is a barycentric blend
                          of the three corners of the coarse triangle nearest to it (weights >= 0,
                          rows summing to 1), so fields that vary linearly over a triangle come back
                          nearly unchanged: U D x ~ x for smooth x.

Two ways to build the coarser meshes:

* :meth:`MeshHierarchy.build`: quadric edge collapse (Garland and Heckbert 1997) of any triangle mesh
  with the ``fast-simplification`` package, to ceil(V / factor) vertices per step. The collapse
  history maps every fine vertex to the coarse vertex it merged into; D picks, for each coarse
  vertex, the nearest fine vertex among those that merged into it (CoMA picks the nearest fine
  vertex; its decimation keeps original positions, so the two agree there).
* :meth:`MeshHierarchy.from_subdivision`: for meshes made by facelib's midpoint subdivision
  (:mod:`facelib.mesh.subdivide`) the hierarchy is exact: the first V vertices of a subdivided mesh
  are the coarse vertices, so D selects them and U is the subdivision matrix itself (every midpoint
  is the mean of its edge's two ends). Quadric steps may follow below the coarsest mesh.

Building takes one to two seconds for a BFM-sized mesh (35,721 vertices, four steps, two CPU cores);
results are cached as ``.npz`` files in ``facelib.config.CACHE_DIR / "hierarchy"``, keyed by a hash of
the mesh, the factors and the simplification library's version.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from facelib.mesh.graph import _check_faces, chebyshev_laplacian, scipy_to_torch, sparse_coo
from facelib.mesh.subdivide import subdivide
from facelib import config  # CACHE_DIR read at call time (tests move it)
from facelib.files import atomic_open

HIERARCHY_FORMAT = 1
"""Bumped whenever the construction changes, so that older cache files are not reused."""

QUADRIC = "quadric"
SUBDIVISION = "subdivision"


def _simplification_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fast-simplification")
    except PackageNotFoundError:
        return "absent"


def _as_numpy_mesh(vertices: torch.Tensor | np.ndarray, faces: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = vertices.detach().cpu().numpy() if isinstance(vertices, torch.Tensor) else np.asarray(vertices)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices must be (V, 3), got shape {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError("vertices hold NaN or infinite coordinates")
    f = _check_faces(faces if isinstance(faces, torch.Tensor) else np.asarray(faces), v.shape[0]).numpy()
    return v.astype(np.float64), f


# ---- one step of quadric decimation ----------------------------------------------------------------


def decimate(vertices: np.ndarray, faces: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quadric edge collapse of a triangle mesh to about V / factor vertices.

    ``fast_simplification.simplify`` records the sequence of edge collapses (each removes one
    vertex); replaying the first V - ceil(V / factor) of them gives the vertex count asked for. A
    collapse can leave a vertex without triangles, which the replay merges away; then fewer
    collapses are replayed until the count is reached (or nearly: a few vertices may be missing).

    Args:
        vertices: (V, 3) float.
        faces: (F, 3) int.
        factor: > 1, the reduction of the vertex count.

    Returns:
        coarse vertices (Vc, 3) float64 at their quadric-optimal positions, coarse faces (Fc, 3)
        int64, and fine_to_coarse (V,) int64: the coarse vertex each fine vertex merged into
        (-1 for fine vertices that no triangle uses).
    """
    try:
        import fast_simplification
    except ImportError as err:  # pragma: no cover - it is a pinned dependency
        raise ImportError("mesh decimation needs the fast-simplification package: pip install fast-simplification") from err
    if not factor > 1:
        raise ValueError(f"a down-sampling factor must be > 1, got {factor}")
    points = np.ascontiguousarray(vertices, dtype=np.float64)
    tris = np.ascontiguousarray(faces, dtype=np.int64)
    used = np.unique(tris).size
    target = math.ceil(used / factor)
    if target < 4:
        raise ValueError(f"a mesh of {used} vertices cannot be reduced by {factor} (fewer than 4 vertices would remain)")
    needed = used - target
    collapses = np.zeros((0, 2), dtype=np.int64)
    target_faces = max(len(tris) // int(math.ceil(factor)), 2)
    while True:  # aim below the target, then keep only the collapses we need
        _, _, collapses = fast_simplification.simplify(points, tris, target_count=target_faces, return_collapses=True)
        if len(collapses) >= needed or target_faces <= 2:
            break
        target_faces = max(target_faces // 2, 2)
    count = min(needed, len(collapses))
    for _ in range(8):  # replaying merges away vertices left without triangles: collapse less until on target
        coarse, coarse_faces, fine_to_coarse = fast_simplification.replay_simplification(points, tris.astype(np.int32), collapses[:count])
        deficit = target - len(coarse)
        if deficit <= 0 or count == 0:
            break
        count = max(count - deficit, 0)
    return np.asarray(coarse, dtype=np.float64), np.asarray(coarse_faces, dtype=np.int64), np.asarray(fine_to_coarse, dtype=np.int64)


def down_sampling_matrix(fine_vertices: np.ndarray, coarse_vertices: np.ndarray, fine_to_coarse: np.ndarray) -> sp.csr_matrix:
    """D (Vc, Vf): each coarse vertex takes the value of one fine vertex.

    The fine vertex is the one nearest to the coarse vertex among those that merged into it;
    a coarse vertex that no fine vertex maps to (none should) takes the nearest fine vertex overall.

    Args:
        fine_vertices: (Vf, 3).
        coarse_vertices: (Vc, 3).
        fine_to_coarse: (Vf,) coarse index per fine vertex, -1 for none.

    Returns:
        (Vc, Vf) CSR matrix with a single 1 per row.
    """
    nc, nf = len(coarse_vertices), len(fine_vertices)
    chosen = np.full(nc, -1, dtype=np.int64)
    valid = np.flatnonzero(fine_to_coarse >= 0)
    cluster = fine_to_coarse[valid]
    dist = ((fine_vertices[valid] - coarse_vertices[cluster]) ** 2).sum(1)
    order = np.lexsort((dist, cluster))  # by cluster, nearest first
    first = np.ones(len(order), dtype=bool)
    first[1:] = cluster[order][1:] != cluster[order][:-1]
    chosen[cluster[order][first]] = valid[order][first]
    missing = np.flatnonzero(chosen < 0)
    if len(missing):
        from scipy.spatial import cKDTree

        chosen[missing] = cKDTree(fine_vertices).query(coarse_vertices[missing])[1]
    return sp.csr_matrix((np.ones(nc), (np.arange(nc), chosen)), shape=(nc, nf))


def closest_point_barycentrics(points: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Barycentric coordinates of the point of triangle (a, b, c) closest to each point.

    The region test of Ericson, "Real-Time Collision Detection" (2005), section 5.1.5, vectorised:
    the closest point is a vertex, a point on an edge or the projection inside the face, so the
    weights are >= 0 and sum to 1. Degenerate triangles fall back to their first vertex.

    Args:
        points, a, b, c: (N, 3) each (one triangle per point).

    Returns:
        (N, 3) weights w with closest point w0 a + w1 b + w2 c.
    """
    ab, ac, ap = b - a, c - a, points - a
    d1, d2 = (ab * ap).sum(1), (ac * ap).sum(1)
    bp = points - b
    d3, d4 = (ab * bp).sum(1), (ac * bp).sum(1)
    cp = points - c
    d5, d6 = (ab * cp).sum(1), (ac * cp).sum(1)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        safe = np.where(np.abs(den) > 1e-300, den, 1.0)
        return np.where(np.abs(den) > 1e-300, num / safe, 0.0)

    w = np.empty((len(points), 3))
    total = va + vb + vc
    v_in, w_in = ratio(vb, total), ratio(vc, total)
    w[:] = np.stack([1 - v_in - w_in, v_in, w_in], 1)  # inside the face
    # Later assignments win, so regions go from the last test of the sequential algorithm to the first.
    t = ratio(d4 - d3, (d4 - d3) + (d5 - d6))
    region = (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0)
    w[region] = np.stack([np.zeros_like(t), 1 - t, t], 1)[region]  # edge bc
    t = ratio(d2, d2 - d6)
    region = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
    w[region] = np.stack([1 - t, np.zeros_like(t), t], 1)[region]  # edge ac
    w[(d6 >= 0) & (d5 <= d6)] = (0.0, 0.0, 1.0)  # vertex c
    t = ratio(d1, d1 - d3)
    region = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
    w[region] = np.stack([1 - t, t, np.zeros_like(t)], 1)[region]  # edge ab
    w[(d3 >= 0) & (d4 <= d3)] = (0.0, 1.0, 0.0)  # vertex b
    w[(d1 <= 0) & (d2 <= 0)] = (1.0, 0.0, 0.0)  # vertex a
    w = np.clip(np.nan_to_num(w, nan=0.0), 0.0, 1.0)
    sums = w.sum(1, keepdims=True)
    w = np.where(sums > 0, w / np.where(sums > 0, sums, 1.0), np.array([1.0, 0.0, 0.0]))
    return w


def up_sampling_matrix(fine_vertices: np.ndarray, coarse_vertices: np.ndarray, coarse_faces: np.ndarray,
                       candidates: int = 8) -> sp.csr_matrix:
    """U (Vf, Vc): each fine vertex as barycentric weights on its nearest coarse triangle.

    For each fine vertex the candidate triangles are the ``candidates`` triangles with the nearest
    centroids plus all triangles around the nearest coarse vertex; the exact point-triangle distance
    picks the nearest, and the barycentric coordinates of the closest point on it are the weights.

    Args:
        fine_vertices: (Vf, 3).
        coarse_vertices: (Vc, 3).
        coarse_faces: (Fc, 3).
        candidates: how many triangles by centroid distance to test per fine vertex.

    Returns:
        (Vf, Vc) CSR matrix, non-negative, rows summing to 1.
    """
    from scipy.spatial import cKDTree

    nf, nc = len(fine_vertices), len(coarse_vertices)
    if len(coarse_faces) == 0:
        raise ValueError("the coarse mesh has no triangles")
    corners = coarse_vertices[coarse_faces]  # (Fc, 3, 3)
    k = min(candidates, len(coarse_faces))
    _, by_centroid = cKDTree(corners.mean(1)).query(fine_vertices, k=k)
    by_centroid = by_centroid.reshape(nf, k)
    # Triangles around each coarse vertex, padded with -1 to the largest ring.
    owner = coarse_faces.reshape(-1)
    tri_of = np.repeat(np.arange(len(coarse_faces)), 3)
    order = np.argsort(owner, kind="stable")
    owner, tri_of = owner[order], tri_of[order]
    counts = np.bincount(owner, minlength=nc)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    ring = np.full((nc, max(int(counts.max()), 1)), -1, dtype=np.int64)
    ring[owner, np.arange(len(owner)) - starts[owner]] = tri_of
    _, nearest_vertex = cKDTree(coarse_vertices).query(fine_vertices)
    cand = np.concatenate([by_centroid, ring[nearest_vertex]], axis=1)  # (Vf, k + ring)
    valid = cand >= 0
    cand = np.where(valid, cand, by_centroid[:, :1])
    flat = cand.reshape(-1)
    points = np.repeat(fine_vertices, cand.shape[1], axis=0)
    tri = corners[flat]
    w = closest_point_barycentrics(points, tri[:, 0], tri[:, 1], tri[:, 2])
    closest = (w[:, :, None] * tri).sum(1)
    dist = ((points - closest) ** 2).sum(1).reshape(nf, -1)
    best = dist.argmin(1)
    rows = np.arange(nf)
    chosen_w = w.reshape(nf, -1, 3)[rows, best]  # (Vf, 3)
    chosen_t = coarse_faces[cand[rows, best]]  # (Vf, 3)
    matrix = sp.csr_matrix((chosen_w.reshape(-1), (np.repeat(rows, 3), chosen_t.reshape(-1))), shape=(nf, nc))
    matrix.eliminate_zeros()
    return matrix


# ---- the hierarchy -------------------------------------------------------------------------------


def _scipy(matrix: torch.Tensor) -> sp.csr_matrix:
    i, j = matrix.indices().numpy()
    return sp.csr_matrix((matrix.values().numpy().astype(np.float64), (i, j)), shape=tuple(matrix.shape))


@dataclass(eq=False)  # identity comparison: tensors have no single truth value
class MeshHierarchy:
    """Meshes from fine (level 0) to coarse, with down- and up-sampling matrices between them.

    Attributes:
        vertices: per level, (V_l, 3) float32 positions.
        faces: per level, (F_l, 3) long triangles.
        down: per step l -> l + 1, D_l as a (V_{l+1}, V_l) sparse COO float32 tensor.
        up: per step, U_l as a (V_l, V_{l+1}) sparse COO float32 tensor.
        methods: per step, ``"subdivision"`` (exact) or ``"quadric"`` (edge collapse).
        factors: the reduction factors asked for at the quadric steps.
    """

    vertices: list[torch.Tensor]
    faces: list[torch.Tensor]
    down: list[torch.Tensor]
    up: list[torch.Tensor]
    methods: tuple[str, ...]
    factors: tuple[float, ...] = ()
    source: str = field(default="built", compare=False)

    def __post_init__(self) -> None:
        n = len(self.vertices)
        if len(self.faces) != n or len(self.down) != n - 1 or len(self.up) != n - 1 or len(self.methods) != n - 1:
            raise ValueError(f"a hierarchy of {n} levels needs {n} face lists, {n - 1} down, up matrices and methods")
        for level in range(n - 1):
            fine, coarse = self.vertices[level].shape[0], self.vertices[level + 1].shape[0]
            if tuple(self.down[level].shape) != (coarse, fine) or tuple(self.up[level].shape) != (fine, coarse):
                raise ValueError(f"step {level}: D must be ({coarse}, {fine}) and U ({fine}, {coarse}), got "
                                 f"{tuple(self.down[level].shape)} and {tuple(self.up[level].shape)}")

    # ---- construction ---------------------------------------------------------------------------
    @classmethod
    def build(cls, vertices: torch.Tensor | np.ndarray, faces: torch.Tensor | np.ndarray,
              factors: tuple[float, ...] = (4, 4, 4, 4), cache: bool = True, cache_dir: str | Path | None = None) -> "MeshHierarchy":
        """A hierarchy of any triangle mesh by quadric edge collapse, one level per factor.

        Args:
            vertices: (V, 3) positions of the finest mesh.
            faces: (F, 3) vertex indices.
            factors: vertex-count reduction per step; (4, 4, 4, 4) as in the official code of Lin et
                al. and CoMA gives 5 levels (35,709 -> 8,928 -> 2,232 -> 558 -> 140 on BFM).
            cache: read the result from the cache when present, write it there otherwise.
            cache_dir: the cache folder (default ``facelib.config.CACHE_DIR / "hierarchy"``).

        Returns:
            The hierarchy, level 0 being the input mesh.
        """
        v, f = _as_numpy_mesh(vertices, faces)
        factors = tuple(float(x) for x in factors)
        return cls._cached(v, f, 0, factors, cache, cache_dir)

    @classmethod
    def from_subdivision(cls, coarse_vertices: torch.Tensor | np.ndarray, coarse_faces: torch.Tensor | np.ndarray,
                         levels: int, factors: tuple[float, ...] = (), cache: bool = True,
                         cache_dir: str | Path | None = None) -> "MeshHierarchy":
        """The exact hierarchy of a mesh subdivided ``levels`` times, then quadric steps below it.

        Level 0 is the mesh that :func:`facelib.mesh.subdivide.subdivision_levels` (and so
        ``MorphableModel.subdivided(levels)``) makes from the coarse mesh; levels 1 .. ``levels`` are
        the intermediate subdivisions down to the coarse mesh itself, with D = selection of the first
        V rows and U = the subdivision matrix; then one quadric step per factor.

        Example: the open face model (3,141 vertices) with ``levels=2, factors=(4, 4)`` gives
        49,368 -> 12,414 -> 3,141 -> 786 -> 197 vertices.

        Args:
            coarse_vertices: (V, 3) positions of the mesh before subdivision.
            coarse_faces: (F, 3) its triangles.
            levels: how many times the mesh was subdivided (>= 0).
            factors: quadric reduction factors applied below the coarse mesh.
            cache, cache_dir: as in :meth:`build`.
        """
        if levels < 0:
            raise ValueError(f"levels must be >= 0, got {levels}")
        v, f = _as_numpy_mesh(coarse_vertices, coarse_faces)
        return cls._cached(v, f, int(levels), tuple(float(x) for x in factors), cache, cache_dir)

    @classmethod
    def _cached(cls, v: np.ndarray, f: np.ndarray, subdivisions: int, factors: tuple[float, ...], cache: bool,
                cache_dir: str | Path | None) -> "MeshHierarchy":
        path = cls.cache_path(v, f, subdivisions, factors, cache_dir)
        if cache and path.is_file():
            try:
                loaded = cls.load(path)
                loaded.source = f"cache {path}"
                return loaded
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # a damaged file: rebuild and overwrite it
                pass
        hierarchy = cls._construct(v, f, subdivisions, factors)
        if cache:
            hierarchy.save(path)
        return hierarchy

    @staticmethod
    def _construct(v: np.ndarray, f: np.ndarray, subdivisions: int, factors: tuple[float, ...]) -> "MeshHierarchy":
        # Subdivision first (coarse to fine), then the levels are listed fine to coarse.
        meshes, downs, ups = [(v, f)], [], []
        for _ in range(subdivisions):
            coarse_v, coarse_f = meshes[0]
            fine_f, matrix = subdivide(coarse_f, len(coarse_v))
            fine_v = matrix @ coarse_v
            n = len(coarse_v)
            meshes.insert(0, (fine_v, fine_f))
            downs.insert(0, sp.csr_matrix((np.ones(n), (np.arange(n), np.arange(n))), shape=(n, len(fine_v))))
            ups.insert(0, matrix.tocsr())
        methods = [SUBDIVISION] * subdivisions
        for factor in factors:
            fine_v, fine_f = meshes[-1]
            coarse_v, coarse_f, fine_to_coarse = decimate(fine_v, fine_f, factor)
            meshes.append((coarse_v, coarse_f))
            downs.append(down_sampling_matrix(fine_v, coarse_v, fine_to_coarse))
            ups.append(up_sampling_matrix(fine_v, coarse_v, coarse_f))
            methods.append(QUADRIC)
        return MeshHierarchy(
            vertices=[torch.from_numpy(m[0].astype(np.float32)) for m in meshes],
            faces=[torch.from_numpy(np.asarray(m[1], dtype=np.int64)) for m in meshes],
            down=[scipy_to_torch(d) for d in downs], up=[scipy_to_torch(u) for u in ups], methods=tuple(methods), factors=factors)

    # ---- cache ----------------------------------------------------------------------------------
    @staticmethod
    def cache_path(vertices: np.ndarray, faces: np.ndarray, subdivisions: int, factors: tuple[float, ...],
                   cache_dir: str | Path | None = None) -> Path:
        """Where the hierarchy of this mesh and these settings is cached.

        The key hashes the float32 vertices, the int64 faces, the subdivision count, the factors,
        the format version and the fast-simplification version (a new release may collapse
        differently).
        """
        digest = hashlib.sha256()
        digest.update(np.ascontiguousarray(vertices, dtype=np.float32).tobytes())
        digest.update(np.ascontiguousarray(faces, dtype=np.int64).tobytes())
        settings = {"format": HIERARCHY_FORMAT, "subdivisions": subdivisions, "factors": list(factors),
                    "fast-simplification": _simplification_version() if factors else None}
        digest.update(json.dumps(settings, sort_keys=True).encode())
        folder = Path(cache_dir) if cache_dir is not None else config.CACHE_DIR / "hierarchy"
        return folder / f"hierarchy-{digest.hexdigest()[:20]}.npz"

    def save(self, path: str | Path) -> Path:
        """Writes the hierarchy to an ``.npz`` file (atomically: a temporary file, then a rename)."""
        path = Path(path)
        arrays: dict[str, np.ndarray] = {}
        for level, (v, f) in enumerate(zip(self.vertices, self.faces)):
            arrays[f"vertices_{level}"], arrays[f"faces_{level}"] = v.numpy(), f.numpy()
        for name, mats in (("down", self.down), ("up", self.up)):
            for level, m in enumerate(mats):
                arrays[f"{name}_{level}_indices"], arrays[f"{name}_{level}_values"] = m.indices().numpy(), m.values().numpy()
        meta = {"format": HIERARCHY_FORMAT, "levels": self.num_levels, "methods": list(self.methods), "factors": list(self.factors)}
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        with atomic_open(path) as stream:  # several processes may share the cache: each its own temporary file
            np.savez(stream, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "MeshHierarchy":
        """Reads a hierarchy written by :meth:`save`."""
        with np.load(Path(path), allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            if meta.get("format") != HIERARCHY_FORMAT:
                raise ValueError(f"{path}: hierarchy format {meta.get('format')}, expected {HIERARCHY_FORMAT}")
            n = meta["levels"]
            vertices = [torch.from_numpy(data[f"vertices_{i}"]) for i in range(n)]
            faces = [torch.from_numpy(data[f"faces_{i}"]) for i in range(n)]

            def matrices(name: str) -> list[torch.Tensor]:
                out = []
                for i in range(n - 1):
                    shape = (len(vertices[i + 1]), len(vertices[i])) if name == "down" else (len(vertices[i]), len(vertices[i + 1]))
                    # save() wrote coalesced matrices: sorted, no duplicates (the bounds are still checked).
                    out.append(sparse_coo(torch.from_numpy(data[f"{name}_{i}_indices"]), torch.from_numpy(data[f"{name}_{i}_values"]),
                                          shape, is_coalesced=True))
                return out

            down, up = matrices("down"), matrices("up")
        return cls(vertices, faces, down, up, tuple(meta["methods"]), tuple(meta["factors"]), source=f"file {path}")

    # ---- use ------------------------------------------------------------------------------------
    @property
    def num_levels(self) -> int:
        return len(self.vertices)

    @property
    def num_vertices(self) -> list[int]:
        """V_l per level, finest first."""
        return [int(v.shape[0]) for v in self.vertices]

    @cached_property
    def laplacians(self) -> list[torch.Tensor]:
        """Per level, the Chebyshev Laplacian L~ = L - I (see :func:`facelib.mesh.graph.chebyshev_laplacian`)."""
        return [chebyshev_laplacian(f, v.shape[0]) for v, f in zip(self.vertices, self.faces)]

    def downsample(self, x: torch.Tensor, level: int) -> torch.Tensor:
        """Applies D_level: (V_level, C) or (B, V_level, C) -> the same with V_{level+1}."""
        return _apply(self.down[level], x, f"downsample from level {level}")

    def upsample(self, x: torch.Tensor, level: int) -> torch.Tensor:
        """Applies U_level: (V_{level+1}, C) or (B, V_{level+1}, C) -> the same with V_level."""
        return _apply(self.up[level], x, f"upsample to level {level}")

    def scipy_matrices(self) -> tuple[list[sp.csr_matrix], list[sp.csr_matrix]]:
        """(D list, U list) as SciPy CSR matrices (float64), e.g. for plotting their sparsity."""
        return [_scipy(d) for d in self.down], [_scipy(u) for u in self.up]

    def __repr__(self) -> str:
        counts = " -> ".join(f"{n:,}" for n in self.num_vertices)
        return f"MeshHierarchy({counts} vertices; steps: {', '.join(self.methods) or 'none'})"


def _apply(matrix: torch.Tensor, x: torch.Tensor, what: str) -> torch.Tensor:
    if x.ndim not in (2, 3) or x.shape[-2] != matrix.shape[1]:
        raise ValueError(f"{what}: expected (V={matrix.shape[1]}, C) or (B, V={matrix.shape[1]}, C), got {tuple(x.shape)}")
    matrix = matrix.to(device=x.device, dtype=x.dtype)
    if x.ndim == 2:
        return torch.sparse.mm(matrix, x)
    b, v, c = x.shape
    flat = x.transpose(0, 1).reshape(v, b * c)
    return torch.sparse.mm(matrix, flat).reshape(-1, b, c).transpose(0, 1)
