"""Colour differences as people see them: sRGB to CIELAB, the CIEDE2000 difference, and skin-tone bands.

A skin tone is judged in CIELAB, not in RGB: equal RGB steps are not equal steps to the eye. The
coarse stage's skin-tone check (:func:`facelib.evaluate.regressor.evaluate_regressor`) compares the
mean colour of the re-rendered skin with the photo's by the CIEDE2000 difference (Sharma, Wu and
Dalal 2005), on which about 1 is a just-noticeable difference and 5 a clearly different shade, and it
groups faces by the individual typology angle of their true albedo,

    ITA = atan2(L* - 50, b*) in degrees,

the dermatologists' skin-tone scale (Chardon et al. 1991): above 55 very light, 41-55 light,
28-41 intermediate, 10-28 tan, -30-10 brown, below -30 dark.
"""

from __future__ import annotations

import math

import torch

_SRGB_TO_XYZ = ((0.4124564, 0.3575761, 0.1804375), (0.2126729, 0.7151522, 0.0721750), (0.0193339, 0.1191920, 0.9503041))
_WHITE_D65 = (0.95047, 1.0, 1.08883)

SKIN_TONE_BANDS: tuple[tuple[str, float, float], ...] = (
    ("very light", 55.0, math.inf), ("light", 41.0, 55.0), ("intermediate", 28.0, 41.0),
    ("tan", 10.0, 28.0), ("brown", -30.0, 10.0), ("dark", -math.inf, -30.0),
)
"""(name, lowest ITA, highest ITA) of each skin-tone band, lightest first (Chardon et al. 1991)."""


def srgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """CIELAB (D65 white) of sRGB colours.

    Args:
        rgb: (..., 3) sRGB values in [0, 1] (gamma-encoded, as images store them).

    Returns:
        (..., 3) L* in [0, 100], a*, b*, in float64.
    """
    if rgb.shape[-1] != 3:
        raise ValueError(f"colours must be (..., 3), got {tuple(rgb.shape)}")
    c = rgb.to(torch.float64).clamp(0, 1)
    linear = torch.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = linear @ torch.tensor(_SRGB_TO_XYZ, dtype=torch.float64, device=c.device).T
    t = xyz / torch.tensor(_WHITE_D65, dtype=torch.float64, device=c.device)
    delta = 6 / 29
    f = torch.where(t > delta ** 3, t.clamp(min=1e-12) ** (1 / 3), t / (3 * delta ** 2) + 4 / 29)
    return torch.stack((116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])), -1)


def ciede2000(lab1: torch.Tensor, lab2: torch.Tensor) -> torch.Tensor:
    """The CIEDE2000 colour difference (k_L = k_C = k_H = 1), following Sharma, Wu and Dalal (2005).

    Args:
        lab1, lab2: (..., 3) CIELAB colours (broadcastable).

    Returns:
        (...) the differences Delta E_00.
    """
    lab1, lab2 = torch.broadcast_tensors(lab1.to(torch.float64), lab2.to(torch.float64))
    (l1, a1, b1), (l2, a2, b2) = lab1.unbind(-1), lab2.unbind(-1)
    c_bar = (torch.hypot(a1, b1) + torch.hypot(a2, b2)) / 2
    g = 0.5 * (1 - torch.sqrt(c_bar ** 7 / (c_bar ** 7 + 25.0 ** 7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = torch.hypot(a1p, b1), torch.hypot(a2p, b2)
    h1p = torch.rad2deg(torch.atan2(b1, a1p)) % 360
    h2p = torch.rad2deg(torch.atan2(b2, a2p)) % 360
    chroma_zero = (c1p * c2p) == 0
    dh = h2p - h1p
    dh = torch.where(dh > 180, dh - 360, torch.where(dh < -180, dh + 360, dh))
    dh = torch.where(chroma_zero, torch.zeros_like(dh), dh)
    d_l, d_c = l2 - l1, c2p - c1p
    d_h = 2 * torch.sqrt(c1p * c2p) * torch.sin(torch.deg2rad(dh / 2))
    l_bar, cp_bar = (l1 + l2) / 2, (c1p + c2p) / 2
    h_sum, h_gap = h1p + h2p, (h1p - h2p).abs()
    h_bar = torch.where(h_gap <= 180, h_sum / 2, torch.where(h_sum < 360, (h_sum + 360) / 2, (h_sum - 360) / 2))
    h_bar = torch.where(chroma_zero, h_sum, h_bar)
    t = (1 - 0.17 * torch.cos(torch.deg2rad(h_bar - 30)) + 0.24 * torch.cos(torch.deg2rad(2 * h_bar))
         + 0.32 * torch.cos(torch.deg2rad(3 * h_bar + 6)) - 0.20 * torch.cos(torch.deg2rad(4 * h_bar - 63)))
    d_theta = 30 * torch.exp(-(((h_bar - 275) / 25) ** 2))
    r_c = 2 * torch.sqrt(cp_bar ** 7 / (cp_bar ** 7 + 25.0 ** 7))
    s_l = 1 + 0.015 * (l_bar - 50) ** 2 / torch.sqrt(20 + (l_bar - 50) ** 2)
    s_c = 1 + 0.045 * cp_bar
    s_h = 1 + 0.015 * cp_bar * t
    r_t = -torch.sin(torch.deg2rad(2 * d_theta)) * r_c
    return torch.sqrt((d_l / s_l) ** 2 + (d_c / s_c) ** 2 + (d_h / s_h) ** 2 + r_t * (d_c / s_c) * (d_h / s_h))


def typology_angle(lab: torch.Tensor) -> torch.Tensor:
    """The individual typology angle ITA = atan2(L* - 50, b*) in degrees.  (..., 3) CIELAB -> (...)."""
    return torch.rad2deg(torch.atan2(lab[..., 0] - 50, lab[..., 2]))


def skin_tone_band(ita: float) -> str:
    """The name of the :data:`SKIN_TONE_BANDS` band an ITA (degrees) falls in."""
    if math.isnan(ita):
        raise ValueError("ITA is NaN: the colour it came from was not finite")
    for name, low, high in SKIN_TONE_BANDS:
        if low <= ita < high:
            return name
    raise AssertionError("the bands cover every angle")
