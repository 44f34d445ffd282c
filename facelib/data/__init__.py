"""Face data: robust photo loading, detection and 5-point alignment, photo folders, synthetic faces with ground truth."""

from facelib.config import PHOTOS
from facelib.data.align import (AlignedFace, Detection, NoFaceError, align_face, align_faces, detect_faces,
                                similarity_transform, template_points, warp_affine)
from facelib.data.detail import DETAIL_KINDS, DetailConfig, DetailLayer, DetailParams
from facelib.data.folder import FolderEntry, PhotoFolder
from facelib.data.images import ImageError, load_image_tensor, load_rgb
from facelib.data.synthetic import BENCHMARK_SEED, BENCHMARK_SIZE, SyntheticConfig, SyntheticFaces, benchmark

__all__ = ["BENCHMARK_SEED", "BENCHMARK_SIZE", "DETAIL_KINDS", "PHOTOS", "AlignedFace", "DetailConfig", "DetailLayer",
           "DetailParams", "Detection", "FolderEntry", "ImageError", "NoFaceError", "PhotoFolder", "SyntheticConfig",
           "SyntheticFaces", "align_face", "align_faces", "benchmark", "detect_faces", "load_image_tensor", "load_rgb",
           "similarity_transform", "template_points", "warp_affine"]
