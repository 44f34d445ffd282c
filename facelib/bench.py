"""Benchmarks: ``python -m facelib bench render|gcn|synthetic`` (speed targets live here, not in timed tests)."""

from __future__ import annotations

import time

import torch

from facelib.render import Camera, rasterize
from facelib.data import SyntheticFaces
from facelib.gcn import TextureGCN, parameter_count
from facelib.mesh.hierarchy import MeshHierarchy
from facelib.morphable import load_open_model
from facelib.train import TrainConfig, Trainer


def grid_mesh(n: int = 189) -> tuple[torch.Tensor, torch.Tensor]:
    """An n x n grid bent into a half cylinder facing the camera: 35,721 vertices and 70,688
    triangles for n = 189, BFM's scale (the size DESIGN.md's measurements used)."""
    u, v = torch.meshgrid(torch.linspace(-1, 1, n), torch.linspace(-1, 1, n), indexing="ij")
    angle = u * 1.2
    verts = torch.stack([0.9 * torch.sin(angle), 1.1 * v, 0.9 * torch.cos(angle) - 0.2], -1).reshape(-1, 3)
    idx = torch.arange(n * n).view(n, n)
    a, b, c, d = idx[:-1, :-1].reshape(-1), idx[1:, :-1].reshape(-1), idx[1:, 1:].reshape(-1), idx[:-1, 1:].reshape(-1)
    faces = torch.cat([torch.stack([a, b, c], 1), torch.stack([a, c, d], 1)])
    return verts, faces


def bench_device(device: str | torch.device | None = None) -> torch.device:
    """The device a benchmark runs on: ``device``, else CUDA when there is one, else the CPU."""
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def _time(fn, device: torch.device, repeats: int) -> float:
    fn()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def bench_render(batches: tuple[int, ...] = (1, 16), size: int = 224, device: str | None = None,
                 pytorch3d_max_batch: int | None = None, repeats: int = 3) -> list[dict]:
    """Forward + backward (colour interpolation, gradients to vertices and colours) per backend.

    ``pytorch3d_max_batch`` skips PyTorch3D above that batch (on CPU it takes minutes at 16).
    """
    dev = bench_device(device)
    verts, faces = grid_mesh()
    camera = Camera.deng(size)
    faces = faces.to(dev)
    rows = []
    for b in batches:
        base = verts.to(dev)[None].repeat(b, 1, 1)
        colours = torch.rand(b, verts.shape[0], 3, device=dev)
        times = {}
        for backend in ("torch", "pytorch3d"):
            if backend == "pytorch3d" and pytorch3d_max_batch is not None and b > pytorch3d_max_batch:
                continue

            def step() -> None:
                v = base.clone().requires_grad_(True)
                c = colours.clone().requires_grad_(True)
                frags = rasterize(camera.project(v), faces, size, backend=backend)
                frags.interpolate(c).sum().backward()

            times[backend] = _time(step, dev, 1 if backend == "pytorch3d" and dev.type == "cpu" else repeats)
        row = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu", "batch": b, "size": size,
               "vertices": verts.shape[0], "triangles": faces.shape[0], **{f"{k}_ms": round(v * 1e3, 2) for k, v in times.items()}}
        if len(times) == 2:
            row["pytorch3d/torch"] = round(times["pytorch3d"] / times["torch"], 1)
        rows.append(row)
        print(row)
    return rows


def bench_gcn(batches: tuple[int, ...] = (4, 16), device: str | None = None, config: str = "official",
              mesh: str = "grid", repeats: int = 3) -> list[dict]:
    """Forward + backward of TextureGCN at BFM scale, on a 5-level hierarchy.

    ``mesh="grid"``: the 35,721-vertex grid, quadric factors (4, 4, 4, 4). ``mesh="open"``: the open
    face model subdivided twice (49,368 vertices) with its exact subdivision hierarchy, then quadric
    factors (4, 4). One step: the four inputs at ``batch``, the refined albedo, a scalar loss,
    gradients to every parameter. The hierarchy is built once (then read from the cache), not timed.
    """
    dev = bench_device(device)
    start = time.perf_counter()
    if mesh == "grid":
        hierarchy = MeshHierarchy.build(*grid_mesh(), (4, 4, 4, 4))
    elif mesh == "open":
        base = load_open_model(level=0)
        hierarchy = MeshHierarchy.from_subdivision(base.mean_shape, base.triangles, levels=2, factors=(4, 4))
    else:
        raise ValueError(f"mesh must be 'grid' or 'open', got {mesh!r}")
    print(f"{hierarchy} in {time.perf_counter() - start:.2f} s ({hierarchy.source})")
    net = TextureGCN(hierarchy, config).to(dev)
    v, e = hierarchy.num_vertices[0], net.config.embedding_dim
    rows = []
    for b in batches:
        gen = torch.Generator(device=dev).manual_seed(0)
        inputs = (torch.rand(b, v, 3, device=dev, generator=gen), torch.rand(b, v, 3, device=dev, generator=gen),
                  (torch.rand(b, v, 1, device=dev, generator=gen) > 0.3).float(), torch.randn(b, e, device=dev, generator=gen))

        def step() -> None:
            net.zero_grad(set_to_none=True)
            net(*inputs).mean().backward()

        def forward() -> None:
            with torch.no_grad():
                net(*inputs)

        reps = 1 if dev.type == "cpu" and b > 4 else repeats
        seconds = _time(step, dev, reps)
        row = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu", "config": config, "mesh": mesh, "batch": b,
               "vertices": v, "levels": hierarchy.num_levels, "parameters": parameter_count(net),
               "forward_ms": round(_time(forward, dev, reps) * 1e3, 1), "forward_backward_ms": round(seconds * 1e3, 1),
               "meshes_per_s": round(b / seconds, 1)}
        rows.append(row)
        print(row)
    return rows


def bench_synthetic(batches: tuple[int, ...] = (16,), size: int = 224, device: str | None = None, level: int | None = None,
                    repeats: int = 3) -> list[dict]:
    """Throughput of :class:`~facelib.data.SyntheticFaces`: whole batches, drawn, detailed, rendered
    and composited (every item different: the timed batches are items never rendered before).

    ``level=None`` takes the dataset's default (1, or 0 in fast mode).
    """
    dev = bench_device(device)
    rows = []
    for b in batches:
        faces = SyntheticFaces(n=b * (repeats + 1), size=size, seed=0, level=level, device=dev)
        chunks = iter([range(k * b, (k + 1) * b) for k in range(repeats + 1)])
        seconds = _time(lambda faces=faces, chunks=chunks: faces.batch(next(chunks)), dev, repeats)
        row = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
               "batch": b, "size": size, "vertices": faces.model.num_vertices, "ms_per_batch": round(seconds * 1e3, 1),
               "images_per_s": round(b / seconds, 1)}
        rows.append(row)
        print(row)
    return rows



PROXY_H200 = ({"batch": 4, "precision": "fp32", "images_per_s": 25}, {"batch": 16, "precision": "fp32", "images_per_s": 47},
              {"batch": 16, "precision": "bf16", "images_per_s": 71}, {"batch": 64, "precision": "bf16", "images_per_s": 181, "peak_GiB": 4.4})
"""DESIGN.md section 7: a naive proxy of one GCN-stage training step (5 critic steps, 35.7k vertices, 224 px) on an H200.
On 2 CPU cores it took about 2 s per step at batch 2. facelib's aim: at least 500 img/s at batch 64 bf16 on an H200."""


def _peak_memory(dev: torch.device) -> tuple[str, float]:
    if dev.type == "cuda":
        return "cuda_max_allocated_GiB", round(torch.cuda.max_memory_allocated(dev) / 2**30, 2)
    import resource

    # ru_maxrss is in KiB on Linux: the whole process's peak since it started (model, data and all).
    return "process_maxrss_GiB", round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)


def bench_train(batches: tuple[int, ...] = (4,), level: int = 0, size: int = 224, device: str | None = None, gcn: str = "paper",
                amp: bool = False, compile: bool = False, critic_steps: int = 5, coarse: str = "regressor", steps: int = 5,
                warmup: int = 2, identity: bool = True) -> list[dict]:
    """Images/s and peak memory of whole GCN-stage training steps (:meth:`facelib.train.Trainer.train_step`).

    A timed step is what training does per step: the frozen regressor (or the truth) and FaceNet on
    the batch, the coarse render and T_p, the GCN forward, the render of T', ``critic_steps`` critic
    updates with the gradient penalty, FaceNet on R' (L_id), L_adv and the GCN's backward and update,
    with s1 = 1 (every term on). The batches are rendered before timing (two, alternating): the
    synthetic renderer's own speed is ``bench synthetic``'s business. Untrained regressor and FaceNet
    weights are used where no trained ones are found (announced): the cost is the same.
    """
    import tempfile


    dev = bench_device(device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    rows = []
    for b in batches:
        with tempfile.TemporaryDirectory() as out:
            config = TrainConfig(out=out, steps=2, ramp=1, batch=b, size=size, level=level, gcn=gcn, coarse=coarse,
                                 allow_untrained_regressor=True, allow_untrained_facenet=True, identity="on" if identity else "off",
                                 adversarial=critic_steps > 0, critic_steps=critic_steps, amp="bf16" if amp else "off", compile=compile,
                                 device=str(dev), checkpoint_every=0, progress=False, tensorboard=False, synthetic_n=max(1000, 2 * b))
            trainer = Trainer(config)
            pool = [trainer.batch(s) for s in range(2)]

            def step(k: int, trainer=trainer, pool=pool) -> None:
                trainer.train_step(1 + k, pool[k % 2])  # step >= ramp: s1 = 1, all terms on

            for k in range(warmup):
                step(k)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
                torch.cuda.reset_peak_memory_stats(dev)
            start = time.perf_counter()
            for k in range(steps):
                step(warmup + k)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            seconds = (time.perf_counter() - start) / steps
            memory_key, memory = _peak_memory(dev)
            row = {"device": name, "gcn": gcn, "batch": b, "level": level, "vertices": trainer.model.num_vertices, "size": size,
                   "amp": "bf16" if amp else "fp32", "compile": compile, "critic_steps": critic_steps, "coarse": coarse,
                   "identity": identity, "s_per_step": round(seconds, 3), "images_per_s": round(b / seconds, 2), memory_key: memory}
            rows.append(row)
            print(row)
    print("for reference, DESIGN.md section 7's naive proxy on an H200 (5 critic steps, 35.7k vertices, 224 px):")
    for proxy in PROXY_H200:
        print("  ", proxy)
    print("   on 2 CPU cores: about 2 s per step at batch 2; facelib's aim: >= 500 img/s at batch 64 bf16 on an H200")
    return rows
