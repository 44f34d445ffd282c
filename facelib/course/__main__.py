"""``python -m facelib.course build | check | execute [NN ...] | colab-setup``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m facelib.course")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="generate notebooks/ from solutions/")
    sub.add_parser("check", help="exit 1 when notebooks/ is out of date")
    p = sub.add_parser("execute", help="run solution notebooks in fast mode, store light outputs, rebuild notebooks/")
    p.add_argument("lessons", nargs="*", help="lesson numbers (default: all)")
    sub.add_parser("colab-setup", help="install facelib's extra packages on Colab without replacing its torch")
    args = parser.parse_args(argv)

    # Each command imports only what it runs: colab-setup, the first command a fresh Colab runtime
    # runs, must not need nbclient (execute's) before it has installed anything.
    from facelib.course import student

    if args.command == "build":
        written = student.build()
        print("\n".join(f"wrote {p}" for p in written) or "notebooks/ is up to date")
        return 0
    if args.command == "check":
        problems = student.stale()
        print("\n".join(problems) or "notebooks/ is up to date")
        return 1 if problems else 0
    if args.command == "execute":
        from facelib.course.execute import execute_solutions

        execute_solutions(args.lessons)
        student.build()
        return 0
    if args.command == "colab-setup":
        from facelib.course.colab import colab_setup

        colab_setup()
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
