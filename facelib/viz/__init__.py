"""Plotting helpers used by every lesson: image grids, charts, plotly meshes, sliders, the pipeline diagram, the
TextureGCN's layers, the overlay sheet.

A leaf of the package: it knows torch, numpy, matplotlib, plotly, ipywidgets and PIL, and of facelib only
its atomic write (``facelib.files``).
"""

from facelib.viz.charts import change_bars, distance_bars, stacked_terms
from facelib.viz.grid import image_grid, save_grid, show_as_jpeg, show_photo, to_numpy_image
from facelib.viz.mesh3d import mesh_figure
from facelib.viz.network import network_figure
from facelib.viz.pipeline import pipeline_figure, show_pipeline
from facelib.viz.widgets import headless, interact

__all__ = ["change_bars", "distance_bars", "headless", "image_grid", "interact", "mesh_figure", "network_figure", "pipeline_figure", "save_grid", "show_as_jpeg", "show_photo", "show_pipeline", "stacked_terms",
           "to_numpy_image"]
