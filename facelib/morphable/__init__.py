"""Morphable face models: ``MorphableModel``, the open model built from CC0 MakeHuman assets, BFM09, landmarks."""

from facelib.morphable.bfm import load_bfm
from facelib.morphable.model import CoefficientLayout, ModelFileError, MorphableModel
from facelib.morphable.open_model import load_open_model, open_model_path

__all__ = ["CoefficientLayout", "ModelFileError", "MorphableModel", "load_bfm", "load_open_model", "open_model_path"]
