"""Losses of analysis by synthesis and of Lin et al.'s training, each with its maths in the docstring."""

from facelib.losses.landmarks import landmark_loss
from facelib.losses.photometric import photometric_loss
from facelib.losses.regularizers import coefficient_prior, lighting_prior

__all__ = ["coefficient_prior", "landmark_loss", "lighting_prior", "photometric_loss"]
