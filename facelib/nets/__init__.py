"""Networks around the texture GCNs: the frozen FaceNet identity encoder and the WGAN critic."""

from facelib.nets.discriminator import Discriminator
from facelib.nets.identity import FaceNetWeightsError, IdentityEncoder, facenet_weights_path

__all__ = ["Discriminator", "FaceNetWeightsError", "IdentityEncoder", "facenet_weights_path"]
