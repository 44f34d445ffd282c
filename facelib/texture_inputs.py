"""What the texture stage reads of a fitted photo: T, T_p with a confidence, the de-lit photo D.

The TextureGCN (:mod:`facelib.gcn`) refines the 3DMM albedo T from the photo's colours at the
projected vertices. This module computes those readings for a fitted face, used alike by the
per-image refinement (:mod:`facelib.refine`), the trainer of the shipped network
(:mod:`facelib.train.texture`) and the yardstick of the benchmark (:func:`delit_reference`):

* :func:`reliable_samples`: T_p with a confidence in [0, 1] in place of the 0/1 visibility;
* :func:`texture_inputs`: the fitted face, T, T_p and D = T_p / E (E the fitted irradiance), gated
  by M_face or by the occluder gate, optionally mirror-filled and denoised (:func:`denoise_confidence`);
* :func:`fidelity_inputs`: what the "fidelity" TextureGCN reads (mirror-filled);
* :func:`delit_reference`: T + c (D - T), the photo itself as albedo where it can be read.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from facelib.losses.masks import erode
from facelib.losses.occluders import lips_vertices, occluder_gate
from facelib.mesh.graph import ring_mean, scipy_adjacency
from facelib.morphable.model import MorphableModel
from facelib.render.lighting import unshade
from facelib.render.renderer import FaceRenderer, Rendering
from facelib.render.sample import VertexSamples, sample_image


CLIP_LEVEL = 0.985
"""A photo's reading whose brightest channel is this bright or brighter is taken as clipped (``reliable_samples``)."""


def mask_at_vertices(mask: torch.Tensor, rendering: Rendering) -> torch.Tensor:
    """(B, H, W) image mask (M_face) -> (B, V) its bilinear value at each projected vertex, in [0, 1]."""
    return sample_image(mask[..., None].to(rendering.screen), rendering.screen[..., :2])[..., 0].clamp(0, 1)


@torch.no_grad()
def reliable_samples(renderer: FaceRenderer, photo: torch.Tensor, rendering: Rendering, mask: torch.Tensor | None = None,
                     min_facing: float = 0.3, depth_tolerance: float = 0.002,
                     clip_level: float | None = CLIP_LEVEL) -> VertexSamples:
    """T_p with a confidence in [0, 1] in place of the 0/1 visibility.

    :meth:`FaceRenderer.sample_colors` calls a vertex visible when one of the four pixels around
    its projection passes a loose depth test. That is right for "can the camera see it", but the
    colour read there is often not the vertex's own: at the silhouette the bilinear sample mixes in
    the background, an eyeball 5 mm behind the eyelid passes a 1 % depth test and reads the lid,
    and at grazing angles one pixel spans many vertices. With the true geometry and light, such
    samples make up a quarter of the visible vertices and most of the sampling error (on the
    synthetic faces: mean error 0.028 for all visible vertices, 0.008 for the confident ones). So
    the confidence of vertex i is

        c_i = v_i * [all four pixels around it are inside the face, 1 pixel from its edge]
                  * [|z_buffer(p_i) - z_i| < depth_tolerance * z_i]
                  * clamp((cos theta_i - min_facing) / min_facing, 0, 1) * M_face(p_i)
                  * [max_channel T_p,i < clip_level],

    with theta_i the angle between its normal and the ray to the camera, M_face(p_i) the skin
    mask at its projection (hair, glasses and hands are not the face's albedo), and the last factor
    dropping readings at the sensor's ceiling: a clipped channel says only that the albedo is at
    least that bright, and de-lit it reads too dark (12 % of the synthetic faces' pixels are clipped;
    a highlight on a photo is not albedo either).

    Args:
        renderer: the renderer that made ``rendering``.
        photo: (B, H, W, 3) the photos.
        rendering: the fitted faces rendered at the photos' size.
        mask: (B, H, W) M_face (default: everywhere).
        min_facing: cos theta below which the confidence is 0 (it reaches 1 at twice this).
        depth_tolerance: relative depth tolerance of the tight depth test.
        clip_level: a reading whose brightest channel is at or above this is not trusted (None: all are).

    Returns:
        :class:`VertexSamples`: the colours (zero where the confidence is 0) and the confidence.
    """
    samples = renderer.sample_colors(photo, rendering)
    xy = rendering.screen[..., :2]
    depth = rendering.screen[..., 2]
    inside = sample_image(erode(rendering.mask, 1)[..., None], xy)[..., 0] > 0.999
    agrees = (sample_image(rendering.depth[..., None], xy)[..., 0] - depth).abs() < depth_tolerance * depth
    to_camera = -rendering.points
    to_camera[..., 2] += renderer.camera.distance
    cosine = (rendering.normals * torch.nn.functional.normalize(to_camera, dim=-1)).sum(-1)
    facing = ((cosine - min_facing) / min_facing).clamp(0, 1)
    skin = mask_at_vertices(mask, rendering) if mask is not None else 1.0
    confidence = samples.visibility * inside * agrees * facing * skin
    if clip_level is not None:
        confidence = confidence * (samples.colors.amax(-1) < clip_level)
    return VertexSamples(samples.colors * (confidence > 0).unsqueeze(-1), confidence)


def denoise_confidence(coarse: torch.Tensor, delit: torch.Tensor, confidence: torch.Tensor, triangles: torch.Tensor,
                       strength: float) -> torch.Tensor:
    """The confidence lowered where the de-lit photo differs from T by no more than its noise.

    The de-lit reading D differs from the 3DMM albedo T by the albedo's detail, which is sparse
    (spots, lips, stubble, brows), and by noise at every vertex: the photo's own, the sampling's,
    and the shading the fitted light gets wrong. Copying every reading adds the noise to the whole
    face (on the benchmark of 2026-12-05, the mirror-filled de-lit start's scale-invariant error over
    the face was 19 % above the 3DMM's, while in the detail band it was 14 % below; the fits, the clip
    rule and the half-weight mirror fill have since taken the former to -0.8 %, ``data/README.md``). A soft threshold of the residual
    (Donoho 1995) keeps the large departures and drops the small ones:

        r_i = c_i (D_i - T_i),   m_i = mean over i's one-ring of |r_j| (|.| the mean over RGB),
        tau = strength * median of |r_i| over the read vertices (c_i > 0) of the face,
        c_i <- c_i * max(m_i - tau, 0) / m_i,

    so that T + c (D - T) = T + r max(m - tau, 0) / m: the residual shrunk by tau, its hue kept. The
    one-ring mean decides from a neighbourhood rather than from one noisy vertex; the median is
    the noise level when detail covers less than half the face, and it follows each photo's noise.

    That premise holds for the synthetic faces, which are drawn from the 3DMM plus sparse detail,
    and not for real faces, whose departure from the 3DMM is broad: on the two bundled photos a
    network trained with it lost 1.5-2.2 dB of re-rendering and brought back the 3DMM's pale
    brows (``data/README.md``). It is an experiment (``train-texture --denoise``), off in the shipped network.

    Args:
        coarse: (B, V, 3) T. delit: (B, V, 3) D. confidence: (B, V) c in [0, 1].
        triangles: (F, 3) the mesh's triangles (for the one-ring).
        strength: tau in units of the median (0: unchanged).

    Returns:
        (B, V) the lowered confidence.
    """
    if strength < 0:
        raise ValueError(f"strength must be >= 0, got {strength}")
    if strength == 0:
        return confidence
    magnitude = (confidence.unsqueeze(-1) * (delit - coarse)).abs().mean(-1)
    smooth = ring_mean(magnitude, triangles)
    read = confidence > 0
    noise = torch.stack([row[keep].median() if keep.any() else row.new_zeros(()) for row, keep in zip(magnitude, read)])
    keep = (smooth - strength * noise[:, None]).clamp(min=0) / smooth.clamp(min=1e-6)
    return confidence * keep.clamp(max=1)


@dataclass
class TextureInputs:
    """What the texture stage reads of one fitted photo (see :func:`texture_inputs`).

    Attributes:
        shape: (B, V, 3) the fitted shape. coarse: (B, V, 3) the 3DMM albedo T in [0, 1].
        fitted: the fitted face rendered with T.
        samples: T_p with the confidence c of :func:`reliable_samples` (M_face included).
        delit: (B, V, 3) D = T_p / E, the photo divided by the fitted irradiance, brought into [0, 1] with its
            hue kept (:func:`~facelib.render.lighting.unshade`; 0 where c is 0).
        confidence: (B, V) c, also 0 where a channel of E is too dark to divide by.
    """

    shape: torch.Tensor
    coarse: torch.Tensor
    fitted: Rendering
    samples: VertexSamples
    delit: torch.Tensor
    confidence: torch.Tensor

    def yardstick(self) -> torch.Tensor:
        """T + c (D - T): the photo itself as albedo where it can be read, the 3DMM elsewhere. (B, V, 3)."""
        c = self.confidence.unsqueeze(-1)
        return (self.coarse + c * (self.delit - self.coarse)).clamp(0, 1)


@torch.no_grad()
def texture_inputs(model: MorphableModel, renderer: FaceRenderer, photo: torch.Tensor, params: dict[str, torch.Tensor],
                   mask: torch.Tensor | None = None, mirror: torch.Tensor | None = None, occluders: bool = False,
                   denoise: float = 0.0, mirror_weight: float = 1.0) -> TextureInputs:
    """The fitted face, its 3DMM albedo and the photo read at its vertices, reliable and de-lit.

    Args:
        model: the morphable model the albedo lives on. renderer: a renderer of it at the photo's size.
        photo: (B, H, W, 3) the photos. params: the fitted unknowns. mask: (B, H, W) M_face.
        mirror: (V,) each vertex's mirror partner (``model.mirror``): where a vertex cannot be read
            (hidden, grazing, occluded), its partner's reading stands in, weighted by the partner's confidence
            times ``mirror_weight`` (lambda),

                D_i <- (c_i D_i + (1 - c_i) lambda c_m(i) D_m(i)) / (c_i + (1 - c_i) lambda c_m(i)),
                c_i <- c_i + (1 - c_i) lambda c_m(i),

            a face's albedo being nearly symmetric (None: no fill).
        occluders: with a ``mask``, weigh the reading by M_face only where M_face points at an occluder
            (:func:`~facelib.losses.occluder_gate`, with the lips exempt: :func:`~facelib.losses.lips_vertices`),
            not wherever the photo is not skin-coloured.
        denoise: lower the confidence where D departs from T by no more than the photo's noise
            (:func:`denoise_confidence` with this strength, after the mirror fill; 0: not).
        mirror_weight: lambda above, in [0, 1]: how far a partner's reading is trusted in place of the vertex's own
            (only nearly symmetric: the face's own asymmetry, and the fitted light's errors, which mirror badly).

    Raises:
        ValueError: ``mirror_weight`` is outside [0, 1].
    """
    if not 0 <= mirror_weight <= 1:
        raise ValueError(f"mirror_weight must be in [0, 1], got {mirror_weight}")
    shape = model.shape(params["id"], params["exp"])
    coarse = model.albedo(params["tex"]).clamp(0, 1)
    fitted = renderer.render(shape, coarse, params["angles"], params["translation"], params["gamma"])
    gated = occluders and mask is not None
    samples = reliable_samples(renderer, photo, fitted, None if gated else mask)
    delit, lit = unshade(samples.colors, fitted.normals, params["gamma"])
    confidence = samples.visibility * lit
    if gated:
        skin = mask_at_vertices(mask, fitted)
        gate = occluder_gate(delit, coarse, confidence, skin, scipy_adjacency(model.triangles, model.num_vertices),
                             exempt=lips_vertices(model))
        confidence = confidence * gate
        read = (confidence > 0).unsqueeze(-1)
        samples = VertexSamples(samples.colors * read, samples.visibility * gate)
        delit = delit * read
    if mirror is not None:
        c, cm = confidence.unsqueeze(-1), mirror_weight * confidence[:, mirror].unsqueeze(-1)
        filled = c + (1 - c) * cm
        delit = torch.where(filled > 0, (c * delit + (1 - c) * cm * delit[:, mirror]) / filled.clamp(min=1e-6), delit)
        confidence = filled[..., 0]
    confidence = denoise_confidence(coarse, delit, confidence, model.triangles, denoise)
    return TextureInputs(shape, coarse, fitted, samples, delit, confidence)


def input_options(network: torch.nn.Module | None) -> dict[str, float]:
    """How a TextureGCN's inputs are made, as keyword arguments of :func:`fidelity_inputs`.

    Every reader of the network's inputs (``refine``, the benchmark's and the photo scores' start, a notebook
    splitting the output) makes them through this, so that they are the inputs the weights were trained on.

    Args:
        network: a :class:`~facelib.gcn.TextureGCN` (or None, or a network without a ``config``).

    Returns:
        {"denoise": its ``config.denoise``, "mirror_weight": its ``config.mirror_weight``}; for a network that
        does not read the de-lit photo, or none, the plain inputs' {"denoise": 0.0, "mirror_weight": 1.0}.
    """
    config = getattr(network, "config", None)
    if config is None or not getattr(config, "delit", False):
        return {"denoise": 0.0, "mirror_weight": 1.0}
    return {"denoise": float(config.denoise), "mirror_weight": float(config.mirror_weight)}


def fidelity_inputs(model: MorphableModel, renderer: FaceRenderer, photo: torch.Tensor, params: dict[str, torch.Tensor],
                    mask: torch.Tensor | None = None, occluders: bool = False, denoise: float = 0.0,
                    mirror_weight: float = 1.0) -> TextureInputs:
    """What the "fidelity" TextureGCN reads (in training and in :func:`refine`): :func:`texture_inputs` with the
    mirror fill at the network's ``config.mirror_weight``, denoised as the network was trained (its ``config.denoise``;
    :func:`input_options` gives both), and in training without M_face (``mask`` None).

    Without M_face, because M_face is a skin-colour model made for the fit's light: it leaves out lips,
    brows, stubble, moles and make-up, which are exactly the albedo's detail (``data/README.md`` has
    the measurements). The price: an occluder inside the face's outline (glasses frames, a fringe of
    hair) is read as albedo too; the training faces have none to learn that from. On photos, ``mask`` with
    ``occluders=True`` keeps those out and the detail in (:func:`~facelib.losses.occluder_gate`); ``mask``
    alone weighs every reading by M_face.
    """
    return texture_inputs(model, renderer, photo, params, mask, model.mirror, occluders, denoise, mirror_weight)


@torch.no_grad()
def delit_reference(model: MorphableModel, renderer: FaceRenderer, photo: torch.Tensor, params: dict[str, torch.Tensor],
                    mask: torch.Tensor | None = None) -> torch.Tensor:
    """The photo itself as albedo, where it can be read: a yardstick for texture refinement, not a method.

        T_ref = T + c (T_p / E - T)

    with T_p the photo's colours at the vertices, E the fitted irradiance and c the confidence of
    :func:`~facelib.texture_inputs.reliable_samples` (0 where a vertex is hidden, unlit or unreliable). It is
    what a refinement could reach that trusts the photo completely under the fitted shape and
    light, noise included; a refinement that keeps the fitted light cannot change the error that
    light leaves (the albedo's overall gain and tint).

    Args:
        model: the morphable model the albedo lives on.
        renderer: a renderer of ``model`` at the photo's size.
        photo: (B, H, W, 3) the photos.
        params: the fitted unknowns (:attr:`facelib.fit.FitResult.params`).
        mask: (B, H, W) M_face (default: everywhere).

    Returns:
        (B, V, 3) T_ref in [0, 1].
    """
    return texture_inputs(model, renderer, photo, params, mask).yardstick()
