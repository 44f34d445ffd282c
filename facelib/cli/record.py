"""What a command records of itself in its results file (:mod:`facelib.results`)."""

from __future__ import annotations

import shlex

COMMAND_ARGS: list[str] = []
"""The running command's arguments (set by :func:`facelib.cli.main`), recorded in its results file."""


def write_command_results(name: str, payload: dict, path: str | None, device=None) -> None:
    """The command's measurements as a results file (:mod:`facelib.results`): ``results/<name>.json``, or ``--json PATH``."""
    from facelib.results import write_results

    print(f"wrote {write_results(name, payload, path, device, command='python -m facelib ' + shlex.join(COMMAND_ARGS))}")
