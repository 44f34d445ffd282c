"""The photo commands: ``reconstruct``, ``demo``, ``eval-reconstruct`` and ``score-photos``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from facelib.reconstruct import ReconstructConfig

from facelib.cli.record import write_command_results


def reconstruct_config(args: argparse.Namespace):
    """The ReconstructConfig of the reconstruct options (``reconstruct_options``); ValueError for bad values."""
    from facelib.reconstruct import ReconstructConfig
    from facelib.refine import RefineConfig

    overrides = {k: v for k, v in (("size", args.size), ("level", args.level), ("face", getattr(args, "face", None)),
                                   ("landmarks", getattr(args, "landmarks", None))) if v is not None}
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


def reconstruct_command(args: argparse.Namespace) -> int:
    from facelib.data import ImageError
    from facelib.nets import FaceNetWeightsError, RegressorWeightsError
    from facelib.reconstruct import FaceChoiceError, OutputFolderError, reconstruct
    from facelib.gcn.weights import TextureWeightsError

    try:
        config = reconstruct_config(args)
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


def compare_weights(paths: Sequence[str], config: "ReconstructConfig") -> dict[str, Path]:
    """``--compare-weights``: method name -> weights file, each an existing file; ValueError otherwise."""
    if paths and config.gcn_weights is None:
        raise ValueError("--compare-weights compares trained weights with the ones reconstruct runs, "
                         "but no trained weights run here (--per-image, or none found): give --gcn-weights")
    out: dict[str, Path] = {}
    for item in paths:
        path = Path(item)
        if not path.is_file():
            raise ValueError(f"--compare-weights {item}: no such file")
        if any(path.resolve() == other.resolve() for other in out.values()):
            raise ValueError(f"--compare-weights names {item} twice")
        name = f"GCN refined ({path.parent.name}/{path.name})"
        if name in out:
            raise ValueError(f"--compare-weights {out[name]} and {item} would both be named {name!r}: "
                             "copy one into a folder of another name")
        out[name] = path
    return out


def eval_reconstruct_command(args: argparse.Namespace) -> int:
    import textwrap

    from facelib import config as settings
    from facelib.data import benchmark
    from facelib.evaluate import (TABLE_LEGEND, detail_split, detail_split_table, evaluate, improvement_table,
                                  score_change_table, table)
    from facelib.nets import FaceNetWeightsError, IdentityEncoder, RegressorWeightsError
    from facelib.evaluate.pipeline import BENCHMARK_BASELINE, DELIT_REFERENCE, benchmark_methods
    from facelib.reconstruct import start_regressor
    from facelib.gcn.weights import TextureWeightsError

    try:
        config = reconstruct_config(args)
        if args.n < 2:
            raise ValueError(f"--n {args.n}: the bootstrap interval needs at least 2 faces")
        compare = compare_weights(args.compare_weights, config)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    device = settings.get_device(config.device, verbose=False)
    try:
        faces = benchmark(n=args.n, size=config.size, level=config.level, device=device)
        regressor = None
        if config.use_regressor:
            regressor, _, note = start_regressor(config, device, faces.model)
            if note:
                print(f"note: {note}")
        if config.texture_note:
            print(f"note: {config.texture_note}")
        encoder = IdentityEncoder(weights=config.facenet_weights, download=config.download_facenet, allow_untrained=True)
        # checks --gcn-weights before any work
        methods = benchmark_methods(faces, config.level, config, regressor, encoder=encoder, compare=compare,
                                    true_landmarks=args.true_landmarks)
        print(f"facelib eval-reconstruct: {args.n} benchmark faces (seed 2020) at {config.size} px, mesh level {config.level}, "
              f"on {device}: regress, fit {config.fit_steps} + refit {config.refit_steps} steps with M_face "
              f"to {args.true_landmarks} true landmarks, "
              f"refine {'with ' + str(config.gcn_weights) if config.gcn_weights else str(config.refine.steps) + ' steps per image'}"
              + "".join(f"; also {name}" for name in compare))
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
    by_detail = detail_split(scores, BENCHMARK_BASELINE)
    print(detail_split_table(by_detail, BENCHMARK_BASELINE))
    print(f"time: {seconds:.0f} s for {args.n} faces (fits, refinement and yardstick)")
    rows = {name: s.mean() for name, s in scores.items()}
    mode = "fast" if settings.FAST else "full"
    write_command_results(f"eval_reconstruct_{mode}_n{args.n}" + ("_lm68" if args.true_landmarks == 68 else ""), {
        "faces": args.n, "size": config.size, "level": config.level, "true_landmarks": args.true_landmarks, "seconds": seconds,
        "gcn_weights": Path(config.gcn_weights) if config.gcn_weights else None,
        "compare_weights": {name: Path(path) for name, path in compare.items()},
        "identity_network": getattr(encoder, "name", None), "methods": rows,
        "face_si_by_detail_share": by_detail}, args.json, device)
    return 0


def score_photos_command(args: argparse.Namespace) -> int:
    """Reconstructs each photo and tabulates its re-rendering and identity scores (real photos: no ground truth)."""
    from facelib import config as settings
    from facelib.data import PHOTOS, ImageError
    from facelib.nets import FaceNetWeightsError, RegressorWeightsError
    from facelib.reconstruct import reconstruct
    from facelib.gcn.weights import TextureWeightsError

    try:
        config = reconstruct_config(args)
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
        landmarks = {k: v for k, v in result.summary["landmarks"].items() if k != "points"}
        rows[str(photo)] = result.summary["scores"] | {"overlay": str(result.files["overlay"]), "landmarks": landmarks}
        print(f"{photo.name}: overlay {result.files['overlay']}; fitted to {landmarks['count']} landmarks"
              + (f" ({landmarks['why']})" if landmarks["count"] != config.landmarks else ""))
    if not rows:
        return 1
    methods = ("3dmm", "photo de-lit", "de-lit, mirror-filled", "gcn")
    print(f"re-rendering inside the rendered face x M_face, at {config.size} px, mesh level {config.level} "
          f"(gcn: {config.gcn_weights or 'per-image optimisation'}); identity distance photo-to-render "
          f"({next(iter(rows.values())).get('identity_network', 'no identity network')}; lower is better):")
    print(f"{'photo':<22}" + "".join(f"{m + ' PSNR':>28}{'id':>7}" for m in methods))
    for photo, row in rows.items():
        print(f"{Path(photo).name:<22}" + "".join(f"{row[m]['psnr']:>28.2f}{row[m].get('identity', float('nan')):>7.3f}" for m in methods))
    write_command_results(f"score_photos_{'fast' if settings.FAST else 'full'}", {
        "size": config.size, "level": config.level, "landmarks": config.landmarks, "gcn_weights": Path(config.gcn_weights) if config.gcn_weights else None, "photos": rows,
        "failed": failed}, args.json)
    return 0 if not failed else 1


def demo_command(args: argparse.Namespace) -> int:
    from facelib.data import PHOTOS

    args.photo = PHOTOS["grace_hopper"]
    return reconstruct_command(args)
