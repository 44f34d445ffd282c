"""The texture networks of Lin et al. (CVPR 2020): Refiner, Decoder and CombineNet in ``TextureGCN``.

Per-vertex albedo refinement on a mesh hierarchy (level 0 = the face mesh):

    Refiner     (B, V, 7) -> (B, V, 3)   graph encoder-decoder over the hierarchy. Input per vertex:
                                         coarse 3DMM albedo (3), the image colour sampled where the
                                         vertex projects (3), and its visibility (1).
    Decoder     (B, E)    -> (B, V, 3)   a face embedding through a fully connected layer onto the
                                         coarsest level, then up-sampling graph convolutions.
    CombineNet  both      -> (B, V, 3)   concatenated on channels (6), one Chebyshev convolution, tanh.

Two configurations (:class:`TextureGCNConfig`), both with Chebyshev K = 6, ELU and no normalisation
(and a third, ``"small"``, for training on a CPU):

* ``"official"``: our reading of the official TensorFlow code (FuxiCV/3D-Face-GCNs), its residual
  model. Embedding 3840 = the regressor's 2048-d ResNet-50 pool5 feature + FaceNet's 1792-d
  pre-bottleneck feature. Decoder: FC (with ReLU) to 32 channels on the coarsest level, then
  unpool + residual block to 16, 16, 16 and 3 channels. Refiner: residual blocks 7 -> 16 at level 0,
  pool, 16 -> 32 and 32 -> 32 at level 1, unpool, 32 -> 16 and 16 -> 3 at level 0; no skip
  connections. CombineNet: Chebyshev convolution 6 -> 3 without bias, tanh. These are the narrow
  widths (the code's ``wide`` flag off); ``TextureGCNConfig.official(wide=True)`` gives its wide ones.
* ``"paper"``: our reading of the paper. What the paper states: a FaceNet embedding (512-d) decoded by
  a fully connected layer and up-sampling graph convolutions; a Refiner that is a graph
  encoder-decoder; residual Chebyshev blocks with K = 6. We read the Refiner as spanning every level
  of the hierarchy, with skip connections between matching levels (U-Net style). The channel widths
  and the bias of the combining convolution are facelib's choices, not the paper's: we did not find
  them in its text.

* ``"small"``: the paper's layout with few channels and Chebyshev K = 3, for fast-mode training on a
  CPU (the course's notebooks, the tests). Not an architecture of either source.

Ablations (``use_refiner=False`` or ``use_decoder=False`` in the configuration, both on by default):
the network is built without that branch, so it has none of its parameters, and CombineNet reads
zeros in place of the missing branch's 3 channels. The combining convolution keeps its 6 inputs,
so what is left is exactly the full model with one branch's output held at 0 ([-1, 1] colour
space: mid-grey), which is the cleanest "without X" that keeps everything else equal.

Colours enter and leave in [0, 1] (facelib's convention, as ``MorphableModel.albedo``); inside, they
are mapped to [-1, 1] as the official code does, and the tanh output is mapped back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.nn import functional as F

from facelib.gcn.blocks import BLOCKS
from facelib.gcn.chebconv import ChebConv
from facelib.gcn.pooling import HierarchyOperators, MeshPool, MeshUnpool
from facelib.mesh.hierarchy import MeshHierarchy

REFINER_INPUTS = 7
"""Refiner input channels: coarse albedo (3) + image colour at the projected vertex (3) + visibility (1)."""

DELIT_INPUTS = 3
"""Extra Refiner input channels of a ``delit`` network: the photo de-lit by the fitted light (3)."""

OFFICIAL_EMBEDDING_DIM = 2048 + 1792
PAPER_EMBEDDING_DIM = 512


@dataclass(frozen=True)
class TextureGCNConfig:
    """The architecture of a :class:`TextureGCN` (see the module docstring for the presets).

    Attributes:
        name: a label for printing.
        embedding_dim: E, the length of the face embedding the Decoder reads.
        K: Chebyshev order of every graph convolution.
        block: ``"resnet"`` (:class:`~facelib.gcn.blocks.ChebResBlock`) or ``"plain"``
            (:class:`~facelib.gcn.blocks.ChebBlock`).
        refiner_encoder: Refiner channels at levels 0, 1, ..., depth (one block per level, a pooling
            between levels); its length - 1 is the Refiner's depth.
        refiner_bottleneck: channels of extra blocks at the deepest Refiner level.
        refiner_decoder: channels at levels depth - 1, ..., 0 after each unpooling (length = depth).
        refiner_skips: concatenate the encoder's features of the same level before each decoder block.
        decoder_channels: Decoder channels: the FC output on the coarsest level L - 1, then after the
            unpooling to levels L - 2, ..., 1 (length L - 1; level 0 gets 3 channels).
        combine_bias: the CombineNet convolution has a bias.
        residual: output T' = clamp(T + CombineNet(...), 0, 1) with the CombineNet's convolution
            initialised to zero, so that an untrained network returns the 3DMM albedo T exactly and
            training learns the change. The paper's network outputs the albedo itself and must first
            learn to copy T (thousands of steps; measured: a 300-step CPU run of the "small" network
            ended at twice the 3DMM's albedo error); facelib's short runs use the residual form.
        use_refiner: build the Refiner (False: an ablation; CombineNet reads zeros in its place).
        use_decoder: build the Decoder (False: an ablation; the embedding is then ignored).
        delit: the Refiner also reads D = T_p / E, the photo's colour divided by the fitted irradiance
            E at each vertex, in [0, 1] with its hue kept (:func:`facelib.render.lighting.unshade`), and the output starts at the
            photo where the photo can be read:

                B = T + c (D - T),        T' = clamp(B + tanh(z), 0, 1),

            with c the per-vertex confidence passed as ``visibility`` (0 where hidden, unlit or not
            skin) and the CombineNet zero-initialised, so an untrained network returns B, the de-lit
            yardstick, and training learns what the photo gets wrong (shading residue, sampling
            blur, occluders that M_face let through) and what it hides. facelib's choice for the
            dataset-trained network (``"fidelity"``): a network that must first learn to pass every
            vertex's colour through its layers spends its capacity on copying; this one starts
            where copying ends.
        denoise: with ``delit``, the confidence c is first lowered where D departs from T by no
            more than the face's median departure (:func:`facelib.texture_inputs.denoise_confidence`,
            this strength in units of that median; 0, the shipped network: not). The inputs must be
            made with the same value (:func:`facelib.texture_inputs.fidelity_inputs`'s ``denoise``);
            weights files record it. An experiment (``train-texture --denoise``, ``data/README.md``):
            on the synthetic benchmark it keeps the whole-face error at the 3DMM's, and on real photos
            it drops much of what the photo shows (their departure from the 3DMM is not noise).
        mirror_weight: with ``delit``, how much a vertex that cannot be read trusts its mirror partner's reading:
            the partner's confidence times this (:func:`facelib.texture_inputs.texture_inputs`' ``mirror_weight``).
            Weights files record it; one that does not was trained with 1, the partner's reading in full. A face is
            only nearly symmetric, and what the fitted light gets wrong on one side is not on the other: on the
            benchmark, the vertices filled from their partner carried most of the network's whole-face excess
            over the 3DMM, and 0.5 took it away (``data/README.md``).
    """

    name: str
    embedding_dim: int
    K: int = 6
    block: str = "resnet"
    refiner_encoder: tuple[int, ...] = (16, 32)
    refiner_bottleneck: tuple[int, ...] = (32,)
    refiner_decoder: tuple[int, ...] = (16,)
    refiner_skips: bool = False
    decoder_channels: tuple[int, ...] = (32, 16, 16, 16)
    combine_bias: bool = False
    residual: bool = False
    use_refiner: bool = True
    use_decoder: bool = True
    delit: bool = False
    denoise: float = 0.0
    mirror_weight: float = 1.0

    @property
    def refiner_inputs(self) -> int:
        """Input channels per vertex of the Refiner (7, or 10 with ``delit``)."""
        return REFINER_INPUTS + (DELIT_INPUTS if self.delit else 0)

    @classmethod
    def official(cls, wide: bool = False) -> "TextureGCNConfig":
        """Our reading of the official code's residual model (narrow widths, or its ``wide`` ones)."""
        if wide:
            return cls("official-wide", OFFICIAL_EMBEDDING_DIM, refiner_encoder=(16, 32), refiner_bottleneck=(64,),
                       refiner_decoder=(128,), decoder_channels=(32, 64, 128, 256))
        return cls("official", OFFICIAL_EMBEDDING_DIM)

    @classmethod
    def paper(cls, embedding_dim: int = PAPER_EMBEDDING_DIM) -> "TextureGCNConfig":
        """Our reading of the paper: a 512-d FaceNet embedding, a Refiner over all five levels with skips."""
        return cls("paper", embedding_dim, refiner_encoder=(16, 32, 32, 64, 64), refiner_bottleneck=(64,),
                   refiner_decoder=(64, 32, 32, 16), refiner_skips=True, decoder_channels=(32, 16, 16, 16), combine_bias=True)

    @classmethod
    def small(cls, embedding_dim: int = PAPER_EMBEDDING_DIM) -> "TextureGCNConfig":
        """The paper's layout, narrow and with K = 3: about 68 k parameters (most in the
        Decoder's fully connected layer), for CPU training in fast mode."""
        return cls("small", embedding_dim, K=3, refiner_encoder=(8, 16, 16), refiner_bottleneck=(16,), refiner_decoder=(16, 8),
                   refiner_skips=True, decoder_channels=(8, 8, 8, 8), combine_bias=True)

    @classmethod
    def fidelity(cls, embedding_dim: int = PAPER_EMBEDDING_DIM) -> "TextureGCNConfig":
        """The paper's layout reading the de-lit photo, starting from it (``delit``, ``residual``):
        the dataset-trained network that ships with the course (:mod:`facelib.train.texture`; its recipe sets
        ``mirror_weight`` 0.5, which the shipped file records)."""
        return replace(cls.paper(embedding_dim), name="fidelity", delit=True, residual=True)

    @classmethod
    def preset(cls, name: str) -> "TextureGCNConfig":
        """``"paper"``, ``"official"``, ``"official-wide"``, ``"small"`` or ``"fidelity"``."""
        presets = {"paper": cls.paper, "official": cls.official, "official-wide": lambda: cls.official(wide=True), "small": cls.small,
                   "fidelity": cls.fidelity}
        if name not in presets:
            raise ValueError(f"unknown TextureGCN configuration {name!r}; choose one of {sorted(presets)}")
        return presets[name]()

    def with_embedding_dim(self, embedding_dim: int) -> "TextureGCNConfig":
        """The same architecture reading a different embedding (e.g. FaceNet's 512 in the official layout)."""
        return replace(self, embedding_dim=embedding_dim)

    def ablated(self, refiner: bool = True, decoder: bool = True) -> "TextureGCNConfig":
        """The same architecture with the Refiner and/or the Decoder left out (``False``: left out)."""
        parts = [name for name, keep in (("refiner", refiner), ("decoder", decoder)) if not keep]
        name = self.name + "".join(f"-no-{part}" for part in parts)
        return replace(self, name=name, use_refiner=self.use_refiner and refiner, use_decoder=self.use_decoder and decoder)

    def check(self, num_levels: int) -> None:
        """Raises ValueError when this configuration does not fit a hierarchy of ``num_levels`` levels."""
        if num_levels < 2:
            raise ValueError(f"{self.name}: TextureGCN needs a hierarchy of at least 2 levels, got {num_levels} "
                             "(build it with factors, e.g. MeshHierarchy.build(vertices, faces, factors=(4, 4, 4, 4)))")
        if self.block not in BLOCKS:
            raise ValueError(f"block must be one of {sorted(BLOCKS)}, got {self.block!r}")
        if self.K < 1 or self.embedding_dim < 1:
            raise ValueError(f"K and embedding_dim must be positive, got K={self.K}, embedding_dim={self.embedding_dim}")
        depth = len(self.refiner_encoder) - 1
        if depth < 0 or depth > num_levels - 1:
            raise ValueError(f"{self.name}: the Refiner spans {depth + 1} levels but the hierarchy has {num_levels}")
        if len(self.refiner_decoder) != depth:
            raise ValueError(f"{self.name}: refiner_decoder needs one width per level above the deepest ({depth}), got {len(self.refiner_decoder)}")
        if len(self.decoder_channels) != num_levels - 1:
            raise ValueError(f"{self.name}: decoder_channels needs {num_levels - 1} widths for a hierarchy of {num_levels} levels "
                             f"(the presets assume 5 levels, e.g. factors (4, 4, 4, 4)), got {len(self.decoder_channels)}")
        widths = (*self.refiner_encoder, *self.refiner_bottleneck, *self.refiner_decoder, *self.decoder_channels)
        if min(widths) < 1:
            raise ValueError(f"{self.name}: channel widths must be positive, got {widths}")
        if not (self.use_refiner or self.use_decoder):
            raise ValueError(f"{self.name}: leaving out both the Refiner and the Decoder leaves nothing to refine with")
        if self.denoise < 0 or (self.denoise and not self.delit):
            raise ValueError(f"{self.name}: denoise must be >= 0 and needs delit=True, got denoise={self.denoise}")
        if not 0 <= self.mirror_weight <= 1 or (self.mirror_weight != 1 and not self.delit):
            raise ValueError(f"{self.name}: mirror_weight must be in [0, 1] and needs delit=True, got {self.mirror_weight}")
        if self.delit and not self.residual:
            raise ValueError(f"{self.name}: delit=True starts the output at the de-lit photo, which needs residual=True")


class Refiner(nn.Module):
    """Graph encoder-decoder from the 7 input channels to per-vertex RGB (before CombineNet).

    Args:
        operators: the hierarchy's operators (shared with the other networks).
        config: the architecture.
        in_channels: input channels per vertex (7 in Lin et al.).
    """

    def __init__(self, operators: HierarchyOperators, config: TextureGCNConfig, in_channels: int = REFINER_INPUTS) -> None:
        super().__init__()
        config.check(operators.num_levels)
        block, k = BLOCKS[config.block], config.K
        self.operators, self.in_channels, self.skips = operators, in_channels, config.refiner_skips
        self.depth = len(config.refiner_encoder) - 1
        enc = config.refiner_encoder
        self.encoder = nn.ModuleList([block(in_channels, enc[0], k)])
        self.pools = nn.ModuleList()
        for level in range(1, self.depth + 1):
            self.pools.append(MeshPool(level - 1))
            self.encoder.append(block(enc[level - 1], enc[level], k))
        channels = enc[-1]
        self.bottleneck = nn.ModuleList()
        for width in config.refiner_bottleneck:
            self.bottleneck.append(block(channels, width, k))
            channels = width
        self.unpools, self.decoder = nn.ModuleList(), nn.ModuleList()
        for width, level in zip(config.refiner_decoder, range(self.depth - 1, -1, -1)):
            self.unpools.append(MeshUnpool(level))
            self.decoder.append(block(channels + (enc[level] if self.skips else 0), width, k))
            channels = width
        self.output = block(channels, 3, k)  # ELU-activated like every block (as the official code)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, V_0, in_channels) -> (B, V_0, 3)."""
        v = self.operators.num_vertices[0]
        if x.ndim != 3 or x.shape[1:] != (v, self.in_channels):
            raise ValueError(f"Refiner expects (B, {v}, {self.in_channels}) inputs, got {tuple(x.shape)}")
        lap = self.operators.laplacian
        x = self.encoder[0](x, lap(0))
        features = [x]
        for level in range(1, self.depth + 1):
            x = self.pools[level - 1](x, self.operators)
            x = self.encoder[level](x, lap(level))
            features.append(x)
        for block in self.bottleneck:
            x = block(x, lap(self.depth))
        for unpool, block in zip(self.unpools, self.decoder):
            x = unpool(x, self.operators)
            if self.skips:
                x = torch.cat([x, features[unpool.level]], dim=-1)
            x = block(x, lap(unpool.level))
        return self.output(x, lap(0))


class Decoder(nn.Module):
    """Face embedding -> per-vertex RGB: FC onto the coarsest level, then up-sampling graph convolutions.

    Args:
        operators: the hierarchy's operators.
        config: the architecture (``embedding_dim`` and ``decoder_channels``).
    """

    def __init__(self, operators: HierarchyOperators, config: TextureGCNConfig) -> None:
        super().__init__()
        config.check(operators.num_levels)
        block, k = BLOCKS[config.block], config.K
        self.operators, self.embedding_dim = operators, config.embedding_dim
        coarsest = operators.num_levels - 1
        self.start_vertices, self.start_channels = operators.num_vertices[coarsest], config.decoder_channels[0]
        self.fc = nn.Linear(config.embedding_dim, self.start_vertices * self.start_channels)
        nn.init.normal_(self.fc.weight, 0.0, math.sqrt(2.0 / config.embedding_dim))  # He, as the official code
        nn.init.zeros_(self.fc.bias)
        widths = (*config.decoder_channels, 3)
        self.unpools, self.blocks = nn.ModuleList(), nn.ModuleList()
        for i, level in enumerate(range(coarsest - 1, -1, -1)):
            self.unpools.append(MeshUnpool(level))
            self.blocks.append(block(widths[i], widths[i + 1], k))

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        """(B, E) -> (B, V_0, 3)."""
        if embedding.ndim != 2 or embedding.shape[1] != self.embedding_dim:
            raise ValueError(f"Decoder expects (B, {self.embedding_dim}) embeddings, got {tuple(embedding.shape)}")
        x = F.relu(self.fc(embedding)).view(-1, self.start_vertices, self.start_channels)  # ReLU: the official fc()
        for unpool, block in zip(self.unpools, self.blocks):
            x = block(unpool(x, self.operators), self.operators.laplacian(unpool.level))
        return x


class CombineNet(nn.Module):
    """tanh(ChebConv([decoded | refined])): two 3-channel colour fields -> one, in [-1, 1].

    A ``delit`` network's CombineNet also reads the photo's own evidence, [c (D - T) | c] (4 more
    channels): one Chebyshev filter of the de-lit residual is then a direct path from the photo to
    the output (a sharpening or a low-cut of what the photo says), which training finds at once,
    where the Refiner's deep path has to learn to carry every vertex's colour first.

    Args:
        operators: the hierarchy's operators (level 0's Laplacian is used).
        config: the architecture (``K``, ``combine_bias`` and ``delit``).
    """

    def __init__(self, operators: HierarchyOperators, config: TextureGCNConfig) -> None:
        super().__init__()
        self.operators = operators
        self.extra_channels = DELIT_INPUTS + 1 if config.delit else 0
        self.conv = ChebConv(6 + self.extra_channels, 3, config.K, bias=config.combine_bias)

    def preactivation(self, decoded: torch.Tensor, refined: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """(B, V_0, 3) twice (and (B, V_0, 4) ``extra`` for a ``delit`` network) -> (B, V_0, 3) before the tanh."""
        if decoded.shape != refined.shape or decoded.ndim != 3 or decoded.shape[-1] != 3:
            raise ValueError(f"CombineNet expects two (B, V, 3) tensors, got {tuple(decoded.shape)} and {tuple(refined.shape)}")
        if (extra is None) != (self.extra_channels == 0) or (extra is not None and extra.shape[-1] != self.extra_channels):
            raise ValueError(f"CombineNet expects {self.extra_channels} extra channels, got "
                             f"{None if extra is None else extra.shape[-1]}")
        parts = [decoded, refined] + ([extra] if extra is not None else [])
        return self.conv(torch.cat(parts, dim=-1), self.operators.laplacian(0))

    def forward(self, decoded: torch.Tensor, refined: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """(B, V_0, 3) twice (and ``extra``) -> (B, V_0, 3) in [-1, 1]."""
        return torch.tanh(self.preactivation(decoded, refined, extra))


class TextureGCN(nn.Module):
    """Refiner + Decoder + CombineNet on one mesh hierarchy: coarse albedo -> refined albedo.

    Args:
        hierarchy: the mesh hierarchy; level 0 is the face mesh whose vertices carry the colours.
        config: a :class:`TextureGCNConfig` or a preset name (``"paper"``, ``"official"``,
            ``"official-wide"``).

    Example::

        hierarchy = MeshHierarchy.build(model.mean_shape, model.triangles)   # factors (4, 4, 4, 4)
        net = TextureGCN(hierarchy, "paper")
        refined = net(albedo, image_colors, visibility, facenet_embedding)   # (B, V, 3) in [0, 1]
    """

    def __init__(self, hierarchy: MeshHierarchy, config: str | TextureGCNConfig = "paper") -> None:
        super().__init__()
        self.config = TextureGCNConfig.preset(config) if isinstance(config, str) else config
        self.config.check(hierarchy.num_levels)
        self.operators = HierarchyOperators(hierarchy)
        # An ablated branch is not built at all (None), so it has no parameters to train or to save.
        self.refiner = Refiner(self.operators, self.config, self.config.refiner_inputs) if self.config.use_refiner else None
        self.decoder = Decoder(self.operators, self.config) if self.config.use_decoder else None
        self.combine = CombineNet(self.operators, self.config)
        if self.config.residual:
            # Zero weights: the change starts at exactly 0; their own gradients are not zero, so it grows.
            for parameter in self.combine.parameters():
                nn.init.zeros_(parameter)

    @property
    def num_vertices(self) -> int:
        return self.operators.num_vertices[0]

    def forward(self, coarse_albedo: torch.Tensor, image_colors: torch.Tensor, visibility: torch.Tensor,
                embedding: torch.Tensor, delit: torch.Tensor | None = None) -> torch.Tensor:
        """Refines per-vertex albedo.

        Args:
            coarse_albedo: (B, V, 3) the 3DMM albedo T in [0, 1] (clamped to it, as the official code
                clips its PCA texture).
            image_colors: (B, V, 3) the image colour at each projected vertex, in [0, 1].
            visibility: (B, V, 1) or (B, V), 1 where the vertex is visible, else 0 (fractions are fine);
                the image colours of hidden vertices are zeroed (mid-grey in [-1, 1]), as the official code.
            embedding: (B, E) face embedding (E = ``config.embedding_dim``).
            delit: (B, V, 3) the photo de-lit by the fitted light, in [0, 1] where ``visibility`` > 0;
                needed by a ``config.delit`` network (``visibility`` is then the confidence c), and
                refused by any other.

        Returns:
            (B, V, 3) refined albedo T' in [0, 1].
        """
        branches = self._branches(coarse_albedo, image_colors, visibility, embedding, delit)
        if self.config.residual:
            return (self.start(coarse_albedo, visibility, delit) + self.combine(*branches)).clamp(0.0, 1.0)
        return (self.combine(*branches) + 1.0) * 0.5

    def start(self, coarse_albedo: torch.Tensor, visibility: torch.Tensor, delit: torch.Tensor | None = None) -> torch.Tensor:
        """Where a residual network's output starts: T, or with ``config.delit`` B = T + c (D - T). (B, V, 3)."""
        coarse = coarse_albedo.clamp(0.0, 1.0)
        if not self.config.delit:
            return coarse
        c = visibility.unsqueeze(-1) if visibility.ndim == 2 else visibility
        return coarse + c.clamp(0.0, 1.0) * (delit.clamp(0.0, 1.0) - coarse)

    def preactivation(self, coarse_albedo: torch.Tensor, image_colors: torch.Tensor, visibility: torch.Tensor,
                      embedding: torch.Tensor, delit: torch.Tensor | None = None) -> torch.Tensor:
        """The CombineNet's output z before its tanh.

        Per-image refinement (:func:`facelib.refine.refine`) learns its change of albedo here: a fresh
        network's tanh is saturated at some vertices and channels, and a saturated channel cannot
        follow the others, which tints the face (measured: green and magenta patches around the eyes).

        Args:
            coarse_albedo, image_colors, visibility, embedding, delit: as for :meth:`forward`.

        Returns:
            (B, V, 3) z, unbounded: :meth:`forward` returns (tanh(z) + 1) / 2, or with
            ``config.residual`` clamp(T + tanh(z), 0, 1).
        """
        return self.combine.preactivation(*self._branches(coarse_albedo, image_colors, visibility, embedding, delit))

    def _branches(self, coarse_albedo: torch.Tensor, image_colors: torch.Tensor, visibility: torch.Tensor,
                  embedding: torch.Tensor, delit: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """Checks the inputs, runs the Decoder and the Refiner: (decoded, refined), each (B, V, 3), and for a
        ``delit`` network the CombineNet's direct evidence [c (D - T) | c], (B, V, 4), in [-1, 1] colour units."""
        v = self.num_vertices
        if visibility.ndim == 2:
            visibility = visibility.unsqueeze(-1)
        for label, tensor, channels in (("coarse_albedo", coarse_albedo, 3), ("image_colors", image_colors, 3), ("visibility", visibility, 1)):
            if tensor.ndim != 3 or tensor.shape[1:] != (v, channels):
                raise ValueError(f"{label} must be (B, {v}, {channels}), got {tuple(tensor.shape)}")
            if not tensor.is_floating_point():
                raise TypeError(f"{label} must be a floating-point tensor, got {tensor.dtype}")
        if self.config.delit and (delit is None or delit.shape != coarse_albedo.shape):
            raise ValueError(f"a {self.config.name} network reads the de-lit photo: pass delit of shape {tuple(coarse_albedo.shape)} "
                             f"(facelib.render.lighting.unshade of the image colours), got "
                             f"{None if delit is None else tuple(delit.shape)}")
        if not self.config.delit and delit is not None:
            raise ValueError(f"a {self.config.name} network does not read a de-lit photo; leave delit out")
        batch = coarse_albedo.shape[0]
        if image_colors.shape[0] != batch or visibility.shape[0] != batch or embedding.shape[0] != batch:
            raise ValueError(f"batch sizes differ: albedo {batch}, image colours {image_colors.shape[0]}, "
                             f"visibility {visibility.shape[0]}, embedding {embedding.shape[0]}")
        albedo = coarse_albedo.clamp(0.0, 1.0) * 2.0 - 1.0
        colors = (image_colors * 2.0 - 1.0) * visibility
        refined = decoded = None
        if self.refiner is not None:
            features = [albedo, colors, visibility]
            if self.config.delit:
                features.append((delit.clamp(0.0, 1.0) * 2.0 - 1.0) * visibility)
            refined = self.refiner(torch.cat(features, dim=-1))
        if self.decoder is not None:
            decoded = self.decoder(embedding)
        # An ablated branch contributes zeros (see the module docstring).
        refined = torch.zeros_like(decoded) if refined is None else refined
        decoded = torch.zeros_like(refined) if decoded is None else decoded
        if self.config.delit:
            evidence = (delit.clamp(0.0, 1.0) * 2.0 - 1.0 - albedo) * visibility
            return decoded, refined, torch.cat([evidence, visibility], dim=-1)
        return decoded, refined

    def layer_shapes(self, coarse_albedo: torch.Tensor, image_colors: torch.Tensor, visibility: torch.Tensor,
                     embedding: torch.Tensor, delit: torch.Tensor | None = None) -> list[tuple[str, str, int, tuple[int, ...]]]:
        """What each layer outputs in one forward pass, in call order (to draw the networks, lesson 02).

        Args:
            coarse_albedo, image_colors, visibility, embedding, delit: as for :meth:`forward`.

        Returns:
            (branch, layer, mesh level, output shape) per layer: branch "Refiner", "Decoder" or
            "CombineNet"; layer "encoder", "bottleneck", "decoder", "output", "fc" or "conv"; shapes
            (B, V_level, C).
        """
        records: list[tuple[str, str, int, tuple[int, ...]]] = []
        levels = {v: level for level, v in enumerate(self.operators.num_vertices)}

        def recorder(branch: str, layer: str, shape_of=lambda out: tuple(out.shape)):
            def hook(module, inputs, output):
                shape = shape_of(output)
                records.append((branch, layer, levels[shape[1]], shape))
            return hook

        hooks = []
        if self.refiner is not None:
            for layer in ("encoder", "bottleneck", "decoder"):
                hooks += [m.register_forward_hook(recorder("Refiner", layer)) for m in getattr(self.refiner, layer)]
            hooks.append(self.refiner.output.register_forward_hook(recorder("Refiner", "output")))
        if self.decoder is not None:
            d = self.decoder
            hooks.append(d.fc.register_forward_hook(recorder("Decoder", "fc", lambda out: (out.shape[0], d.start_vertices, d.start_channels))))
            hooks += [m.register_forward_hook(recorder("Decoder", "decoder")) for m in d.blocks]
        hooks.append(self.combine.conv.register_forward_hook(recorder("CombineNet", "conv")))
        try:
            with torch.no_grad():
                self(coarse_albedo, image_colors, visibility, embedding, delit)
        finally:
            for h in hooks:
                h.remove()
        return records

    def summary(self) -> str:
        """Parameter counts per network, and the hierarchy's sizes."""
        rows = [f"TextureGCN ({self.config.name}, K={self.config.K}, {self.config.block} blocks, embedding {self.config.embedding_dim})",
                f"  mesh levels: {self.operators.extra_repr()}"]
        for name in ("refiner", "decoder", "combine"):
            part = getattr(self, name)
            rows.append(f"  {name:<8} {parameter_count(part):>12,} parameters" if part is not None else f"  {name:<8} {'(left out)':>12}")
        rows.append(f"  {'total':<8} {parameter_count(self):>12,} parameters")
        return "\n".join(rows)


def parameter_count(module: nn.Module, trainable_only: bool = True) -> int:
    """The number of (trainable) parameters of a module, shared ones counted once."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
