"""``IdentityEncoder``: FaceNet (facenet-pytorch's InceptionResnetV1), frozen, for the identity loss.

Lin et al. compare the photo and the rendered face by their FaceNet embeddings. The network is
frozen: it never trains, it stays in eval mode (its batch norms use their running statistics), and
its weights get no gradients, but gradients flow *through* it to the rendered image.

Where the weights come from, in this order:

1. ``weights=`` a local file (a state dict, as facenet-pytorch publishes it);
2. the ``FACELIB_FACENET_WEIGHTS`` environment variable;
3. facenet-pytorch's own cache, ``$TORCH_HOME/checkpoints/20180402-114759-vggface2.pt``;
4. a download of that file (``download=True``, the default), from facenet-pytorch's release;
5. only when asked for (``allow_untrained=True``): an untrained network with a fixed seed,
   announced on stdout. Its embeddings are a fixed random feature map, not an identity: the
   course uses it offline so that the code runs, and says so.

Weights are read with ``torch.load(..., weights_only=True)``: a weights file can never run code.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

FACENET_WEIGHTS_ENV = "FACELIB_FACENET_WEIGHTS"
FACENET_VGGFACE2_FILE = "20180402-114759-vggface2.pt"
"""The file name facenet-pytorch uses for its pretrained "vggface2" weights in torch's hub cache."""
FACENET_VGGFACE2_URL = "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/" + FACENET_VGGFACE2_FILE
FACENET_INPUT_SIZE = 160
EMBEDDING_DIM = 512


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
    """Frozen FaceNet embeddings of face images, differentiable with respect to the images.

    Args:
        weights: a local weights file (overrides the environment and the cache).
        download: fetch the "vggface2" weights into the cache when no local file is found.
        allow_untrained: when no weights can be had, use an untrained network (announced) instead
            of raising.
        seed: the seed of the untrained network's initialisation (so runs are reproducible).

    Attributes:
        pretrained: True when real FaceNet weights were loaded.
        source: where the weights came from, in words.
    """

    def __init__(self, weights: str | Path | None = None, download: bool = True, allow_untrained: bool = False,
                 seed: int = 0) -> None:
        super().__init__()
        from facenet_pytorch import InceptionResnetV1

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = InceptionResnetV1(pretrained=None, classify=False)
        path = Path(weights) if weights is not None else facenet_weights_path()
        if weights is None and os.environ.get(FACENET_WEIGHTS_ENV) and path is None:
            raise FaceNetWeightsError(f"{FACENET_WEIGHTS_ENV}={os.environ[FACENET_WEIGHTS_ENV]} is not a file: {_instructions()}")
        if path is None and download:
            path = self._download(allow_untrained)
        if path is not None:
            self.net.load_state_dict(load_facenet_state(path))
            self.pretrained, self.source = True, f"pretrained VGGFace2 weights from {path}"
        elif allow_untrained:
            self.pretrained, self.source = False, f"UNTRAINED (random weights, seed {seed}): no identity information"
            print(f"IdentityEncoder: no FaceNet weights found; using an untrained network as asked (allow_untrained=True). "
                  f"Its embeddings carry no identity. To use real weights: {_instructions().split(' To run')[0]}")
        else:
            raise FaceNetWeightsError(f"no FaceNet weights found: {_instructions()}")
        self.net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)

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

    @staticmethod
    def preprocess(images: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) images in [0, 1] -> (B, 3, 160, 160) as InceptionResnetV1 expects:
        resized bilinearly, then standardised as (255 x - 127.5) / 128 (facenet-pytorch's
        ``fixed_image_standardization``)."""
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be (B, H, W, 3) in [0, 1], got {tuple(images.shape)}")
        x = images.permute(0, 3, 1, 2)
        if x.shape[-2:] != (FACENET_INPUT_SIZE, FACENET_INPUT_SIZE):
            x = F.interpolate(x, size=(FACENET_INPUT_SIZE, FACENET_INPUT_SIZE), mode="bilinear", align_corners=False, antialias=True)
        return (x * 255.0 - 127.5) / 128.0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) aligned face images in [0, 1] -> (B, 512) unit-length embeddings."""
        return self.net(self.preprocess(images))
