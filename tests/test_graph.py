"""Mesh graphs (adjacency, Laplacians, Fourier basis) and mesh hierarchies (down/up-sampling, cache)."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import eigsh

from facelib.mesh import graph
from facelib.mesh.graph import adjacency, chebyshev_laplacian, laplacian_eigenvectors, mesh_edges, normalized_laplacian, vertex_degrees
from facelib.mesh.hierarchy import MeshHierarchy, closest_point_barycentrics, decimate
from facelib.mesh.subdivide import subdivide


def grid(n: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    """An n x n grid of vertices on a gently curved sheet, two triangles per cell."""
    u, v = torch.meshgrid(torch.linspace(-1, 1, n), torch.linspace(-1, 1, n), indexing="ij")
    verts = torch.stack([u, v, 0.3 * u**2 - 0.2 * v**2], -1).reshape(-1, 3)
    idx = torch.arange(n * n).view(n, n)
    a, b, c, d = idx[:-1, :-1].reshape(-1), idx[1:, :-1].reshape(-1), idx[1:, 1:].reshape(-1), idx[:-1, 1:].reshape(-1)
    return verts, torch.cat([torch.stack([a, b, c], 1), torch.stack([a, c, d], 1)])


def dense(matrix: torch.Tensor) -> np.ndarray:
    return matrix.to_dense().double().numpy()


def scipy_matrix(matrix: torch.Tensor) -> sp.csr_matrix:
    i, j = matrix.indices().numpy()
    return sp.csr_matrix((matrix.values().double().numpy(), (i, j)), shape=tuple(matrix.shape))


def linear_field(vertices: torch.Tensor) -> torch.Tensor:
    return vertices.double() @ torch.tensor([0.3, -0.5, 0.8], dtype=torch.float64)


def round_trip_error(hierarchy: MeshHierarchy, step: int) -> float:
    """|U D f - f| / |f - mean f| for a linear function f of position on level ``step``."""
    f = linear_field(hierarchy.vertices[step])
    back = hierarchy.upsample(hierarchy.downsample(f[:, None].float(), step), step)[:, 0].double()
    return float((back - f).norm() / (f - f.mean()).norm())


@pytest.fixture(scope="module")
def open_hierarchy(open_model, tmp_path_factory):
    return MeshHierarchy.build(open_model.mean_shape, open_model.triangles, (4, 4, 4, 4), cache_dir=tmp_path_factory.mktemp("hierarchy"))


# ---- graphs ----------------------------------------------------------------------------------------


def test_adjacency_of_a_grid():
    n = 6
    verts, faces = grid(n)
    a = dense(adjacency(faces, n * n))
    assert (a == a.T).all() and (np.diag(a) == 0).all() and set(np.unique(a)) == {0.0, 1.0}
    # horizontal + vertical + one diagonal per cell
    assert a.sum() / 2 == 2 * n * (n - 1) + (n - 1) ** 2 == len(mesh_edges(faces, n * n))
    degrees = vertex_degrees(adjacency(faces, n * n)).numpy()
    assert np.array_equal(degrees, a.sum(1)) and degrees.min() == 2 and degrees.max() == 6


def test_laplacians_are_symmetric_psd_with_the_right_spectrum():
    verts, faces = grid(9)
    v = len(verts)
    lap = dense(normalized_laplacian(faces, v, torch.float64))
    assert np.abs(lap - lap.T).max() < 1e-12 and np.allclose(np.diag(lap), 1.0)
    eig = np.linalg.eigvalsh(lap)
    assert eig.min() > -1e-10 and eig.max() <= 2 + 1e-10
    assert abs(eig[0]) < 1e-10 and eig[1] > 1e-6  # one connected component
    deg = dense(adjacency(faces, v)).sum(1)
    assert np.allclose(lap @ np.sqrt(deg), 0.0)  # D^1/2 1 spans the null space
    cheb = dense(chebyshev_laplacian(faces, v, dtype=torch.float64))
    assert np.allclose(cheb, lap - np.eye(v)) and np.allclose(np.diag(cheb), 0.0)
    assert np.allclose(dense(chebyshev_laplacian(faces, v, lambda_max=1.5, dtype=torch.float64)), lap * 2 / 1.5 - np.eye(v))
    assert chebyshev_laplacian(faces, v)._nnz() == 2 * len(mesh_edges(faces, v))  # no stored diagonal zeros


def test_laplacian_of_the_open_model(open_model):
    v = open_model.num_vertices
    lap = scipy_matrix(normalized_laplacian(open_model.triangles, v, torch.float64))
    assert abs(lap - lap.T).max() < 1e-12
    top = eigsh(lap, k=1, which="LA", return_eigenvectors=False)[0]
    assert 1.0 < top <= 2.0 + 1e-9
    low = eigsh(lap, k=2, sigma=-1e-3, which="LM", return_eigenvectors=False)
    assert low.min() > -1e-9


def test_fourier_basis_is_orthonormal_and_dense_and_sparse_solvers_agree(monkeypatch):
    verts, faces = grid(14)
    v = len(verts)
    values, vectors = laplacian_eigenvectors(faces, v, k=8)
    lap = dense(normalized_laplacian(faces, v, torch.float64))
    assert values.shape == (8,) and vectors.shape == (v, 8)
    assert torch.allclose(vectors.T @ vectors, torch.eye(8, dtype=torch.float64), atol=1e-8)
    assert np.allclose(lap @ vectors.numpy(), vectors.numpy() * values.numpy(), atol=1e-8)
    assert values[0] < 1e-10 and (values.diff() >= -1e-12).all()
    monkeypatch.setattr(graph, "DENSE_EIGEN_LIMIT", 0)  # force the shift-invert eigsh path
    sparse_values, sparse_vectors = laplacian_eigenvectors(faces, v, k=8)
    assert torch.allclose(sparse_values, values, atol=1e-8)
    # Eigenvectors of simple eigenvalues agree up to the sign convention (the grid has repeated ones).
    simple = [i for i in range(8) if min(abs(values[i] - values[j]) for j in range(8) if j != i) > 1e-6]
    for i in simple:
        assert torch.allclose(sparse_vectors[:, i], vectors[:, i], atol=1e-6)


def test_graph_input_checks():
    faces = torch.tensor([[0, 1, 2], [1, 2, 3]])
    with pytest.raises(ValueError, match=r"\(F, 3\)"):
        adjacency(faces[:, :2], 4)
    with pytest.raises(ValueError, match="outside"):
        adjacency(faces, 3)
    with pytest.raises(TypeError, match="integer"):
        adjacency(faces.float(), 4)
    with pytest.raises(ValueError, match="lambda_max"):
        chebyshev_laplacian(faces, 4, lambda_max=0.0)
    with pytest.raises(ValueError, match="k must"):
        laplacian_eigenvectors(faces, 4, k=5)


# ---- hierarchies -----------------------------------------------------------------------------------


def test_closest_point_barycentrics_beat_samples_on_the_triangle():
    rng = np.random.default_rng(0)
    n = 300
    tri = rng.normal(size=(n, 3, 3))
    points = rng.normal(size=(n, 3)) * 1.5
    w = closest_point_barycentrics(points, tri[:, 0], tri[:, 1], tri[:, 2])
    assert (w >= 0).all() and np.allclose(w.sum(1), 1.0)
    best = np.linalg.norm(points - np.einsum("nk,nkd->nd", w, tri), axis=1)
    samples = rng.dirichlet(np.ones(3), size=4000)  # points spread over each triangle
    sampled = np.linalg.norm(points[:, None] - np.einsum("sk,nkd->nsd", samples, tri), axis=2).min(1)
    assert (best <= sampled + 1e-9).all()


def test_quadric_hierarchy_of_the_open_model(open_model, open_hierarchy):
    h = open_hierarchy
    counts = h.num_vertices
    assert counts[0] == open_model.num_vertices and h.num_levels == 5 and h.methods == ("quadric",) * 4
    for fine, coarse in zip(counts, counts[1:]):
        assert abs(coarse - np.ceil(fine / 4)) <= max(2, 0.02 * coarse)
    for step in range(4):
        d, u = scipy_matrix(h.down[step]), scipy_matrix(h.up[step])
        assert d.shape == (counts[step + 1], counts[step]) and u.shape == (counts[step], counts[step + 1])
        assert np.array_equal(d.getnnz(axis=1), np.ones(counts[step + 1])) and np.allclose(d.data, 1.0)
        assert len(np.unique(d.indices)) == counts[step + 1]  # distinct fine vertices
        assert (u.data >= 0).all() and np.allclose(np.asarray(u.sum(1)).ravel(), 1.0, atol=1e-6)
        assert h.faces[step + 1].max() < counts[step + 1]
    # Smooth fields survive a trip down and back up: U D f ~ f for linear f.
    assert round_trip_error(h, 0) < 0.05 and round_trip_error(h, 1) < 0.1
    # Each coarse vertex copies a fine vertex close to it.
    gap = (h.downsample(h.vertices[0], 0) - h.vertices[1]).norm(dim=1)
    edge = (h.vertices[0][h.faces[0][:, 0]] - h.vertices[0][h.faces[0][:, 1]]).norm(dim=1).mean()
    assert gap.median() < 2 * edge


def test_exact_hierarchy_of_a_subdivided_mesh(open_model, tmp_path):
    h = MeshHierarchy.from_subdivision(open_model.mean_shape, open_model.triangles, levels=1, factors=(4,), cache_dir=tmp_path)
    v = open_model.num_vertices
    tris, matrix = subdivide(open_model.triangles.numpy(), v)
    assert h.num_vertices[1] == v and h.num_vertices[0] == matrix.shape[0] == 12_414 and h.methods == ("subdivision", "quadric")
    assert torch.equal(h.faces[0], torch.from_numpy(tris)) and torch.equal(h.faces[1], open_model.triangles)
    assert torch.allclose(h.vertices[1], open_model.mean_shape)
    assert abs(scipy_matrix(h.up[0]) - matrix).max() < 1e-7
    x = torch.randn(v, 4)
    assert torch.equal(h.downsample(h.upsample(x, 0), 0), x)  # D selects the first V vertices: D U = I
    assert round_trip_error(h, 0) < 1e-6  # midpoints of a linear field are exact


def test_hierarchy_cache_round_trip(tmp_path):
    verts, faces = grid(30)
    first = MeshHierarchy.build(verts, faces, (4, 4), cache_dir=tmp_path)
    files = list(tmp_path.glob("hierarchy-*.npz"))
    assert len(files) == 1 and first.source == "built"
    again = MeshHierarchy.build(verts.double(), faces, (4, 4), cache_dir=tmp_path)  # same mesh, other dtype
    assert again.source.startswith("cache") and again.num_vertices == first.num_vertices
    for a, b in zip(first.down + first.up, again.down + again.up):
        assert torch.equal(a.indices(), b.indices()) and torch.equal(a.values(), b.values())
    assert all(torch.equal(a, b) for a, b in zip(first.faces, again.faces))
    other = MeshHierarchy.build(verts, faces, (3, 3), cache_dir=tmp_path)  # other factors: another file
    assert other.source == "built" and len(list(tmp_path.glob("hierarchy-*.npz"))) == 2
    files[0].write_bytes(b"not an npz file")  # a damaged cache file is rebuilt
    rebuilt = MeshHierarchy.build(verts, faces, (4, 4), cache_dir=tmp_path)
    assert rebuilt.source == "built" and MeshHierarchy.load(files[0]).num_vertices == first.num_vertices
    whole = files[0].read_bytes()
    files[0].write_bytes(whole[: len(whole) // 2])  # a truncated zip (an interrupted copy) is rebuilt too
    assert MeshHierarchy.build(verts, faces, (4, 4), cache_dir=tmp_path).source == "built"
    assert not list(tmp_path.glob("*.tmp"))  # no temporary files left behind


def test_hierarchy_input_checks():
    verts, faces = grid(6)
    with pytest.raises(ValueError, match="> 1"):
        decimate(verts.numpy(), faces.numpy(), 1.0)
    with pytest.raises(ValueError, match="fewer than 4"):
        MeshHierarchy.build(verts, faces, (4, 4, 4), cache=False)
    with pytest.raises(ValueError, match=r"\(V, 3\)"):
        MeshHierarchy.build(verts[:, :2], faces, cache=False)
    with pytest.raises(ValueError, match="levels"):
        MeshHierarchy.from_subdivision(verts, faces, levels=-1, cache=False)
    h = MeshHierarchy.build(*grid(20), (4,), cache=False)
    with pytest.raises(ValueError, match="downsample"):
        h.downsample(torch.zeros(5, 3), 0)
