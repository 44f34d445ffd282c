"""Re-rendering scores of a reconstructed real photo, which has no true albedo: PSNR and SSIM inside
the rendered face and M_face, and the identity distance of the rendering pasted over the photo.
"""

from __future__ import annotations

import torch

from facelib.evaluate.metrics import rerender_scores
from facelib.morphable.model import MorphableModel
from facelib.render.renderer import FaceRenderer
from facelib.texture_inputs import delit_reference, fidelity_inputs

FIDELITY_START = "de-lit, mirror-filled"
"""The name, in :func:`benchmark_methods`' tables, of where the trained "fidelity" TextureGCN starts: the
photo de-lit without M_face and mirror-filled (:func:`~facelib.texture_inputs.fidelity_inputs`); the network's
own contribution is its difference from this. It is made as the network's inputs are (its ``config.denoise`` and
``config.mirror_weight``, :func:`~facelib.texture_inputs.input_options`)."""


@torch.no_grad()
def photo_scores(model: MorphableModel, renderer: FaceRenderer, photo: torch.Tensor, params: dict[str, torch.Tensor],
                 m_face: torch.Tensor, albedos: dict[str, torch.Tensor], encoder: torch.nn.Module | None = None,
                 start_options: dict[str, float] | None = None) -> dict:
    """Re-rendering scores of albedos on a photo with no ground truth, beside the de-lit photo's (the yardstick).

    Each albedo is rendered with the fitted shape, pose and light at the crop's size and compared with
    the photo inside the rendered face and M_face (:func:`facelib.evaluate.rerender_scores`): PSNR,
    SSIM, and the identity distance between the photo and the rendering pasted over it.

    Args:
        model, renderer: the mesh the albedos live on and a renderer of it at the crop's size.
        photo: (1, S, S, 3) the aligned crop. params: the fitted unknowns. m_face: (1, S, S) M_face.
        albedos: name -> (1, V, 3) albedo; ``"photo de-lit"`` (:func:`delit_reference`, the yardstick) and
            :data:`FIDELITY_START` (where the trained network starts) are added.
        encoder: the identity network (None: no identity distance).
        start_options: how the trained network's inputs are made (:func:`~facelib.texture_inputs.input_options`),
            for :data:`FIDELITY_START` (None: the plain inputs).

    Returns:
        name -> {"psnr", "ssim"[, "identity", "identity_cosine"]} as floats (rounded), and
        "identity_network": the encoder's name.
    """
    albedos = dict(albedos) | {"photo de-lit": delit_reference(model, renderer, photo, params, m_face),
                               FIDELITY_START: fidelity_inputs(model, renderer, photo, params, **(start_options or {})).yardstick()}
    shape = model.shape(params["id"], params["exp"])
    out: dict = {}
    for name, albedo in albedos.items():
        r = renderer.render(shape, albedo, params["angles"], params["translation"], params["gamma"])
        out[name] = {k: round(float(v[0]), 4) for k, v in rerender_scores(photo, r.image, r.mask, m_face, encoder).items()}
    if encoder is not None:
        out["identity_network"] = str(getattr(encoder, "name", type(encoder).__name__))
    return out
