"""What a training step reads: its items, what the frozen networks make of them, and the coarse face.

* :meth:`TrainerInputs.items`: items by index, synthetic faces first, then photos, in the order asked
  (the sampler's, :mod:`facelib.train.sampling`).
* :meth:`TrainerInputs.frozen`: the image I (B, S, S, 3), the coarse unknowns (the regressor's, or the
  synthetic ground truth for ``coarse="truth"``), the identity network's embedding of I (the target
  of L_id) and what the Decoder reads. All frozen functions of the item: with ``config.cache``
  :meth:`TrainerInputs.step_inputs` keeps them in memory after an item's first use (exact).
* :meth:`TrainerInputs.coarse_face`: the shape S, the coarse albedo T = model.albedo(tex).clamp(0, 1),
  T rendered over I, and the image colours T_p and visibility v at the projected vertices.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from facelib.data import PhotoFolder, SyntheticFaces
from facelib.morphable import MorphableModel
from facelib.render import FaceRenderer
from facelib.train.config import TrainConfig
from facelib.train.distributed import DistContext
from facelib.train.precision import autocast
from facelib.train.sampling import StepSampler

PARAM_KEYS = ("id", "exp", "tex", "angles", "translation", "gamma")
"""The coarse stage's unknowns, as :meth:`TrainerInputs.frozen` returns them."""


class TrainerInputs:
    """The inputs part of :class:`~facelib.train.trainer.Trainer`, which sets the attributes below.

    Attributes:
        config, device, context: the run's settings, device and data-parallel context.
        sampler: the items of each step and rank.
        synthetic, photos: the data (either may be None).
        regressor: the frozen coarse stage (None for ``coarse="truth"``).
        facenet: the frozen identity network.
        model, renderer: the morphable model at the run's level, and its renderer at the run's size.
        amp_dtype: the autocast dtype of the networks (None: fp32).
    """

    config: TrainConfig
    device: torch.device
    context: DistContext
    sampler: StepSampler
    synthetic: SyntheticFaces | None
    photos: PhotoFolder | None
    regressor: nn.Module | None
    facenet: nn.Module
    model: MorphableModel
    renderer: FaceRenderer
    amp_dtype: torch.dtype | None
    _cache: dict[int, dict[str, torch.Tensor]]

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        """This rank's items of ``step``: {"image": (B, S, S, 3)} and, for synthetic-only batches, the truth."""
        return self.items(self.sampler.indices(step, self.context.rank))

    def items(self, indices: list[int]) -> dict[str, torch.Tensor]:
        """Items by index into the data (synthetic items first, then photos)."""
        n_syn = len(self.synthetic) if self.synthetic is not None else 0
        syn = [i for i in indices if i < n_syn]
        photo = [i - n_syn for i in indices if i >= n_syn]
        if not photo:
            return self.synthetic.batch(syn)
        photo_images = iter(self.photos[i][0].to(self.device) for i in photo)
        synthetic_images = iter(self.synthetic.batch(syn)["image"] if syn else ())
        # The sampler's order, synthetic and photo items interleaved as drawn.
        return {"image": torch.stack([next(synthetic_images) if i < n_syn else next(photo_images) for i in indices])}

    @torch.no_grad()
    def frozen(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """What the frozen networks make of a batch: the image, the coarse unknowns, the embeddings.

        Returns:
            {"image": (B, S, S, 3), "id", "exp", "tex", "angles", "translation", "gamma" (the coarse
            stage's), "target": (B, E) the identity network's embedding of the image (E = 512 or 128), "embedding": (B, E) what
            the Decoder reads}.
        """
        image = batch["image"].to(self.device).float()
        if self.config.coarse == "truth":
            missing = [k for k in PARAM_KEYS if k not in batch]
            if missing:
                raise ValueError(f"coarse='truth' needs the ground truth {missing} in the batch (synthetic faces only)")
            params, feature = {k: batch[k].to(self.device).float() for k in PARAM_KEYS}, None
        else:
            params, feature = self.regressor(image, return_features=True)
            params = {k: v.float() for k, v in params.items()}
        with autocast(self.device, self.amp_dtype):
            target = self.facenet(image).float()
        embedding = torch.cat([feature.float(), target], 1) if self.config.embedding == "regressor+facenet" else target
        return {"image": image, **params, "target": target, "embedding": embedding}

    def step_inputs(self, step: int) -> dict[str, torch.Tensor]:
        """:meth:`frozen` of this rank's items of ``step``, from the cache where ``config.cache`` allows."""
        indices = self.sampler.indices(step, self.context.rank)
        if not self.config.cache:
            return self.frozen(self.items(indices))
        missing = sorted({i for i in indices if i not in self._cache})
        if missing:
            fresh = self.frozen(self.items(missing))
            for k, i in enumerate(missing):
                self._cache[i] = {key: value[k] for key, value in fresh.items()}
        return {key: torch.stack([self._cache[i][key] for i in indices]) for key in self._cache[indices[0]]}

    @torch.no_grad()
    def coarse_face(self, inputs: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, Any, Any]:
        """The coarse face of :meth:`frozen`'s output and what the GCN reads from it.

        Returns:
            (params, shape (B, V, 3), coarse albedo T (B, V, 3) in [0, 1], its rendering over the image,
            :class:`~facelib.render.sample.VertexSamples` T_p and visibility).
        """
        params = {k: inputs[k] for k in PARAM_KEYS}
        shape = self.model.shape(params["id"], params["exp"])
        coarse = self.model.albedo(params["tex"]).clamp(0, 1)
        rendering = self.renderer.render(shape, coarse, params["angles"], params["translation"], params["gamma"])
        return params, shape, coarse, rendering, self.renderer.sample_colors(inputs["image"], rendering)
