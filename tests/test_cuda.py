"""The CUDA paths against the CPU: rasterizers, renderer, TextureGCN, and mixed-precision training with a resume.

Every test here is marked ``cuda`` and skipped without a CUDA device (tests/conftest.py); on a GPU,
``python -m pytest -m cuda tests`` runs them alone (``python -m facelib device-check`` does).
"""

import math

import pytest
import torch

from facelib.bench import grid_mesh
from facelib.render import Camera, FaceRenderer, rasterize
from facelib.train import Trainer
from test_train import tiny

pytestmark = pytest.mark.cuda
CUDA = torch.device("cuda")


def fragments(backend: str, device, size: int = 96):
    verts, faces = grid_mesh(40)
    return rasterize(Camera.deng(size).project(verts.to(device)[None]), faces.to(device), size, backend=backend)


def test_the_torch_rasterizer_on_cuda_matches_the_cpu():
    cpu, gpu = fragments("torch", "cpu"), fragments("torch", CUDA)
    same = cpu.pix_to_face == gpu.pix_to_face.cpu()
    assert same.float().mean() > 0.999  # ties on shared edges may fall either way
    covered = same & (cpu.pix_to_face >= 0)
    assert covered.float().mean() > 0.3
    torch.testing.assert_close(gpu.bary.cpu()[covered], cpu.bary[covered], atol=1e-4, rtol=0)


def test_pytorch3d_at_its_default_binning_agrees_with_the_torch_rasterizer_on_cuda():
    pytest.importorskip("pytorch3d")
    ours, theirs = fragments("torch", CUDA), fragments("pytorch3d", CUDA)
    assert (ours.pix_to_face == theirs.pix_to_face).float().mean() > 0.995


def test_the_face_renderer_on_cuda_matches_the_cpu(open_model):
    from facelib.fit import initial_params

    params = initial_params(open_model, 1)
    shape, albedo = open_model.shape(params["id"], params["exp"]), open_model.albedo(params["tex"]).clamp(0, 1)
    cpu = FaceRenderer.for_model(open_model, 96).render(shape, albedo)
    model = open_model.to(CUDA)
    gpu = FaceRenderer.for_model(model, 96).render(shape.to(CUDA), albedo.to(CUDA))
    assert (gpu.mask.cpu() == cpu.mask).float().mean() > 0.999
    assert (gpu.image.cpu() - cpu.image).abs().mean() < 1e-3


def test_the_texture_gcn_on_cuda_matches_the_cpu(open_model):
    from facelib.gcn import TextureGCN
    from facelib.gcn.weights import texture_hierarchy

    torch.manual_seed(0)
    network = TextureGCN(texture_hierarchy(open_model, 0), "small")
    g = torch.Generator().manual_seed(0)
    v = open_model.num_vertices
    inputs = (torch.rand(2, v, 3, generator=g), torch.rand(2, v, 3, generator=g), (torch.rand(2, v, generator=g) > 0.5).float(),
              torch.randn(2, 512, generator=g))
    with torch.no_grad():
        cpu = network(*inputs)
        gpu = network.to(CUDA)(*(x.to(CUDA) for x in inputs)).cpu()
    torch.testing.assert_close(gpu, cpu, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_the_trainer_trains_and_resumes_in_mixed_precision_on_cuda(tmp_path, amp):
    """Two steps, a checkpoint, then two more from it: finite losses in both halves, the step count carried on."""
    # test_train's tiny set-up at 64 px; an explicit ramp, since the resume changes the steps
    settings = dict(size=64, amp=amp, device="cuda", checkpoint_every=2, ramp=1)
    if amp == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this card has no bf16")
    first = Trainer(tiny(tmp_path, **settings, steps=2))
    history = first.train()
    assert first.step == 2 and all(math.isfinite(v) for v in history["total"])
    second = Trainer(tiny(tmp_path, **settings, steps=4), resume=True)
    assert second.step == 2
    history = second.train()
    assert second.step == 4 and all(math.isfinite(v) for v in history["total"])
