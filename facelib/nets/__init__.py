"""Networks around the texture GCNs: the coarse-stage regressor, the frozen identity encoders (FaceNet,
dlib's face-recognition ResNet) and the WGAN critic."""

from facelib.nets.discriminator import Discriminator
from facelib.nets.dlib_resnet import (DESCRIPTOR_DIM, DLIB_RESNET_ID, SAME_PERSON_THRESHOLD, DlibResNet,
                                      DlibWeightsError, dlib_model_path, load_dlib_resnet)
from facelib.nets.dlib_chip import crop_to_chip
from facelib.nets.identity import (EMBEDDING_DIM, FACENET_ID, FACENET_UNTRAINED_ID, IDENTITY_NETWORKS, FaceNetWeightsError, IdentityEncoder,
                                   facenet_weights_path)
from facelib.nets.regressor import Regressor, RegressorWeightsError, load_regressor, save_regressor

__all__ = ["DESCRIPTOR_DIM", "DLIB_RESNET_ID", "Discriminator", "DlibResNet", "DlibWeightsError", "EMBEDDING_DIM", "FACENET_ID",
           "FACENET_UNTRAINED_ID", "FaceNetWeightsError", "IDENTITY_NETWORKS", "IdentityEncoder", "Regressor", "RegressorWeightsError",
           "SAME_PERSON_THRESHOLD", "crop_to_chip", "dlib_model_path", "facenet_weights_path", "load_dlib_resnet", "load_regressor",
           "save_regressor"]
