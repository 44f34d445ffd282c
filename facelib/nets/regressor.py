"""``Regressor``: the paper's stage 1, a CNN from an aligned face to 3DMM coefficients, pose and light.

Lin et al. (after Deng et al. 2019) regress the coarse face with a ResNet: an aligned 224 x 224 crop
goes in, the coefficient vector comes out (identity, expression, albedo, three Euler angles, the
translation, 27 SH lighting coefficients). The per-image fit (:mod:`facelib.fit`) then starts from
this prediction instead of the mean face, and the Decoder GCN reads the regressor's pooled feature
(the official code feeds it the 2048-d pool5 of a ResNet-50).

Design:

* The backbone is a torchvision ResNet ("resnet10" = ``ResNet(BasicBlock, [1, 1, 1, 1])``,
  "resnet18", "resnet50"), with global average pooling. ImageNet weights are used for 18/50 only
  when asked for (``pretrained=True``) and when torchvision can fetch them; otherwise the backbone
  starts from scratch and says so (never silently).
* The head is one linear layer, **initialised to zero**. Its output z is scaled per group by fixed
  constants (:data:`OUTPUT_SCALES`: about one standard deviation of each unknown in the synthetic
  training data), so the head's targets are O(1), and a zero head predicts exactly
  :func:`facelib.fit.initial_params` (the mean face, frontal, centred, ambient light): an untrained
  regressor is a valid, harmless start.
* Input: (B, H, W, 3) float images in [0, 1], channels-last like everything in facelib. They are
  resized (antialiased) to ``input_size`` and standardised with ImageNet's mean and std inside.

Weights. A fresh CPU user gets usable weights without training: the repository ships a small file,
``data/weights/regressor.pt`` ("resnet10" at 112 px, fp16, 10 MB), trained on this project's
two-core CPU by ``python -m facelib train-regressor`` from the CC0 open model's synthetic faces
(:mod:`facelib.train.regressor`; the commands, their time and the benchmark numbers are in
``data/README.md`` and in the file's own ``meta``). Why ship rather than train on first use: a
useful run takes more than an hour on two CPU cores, far too long to spring on a learner who asked
for one reconstruction; a ResNet-10 at 112 px is small enough to commit and fast enough on a CPU (a
few ms per face). A GPU user retrains a bigger one (resnet18/50, 224 px, ImageNet start) with the
same command.

Mirror average. Given the caller's morphable model (``load_regressor(model=...)``, as ``reconstruct``,
``eval-regressor`` and the texture stage's pool use it), the regressor reads each face twice, the
crop and the crop flipped left to right, mirrors the second prediction back
(:class:`~facelib.morphable.mirror.CoefficientMirror`) and averages the two: the part of its error
that is not left-right symmetric cancels, for one more forward pass (``data/README.md`` has what it
gains on the benchmark). Training reads each image once.

Where :func:`load_regressor` finds weights, in this order: an explicit path, the
``FACELIB_REGRESSOR_WEIGHTS`` environment variable, the bundled file
(``facelib.config.DATA_DIR / "weights" / "regressor.pt"``). Files are read with
``torch.load(weights_only=True)``: a weights file can never run code.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from facelib import config as settings
from facelib.files import atomic_save
from facelib.morphable.mirror import CoefficientMirror
from facelib.morphable.model import MorphableModel

REGRESSOR_WEIGHTS_ENV = "FACELIB_REGRESSOR_WEIGHTS"
WEIGHTS_FORMAT = "facelib-regressor-1"
"""The ``format`` entry of a regressor weights file (bumped when the file layout changes)."""
ARCHS = ("resnet10", "resnet18", "resnet50")
GROUPS = ("id", "exp", "tex", "angles", "translation", "gamma")
"""The output groups, in the head's order; the dict layout of :func:`facelib.fit.initial_params`."""
TRAIN_COMMAND = "python -m facelib train-regressor"
MIRROR_AVERAGED = "averaged with the mirror image"
"""How a regressor that averages each face with its mirror image (:meth:`Regressor.average_mirror`) is
described in messages, ``reconstruct``'s summary and the trainer's record of its coarse stage."""

OUTPUT_SCALES: dict[str, tuple[float, ...] | float] = {
    "id": 1.0, "exp": 0.8, "tex": 1.0,
    "angles": (0.15, 0.6, 0.1),         # pitch, yaw, roll in radians: about the std of SyntheticConfig's uniform ranges
    "translation": (0.05, 0.05, 0.35),  # x, y, z in model units (decimetres)
    "gamma": 0.2,
}
"""Fixed per-group output scales: param = scale * z, with z the head's output (targets are O(1))."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class RegressorWeightsError(RuntimeError):
    """Regressor weights could not be found or used; the message says what to do."""


def default_weights_path() -> Path:
    """The bundled weights file: ``DATA_DIR / "weights" / "regressor.pt"``."""
    return settings.DATA_DIR / "weights" / "regressor.pt"


def _instructions() -> str:
    return (f"train one with `{TRAIN_COMMAND}` (about half an hour on two CPU cores; see data/README.md), or point "
            f"{REGRESSOR_WEIGHTS_ENV} at a regressor weights file, or pass weights=PATH; to start from the mean face instead, "
            "pass allow_untrained=True (reconstruct: --no-regressor)")


def _backbone(arch: str, pretrained: bool) -> tuple[nn.Module, int, str]:
    """A torchvision ResNet without its classifier: (network, feature width, where its weights came from)."""
    from torchvision.models import resnet
    from torchvision.models.resnet import BasicBlock, ResNet

    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
    source = "random initialisation (from scratch)"
    if arch == "resnet10":
        net = ResNet(BasicBlock, [1, 1, 1, 1])
        if pretrained:
            print("Regressor: torchvision has no ImageNet weights for resnet10; training it from scratch")
    else:
        net = getattr(resnet, arch)()
        if pretrained:
            weights = {"resnet18": resnet.ResNet18_Weights.IMAGENET1K_V1, "resnet50": resnet.ResNet50_Weights.IMAGENET1K_V2}[arch]
            try:
                net.load_state_dict(weights.get_state_dict(progress=True))
                source = f"ImageNet weights ({weights})"
            except Exception as err:  # offline: URLError; a damaged download: RuntimeError
                print(f"Regressor: could not get ImageNet weights for {arch} ({type(err).__name__}: {err}); "
                      "starting it from scratch instead")
    width = net.fc.in_features
    net.fc = nn.Identity()  # the ResNet's own avgpool + flatten stay: forward gives the pooled feature
    return net, width, source


class Regressor(nn.Module):
    """A ResNet from aligned faces to the morphable model's unknowns (zero head: the mean face).

    Args:
        layout: the model's coefficient layout (``model.layout``): n_id, n_exp, n_tex.
        arch: "resnet10", "resnet18" or "resnet50".
        input_size: the side the images are resized to (112 on a CPU, 224 as in the paper).
        pretrained: ImageNet weights for resnet18/50 when torchvision can fetch them (announced otherwise).

    Attributes:
        sizes: group -> width, in the head's order (:data:`GROUPS`).
        feature_dim: width of the pooled feature (512 for resnet10/18, 2048 for resnet50).
        backbone_source: where the backbone's starting weights came from, in words.
    """

    def __init__(self, layout: Any, arch: str = "resnet10", input_size: int = 112, pretrained: bool = False) -> None:
        super().__init__()
        if input_size < 32:
            raise ValueError(f"input_size={input_size}: a ResNet needs at least 32 pixels (112 or 224 are the useful sizes)")
        self.arch, self.input_size = arch, int(input_size)
        self.sizes = {"id": int(layout.n_id), "exp": int(layout.n_exp), "tex": int(layout.n_tex), "angles": 3, "translation": 3,
                      "gamma": 27}
        self.backbone, self.feature_dim, self.backbone_source = _backbone(arch, pretrained)
        self.head = nn.Linear(self.feature_dim, sum(self.sizes.values()))
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        scales = [torch.as_tensor(OUTPUT_SCALES[name], dtype=torch.float32).expand(k) for name, k in self.sizes.items()]
        self.register_buffer("scales", torch.cat(scales), persistent=False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.source = f"backbone: {self.backbone_source}; head: zero"
        self.meta: dict[str, Any] = {}
        self.mirror_average: CoefficientMirror | None = None

    @property
    def layout(self) -> dict[str, int]:
        """The coefficient layout this regressor predicts: {"n_id", "n_exp", "n_tex"}."""
        return {"n_id": self.sizes["id"], "n_exp": self.sizes["exp"], "n_tex": self.sizes["tex"]}

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) float images in [0, 1] -> (B, 3, S, S) standardised, S = ``input_size``.

        Raises:
            ValueError: wrong shape, a non-float dtype, or values outside [0, 1].
        """
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[-1] != 3:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"images must be (B, H, W, 3) aligned faces (channels last), got {shape}")
        if not images.is_floating_point():
            raise ValueError(f"images must be float in [0, 1], got {images.dtype} (divide 8-bit images by 255)")
        if images.shape[1] < 16 or images.shape[2] < 16:
            raise ValueError(f"images of {images.shape[1]} x {images.shape[2]} pixels are too small for a face (use 64-224)")
        lo, hi = float(images.min()), float(images.max())
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise ValueError(f"images must have values in [0, 1], got [{lo:.3g}, {hi:.3g}] (divide 8-bit images by 255)")
        x = images.permute(0, 3, 1, 2).to(self.mean.dtype)
        if x.shape[-2:] != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False, antialias=True)
        return (x - self.mean) / self.std

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) in [0, 1] -> (B, F) the globally pooled backbone feature (the official code's pool5)."""
        return self.backbone(self.preprocess(images))

    def decode(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, total) raw head outputs -> the unknowns, each scaled by :data:`OUTPUT_SCALES`."""
        return dict(zip(self.sizes, (z * self.scales).split(list(self.sizes.values()), dim=1)))

    def forward(self, images: torch.Tensor, return_features: bool = False
                ) -> dict[str, torch.Tensor] | tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Predicts the unknowns of aligned faces.

        Args:
            images: (B, H, W, 3) aligned faces in [0, 1] (any size; resized to ``input_size``).
            return_features: also return the (B, F) pooled feature.

        With :attr:`mirror_average` set (:meth:`average_mirror`), each face is also predicted from
        its image flipped left to right, and the prediction is the mean of the two, the flipped
        one mirrored back (:class:`~facelib.morphable.mirror.CoefficientMirror`); the feature is
        the unflipped image's. Training leaves it off.

        Returns:
            {"id": (B, n_id), "exp": (B, n_exp), "tex": (B, n_tex), "angles": (B, 3),
            "translation": (B, 3), "gamma": (B, 27)}: the dict :func:`facelib.fit.fit` takes as
            ``init``; with ``return_features``, (that dict, (B, F)).
        """
        if self.mirror_average is None:
            feature = self.features(images)
            params = self.decode(self.head(feature))
            return (params, feature) if return_features else params
        b = images.shape[0]
        features = self.features(torch.cat([images, images.flip(2)]))
        both = self.decode(self.head(features))
        mirrored = self.mirror_average({k: v[b:] for k, v in both.items()})
        params = {k: (v[:b] + mirrored[k]) / 2 for k, v in both.items()}
        return (params, features[:b].clone()) if return_features else params  # clone: do not keep the flipped half alive

    def average_mirror(self, mirror: CoefficientMirror | None) -> "Regressor":
        """Predict each face as the mean of its image's and its mirror image's predictions, or stop.

        The flipped image is a second view of the same face for one more forward pass; averaging
        cancels the part of the network's error that is not left-right symmetric.

        Args:
            mirror: the mirror of the model this regressor predicts for (None: one pass per face).

        Returns:
            The regressor itself.

        Raises:
            ValueError: the mirror's coefficient groups are not the regressor's sizes.
        """
        if mirror is not None:
            for name in ("id", "exp", "tex"):
                if mirror.maps[name].shape[0] != self.sizes[name]:
                    raise ValueError(f"the mirror has {mirror.maps[name].shape[0]} {name} coefficients, the regressor {self.sizes[name]}")
        self.mirror_average = mirror
        return self


# ---- files ---------------------------------------------------------------------------------------
def save_regressor(path: str | Path, regressor: Regressor, **meta: Any) -> Path:
    """Writes a regressor's weights (fp16) and metadata, atomically (a temporary file, then ``os.replace``).

    Args:
        path: the file to write (parents are created).
        regressor: the network.
        **meta: training metadata to store beside the weights (steps, images seen, seconds, seed,
            metrics, ...): plain Python values (numbers, strings, lists, dicts).

    Returns:
        the path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {k: _plain(v) for k, v in meta.items()}
    state = {k: (v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu()) for k, v in regressor.state_dict().items()}
    payload = {"format": WEIGHTS_FORMAT, "arch": regressor.arch, "input_size": regressor.input_size,
               "layout": regressor.layout, "state_dict": state, **meta}
    return atomic_save(payload, path)


def _plain(value: Any) -> Any:
    """Metadata as plain Python values, so that ``torch.load(weights_only=True)`` reads it back.

    (``torch.__version__`` is a ``TorchVersion``, a str subclass that weights_only refuses; paths
    and tuples become strings and lists.)
    """
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    return str(value)


def read_regressor_file(path: str | Path) -> dict[str, Any]:
    """Reads a regressor weights file safely (``weights_only=True``) and checks its entries.

    Raises:
        RegressorWeightsError: missing, unreadable, or not a facelib regressor file.
    """
    path = Path(path)
    if not path.is_file():
        raise RegressorWeightsError(f"regressor weights file {path}: no such file; {_instructions()}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, pickle refused by weights_only, not a torch file
        # torch's own message is long and suggests weights_only=False, which a downloaded file must never get.
        first = str(err).strip().splitlines()[0].split(". ")[0][:120] if str(err).strip() else ""
        raise RegressorWeightsError(f"cannot read regressor weights from {path} ({type(err).__name__}: {first}); is it a complete "
                                    f"file written by save_regressor? {_instructions()}") from err
    if not isinstance(payload, dict) or payload.get("format") != WEIGHTS_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise RegressorWeightsError(f"{path} is not a facelib regressor weights file (format {found!r}, expected "
                                    f"{WEIGHTS_FORMAT!r}; files are written by save_regressor / {TRAIN_COMMAND}); {_instructions()}")
    missing = [k for k in ("arch", "input_size", "layout", "state_dict") if k not in payload]
    if missing:
        raise RegressorWeightsError(f"{path} lacks the entries {missing}; {_instructions()}")
    return payload


def find_regressor_weights(weights: str | Path | None = None) -> Path | None:
    """The weights file :func:`load_regressor` would read, or None when none is configured and none is bundled.

    An explicit ``weights`` or ``FACELIB_REGRESSOR_WEIGHTS`` is returned as it is (a missing file is
    then an error for :func:`load_regressor` to report, not a reason to fall back); the bundled file
    only when it exists.
    """
    return settings.find_weights(weights, REGRESSOR_WEIGHTS_ENV, default_weights_path())


def load_regressor(weights: str | Path | None = None, device: str | torch.device | None = None, allow_untrained: bool = False,
                   layout: Any = None, verbose: bool = True, model: MorphableModel | None = None) -> Regressor:
    """The regressor with trained weights, in eval mode.

    Args:
        weights: a weights file; ``None`` looks at ``FACELIB_REGRESSOR_WEIGHTS``, then the bundled file.
        device: where it runs (``None``: the CPU; it is small).
        allow_untrained: when no weights file is found, return a zero-head "resnet10" (its
            prediction is the mean face) and say so, instead of raising.
        layout: the coefficient layout the caller's model uses (``model.layout``); when given, a
            file for another layout is refused.
        verbose: print where the weights came from.
        model: the caller's morphable model. When given, its layout is checked (in place of
            ``layout``) and the regressor predicts each face as the mean of its image's and its
            mirror image's predictions (:meth:`Regressor.average_mirror`), as ``reconstruct`` and
            the shipped numbers use it; without it, one forward pass per face. Any subdivision level
            of the model gives the same maps.

    Raises:
        RegressorWeightsError: no file found (and not ``allow_untrained``), or the file cannot be
            read, was made for another layout, or lacks some of the network's weights.
    """
    device = torch.device(device) if device is not None else torch.device("cpu")
    layout = model.layout if model is not None else layout
    path = find_regressor_weights(weights)
    if weights is None and os.environ.get(REGRESSOR_WEIGHTS_ENV) and not path.is_file():
        raise RegressorWeightsError(f"{REGRESSOR_WEIGHTS_ENV}={path} is not a file; {_instructions()}")
    if path is None:
        if not allow_untrained:
            raise RegressorWeightsError(f"no regressor weights found (none given, {REGRESSOR_WEIGHTS_ENV} unset, no bundled file at "
                                        f"{default_weights_path()}); {_instructions()}")
        path = default_weights_path()
        from types import SimpleNamespace

        base = layout or SimpleNamespace(n_id=80, n_exp=64, n_tex=80)
        regressor = Regressor(base)
        regressor.source = "UNTRAINED (zero head: predicts the mean face)"
        print(f"Regressor: no weights at {path}; using an untrained regressor as asked (allow_untrained=True): it predicts the "
              f"mean face, frontal, ambient light. For trained weights: {_instructions().split('; to start')[0]}")
        return regressor.to(device).eval()  # the mean face is its own mirror: nothing to average
    payload = read_regressor_file(path)
    stored = payload["layout"]
    if layout is not None:
        wanted = {"n_id": int(layout.n_id), "n_exp": int(layout.n_exp), "n_tex": int(layout.n_tex)}
        if dict(stored) != wanted:
            raise RegressorWeightsError(f"{path} was trained for the coefficient layout {dict(stored)}, but the model uses {wanted}; "
                                        f"train one for this model with `{TRAIN_COMMAND}`")
    from types import SimpleNamespace

    try:
        regressor = Regressor(SimpleNamespace(**stored), str(payload["arch"]), int(payload["input_size"]))
    except (ValueError, TypeError) as err:
        raise RegressorWeightsError(f"{path} describes an unusable regressor ({err}); {_instructions()}") from err
    state = payload["state_dict"]
    expected = regressor.state_dict()
    missing = sorted(set(expected) - set(state))
    if missing:
        raise RegressorWeightsError(f"{path} lacks {len(missing)} of the {len(expected)} weights of a {payload['arch']} regressor "
                                    f"(e.g. {', '.join(missing[:3])}); {_instructions()}")
    wrong = [k for k in expected if tuple(state[k].shape) != tuple(expected[k].shape)]
    if wrong:
        raise RegressorWeightsError(f"{path}: {len(wrong)} weights have the wrong shape (e.g. {wrong[0]}: "
                                    f"{tuple(state[wrong[0]].shape)} instead of {tuple(expected[wrong[0]].shape)}); {_instructions()}")
    regressor.load_state_dict({k: state[k].to(expected[k].dtype) for k in expected})
    regressor.source = f"trained weights from {path}"
    regressor.meta = {k: v for k, v in payload.items() if k != "state_dict"}
    if model is not None:
        regressor.average_mirror(CoefficientMirror(model))
    if verbose:
        averaged = f", {MIRROR_AVERAGED}" if model is not None else ""
        print(f"Regressor: {payload['arch']} at {payload['input_size']} px, {regressor.source}{averaged}")
    return regressor.to(device).eval()


def count_parameters(module: nn.Module) -> int:
    """The number of parameters of a module."""
    return sum(math.prod(p.shape) for p in module.parameters())
