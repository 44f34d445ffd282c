"""Chebyshev convolutions (against a dense reference and torch_geometric), pooling, and TextureGCN."""

import pytest
import torch

from facelib.gcn import (ChebConv, HierarchyOperators, TextureGCN, TextureGCNConfig, cheb_conv_dense, parameter_count,
                         sparse_matmul, to_csr)
from facelib.gcn.sparse import transpose_csr
from facelib.mesh.graph import chebyshev_laplacian, mesh_edges
from facelib.mesh.hierarchy import MeshHierarchy
from test_graph import grid


@pytest.fixture(scope="module")
def small_graph():
    verts, faces = grid(9)
    return faces, len(verts), chebyshev_laplacian(faces, len(verts), dtype=torch.float64)


@pytest.fixture(scope="module")
def hierarchy(open_model, tmp_path_factory):
    return MeshHierarchy.build(open_model.mean_shape, open_model.triangles, (4, 4, 4, 4), cache_dir=tmp_path_factory.mktemp("hierarchy"))


@pytest.mark.parametrize("K", [1, 2, 3, 6])
def test_chebconv_matches_the_dense_reference(small_graph, K):
    _, v, lap = small_graph
    torch.manual_seed(K)
    conv = ChebConv(4, 5, K).double()
    torch.nn.init.normal_(conv.bias)
    x = torch.randn(3, v, 4, dtype=torch.float64)
    expected = cheb_conv_dense(x, lap, conv.weight_stack(), conv.bias)
    for layout in (lap, to_csr(lap), lap.to_dense()):  # COO, CSR and dense Laplacians
        assert torch.allclose(conv(x, layout), expected, atol=1e-10)
    assert torch.allclose(conv(x[1], to_csr(lap)), expected[1], atol=1e-10)  # unbatched (V, C) input


def test_chebconv_gradients(small_graph):
    verts, faces = grid(4)
    tiny = to_csr(chebyshev_laplacian(faces, len(verts), dtype=torch.float64))
    conv = ChebConv(2, 3, K=4).double()
    x = torch.randn(2, len(verts), 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: conv(t, tiny), (x,))
    # The same gradients as the dense reference for inputs and weights.
    _, v, lap = small_graph
    x = torch.randn(2, v, 2, dtype=torch.float64, requires_grad=True)
    out = conv(x, to_csr(lap))
    grads = torch.autograd.grad(out.square().sum(), [x, *conv.parameters()])
    weight = conv.weight_stack()
    ref = cheb_conv_dense(x, lap, weight, conv.bias)
    ref_grads = torch.autograd.grad(ref.square().sum(), [x, *conv.parameters()])
    assert all(torch.allclose(a, b, atol=1e-9) for a, b in zip(grads, ref_grads))


def test_sparse_matmul_backward_uses_the_transpose():
    torch.manual_seed(0)
    m = (torch.rand(7, 5, dtype=torch.float64) * (torch.rand(7, 5) > 0.5)).to_sparse()
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    fn = lambda t: sparse_matmul(to_csr(m), t, transpose_csr(m))  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,)) and torch.autograd.gradgradcheck(fn, (x,))
    assert torch.allclose(fn(x), m.to_dense() @ x)
    # Without an added term the product starts from uninitialised memory: none of it may leak in.
    for _ in range(20):
        torch.full((7, 3), float("nan"), dtype=torch.float64)  # leave NaNs in freed blocks
        assert torch.isfinite(sparse_matmul(to_csr(m), x.detach())).all()


def test_chebconv_matches_torch_geometric(open_model):
    pyg = pytest.importorskip("torch_geometric.nn", reason="torch_geometric is a test-only dependency (pip install torch_geometric)")
    faces, v = open_model.triangles, open_model.num_vertices
    torch.manual_seed(0)
    theirs = pyg.ChebConv(5, 7, K=6, normalization="sym")
    ours = ChebConv(5, 7, K=6)
    ours.load_state_dict(theirs.state_dict())  # same parameter names and shapes
    edges = mesh_edges(faces, v)
    edge_index = torch.cat([edges, edges.flip(1)]).T
    x = torch.randn(2, v, 5, requires_grad=True)
    expected = torch.stack([theirs(x[b], edge_index, lambda_max=2.0) for b in range(2)])
    out = ours(x, to_csr(chebyshev_laplacian(faces, v)))
    assert (out - expected).abs().max() < 1e-5
    g_ours, = torch.autograd.grad(out.sum(), x)
    g_theirs, = torch.autograd.grad(expected.sum(), x)
    assert (g_ours - g_theirs).abs().max() < 1e-5


def test_chebconv_input_checks(small_graph):
    _, v, lap = small_graph
    conv = ChebConv(4, 5)
    with pytest.raises(ValueError, match=r"\(B, V, 4\)"):
        conv(torch.zeros(2, v, 3), lap.float())
    with pytest.raises(ValueError, match="Laplacian is"):
        conv(torch.zeros(2, v + 1, 4), lap.float())
    with pytest.raises(ValueError, match="K must"):
        ChebConv(4, 5, K=0)


def test_hierarchy_operators_pool_like_the_hierarchy(hierarchy):
    ops = HierarchyOperators(hierarchy)
    x = torch.randn(2, hierarchy.num_vertices[0], 3)
    down = ops.downsample(x, 0)
    assert torch.allclose(down, hierarchy.downsample(x, 0), atol=1e-6)
    assert torch.allclose(ops.upsample(down, 0), hierarchy.upsample(down, 0), atol=1e-6)
    with pytest.raises(IndexError, match="outside"):
        ops.downsample(down, 4)


@pytest.mark.parametrize("preset", ["official", "paper"])
def test_texture_gcn_forward_and_gradients(hierarchy, preset):
    torch.manual_seed(0)
    net = TextureGCN(hierarchy, preset)
    b, v, e = 2, hierarchy.num_vertices[0], net.config.embedding_dim
    albedo = torch.rand(b, v, 3, requires_grad=True)
    colors = torch.rand(b, v, 3, requires_grad=True)
    visibility = (torch.rand(b, v) > 0.3).float().requires_grad_(True)
    embedding = torch.randn(b, e, requires_grad=True)
    out = net(albedo, colors, visibility, embedding)
    assert out.shape == (b, v, 3) and out.min() >= 0 and out.max() <= 1
    (out * torch.randn_like(out)).sum().backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient reaches {missing}"
    for label, t in (("albedo", albedo), ("colors", colors), ("visibility", visibility), ("embedding", embedding)):
        assert t.grad is not None and t.grad.abs().sum() > 0, label
    # Hidden vertices ignore their image colour.
    hidden = visibility.detach() == 0
    assert (colors.grad[hidden] == 0).all()
    assert net.num_vertices == v and parameter_count(net) == sum(p.numel() for p in net.parameters())
    assert "total" in net.summary() and not any(k.startswith("operators") for k in net.state_dict())


def test_texture_gcn_presets_and_checks(hierarchy):
    official = TextureGCN(hierarchy, "official")
    assert official.config.embedding_dim == 3840 and TextureGCNConfig.paper().embedding_dim == 512
    assert official.combine.conv.bias is None and official.refiner.depth == 1 and not official.refiner.skips
    paper = TextureGCN(hierarchy, TextureGCNConfig.paper(embedding_dim=64))
    assert paper.refiner.depth == 4 and paper.refiner.skips
    v = hierarchy.num_vertices[0]
    ok = (torch.rand(1, v, 3), torch.rand(1, v, 3), torch.ones(1, v, 1))
    with pytest.raises(ValueError, match=r"\(B, 64\)"):
        paper(*ok, torch.zeros(1, 65))
    with pytest.raises(ValueError, match="coarse_albedo"):
        paper(torch.rand(1, v - 1, 3), *ok[1:], torch.zeros(1, 64))
    with pytest.raises(ValueError, match="batch sizes"):
        paper(*ok, torch.zeros(2, 64))
    with pytest.raises(ValueError, match="unknown TextureGCN configuration"):
        TextureGCN(hierarchy, "nope")
    shallow = MeshHierarchy.build(hierarchy.vertices[0], hierarchy.faces[0], (4, 4), cache=False)
    with pytest.raises(ValueError, match="decoder_channels needs 2"):
        TextureGCN(shallow, "official")
    # A double-precision copy runs too (the sparse buffers follow .to()).
    out = paper.double()(*(t.double() for t in ok), torch.zeros(1, 64, dtype=torch.float64))
    assert out.dtype == torch.float64


def test_residual_texture_gcn_starts_at_the_coarse_albedo_and_learns(hierarchy):
    from dataclasses import replace

    torch.manual_seed(0)
    net = TextureGCN(hierarchy, replace(TextureGCNConfig.preset("small"), residual=True))
    v = net.num_vertices
    coarse = torch.rand(2, v, 3) * 0.8 + 0.1
    colors, visible, embedding = torch.rand(2, v, 3), torch.ones(2, v), torch.randn(2, 512)
    assert torch.equal(net(coarse, colors, visible, embedding), coarse)  # an untrained residual net changes nothing
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(5):
        loss = (net(coarse, colors, visible, embedding) - colors).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = net(coarse, colors, visible, embedding)
    assert (after - coarse).abs().mean() > 1e-3  # the zero-initialised layer grew and the change with it
    assert (after - colors).abs().mean() < (coarse - colors).abs().mean()


def test_texture_gcn_preactivation_is_the_output_before_the_tanh(hierarchy):
    from dataclasses import replace

    torch.manual_seed(0)
    net = TextureGCN(hierarchy, "small")
    v = net.num_vertices
    inputs = (torch.rand(2, v, 3), torch.rand(2, v, 3), torch.ones(2, v), torch.randn(2, 512))
    z = net.preactivation(*inputs)
    assert z.shape == (2, v, 3)
    torch.testing.assert_close(net(*inputs), (torch.tanh(z) + 1) / 2)
    with pytest.raises(ValueError, match="coarse_albedo"):
        net.preactivation(torch.rand(2, v + 1, 3), *inputs[1:])
    # An ablated branch and the residual form go through the same two halves.
    no_decoder = TextureGCN(hierarchy, TextureGCNConfig.preset("small").ablated(decoder=False))
    torch.testing.assert_close(no_decoder(*inputs), (torch.tanh(no_decoder.preactivation(*inputs)) + 1) / 2)
    residual = TextureGCN(hierarchy, replace(TextureGCNConfig.preset("small"), residual=True))
    for lin in residual.combine.conv.lins:  # zero-initialised: give the change something to be
        torch.nn.init.normal_(lin.weight, std=0.1)
    expected = (inputs[0] + torch.tanh(residual.preactivation(*inputs))).clamp(0, 1)
    torch.testing.assert_close(residual(*inputs), expected)


def test_layer_shapes_follow_the_hierarchy_and_leave_no_hooks(hierarchy):
    net = TextureGCN(hierarchy, "paper")
    b, v = 1, hierarchy.num_vertices[0]
    args = (torch.rand(b, v, 3), torch.rand(b, v, 3), torch.ones(b, v, 1), torch.randn(b, net.config.embedding_dim))
    layers = net.layer_shapes(*args)
    depth = len(net.config.refiner_encoder) - 1
    refiner = [(layer, level) for branch, layer, level, _ in layers if branch == "Refiner"]
    assert [lv for layer, lv in refiner if layer == "encoder"] == list(range(depth + 1))
    assert [lv for layer, lv in refiner if layer == "decoder"] == list(range(depth - 1, -1, -1))
    assert [branch for branch, *_ in layers][-1] == "CombineNet"
    for branch, layer, level, shape in layers:
        assert shape[:2] == (b, hierarchy.num_vertices[level]), (branch, layer)
    assert layers[-1][3] == (b, v, 3)
    decoder = [(layer, level, shape) for branch, layer, level, shape in layers if branch == "Decoder"]
    assert decoder[0][:2] == ("fc", hierarchy.num_levels - 1) and decoder[-1][2] == (b, v, 3)
    assert all(not m._forward_hooks for m in net.modules())
