"""The ``python -m facelib`` command line.

Each command imports what it needs inside its function: ``python -m facelib --help`` and a mistyped
command answer at once, without loading torch (seconds on a cold start). Commands that measure
write a results file (:mod:`facelib.results`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


_ARGV: list[str] = []
"""The running command's arguments, recorded in its results file."""

FACE_MASK_CHOICES = ("occluders", "skin", "off")
"""``--face-mask``'s choices: facelib.refine.FACE_MASK_MODES, written out so that ``--help`` does not import torch (a test holds the two equal)."""


def _build_model(args: argparse.Namespace) -> int:
    from facelib.morphable.builder import BuildConfig, build_open_model
    from facelib.morphable.open_model import open_model_path

    path = Path(args.out) if args.out else open_model_path(args.seed)
    if path.is_file() and not args.force and not args.out:
        print(f"the open face model is already built: {path} (--force rebuilds it)")
        return 0
    build_open_model(path, BuildConfig(seed=args.seed))
    return 0


def _faces(args: argparse.Namespace) -> int:
    from facelib.morphable import load_open_model
    from facelib.morphable.gallery import write_gallery

    start = time.perf_counter()
    model = load_open_model(level=args.level)
    path = write_gallery(args.out, model, n=args.n, seed=args.seed, limit=args.limit)
    print(f"{model}\nwrote {args.n} random faces (+-{args.limit} std) to {path.resolve()} in {time.perf_counter() - start:.1f} s")
    return 0


def _write_results(name: str, payload: dict, path: str | None, device=None) -> None:
    """The command's measurements as a results file (:mod:`facelib.results`): ``results/<name>.json``, or ``--json PATH``."""
    from facelib.results import write_results

    import shlex

    print(f"wrote {write_results(name, payload, path, device, command='python -m facelib ' + shlex.join(_ARGV))}")


def _reconstruct_config(args: argparse.Namespace):
    """The ReconstructConfig of the reconstruct options (``reconstruct_options``); ValueError for bad values."""
    from facelib.reconstruct import ReconstructConfig
    from facelib.refine import RefineConfig

    overrides = {k: v for k, v in (("size", args.size), ("level", args.level), ("face", getattr(args, "face", None))) if v is not None}
    if args.no_face_mask and args.face_mask not in (None, "off"):
        raise ValueError(f"--no-face-mask means --face-mask off, but --face-mask {args.face_mask} was given too: give one of them")
    face_mask = "off" if args.no_face_mask else args.face_mask
    if args.steps is not None or args.finetune or face_mask is not None:
        overrides["refine"] = RefineConfig(**({"steps": args.steps} if args.steps is not None else {}),
                                           **({"face_mask": face_mask} if face_mask is not None else {}),
                                           finetune_steps=args.finetune or 0)
    if args.finetune and (args.per_image or args.steps is not None):
        raise ValueError("--finetune fine-tunes the trained weights, --per-image/--steps optimise a fresh network: give one of them")
    if args.steps is not None and args.gcn_weights:
        raise ValueError("--steps sets the per-image optimisation, which --gcn-weights replaces: give one of them")
    if args.no_regressor and args.regressor_weights:
        raise ValueError("--regressor-weights and --no-regressor contradict each other: give one of them")
    # --steps only means something for per-image optimisation, so it asks for it.
    return ReconstructConfig(gcn_weights=args.gcn_weights, per_image=args.per_image or args.steps is not None,
                             facenet_weights=args.facenet_weights, device=args.device,
                             regressor_weights=args.regressor_weights, use_regressor=not args.no_regressor, **overrides)


def _reconstruct(args: argparse.Namespace) -> int:
    from facelib.data import ImageError
    from facelib.nets import FaceNetWeightsError, RegressorWeightsError
    from facelib.reconstruct import FaceChoiceError, OutputFolderError, reconstruct
    from facelib.gcn.weights import TextureWeightsError

    try:
        config = _reconstruct_config(args)
    except ValueError as err:  # option values out of range
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        reconstruct(args.photo, args.out, config)
    except (ImageError, TextureWeightsError, FaceNetWeightsError, RegressorWeightsError, OutputFolderError, FaceChoiceError) as err:
        # Bad input is the user's to fix: say what is wrong, without a traceback. (NoFaceError is an ImageError.)
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def _eval_reconstruct(args: argparse.Namespace) -> int:
    import textwrap

    from facelib import config as settings
    from facelib.data import benchmark
    from facelib.evaluate import TABLE_LEGEND, evaluate, improvement_table, score_change_table, table
    from facelib.nets import FaceNetWeightsError, IdentityEncoder, RegressorWeightsError
    from facelib.evaluate.pipeline import BENCHMARK_BASELINE, DELIT_REFERENCE, benchmark_methods
    from facelib.reconstruct import start_regressor
    from facelib.gcn.weights import TextureWeightsError

    try:
        config = _reconstruct_config(args)
        if args.n < 2:
            raise ValueError(f"--n {args.n}: the bootstrap interval needs at least 2 faces")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    device = settings.get_device(config.device, verbose=False)
    try:
        faces = benchmark(n=args.n, size=config.size, level=config.level, device=device)
        regressor = None
        if config.use_regressor:
            regressor, _, note = start_regressor(config, device, faces.model.layout)
            if note:
                print(f"note: {note}")
        if config.texture_note:
            print(f"note: {config.texture_note}")
        encoder = IdentityEncoder(weights=config.facenet_weights, download=config.download_facenet, allow_untrained=True)
        # checks --gcn-weights before any work
        methods = benchmark_methods(faces, config.level, config, regressor, encoder=encoder)
        print(f"facelib eval-reconstruct: {args.n} benchmark faces (seed 2020) at {config.size} px, mesh level {config.level}, "
              f"on {device}: regress, fit {config.fit_steps} + refit {config.refit_steps} steps with M_face, "
              f"refine {'with ' + str(config.gcn_weights) if config.gcn_weights else str(config.refine.steps) + ' steps per image'}")
        print(f"identity network: {encoder.source}")
        scores = evaluate(methods, faces, batch_size=args.eval_batch, progress=True, encoder=encoder)
    except (TextureWeightsError, FaceNetWeightsError, RegressorWeightsError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    # The methods share one fit and refinement per batch, which evaluate() charges to the first.
    seconds = sum(s.seconds for s in scores.values())
    print(table(scores, baseline=BENCHMARK_BASELINE))
    print(textwrap.fill(TABLE_LEGEND, 110))
    print(textwrap.fill(f"{DELIT_REFERENCE!r} is a yardstick, not a method: the photo itself divided by the fitted light at "
                        "every vertex it shows reliably, the 3DMM albedo elsewhere; roughly what a refinement that keeps the "
                        "fitted light could reach.", 110))
    print(improvement_table(scores, BENCHMARK_BASELINE))
    print(score_change_table(scores, BENCHMARK_BASELINE))
    print(f"time: {seconds:.0f} s for {args.n} faces (fits, refinement and yardstick)")
    rows = {name: s.mean() for name, s in scores.items()}
    mode = "fast" if settings.FAST else "full"
    _write_results(f"eval_reconstruct_{mode}_n{args.n}", {
        "faces": args.n, "size": config.size, "level": config.level, "seconds": seconds,
        "gcn_weights": Path(config.gcn_weights) if config.gcn_weights else None,
        "identity_network": getattr(encoder, "name", None), "methods": rows}, args.json, device)
    return 0


def _score_photos(args: argparse.Namespace) -> int:
    """Reconstructs each photo and tabulates its re-rendering and identity scores (real photos: no ground truth)."""
    from facelib import config as settings
    from facelib.data import PHOTOS, ImageError
    from facelib.nets import FaceNetWeightsError, RegressorWeightsError
    from facelib.reconstruct import reconstruct
    from facelib.gcn.weights import TextureWeightsError

    try:
        config = _reconstruct_config(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    photos: list[Path] = []
    for item in args.photos or [str(p) for p in PHOTOS.values()]:
        path = Path(item)
        photos += sorted(p for p in path.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp", ".bmp"}) if path.is_dir() else [path]
    if not photos:
        print("error: no photos found (give photo files or folders of them)", file=sys.stderr)
        return 2
    rows, failed = {}, []
    for photo in photos:
        try:
            result = reconstruct(photo, Path(args.out) / photo.stem, config, verbose=False)
        except (ImageError, TextureWeightsError, FaceNetWeightsError, RegressorWeightsError) as err:
            print(f"{photo}: skipped ({err})", file=sys.stderr)
            failed.append(str(photo))
            continue
        rows[str(photo)] = result.summary["scores"] | {"overlay": str(result.files["overlay"])}
        print(f"{photo.name}: overlay {result.files['overlay']}")
    if not rows:
        return 1
    methods = ("3dmm", "photo de-lit", "de-lit, mirror-filled", "gcn")
    print(f"re-rendering inside the rendered face x M_face, at {config.size} px, mesh level {config.level} "
          f"(gcn: {config.gcn_weights or 'per-image optimisation'}); identity distance photo-to-render "
          f"({next(iter(rows.values())).get('identity_network', 'no identity network')}; lower is better):")
    print(f"{'photo':<22}" + "".join(f"{m + ' PSNR':>28}{'id':>7}" for m in methods))
    for photo, row in rows.items():
        print(f"{Path(photo).name:<22}" + "".join(f"{row[m]['psnr']:>28.2f}{row[m].get('identity', float('nan')):>7.3f}" for m in methods))
    _write_results(f"score_photos_{'fast' if settings.FAST else 'full'}", {
        "size": config.size, "level": config.level, "gcn_weights": Path(config.gcn_weights) if config.gcn_weights else None, "photos": rows,
        "failed": failed}, args.json)
    return 0 if not failed else 1


def _train_texture(args: argparse.Namespace) -> int:
    import dataclasses

    from facelib.train.fitted_pool import PoolSpec, build_pool
    from facelib.train.texture import TextureTrainConfig, train_texture

    try:
        pool = PoolSpec(n=args.pool, seed=args.pool_seed)
        overrides = {k: getattr(args, k) for k in ("steps", "minutes", "batch", "lr", "albedo_weight", "identity_every", "seed")
                     if getattr(args, k) is not None}
        config = TextureTrainConfig(pool=pool, **overrides)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.build_pool_only:
        build_pool(pool)
        return 0
    try:
        path = train_texture(args.out, config, resume=args.resume, weights_out=args.weights_out)
    except (FileNotFoundError, ValueError, FloatingPointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"recipe: {dataclasses.asdict(config)}")
    print(f"to use these weights: --gcn-weights {path} (or FACELIB_TEXTURE_WEIGHTS={path}); "
          "to replace the bundled ones, pass --weights-out data/weights/texture_gcn.pt")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from facelib.data import PHOTOS

    args.photo = PHOTOS["grace_hopper"]
    return _reconstruct(args)


def _train_regressor(args: argparse.Namespace) -> int:
    from facelib.train.regressor import RegressorTrainConfig, train_regressor

    try:
        overrides = {k: getattr(args, k) for k in ("out", "arch", "input_size", "pool", "steps", "minutes", "batch", "lr", "photo_size", "seed",
                                                   "eval_n", "device") if getattr(args, k) is not None}
        config = RegressorTrainConfig(pretrained=args.pretrained, cache=not args.no_cache, **overrides)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    path = train_regressor(config)
    print(f"to use these weights: FACELIB_REGRESSOR_WEIGHTS={path} (or --regressor-weights {path}); "
          "to replace the bundled ones, pass --out data/weights/regressor.pt")
    return 0


def _eval_regressor(args: argparse.Namespace) -> int:
    from facelib.nets import RegressorWeightsError, load_regressor
    from facelib.evaluate.regressor import evaluate_photos, evaluate_regressor

    try:
        regressor = load_regressor(args.weights)
    except RegressorWeightsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    from facelib.nets.regressor import find_regressor_weights

    payload = {"weights": find_regressor_weights(args.weights), "benchmark": evaluate_regressor(regressor, n=args.n, size=args.size)}
    if args.photos:
        payload["photos"] = evaluate_photos(regressor)
    _write_results("eval_regressor", payload, args.json)
    return 0


def _train(args: argparse.Namespace) -> int:
    from facelib.train.checkpoint import CheckpointError
    from facelib.train.command import run_training
    from facelib.train.config import config_from_args
    from facelib.train.trainer import TrainingDiverged

    try:
        config = config_from_args(args)
    except (ValueError, OSError) as err:  # unknown settings, values out of range, a missing config file
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        run_training(config, resume=args.resume)
    except (CheckpointError, TrainingDiverged) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import textwrap

    from facelib.evaluate import TABLE_LEGEND, evaluate, table
    from facelib.train.checkpoint import CheckpointError
    from facelib.train.config import config_from_args
    from facelib.evaluate.runs import BASELINE, ablation_study, benchmark_faces, load_run, texture_methods
    from facelib.train.trainer import TrainingDiverged

    try:
        if args.run:
            trainers = {Path(run).name: load_run(run, args.cfg_device) for run in args.run}
            first = next(iter(trainers.values()))
            methods = {}
            for i, (name, trainer) in enumerate(trainers.items()):
                methods |= texture_methods(trainer, f"GCN ({name})", baseline=i == 0)
            faces = benchmark_faces(first.config, args.n, first.device)
            scores = evaluate(methods, faces, batch_size=args.eval_batch, progress=True)
        else:
            config = config_from_args(args)
            scores, _ = ablation_study(config, args.n, args.ablations, args.eval_batch, progress=True)
    except (ValueError, OSError, CheckpointError, TrainingDiverged) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    text = table(scores, baseline=BASELINE)
    print(f"synthetic benchmark (seed 2020), {args.n} faces:")
    print(text)
    print(textwrap.fill(TABLE_LEGEND, 110))
    rows = {name: s.mean() | {"seconds": s.seconds} for name, s in scores.items()}
    _write_results("evaluate", {"faces": args.n, "runs": [str(r) for r in args.run or []], "methods": rows}, args.json)
    return 0


def _bench(args: argparse.Namespace) -> int:
    from facelib.bench import bench_gcn, bench_render, bench_synthetic, bench_train

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
    import torch

    # The device the benches chose (CUDA when there is one): its name goes into the results file.
    _write_results(f"bench_{args.what}", {"rows": rows}, args.json, args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return 0


def _results(args: argparse.Namespace) -> int:
    from facelib.config import REPO_DIR
    from facelib.results import markdown_tables, results_dir, update_readme

    if args.readme:
        readme = REPO_DIR / "README.md"
        print(f"{readme}: {'updated' if update_readme(readme) else 'already up to date'} from {results_dir()}")
    else:
        print(markdown_tables(), end="")
    return 0


def _data_grids(args: argparse.Namespace) -> int:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m facelib", description="facelib: 3D face reconstruction with GCNs (Lin et al., CVPR 2020)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("build-model", help="build the open face model from the CC0 MakeHuman assets")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write here instead of the cache")
    p.add_argument("--force", action="store_true", help="rebuild even if the cached file exists")
    p.set_defaults(func=_build_model)

    p = sub.add_parser("faces", help="render random faces of the open model into an image grid")
    p.add_argument("--out", default="out/faces.png")
    p.add_argument("-n", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=float, default=2.0, help="clip coefficients to +-limit standard deviations")
    p.add_argument("--level", type=int, default=1, help="subdivision level of the mesh")
    p.set_defaults(func=_faces)

    def reconstruct_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--size", type=int, default=None, help="aligned crop size in pixels (fast mode 128, full 224)")
        p.add_argument("--level", type=int, default=None, help="mesh subdivision level of the albedo (fast 0, full 1)")
        p.add_argument("--steps", type=int, default=None,
                       help="per-image texture optimisation steps (implies --per-image; fast 100, full 300; short runs change little)")
        p.add_argument("--gcn-weights", default=None,
                       help="dataset-trained TextureGCN weights (default: FACELIB_TEXTURE_WEIGHTS, then the bundled data/weights/texture_gcn.pt)")
        p.add_argument("--finetune", type=int, default=None, metavar="STEPS",
                       help="fine-tune the trained weights on the photo for STEPS steps (default: one forward pass)")
        p.add_argument("--face-mask", choices=FACE_MASK_CHOICES, default=None,
                       help="how M_face weighs the trained GCN's reading of the photo: 'occluders' (default) only where it "
                            "marks an occluder such as a glasses frame or a hat's brim; 'skin' wherever the photo is not "
                            "skin-coloured (also drops lips, eyes and detail); 'off' not at all (occluders get painted onto the skin)")
        p.add_argument("--no-face-mask", action="store_true", help="the same as --face-mask off")
        p.add_argument("--per-image", action="store_true",
                       help="optimise a fresh TextureGCN on each photo instead of running the trained weights (slower, less detail)")
        p.add_argument("--facenet-weights", default=None, help="a local FaceNet weights file (20180402-114759-vggface2.pt)")
        p.add_argument("--regressor-weights", default=None, help="regressor weights (default: the bundled data/weights/regressor.pt)")
        p.add_argument("--no-regressor", action="store_true", help="start the fit from the mean face, not the regressor's prediction")
        p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: CUDA when available)")

    p = sub.add_parser("eval-reconstruct", help="score reconstruct's texture refinement against 3DMM only on the synthetic benchmark",
                       description="Runs reconstruct's stages after detection (regress, fit, skin mask, refit, refine) on "
                       "synthetic benchmark faces, whose true albedo is known, and compares the 3DMM albedo, the refined one "
                       "and a yardstick (the photo de-lit by the fitted light): per-vertex albedo errors, rendering PSNR/SSIM, "
                       "and each change with a paired-bootstrap 95 %% interval.")
    p.add_argument("-n", "--n", type=int, default=24,
                   help="benchmark faces (seed 2020; default %(default)s; about 5 s each on two CPU cores with FACELIB_FAST=1)")
    p.add_argument("--eval-batch", type=int, default=8, help="benchmark faces fitted and refined together (default %(default)s)")
    p.add_argument("--json", default=None, help="write the results here instead of the default results/ file")
    reconstruct_options(p)
    p.set_defaults(func=_eval_reconstruct)

    p = sub.add_parser("score-photos", help="reconstruct real photos and score 3DMM, de-lit photo and GCN by re-rendering and identity",
                       description="Real photos have no true albedo, but they can be re-rendered: for each photo (default: the two "
                       "bundled ones), reconstruct it into OUT/<name>/ and print PSNR inside the rendered face and M_face and the "
                       "identity distance photo-to-render for the 3DMM albedo, the photo de-lit by the fitted light (a yardstick) "
                       "and the refined albedo.")
    p.add_argument("photos", nargs="*", help="photo files or folders of them (default: data/photos/*)")
    p.add_argument("--out", default="out/score-photos", help="output folder (default %(default)s)")
    p.add_argument("--json", default=None, help="write the results here instead of the default results/ file")
    reconstruct_options(p)
    p.set_defaults(func=_score_photos)

    p = sub.add_parser("train-texture", help="train the dataset-trained TextureGCN that reconstruct runs (the shipped recipe)",
                       description="Builds (once, cached) a pool of synthetic faces fitted as reconstruct fits them, then trains "
                       "the 'fidelity' TextureGCN on it with Lin et al.'s losses and a supervised albedo term; see "
                       "facelib.train.texture and data/README.md for the recipe, its wall time and scores.")
    p.add_argument("--out", default="out/texture", help="run folder: checkpoint, log.csv, texture_gcn.pt (default %(default)s)")
    p.add_argument("--weights-out", default=None, help="where to write the final fp16 weights (default OUT/texture_gcn.pt)")
    p.add_argument("--pool", type=int, default=320, help="fitted faces in the pool (default %(default)s; about 5 s each to fit)")
    p.add_argument("--pool-seed", type=int, default=0, help="the pool's seed (its split is 'texture-train', never the benchmark's)")
    p.add_argument("--build-pool-only", action="store_true", help="build the fitted pool and stop")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the recipe's)")
    p.add_argument("--minutes", type=float, default=None, help="stop after this many minutes (0: no limit)")
    p.add_argument("--batch", type=int, default=None, help="faces per step")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate")
    p.add_argument("--albedo-weight", type=float, default=None, help="weight of the supervised albedo term (0: the paper's losses only)")
    p.add_argument("--identity-every", type=int, default=None, help="compute L_id every N steps (0: never)")
    p.add_argument("--seed", type=int, default=None, help="initialisation and batch order")
    p.add_argument("--resume", action="store_true", help="go on from OUT/checkpoint.pt")
    p.set_defaults(func=_train_texture)

    p = sub.add_parser("reconstruct", help="reconstruct the face of a photo: meshes, overlay, 3D viewer, summary")
    p.add_argument("photo", help="a photo with a face (JPEG, PNG, ...)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--face", type=int, default=None, metavar="K",
                   help="with several faces, reconstruct the K-th by size (default 0: the largest; the run lists them)")
    reconstruct_options(p)
    p.set_defaults(func=_reconstruct)

    p = sub.add_parser("demo", help="the course's end-to-end demo: reconstruct the bundled grace_hopper photo")
    p.add_argument("--out", default="out/demo", help="output folder")
    reconstruct_options(p)
    p.set_defaults(func=_demo)

    p = sub.add_parser("train-regressor", help="train the coarse-stage regressor on synthetic faces (writes out/regressor/regressor.pt; --out to choose)")
    p.add_argument("--out", default=None, help="the weights file (default: out/regressor/regressor.pt under FACELIB_OUT; the shipped one is data/weights/regressor.pt)")
    p.add_argument("--arch", default=None, choices=["resnet10", "resnet18", "resnet50"])
    p.add_argument("--input-size", type=int, default=None, help="network input side in pixels (default 112; 224 on a GPU)")
    p.add_argument("--pretrained", action="store_true", help="start resnet18/50 from ImageNet weights (downloaded by torchvision)")
    p.add_argument("--pool", type=int, default=None, help="synthetic faces rendered once and trained on")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps at most (default 1200)")
    p.add_argument("--minutes", type=float, default=None, help="wall-clock budget of the training loop (default 30; 0: none)")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--photo-size", type=int, default=None, help="side of the photometric term's rendering (0: off)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--eval-n", type=int, default=None, help="benchmark faces measured after training (0: skip)")
    p.add_argument("--no-cache", action="store_true", help="do not cache the rendered pool on disk")
    p.add_argument("--device", default=None)
    p.set_defaults(func=_train_regressor)

    p = sub.add_parser("eval-regressor", help="regressor vs mean face on the synthetic benchmark (and the bundled photos)")
    p.add_argument("--weights", default=None, help="a regressor weights file (default: $FACELIB_REGRESSOR_WEIGHTS, then the bundled one)")
    p.add_argument("-n", type=int, default=100, help="benchmark faces (seed 2020)")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--photos", action="store_true", help="also fit the two bundled photos from the regressor and from the mean face")
    p.add_argument("--json", default=None, help="write the results here instead of results/eval_regressor.json")
    p.set_defaults(func=_eval_regressor)

    p = sub.add_parser("data-grids", help="grids of synthetic faces (with landmarks) and of aligned real photos")
    p.add_argument("--out", default="out", help="folder for synthetic_faces.png and aligned_photos.png")
    p.add_argument("-n", type=int, default=16, help="faces per grid")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--level", type=int, default=None, help="mesh level of the synthetic albedo (default: 1, fast mode 0)")
    p.add_argument("--photos", default=None, help="a folder of photos to align (default: the course's two photos)")
    p.add_argument("--cache", default=None, help="where the aligned crops go (default: under ~/.cache/facelib/aligned)")
    p.add_argument("--all-faces", action="store_true", help="every face of each photo, not only the largest")
    p.add_argument("--device", default=None)
    p.set_defaults(func=_data_grids)

    p = sub.add_parser("train", help="train the GCN texture stage (Lin et al.); torchrun --nproc_per_node=N for data parallelism")
    p.add_argument("--config", default=None, help="a YAML file of settings (see configs/); flags override it")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in the run folder (--out)")
    from facelib.train.config import add_config_arguments

    add_config_arguments(p)
    p.set_defaults(func=_train)

    p = sub.add_parser("evaluate", help="score trained GCN runs against 3DMM-only on the synthetic benchmark, with ablations")
    p.add_argument("--run", nargs="+", default=None, help="evaluate these finished run folders (instead of training a study)")
    p.add_argument("--config", default=None, help="a training YAML: train the full run and its ablations under --out, then score them")
    p.add_argument("--ablations", nargs="*", default=None,
                   help="which ablations ('no Refiner', 'no Decoder', 'no adversarial loss', 'no identity loss'; default all)")
    p.add_argument("--n", type=int, default=50, help="benchmark faces (seed 2020)")
    p.add_argument("--eval-batch", type=int, default=8, help="benchmark faces per batch")
    p.add_argument("--json", default=None, help="write the results here instead of the default results/ file")
    add_config_arguments(p)
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("bench", help="benchmarks (speed targets live here)")
    p.add_argument("what", choices=["render", "gcn", "synthetic", "train"])
    p.add_argument("--batch", type=int, nargs="+", default=None, help="batch sizes (render: 1 16; gcn: 4 16; synthetic: 16)")
    p.add_argument("--level", type=int, default=None, help="synthetic: mesh level (default: 1, fast mode 0)")
    p.add_argument("--config", default=None, choices=["official", "paper", "official-wide", "small"],
                   help="gcn, train: TextureGCN configuration (gcn: official; train: paper)")
    p.add_argument("--mesh", default="grid", choices=["grid", "open"],
                   help="gcn: the 35,721-vertex grid, or the open face model subdivided twice (49,368 vertices)")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--device", default=None)
    p.add_argument("--pytorch3d-max-batch", type=int, default=None,
                   help="skip PyTorch3D above this batch (on a CPU it takes minutes at batch 16)")
    p.add_argument("--amp", action="store_true", help="train: bf16 autocast (CUDA)")
    p.add_argument("--compile", action="store_true", help="train: torch.compile the GCN and the critic")
    p.add_argument("--critic-steps", type=int, default=5, help="train: critic updates per generator step (official 5)")
    p.add_argument("--coarse", default="regressor", choices=["regressor", "truth"], help="train: the coarse stage")
    p.add_argument("--steps", type=int, default=5, help="train: timed steps (after 2 warm-up steps)")
    p.add_argument("--identity", action=argparse.BooleanOptionalAction, default=True, help="train: L_id (FaceNet on R')")
    p.add_argument("--json", default=None, help="write the results here instead of results/bench_WHAT.json")
    p.set_defaults(func=_bench)

    p = sub.add_parser("results", help="the README's tables of measurements, made from the results files (results/*.json)")
    p.add_argument("--readme", action="store_true", help="write them into README.md between its results markers")
    p.set_defaults(func=_results)

    args = parser.parse_args(argv)
    _ARGV[:] = sys.argv[1:] if argv is None else argv
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
