"""The ``python -m facelib`` command line: the parser, whose commands live in ``photos``, ``training`` and ``tools``.

Each command imports what it needs inside its function: ``python -m facelib --help`` and a mistyped
command answer at once, without loading torch (seconds on a cold start). Commands that measure
write a results file (:mod:`facelib.results`).
"""

from __future__ import annotations

import argparse
import sys

from facelib.cli.photos import demo_command, eval_reconstruct_command, reconstruct_command, score_photos_command
from facelib.cli.record import COMMAND_ARGS
from facelib.cli.tools import bench_command, build_model_command, data_grids_command, device_check_command, faces_command, results_command
from facelib.cli.training import evaluate_command, eval_regressor_command, train_command, train_regressor_command, train_texture_command

FACE_MASK_CHOICES = ("occluders", "skin", "off")
"""``--face-mask``'s choices: facelib.refine.FACE_MASK_MODES, written out so that ``--help`` does not import torch (a test holds the two equal)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m facelib", description="facelib: 3D face reconstruction with GCNs (Lin et al., CVPR 2020)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("build-model", help="build the open face model from the CC0 MakeHuman assets")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write here instead of the cache")
    p.add_argument("--force", action="store_true", help="rebuild even if the cached file exists")
    p.set_defaults(func=build_model_command)

    p = sub.add_parser("faces", help="render random faces of the open model into an image grid")
    p.add_argument("--out", default="out/faces.png")
    p.add_argument("-n", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=float, default=2.0, help="clip coefficients to +-limit standard deviations")
    p.add_argument("--level", type=int, default=1, help="subdivision level of the mesh")
    p.set_defaults(func=faces_command)

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

    def photo_options(p: argparse.ArgumentParser) -> None:
        reconstruct_options(p)
        p.add_argument("--landmarks", type=int, choices=(68, 5), default=None,
                       help="what the fit matches: dlib's 68 landmarks of the crop (default; without them, or where they disagree "
                            "with MTCNN, the five, and it says so) or MTCNN's 5 (data/README.md: why, and the 68-point model's terms)")

    p = sub.add_parser("eval-reconstruct", help="score reconstruct's texture refinement against 3DMM only on the synthetic benchmark",
                       description="Runs reconstruct's stages after detection (regress, fit, skin mask, refit, refine) on "
                       "synthetic benchmark faces, whose true albedo is known, and compares the 3DMM albedo, the refined one "
                       "and a yardstick (the photo de-lit by the fitted light): per-vertex albedo errors, rendering PSNR/SSIM, "
                       "and each change with a paired-bootstrap 95 %% interval.")
    p.add_argument("-n", "--n", type=int, default=24,
                   help="benchmark faces (seed 2020; default %(default)s; about 5 s each on two CPU cores with FACELIB_FAST=1)")
    p.add_argument("--eval-batch", type=int, default=8, help="benchmark faces fitted and refined together (default %(default)s)")
    p.add_argument("--true-landmarks", type=int, choices=(5, 68), default=5,
                   help="the fit matches the five of each face's true landmarks that MTCNN would find (default, the recorded "
                        "protocol) or all 68, as reconstruct fits dlib's 68 on a photo")
    p.add_argument("--json", default=None, help="write the results here instead of the default results/ file")
    p.add_argument("--compare-weights", nargs="+", default=(), metavar="PATH",
                   help="other TextureGCN weights to score on the same fits, each a method named after its file "
                        "(e.g. a new train-texture run against the shipped weights)")
    reconstruct_options(p)
    p.set_defaults(func=eval_reconstruct_command)

    p = sub.add_parser("score-photos", help="reconstruct real photos and score 3DMM, de-lit photo and GCN by re-rendering and identity",
                       description="Real photos have no true albedo, but they can be re-rendered: for each photo (default: the two "
                       "bundled ones), reconstruct it into OUT/<name>/ and print PSNR inside the rendered face and M_face and the "
                       "identity distance photo-to-render for the 3DMM albedo, the photo de-lit by the fitted light (a yardstick) "
                       "and the refined albedo.")
    p.add_argument("photos", nargs="*", help="photo files or folders of them (default: data/photos/*)")
    p.add_argument("--out", default="out/score-photos", help="output folder (default %(default)s)")
    p.add_argument("--json", default=None, help="write the results here instead of the default results/ file")
    photo_options(p)
    p.set_defaults(func=score_photos_command)

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
    p.add_argument("--denoise", type=float, default=None, metavar="K",
                   help="an experiment: trust the de-lit photo only where it departs from the 3DMM by more than K x the "
                        "face's median departure (default 0, the shipped recipe; data/README.md has what it does)")
    p.add_argument("--mirror-weight", type=float, default=None, metavar="W",
                   help="where a vertex has no reading of its own, trust its mirror partner's at W x the partner's "
                        "confidence, W in [0, 1] (default: the recipe's 0.5)")
    p.add_argument("--seed", type=int, default=None, help="initialisation and batch order")
    p.add_argument("--resume", action="store_true", help="go on from OUT/checkpoint.pt")
    p.set_defaults(func=train_texture_command)

    p = sub.add_parser("reconstruct", help="reconstruct the face of a photo: meshes, overlay, 3D viewer, summary")
    p.add_argument("photo", help="a photo with a face (JPEG, PNG, ...)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--face", type=int, default=None, metavar="K",
                   help="with several faces, reconstruct the K-th by size (default 0: the largest; the run lists them)")
    photo_options(p)
    p.set_defaults(func=reconstruct_command)

    p = sub.add_parser("demo", help="the course's end-to-end demo: reconstruct the bundled grace_hopper photo")
    p.add_argument("--out", default="out/demo", help="output folder")
    photo_options(p)
    p.set_defaults(func=demo_command)

    p = sub.add_parser("train-regressor", help="train the coarse-stage regressor on synthetic faces (writes out/regressor/regressor.pt; --out to choose)")
    p.add_argument("--out", default=None, help="the weights file (default: out/regressor/regressor.pt under FACELIB_OUT; the shipped one is data/weights/regressor.pt)")
    p.add_argument("--arch", default=None, choices=["resnet10", "resnet18", "resnet50"])
    p.add_argument("--input-size", type=int, default=None, help="network input side in pixels (default 112; 224 on a GPU)")
    p.add_argument("--pretrained", action="store_true", help="start resnet18/50 from ImageNet weights (downloaded by torchvision)")
    p.add_argument("--pool", type=int, default=None, help="synthetic faces rendered once and trained on")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps at most (default 9000)")
    p.add_argument("--minutes", type=float, default=None, help="wall-clock budget of the training loop (default 55; 0: none)")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--photo-size", type=int, default=None, help="side of the photometric term's rendering (0: off)")
    p.add_argument("--seed", type=int, default=None, help="seeds the pool, the start and the batch order (default 0)")
    p.add_argument("--aligned-weight", type=float, default=None,
                   help="weight of the aligned shape term, the benchmark's shape error (default 0: off)")
    p.add_argument("--init", default=None, metavar="WEIGHTS",
                   help="fine-tune these regressor weights instead of starting afresh (with a new --seed it sees new faces)")
    p.add_argument("--eval-n", type=int, default=None, help="benchmark faces measured after training (0: skip)")
    p.add_argument("--no-cache", action="store_true", help="do not cache the rendered pool on disk")
    p.add_argument("--device", default=None)
    p.set_defaults(func=train_regressor_command)

    p = sub.add_parser("eval-regressor", help="the coarse stage on the synthetic benchmark: mean face, regressor and the fits from each "
                       "(shape mm, expression, 68 landmarks, pose, albedo, skin tone), and the bundled photos")
    p.add_argument("--weights", default=None, help="a regressor weights file (default: $FACELIB_REGRESSOR_WEIGHTS, then the bundled one); "
                   "scored as reconstruct uses it, each face averaged with its mirror image")
    p.add_argument("-n", type=int, default=100, help="benchmark faces (seed 2020)")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--fit-steps", type=int, default=None, help="steps of the first fit, as reconstruct (default: fast 100, full 300; 0: no fits)")
    p.add_argument("--refit-steps", type=int, default=None, help="steps of the refit with M_face (default: fast 60, full 150)")
    p.add_argument("--batch", type=int, default=20, help="faces fitted at once")
    p.add_argument("--fewer-steps", type=int, nargs=2, default=None, metavar=("FIT", "REFIT"),
                   help="also fit from the regressor with these fewer steps (does its start save steps?)")
    p.add_argument("--turned", type=int, default=0, metavar="N",
                   help="also score N faces turned 60-75 degrees for their yaw error (the benchmark stops at 60)")
    p.add_argument("--photos", action="store_true", help="also fit the two bundled photos from the regressor and from the mean face")
    p.add_argument("--json", default=None, help="write the results here instead of results/eval_regressor.json")
    p.set_defaults(func=eval_regressor_command)

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
    p.set_defaults(func=data_grids_command)

    p = sub.add_parser("train", help="train the GCN texture stage (Lin et al.); torchrun --nproc_per_node=N for data parallelism")
    p.add_argument("--config", default=None, help="a YAML file of settings (see configs/); flags override it")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in the run folder (--out)")
    from facelib.train.config import add_config_arguments

    add_config_arguments(p)
    p.set_defaults(func=train_command)

    p = sub.add_parser("evaluate", help="score trained GCN runs against 3DMM-only on the synthetic benchmark, with ablations")
    p.add_argument("--run", nargs="+", default=None, help="evaluate these finished run folders (instead of training a study)")
    p.add_argument("--config", default=None, help="a training YAML: train the full run and its ablations under --out, then score them")
    p.add_argument("--ablations", nargs="*", default=None,
                   help="which ablations ('no Refiner', 'no Decoder', 'no adversarial loss', 'no identity loss'; default all)")
    p.add_argument("--n", type=int, default=50, help="benchmark faces (seed 2020)")
    p.add_argument("--eval-batch", type=int, default=8, help="benchmark faces per batch")
    p.add_argument("--json", default=None, help="write the results here instead of the default results/ file")
    add_config_arguments(p)
    p.set_defaults(func=evaluate_command)

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
    p.set_defaults(func=bench_command)

    p = sub.add_parser("device-check", help="the course's GPU measurements in one budgeted run (the cuda tests, the render, train "
                       "and gcn benches, paper-scale training with a resume in bf16 and fp16), one JSON report",
                       description="Runs the measurements the course needs from a GPU, most important first, each in its own "
                       "process with its own time limit, inside one overall budget, and writes OUT/device_check.json after "
                       "every step (a run cut off keeps what it measured). --quick runs the same plan at toy sizes, to check "
                       "it on a CPU before spending device time.")
    p.add_argument("--out", required=True, help="folder for the report, the benches' results files and the training runs")
    p.add_argument("--budget", type=float, default=540.0, help="seconds for the whole plan (default %(default)s)")
    p.add_argument("--device", default=None, help="device for the benches and the training (default: cuda; cpu with --quick)")
    p.add_argument("--quick", action="store_true", help="toy sizes and fp32: the plan's plumbing, not measurements")
    p.add_argument("--runs", default=None, help="folder for the training runs, whose checkpoints are large (default: under the "
                   "system's temporary folder, not under --out)")
    p.add_argument("--only", nargs="+", default=None, metavar="TEXT",
                   help="run only the steps whose names contain one of these (e.g. a second call: --only compiled gcn)")
    p.set_defaults(func=device_check_command)

    p = sub.add_parser("results", help="the README's tables of measurements, made from the results files (results/*.json)")
    p.add_argument("--readme", action="store_true", help="write them into README.md between its results markers")
    p.set_defaults(func=results_command)

    args = parser.parse_args(argv)
    COMMAND_ARGS[:] = sys.argv[1:] if argv is None else argv
    return int(args.func(args) or 0)

