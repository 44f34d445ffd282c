"""facelib: a course and library on 3D face reconstruction with graph convolutional networks.

The pipeline of Lin et al., "Towards High-Fidelity 3D Face Reconstruction from In-the-Wild Images
Using Graph Convolutional Networks" (CVPR 2020). Subpackages follow the pipeline: ``morphable``
(3DMM, lesson 01), ``mesh`` (lesson 02), ``render`` (lesson 03), ``viz`` and ``course`` (tooling).
"""

__version__ = "0.1.0"
