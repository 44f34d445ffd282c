"""Plotting helpers used by every lesson: image grids, plotly meshes, sliders, the pipeline diagram, the TextureGCN's layers.

A leaf of the package: it knows only torch, numpy, matplotlib, plotly and ipywidgets.
"""

from facelib.viz.grid import image_grid, save_grid, show_as_jpeg, show_photo, to_numpy_image
from facelib.viz.mesh3d import mesh_figure
from facelib.viz.network import network_figure
from facelib.viz.pipeline import pipeline_figure, show_pipeline
from facelib.viz.widgets import headless, interact

__all__ = ["headless", "image_grid", "interact", "mesh_figure", "network_figure", "pipeline_figure", "save_grid", "show_as_jpeg", "show_photo", "show_pipeline", "to_numpy_image"]
