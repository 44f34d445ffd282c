"""A triangle mesh as a graph: edges, adjacency, degrees, Laplacians and the mesh Fourier basis.

The vertices are the graph's nodes and the triangle edges its edges (undirected, unweighted). With
the adjacency A (V x V, A_ij = 1 when i and j share an edge) and the degrees D = diag(sum_j A_ij):

    L  = I - D^-1/2 A D^-1/2                  (normalised Laplacian, eigenvalues in [0, 2])
    L~ = 2 L / lambda_max - I                 (rescaled for Chebyshev filters, spectrum in [-1, 1])

Chebyshev polynomials T_k are bounded on [-1, 1], which is why spectral graph convolutions
(Defferrard et al. 2016; CoMA, Ranjan et al. 2018) filter with T_k(L~) rather than with powers of
L. Like the official code of Lin et al. (and CoMA's ``rescale_L(L, lmax=2)``) we take lambda_max = 2,
the upper bound of the normalised Laplacian's spectrum, so no eigenvalue problem is solved and
L~ = L - I = -D^-1/2 A D^-1/2. ``torch_geometric.nn.ChebConv`` with ``normalization="sym"`` and
``lambda_max=2.0`` uses the same matrix.

All sparse results are coalesced ``torch.sparse_coo_tensor``s (easy to inspect and to convert with
``.to_sparse_csr()``, which :mod:`facelib.gcn` does for speed). They are computed with SciPy in
float64, which is several times faster than torch's sparse COO operations on a CPU.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

DENSE_EIGEN_LIMIT = 4000
"""Up to this many vertices :func:`laplacian_eigenvectors` uses a dense solver (exact, all pairs)."""


def _check_faces(faces: torch.Tensor | np.ndarray, num_vertices: int) -> torch.Tensor:
    """Returns ``faces`` as a (F, 3) long tensor after checking its shape and index range."""
    faces = torch.as_tensor(faces)
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must be (F, 3) vertex indices, got shape {tuple(faces.shape)}")
    if faces.dtype.is_floating_point or faces.dtype == torch.bool:
        raise TypeError(f"faces must hold integer vertex indices, got {faces.dtype}")
    if num_vertices <= 0:
        raise ValueError(f"num_vertices must be positive, got {num_vertices}")
    faces = faces.long()
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= num_vertices):
        raise ValueError(f"faces hold vertex indices in [{int(faces.min())}, {int(faces.max())}], outside [0, {num_vertices})")
    return faces


def sparse_coo(indices: torch.Tensor, values: torch.Tensor, shape: tuple[int, int], is_coalesced: bool = False) -> torch.Tensor:
    """A coalesced sparse COO matrix, its indices checked (the out-of-range ones raise at once).

    Args:
        indices: (2, nnz) long row and column indices (duplicates are summed).
        values: (nnz,) values.
        shape: (rows, columns).
        is_coalesced: the indices are already sorted row-major without duplicates (skips the sort).
    """
    # Opting in explicitly (locally) also keeps torch from warning that checks are "implicitly disabled".
    with torch.sparse.check_sparse_tensor_invariants(enable=True):
        if is_coalesced:
            return torch.sparse_coo_tensor(indices, values, tuple(int(n) for n in shape), is_coalesced=True)
        return torch.sparse_coo_tensor(indices, values, tuple(int(n) for n in shape)).coalesce()


def scipy_to_torch(matrix: sp.spmatrix, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A SciPy sparse matrix as a coalesced torch sparse COO tensor (no copy of the sorting work)."""
    csr = sp.csr_matrix(matrix)
    csr.sum_duplicates()  # also sorts the column indices of each row: row-major order, as coalesced COO wants
    coo = csr.tocoo()
    indices = torch.from_numpy(np.stack([coo.row, coo.col]).astype(np.int64))
    return sparse_coo(indices, torch.from_numpy(coo.data).to(dtype), coo.shape, is_coalesced=True)


def mesh_edges(faces: torch.Tensor | np.ndarray, num_vertices: int) -> torch.Tensor:
    """The undirected edges of a triangle mesh, each once.

    Args:
        faces: (F, 3) vertex indices.
        num_vertices: V; indices must lie in [0, V).

    Returns:
        (E, 2) long, rows (i, j) with i < j, sorted. E = 3V - 3 - boundary edges for a disc-like mesh.
    """
    return torch.from_numpy(_edges(_check_faces(faces, num_vertices).numpy(), num_vertices))


def _edges(faces: np.ndarray, num_vertices: int) -> np.ndarray:
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges.sort(axis=1)
    edges = edges[edges[:, 0] != edges[:, 1]]  # degenerate triangles repeat a vertex: no self loops
    keys = np.unique(edges[:, 0] * num_vertices + edges[:, 1])  # one int64 per edge: a fast, sorted unique
    return np.stack([keys // num_vertices, keys % num_vertices], 1)


def ring_mean(values: torch.Tensor, triangles: torch.Tensor) -> torch.Tensor:
    """(B, V) per-vertex values -> (B, V) the mean over each vertex and its one-ring neighbours."""
    v = values.shape[1]
    edges = mesh_edges(triangles.cpu(), v).to(values.device)
    source, target = torch.cat([edges[:, 0], edges[:, 1]]), torch.cat([edges[:, 1], edges[:, 0]])
    total = values.index_add(1, target, values[:, source])
    count = torch.ones(v, dtype=values.dtype, device=values.device).index_add(0, target, torch.ones_like(target, dtype=values.dtype))
    return total / count


def scipy_adjacency(faces: torch.Tensor | np.ndarray, num_vertices: int) -> sp.csr_matrix:
    """:func:`adjacency` as a SciPy CSR matrix (float64 0/1, symmetric, zero diagonal), for SciPy's graph
    algorithms (connected components, ring growth by products)."""
    edges = _edges(_check_faces(faces, num_vertices).numpy(), num_vertices)
    rows = np.concatenate([edges[:, 0], edges[:, 1]])
    cols = np.concatenate([edges[:, 1], edges[:, 0]])
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(num_vertices, num_vertices))


def adjacency(faces: torch.Tensor | np.ndarray, num_vertices: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The binary adjacency matrix A of the mesh graph.

    A_ij = 1 when vertices i and j share a triangle edge, else 0. A is symmetric with a zero diagonal
    (no self loops); an edge shared by two triangles still counts once.

    Args:
        faces: (F, 3) vertex indices.
        num_vertices: V (vertices that no triangle uses become isolated nodes).
        dtype: floating dtype of the values.

    Returns:
        (V, V) sparse COO tensor, coalesced, 2E stored entries.
    """
    return scipy_to_torch(scipy_adjacency(faces, num_vertices), dtype)


def vertex_degrees(adjacency_matrix: torch.Tensor) -> torch.Tensor:
    """Degrees d_i = sum_j A_ij (the number of neighbours for a binary adjacency).

    Args:
        adjacency_matrix: (V, V) sparse or dense.

    Returns:
        (V,) degrees, in the dtype of the adjacency.
    """
    if adjacency_matrix.ndim != 2 or adjacency_matrix.shape[0] != adjacency_matrix.shape[1]:
        raise ValueError(f"adjacency must be a square (V, V) matrix, got {tuple(adjacency_matrix.shape)}")
    if adjacency_matrix.is_sparse:
        return torch.sparse.sum(adjacency_matrix, dim=1).to_dense()
    return adjacency_matrix.sum(dim=1)


def _scaled_adjacency(faces: torch.Tensor | np.ndarray, num_vertices: int) -> sp.csr_matrix:
    """D^-1/2 A D^-1/2 in float64 (isolated vertices: zero rows and columns)."""
    a = scipy_adjacency(faces, num_vertices)
    deg = np.asarray(a.sum(axis=1)).ravel()
    inv_sqrt = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1.0)), 0.0)
    scale = sp.diags(inv_sqrt)
    return (scale @ a @ scale).tocsr()


def _normalized_laplacian(faces: torch.Tensor | np.ndarray, num_vertices: int) -> sp.csr_matrix:
    return (sp.identity(num_vertices, format="csr") - _scaled_adjacency(faces, num_vertices)).tocsr()


def normalized_laplacian(faces: torch.Tensor | np.ndarray, num_vertices: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The symmetric normalised graph Laplacian L = I - D^-1/2 A D^-1/2.

    L is symmetric positive semi-definite with eigenvalues in [0, 2]: 0 once per connected component
    (eigenvector D^1/2 1), 2 only for bipartite components (a triangle mesh has none). An isolated
    vertex has L_ii = 1 (its degree term is taken as zero, as torch_geometric does).

    Args:
        faces: (F, 3) vertex indices.
        num_vertices: V.
        dtype: floating dtype of the values (computed in float64, then cast).

    Returns:
        (V, V) sparse COO tensor, coalesced.
    """
    return scipy_to_torch(_normalized_laplacian(faces, num_vertices), dtype)


def chebyshev_laplacian(faces: torch.Tensor | np.ndarray, num_vertices: int, lambda_max: float = 2.0,
                        dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The rescaled Laplacian for Chebyshev filters, L~ = 2 L / lambda_max - I.

    With the default lambda_max = 2 (the official code's and CoMA's choice, and torch_geometric's
    default for ``normalization="sym"``) this is L~ = L - I = -D^-1/2 A D^-1/2: zero diagonal, entries
    -1/sqrt(d_i d_j) on edges, eigenvalues in [-1, 1].

    Args:
        faces: (F, 3) vertex indices.
        num_vertices: V.
        lambda_max: the spectrum bound that maps [0, lambda_max] onto [-1, 1]; must be positive.
        dtype: floating dtype of the values.

    Returns:
        (V, V) sparse COO tensor, coalesced, symmetric.
    """
    if not lambda_max > 0:
        raise ValueError(f"lambda_max must be positive, got {lambda_max}")
    rescaled = (2.0 / lambda_max) * _normalized_laplacian(faces, num_vertices) - sp.identity(num_vertices, format="csr")
    rescaled = sp.csr_matrix(rescaled)
    # Drop the diagonal zeros that lambda_max = 2 leaves, so the matrix has exactly the edge entries.
    rescaled.data[np.abs(rescaled.data) < 1e-12] = 0.0
    rescaled.eliminate_zeros()
    return scipy_to_torch(rescaled, dtype)


def laplacian_eigenvectors(faces: torch.Tensor | np.ndarray, num_vertices: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k lowest-frequency eigenpairs of the normalised Laplacian: the mesh Fourier basis.

    L u_i = lambda_i u_i with 0 <= lambda_1 <= ... <= lambda_k <= 2 and orthonormal u_i. A per-vertex
    signal x has the graph Fourier coefficients U^T x; keeping the first k of them low-pass filters
    it, which is what spectral graph convolutions do with learned weights.

    Small meshes (V <= ``DENSE_EIGEN_LIMIT``) use a dense symmetric solver; larger ones use
    ``scipy.sparse.linalg.eigsh`` in shift-invert mode around a small negative shift (fast and
    reliable for the low end of the spectrum). Eigenvector signs are arbitrary; we orient each one to
    have a positive dot product with a fixed pseudo-random vector, so results are reproducible.

    Args:
        faces: (F, 3) vertex indices.
        num_vertices: V.
        k: how many eigenpairs, 1 <= k < V (k <= V for the dense solver).

    Returns:
        eigenvalues (k,) float64 ascending, eigenvectors (V, k) float64 with orthonormal columns.
    """
    if not 1 <= k <= num_vertices:
        raise ValueError(f"k must lie in [1, V={num_vertices}], got {k}")
    laplacian = _normalized_laplacian(faces, num_vertices)
    if num_vertices <= DENSE_EIGEN_LIMIT:
        values, vectors = torch.linalg.eigh(torch.from_numpy(laplacian.toarray()))
        values, vectors = values[:k], vectors[:, :k]
    else:
        if k >= num_vertices - 1:
            raise ValueError(f"k={k} eigenpairs of a {num_vertices}-vertex mesh: use k < V - 1 (or a smaller mesh)")
        from scipy.sparse.linalg import eigsh

        vals, vecs = eigsh(laplacian.tocsc(), k=k, sigma=-1e-3, which="LM")
        order = np.argsort(vals)
        values, vectors = torch.from_numpy(vals[order]), torch.from_numpy(vecs[:, order])
    probe = torch.from_numpy(np.random.default_rng(0).standard_normal(num_vertices))  # fixed and generic
    signs = torch.sign(probe @ vectors)
    return values.clamp(min=0.0), vectors * torch.where(signs == 0, torch.ones_like(signs), signs)
