"""Losses of analysis by synthesis and of Lin et al.'s training, each with its maths in the docstring."""

from facelib.losses.adversarial import PENALTY_WEIGHT, critic_loss, generator_loss, gradient_penalty
from facelib.losses.identity import IdentityDistance, identity_distance, identity_loss
from facelib.losses.landmarks import landmark_loss
from facelib.losses.masks import skin_mask, ycbcr
from facelib.losses.occluders import agreement, lips_vertices, occluder_gate
from facelib.losses.photometric import grayscale, grayscale_photometric_loss, photometric_loss
from facelib.losses.regularizers import albedo_symmetry, albedo_variance, coefficient_prior, lighting_prior
from facelib.losses.schedule import Schedule
from facelib.losses.vertex import projected_color_loss, vertex_loss

__all__ = [
    "IdentityDistance", "PENALTY_WEIGHT", "Schedule", "agreement", "albedo_symmetry", "albedo_variance", "coefficient_prior", "critic_loss", "generator_loss", "gradient_penalty",
    "grayscale", "grayscale_photometric_loss", "identity_distance", "identity_loss", "landmark_loss", "lighting_prior", "lips_vertices", "occluder_gate", "photometric_loss", "projected_color_loss", "skin_mask", "vertex_loss", "ycbcr",
]
