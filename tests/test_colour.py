"""CIELAB, CIEDE2000 and the skin-tone bands of :mod:`facelib.evaluate.colour`, against published values."""

import math

import pytest
import torch

from facelib.evaluate.colour import SKIN_TONE_BANDS, ciede2000, skin_tone_band, srgb_to_lab, typology_angle

# Sharma, Wu and Dalal (2005), "The CIEDE2000 color-difference formula: implementation notes,
# supplementary test data, and mathematical observations", Table 1 (pairs 1-13 and 17-21, 25): the
# pairs chosen there to catch the usual mistakes in the hue terms (mean hue across 0/360, the sign of
# the hue difference, zero chroma).
SHARMA = [
    ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
    ((50.0, 3.1571, -77.2803), (50.0, 0.0, -82.7485), 2.8615),
    ((50.0, 2.8361, -74.0200), (50.0, 0.0, -82.7485), 3.4412),
    ((50.0, -1.3802, -84.2814), (50.0, 0.0, -82.7485), 1.0000),
    ((50.0, -1.1848, -84.8006), (50.0, 0.0, -82.7485), 1.0000),
    ((50.0, -0.9009, -85.5211), (50.0, 0.0, -82.7485), 1.0000),
    ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
    ((50.0, -1.0, 2.0), (50.0, 0.0, 0.0), 2.3669),
    ((50.0, 2.4900, -0.0010), (50.0, -2.4900, 0.0009), 7.1792),
    ((50.0, 2.4900, -0.0010), (50.0, -2.4900, 0.0010), 7.1792),
    ((50.0, 2.4900, -0.0010), (50.0, -2.4900, 0.0011), 7.2195),
    ((50.0, 2.4900, -0.0010), (50.0, -2.4900, 0.0012), 7.2195),
    ((50.0, -0.0010, 2.4900), (50.0, 0.0009, -2.4900), 4.8045),
    ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
    ((50.0, 2.5, 0.0), (61.0, -5.0, 29.0), 22.8977),
    ((50.0, 2.5, 0.0), (56.0, -27.0, -3.0), 31.9030),
    ((50.0, 2.5, 0.0), (58.0, 24.0, 15.0), 19.4535),
    ((50.0, 2.5, 0.0), (50.0, 3.1736, 0.5854), 1.0000),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
]


def test_ciede2000_matches_sharmas_test_pairs():
    lab1 = torch.tensor([p[0] for p in SHARMA])
    lab2 = torch.tensor([p[1] for p in SHARMA])
    expected = torch.tensor([p[2] for p in SHARMA], dtype=torch.float64)
    got = ciede2000(lab1, lab2)
    assert torch.allclose(got, expected, atol=1e-4), (got - expected).abs().max()
    assert torch.allclose(ciede2000(lab2, lab1), got, atol=1e-9)  # symmetric
    assert float(ciede2000(lab1, lab1).abs().max()) == 0.0


def test_srgb_to_lab_of_known_colours():
    rgb = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.5, 0.5, 0.5]])
    lab = srgb_to_lab(rgb)
    # White and black, sRGB red (L 53.24, a 80.09, b 67.20) and mid grey (L 53.39, neutral).
    expected = torch.tensor([[100.0, 0.0, 0.0], [0.0, 0.0, 0.0], [53.24, 80.09, 67.20], [53.39, 0.0, 0.0]], dtype=torch.float64)
    assert torch.allclose(lab, expected, atol=0.02), lab
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        srgb_to_lab(torch.zeros(4, 2))


def test_skin_tone_bands_follow_the_typology_angle():
    assert [skin_tone_band(a) for a in (70.0, 55.0, 45.0, 30.0, 20.0, 0.0, -45.0)] == \
        ["very light", "very light", "light", "intermediate", "tan", "brown", "dark"]
    assert [b[0] for b in SKIN_TONE_BANDS] == ["very light", "light", "intermediate", "tan", "brown", "dark"]
    # Lighter skin has a larger angle: L* above 50 with little yellow gives a steep angle.
    fair, deep = srgb_to_lab(torch.tensor([0.93, 0.78, 0.70])), srgb_to_lab(torch.tensor([0.36, 0.24, 0.18]))
    assert float(typology_angle(fair)) > 41 > 10 > float(typology_angle(deep))
    with pytest.raises(ValueError, match="NaN"):
        skin_tone_band(math.nan)
