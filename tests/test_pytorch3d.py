"""PyTorch3D (from easypytorch3d) is installed and renders; the torch backend agrees with it."""

import torch


def test_pytorch3d_renders_one_triangle():
    import pytorch3d
    from pytorch3d.renderer import MeshRasterizer, PerspectiveCameras, RasterizationSettings
    from pytorch3d.structures import Meshes

    assert pytorch3d.__version__.startswith("0.7.9")
    verts = torch.tensor([[[-0.5, -0.5, 3.0], [0.5, -0.5, 3.0], [0.0, 0.5, 3.0]]])
    faces = torch.tensor([[[0, 1, 2]]])
    cameras = PerspectiveCameras(focal_length=2.0)
    rasterizer = MeshRasterizer(cameras=cameras, raster_settings=RasterizationSettings(image_size=32, blur_radius=0.0, faces_per_pixel=1))
    fragments = rasterizer(Meshes(verts=verts, faces=faces))
    covered = (fragments.pix_to_face[0, ..., 0] >= 0).float()
    # At depth 3 with focal 2 the triangle spans 2/3 x 2/3 of the [-1, 1] view: half of that is 5.6% of the image.
    assert 0.04 < covered.mean() < 0.075
    assert fragments.pix_to_face.max() == 0
