"""The tool commands: ``build-model``, ``faces``, ``data-grids``, ``bench``, ``device-check`` and ``results``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from facelib.cli.record import write_command_results


def build_model_command(args: argparse.Namespace) -> int:
    from facelib.morphable.builder import BuildConfig, build_open_model
    from facelib.morphable.open_model import open_model_path

    path = Path(args.out) if args.out else open_model_path(args.seed)
    if path.is_file() and not args.force and not args.out:
        print(f"the open face model is already built: {path} (--force rebuilds it)")
        return 0
    build_open_model(path, BuildConfig(seed=args.seed))
    return 0


def faces_command(args: argparse.Namespace) -> int:
    from facelib.morphable import load_open_model
    from facelib.morphable.gallery import write_gallery

    start = time.perf_counter()
    model = load_open_model(level=args.level)
    path = write_gallery(args.out, model, n=args.n, seed=args.seed, limit=args.limit)
    print(f"{model}\nwrote {args.n} random faces (+-{args.limit} std) to {path.resolve()} in {time.perf_counter() - start:.1f} s")
    return 0


def bench_command(args: argparse.Namespace) -> int:
    from facelib.bench import bench_device, bench_gcn, bench_render, bench_synthetic, bench_train

    if args.what == "train":
        rows = bench_train(tuple(args.batch or [4]), 0 if args.level is None else args.level, args.size, args.device,
                           args.config or "paper", args.amp, args.compile,
                           args.critic_steps, args.coarse, args.steps, identity=args.identity)
    elif args.what == "render":
        rows = bench_render(tuple(args.batch or [1, 16]), args.size, args.device, args.pytorch3d_max_batch)
    elif args.what == "gcn":
        rows = bench_gcn(tuple(args.batch or [4, 16]), args.device, args.config or "official", args.mesh)
    else:
        rows = bench_synthetic(tuple(args.batch or [16]), args.size, args.device, args.level)
    # The device the benches chose (CUDA when there is one): its name goes into the results file.
    write_command_results(f"bench_{args.what}", {"rows": rows}, args.json, bench_device(args.device))
    return 0


def device_check_command(args: argparse.Namespace) -> int:
    """Runs :func:`facelib.bench.device_check_plan` inside the budget; 1 when a step failed or timed out."""
    from facelib.bench import device_check, device_check_plan

    plan = device_check_plan(args.out, args.device or ("cpu" if args.quick else "cuda"), args.quick, args.runs)
    if args.only:
        plan = [step for step in plan if any(text in step.name for text in args.only)]
        if not plan:
            print(f"error: no step's name contains any of {args.only}", file=sys.stderr)
            return 2
    report = device_check(args.out, plan, args.budget)
    skipped = [s["name"] for s in report["steps"] if "skipped" in s]
    failed = [s["name"] for s in report["steps"] if "skipped" not in s and (s.get("timed_out") or s["rc"] != 0)]
    print(f"device check: {len(report['steps']) - len(failed) - len(skipped)} steps done, failed or timed out: "
          f"{', '.join(failed) or 'none'}; skipped for the budget: {', '.join(skipped) or 'none'}; report {Path(args.out) / 'device_check.json'}")
    return 1 if failed else 0


def results_command(args: argparse.Namespace) -> int:
    from facelib.config import REPO_DIR
    from facelib.results import markdown_tables, results_dir, update_readme

    if args.readme:
        readme = REPO_DIR / "README.md"
        print(f"{readme}: {'updated' if update_readme(readme) else 'already up to date'} from {results_dir()}")
    else:
        print(markdown_tables(), end="")
    return 0


def data_grids_command(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from facelib.config import DATA_DIR
    from facelib.data import PhotoFolder, SyntheticFaces
    from facelib.data.synthetic import sample_grid

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    faces = SyntheticFaces(n=args.n, size=args.size, seed=args.seed, level=args.level, device=args.device)
    fig = sample_grid(faces, args.n)
    fig.savefig(out / "synthetic_faces.png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    print(f"{faces}\nwrote {out / 'synthetic_faces.png'} in {time.perf_counter() - start:.1f} s")
    folder = PhotoFolder(args.photos or DATA_DIR / "photos", cache=args.cache, size=args.size, all_faces=args.all_faces)
    fig = folder.grid(args.n)
    fig.savefig(out / "aligned_photos.png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    print(f"{folder}\nwrote {out / 'aligned_photos.png'}")
    for skipped in folder.skipped:
        print(f"  skipped {skipped['source']}: {skipped['reason']}")
    return 0
