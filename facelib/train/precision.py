"""Mixed precision in the GCN stage's trainer: which autocast dtype, the GradScalers, what the user is told.

* On CUDA, the GCN, the identity network and the critic run under bf16 autocast (``amp="auto"``) on
  cards of compute capability 8.0 (Ampere) or later. Older cards, such as Colab's T4, train in fp32
  and are told so: cuSPARSE has no bf16 products on them, and the Chebyshev recurrence is sparse.
* Rendering stays in fp32: pixel coordinates at 224 px need more than bf16's 8 bits of mantissa.
* On the CPU the trainer runs in fp32: bf16 sparse CSR matrix products (the Chebyshev recurrence)
  are not implemented there.
* fp16 (``amp="fp16"``, CUDA only) runs with one GradScaler per optimiser, and the gradient penalty
  is taken on scaled scores (:func:`~facelib.losses.gradient_penalty`'s ``grad_scale``); bf16 has
  fp32's exponent range and needs no scaling (its scalers are disabled: they pass values through).
"""

from __future__ import annotations

import contextlib

import torch


def _native_bf16(device: torch.device) -> bool:
    """Whether this CUDA device computes in bf16 natively (compute capability 8.0, Ampere, or later)."""
    return torch.cuda.get_device_capability(device)[0] >= 8


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of the setting ``amp`` (:attr:`TrainConfig.amp`) on ``device``; None: fp32.

    "auto": bf16 on CUDA cards of Ampere or later; fp32 on older cards (announced, with the fp16
    alternative) and on the CPU. "off": fp32. "bf16", "fp16": that dtype.

    Raises:
        ValueError: "bf16" or "fp16" off CUDA, or "bf16" on a card older than Ampere.
    """
    if amp == "auto":
        if device.type != "cuda":
            return None
        if not _native_bf16(device):
            # cuSPARSE refuses bf16 below compute capability 8.0, and the Chebyshev recurrence is
            # sparse: such cards train in fp32. fp16 is offered, but has not been measured on one.
            print(f"facelib.train: {torch.cuda.get_device_name(device)} has no bf16 sparse products (they need "
                  "Ampere or later): training in fp32; amp='fp16' (--amp fp16) may be faster, untested on such a card")
            return None
        return torch.bfloat16
    if amp == "off":
        return None
    if device.type != "cuda":
        raise ValueError(f"amp={amp!r} needs CUDA: on the CPU, bf16 sparse CSR products (the Chebyshev recurrence) are not "
                         "implemented and fp16 is slow; use amp='off' or 'auto'")
    if amp == "bf16" and not _native_bf16(device):
        raise ValueError(f"amp='bf16': {torch.cuda.get_device_name(device)} has no bf16 sparse products (cuSPARSE "
                         "needs compute capability 8.0, Ampere, or later); use amp='auto' (fp32 here), 'off' or 'fp16'")
    return torch.bfloat16 if amp == "bf16" else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to ``dtype`` on ``device``'s type, or a context that does nothing for fp32 (None)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """A GradScaler for one optimiser, enabled for fp16 only (elsewhere it passes losses and steps through).

    Give each optimiser its own, so that each loss scale follows its own gradients (the critic's and
    the GCN's differ by orders of magnitude).
    """
    return torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
