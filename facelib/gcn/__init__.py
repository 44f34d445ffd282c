"""Graph convolutional networks on meshes (lesson 02): Chebyshev convolutions, mesh pooling, TextureGCN.

``ChebConv`` (with a dense reference, ``cheb_conv_dense``), residual and plain blocks, pooling by a
``MeshHierarchy``'s down/up-sampling matrices, and Lin et al.'s Refiner, Decoder and CombineNet
wrapped in ``TextureGCN``.
"""

from facelib.gcn.blocks import ChebBlock, ChebResBlock
from facelib.gcn.chebconv import ChebConv, cheb_conv_dense
from facelib.gcn.pooling import HierarchyOperators, MeshPool, MeshUnpool
from facelib.gcn.sparse import sparse_matmul, to_csr, vertexwise
from facelib.gcn.texture import CombineNet, Decoder, Refiner, TextureGCN, TextureGCNConfig, parameter_count

__all__ = [
    "ChebBlock", "ChebConv", "ChebResBlock", "CombineNet", "Decoder", "HierarchyOperators", "MeshPool", "MeshUnpool",
    "Refiner", "TextureGCN", "TextureGCNConfig", "cheb_conv_dense", "parameter_count", "sparse_matmul", "to_csr",
    "vertexwise",
]
