"""Benchmarks: ``python -m facelib bench render|gcn|synthetic`` (speed targets live here, not in timed tests)."""

from __future__ import annotations

import time

import torch

from facelib.render import Camera, rasterize


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
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
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
    from facelib.gcn import TextureGCN, parameter_count
    from facelib.mesh.hierarchy import MeshHierarchy

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    start = time.perf_counter()
    if mesh == "grid":
        hierarchy = MeshHierarchy.build(*grid_mesh(), (4, 4, 4, 4))
    elif mesh == "open":
        from facelib.morphable import load_open_model

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
    from facelib.data import SyntheticFaces

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
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

