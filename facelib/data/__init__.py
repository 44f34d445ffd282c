"""Face data: robust photo loading, detection and 5-point alignment."""

from facelib.data.align import (AlignedFace, Detection, NoFaceError, align_face, align_faces, detect_faces,
                                similarity_transform, template_points, warp_affine)
from facelib.data.images import ImageError, load_image_tensor, load_rgb
from facelib.config import DATA_DIR

PHOTOS = {"grace_hopper": DATA_DIR / "photos" / "grace_hopper.jpg", "astronaut": DATA_DIR / "photos" / "astronaut.jpg"}
"""The two public-domain photos that ship with the course (see data/README.md)."""

__all__ = ["PHOTOS", "AlignedFace", "Detection", "ImageError", "NoFaceError", "align_face", "align_faces", "detect_faces",
           "load_image_tensor", "load_rgb", "similarity_transform", "template_points", "warp_affine"]
