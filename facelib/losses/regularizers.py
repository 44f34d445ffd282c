"""Priors that keep a fit or a regressor inside the space of plausible faces."""

from __future__ import annotations

import torch


def coefficient_prior(c_id: torch.Tensor, c_exp: torch.Tensor, c_tex: torch.Tensor,
                      weights: tuple[float, float, float] = (1.0, 0.8, 1.0)) -> torch.Tensor:
    """Gaussian prior on standardised 3DMM coefficients (each basis column is one standard deviation):

        L_coef = w_id ||c_id||^2 + w_exp ||c_exp||^2 + w_tex ||c_tex||^2, averaged over the batch.

    Under the PCA model c ~ N(0, I), so this is the negative log-prior up to a constant.

    Args:
        c_id, c_exp, c_tex: (B, k) coefficients.
        weights: (w_id, w_exp, w_tex).
    """
    w_id, w_exp, w_tex = weights
    return (w_id * c_id.pow(2).sum(-1) + w_exp * c_exp.pow(2).sum(-1) + w_tex * c_tex.pow(2).sum(-1)).mean()


def lighting_prior(gamma: torch.Tensor, strength: float = 0.0) -> torch.Tensor:
    """Keeps spherical-harmonics lighting close to white (Deng et al.'s gamma loss), and optionally weak:

        L_gamma = mean_k Var_c(gamma[c, k]) + strength * mean_{c,k} gamma[c, k]^2.

    Coloured light and coloured skin explain a photo equally well; the first term breaks the tie
    in favour of white light, so the colour ends up in the albedo. Bright light and bright skin are
    just as ambiguous: in a per-photo fit the light moves faster than 80 albedo coefficients, and
    without the second term a fair face comes out as a dark one under a floodlight.

    Args:
        gamma: (B, 27) SH coefficients laid out as 3 channels x 9 bands (without the ambient offset).
        strength: weight of the magnitude term (0 is Deng et al.'s loss).
    """
    per_channel = gamma.view(-1, 3, 9)
    return per_channel.var(dim=1, unbiased=False).mean() + strength * per_channel.pow(2).mean()


def albedo_variance(albedo: torch.Tensor, skin: torch.Tensor) -> torch.Tensor:
    """Deng et al.'s reflectance loss: skin albedo should be nearly uniform.

        L_var = mean over channels c of Var_{i in skin}(T_i,c)

    Shading, shadows and specular highlights are the light's business; without this term an
    unconstrained albedo (a GCN's output, or a regressor's texture coefficients) soaks them up.
    The official code of Lin et al. applies it to the GCN albedo with weight 0.01.

    Args:
        albedo: (B, V, 3) per-vertex albedo.
        skin: (V,) boolean or 0/1 mask of the skin vertices.
    """
    if albedo.ndim != 3 or albedo.shape[-1] != 3 or skin.shape != albedo.shape[1:2]:
        raise ValueError(f"albedo must be (B, V, 3) and skin (V,), got {tuple(albedo.shape)} and {tuple(skin.shape)}")
    return albedo[:, skin.bool()].var(dim=1, unbiased=False).mean()


def albedo_symmetry(albedo: torch.Tensor, mirror: torch.Tensor) -> torch.Tensor:
    """Left and right should have the same albedo (the official code's symmetry term, weight 0.5):

        L_sym = mean_i ||T_i - T_mirror(i)||_2

    It fills the hidden half of a turned face from the visible half, and it is wrong for
    asymmetric detail (a mole on one cheek), which is why its weight is small.

    Args:
        albedo: (B, V, 3) per-vertex albedo.
        mirror: (V,) index of each vertex's mirror partner (``MorphableModel.mirror``).
    """
    if albedo.ndim != 3 or mirror.shape != albedo.shape[1:2]:
        raise ValueError(f"albedo must be (B, V, 3) and mirror (V,), got {tuple(albedo.shape)} and {tuple(mirror.shape)}")
    return ((albedo - albedo[:, mirror.long()]).pow(2).sum(-1) + 1e-12).sqrt().mean()
