"""Networks around the texture GCNs: the coarse-stage regressor, the frozen FaceNet identity encoder and the WGAN critic."""

from facelib.nets.discriminator import Discriminator
from facelib.nets.identity import FaceNetWeightsError, IdentityEncoder, facenet_weights_path
from facelib.nets.regressor import Regressor, RegressorWeightsError, load_regressor, save_regressor

__all__ = ["Discriminator", "FaceNetWeightsError", "IdentityEncoder", "Regressor", "RegressorWeightsError", "facenet_weights_path",
           "load_regressor", "save_regressor"]
