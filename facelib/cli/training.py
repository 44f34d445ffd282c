"""The training commands and their scores: ``train``, ``train-texture``, ``train-regressor``, ``evaluate``, ``eval-regressor``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facelib.cli.record import write_command_results


def train_texture_command(args: argparse.Namespace) -> int:
    import dataclasses

    from facelib.train.fitted_pool import PoolSpec, build_pool
    from facelib.train.texture import TextureTrainConfig, train_texture

    try:
        pool = PoolSpec(n=args.pool, seed=args.pool_seed)
        overrides = {k: getattr(args, k) for k in ("steps", "minutes", "batch", "lr", "albedo_weight", "identity_every", "denoise", "mirror_weight", "seed")
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


def train_regressor_command(args: argparse.Namespace) -> int:
    from facelib.train.regressor import RegressorTrainConfig, train_regressor

    try:
        overrides = {k: getattr(args, k) for k in ("out", "arch", "input_size", "pool", "steps", "minutes", "batch", "lr", "photo_size", "seed",
                                                   "aligned_weight", "init", "eval_n", "device") if getattr(args, k) is not None}
        config = RegressorTrainConfig(pretrained=args.pretrained, cache=not args.no_cache, **overrides)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from facelib.nets import RegressorWeightsError

    try:
        path = train_regressor(config)
    except (ValueError, RegressorWeightsError, FloatingPointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"to use these weights: FACELIB_REGRESSOR_WEIGHTS={path} (or --regressor-weights {path}); "
          "to replace the bundled ones, pass --out data/weights/regressor.pt")
    return 0


def eval_regressor_command(args: argparse.Namespace) -> int:
    from facelib.nets import RegressorWeightsError, load_regressor
    from facelib.evaluate.regressor import evaluate_photos, evaluate_regressor
    from facelib.morphable import load_open_model

    try:
        regressor = load_regressor(args.weights, model=load_open_model(level=0, verbose=False))
    except RegressorWeightsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    from facelib.nets.regressor import find_regressor_weights

    from facelib.reconstruct import ReconstructConfig

    steps = ReconstructConfig()
    fit_steps = steps.fit_steps if args.fit_steps is None else args.fit_steps
    refit_steps = steps.refit_steps if args.refit_steps is None else args.refit_steps
    if fit_steps < 0 or refit_steps < 0 or args.batch < 1 or args.turned < 0:
        print("error: --fit-steps, --refit-steps and --turned must be >= 0 and --batch >= 1", file=sys.stderr)
        return 2
    payload = {"weights": find_regressor_weights(args.weights),
               "benchmark": evaluate_regressor(regressor, n=args.n, size=args.size, batch=args.batch, fit_steps=fit_steps,
                                               refit_steps=refit_steps, fewer_steps=args.fewer_steps,
                                               prior_at_init=steps.prior_at_regressor, turned_faces=args.turned)}
    if args.photos:
        payload["photos"] = evaluate_photos(regressor)
    write_command_results("eval_regressor", payload, args.json)
    return 0


def train_command(args: argparse.Namespace) -> int:
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


def evaluate_command(args: argparse.Namespace) -> int:
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
    write_command_results("evaluate", {"faces": args.n, "runs": [str(r) for r in args.run or []], "methods": rows}, args.json)
    return 0
