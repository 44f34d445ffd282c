"""Differentiable rendering: Deng et al.'s camera, SH lighting, rasterization, ``FaceRenderer``."""

from facelib.render.camera import Camera, euler_rotation
from facelib.render.lighting import sh_basis, sh_shading, shade, unshade
from facelib.render.rasterize import Fragments, interpolate, rasterize
from facelib.render.renderer import FaceRenderer, Rendering
from facelib.render.composite import composite, paste_alpha
from facelib.render.sample import VertexSamples, sample_image, sample_vertex_colors, vertex_visibility

__all__ = ["Camera", "FaceRenderer", "Fragments", "Rendering", "euler_rotation", "interpolate", "rasterize", "sh_basis", "sh_shading", "shade", "unshade", "VertexSamples", "composite", "paste_alpha", "sample_image", "sample_vertex_colors", "vertex_visibility"]
