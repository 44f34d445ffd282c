"""The student-notebook generator: ``solutions/NN_*.ipynb`` is the single source.

A complete lesson lives in ``solutions/``. Its exercise cells carry the tag ``solution`` and mark
the answer with two comment lines::

    def add(a, b):
        # BEGIN SOLUTION
        return a + b
        # END SOLUTION

The student version in ``notebooks/`` is generated from it: each marked block becomes
``# YOUR CODE HERE`` and ``raise NotImplementedError`` at the block's indentation, every output is
removed, and check cells lose the ``nbval-check-output`` tag (in the solutions those cells must
print "correct", which nbval then verifies; in a student notebook they say "not attempted yet").
Exercises are functions, so a stub only raises when it is called, and the check that calls it
catches that: a student notebook runs top to bottom.

Outputs policy: solution notebooks are committed with light fast-mode outputs (so the course reads
well on its repository page); student notebooks are committed without outputs. :func:`trim_outputs`
keeps stored outputs small and drops those that only work in a live browser.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import nbformat

from facelib.config import REPO_DIR
from facelib.files import atomic_write_text

SOLUTION_TAG = "solution"
CHECK_OUTPUT_TAG = "nbval-check-output"
SOLUTIONS_DIR = REPO_DIR / "solutions"
NOTEBOOKS_DIR = REPO_DIR / "notebooks"
LESSON_PATTERN = "[0-9][0-9]_*.ipynb"

_BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION\s*$")
_END = re.compile(r"^[ \t]*# END SOLUTION\s*$")

# Output MIME types that need a live browser (widgets, plotly.js): stored copies only bloat diffs.
LIVE_ONLY_MIME = ("application/vnd.jupyter.widget-view+json", "application/vnd.plotly.v1+json")
MAX_OUTPUT_BYTES = 400_000
"""Largest single stored output in a solution notebook."""


class NotebookFormatError(ValueError):
    """A solution notebook breaks the course conventions (the message names the cell)."""


def stub_source(source: str, where: str = "cell") -> str:
    """Replaces each ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` block with an exercise stub.

    Raises:
        NotebookFormatError: when markers are missing, unbalanced or nested.
    """
    out: list[str] = []
    inside: str | None = None
    blocks = 0
    for line in source.splitlines():
        begin, end = _BEGIN.match(line), _END.match(line)
        if begin:
            if inside is not None:
                raise NotebookFormatError(f"{where}: nested '# BEGIN SOLUTION'")
            inside = begin.group("indent")
            out += [f"{inside}# YOUR CODE HERE", f"{inside}raise NotImplementedError"]
            blocks += 1
        elif end:
            if inside is None:
                raise NotebookFormatError(f"{where}: '# END SOLUTION' without a BEGIN")
            inside = None
        elif inside is None:
            out.append(line)
    if inside is not None:
        raise NotebookFormatError(f"{where}: '# BEGIN SOLUTION' is never closed")
    if blocks == 0:
        raise NotebookFormatError(f"{where} is tagged '{SOLUTION_TAG}' but has no '# BEGIN SOLUTION' block")
    return "\n".join(out)


def _tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def student_notebook(solution: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """Returns the student version of a solution notebook (a new object)."""
    nb = copy.deepcopy(solution)
    nb.metadata.pop("widgets", None)
    for index, cell in enumerate(nb.cells):
        tags = _tags(cell)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            if SOLUTION_TAG in tags:
                cell.source = stub_source(cell.source, f"{name} cell {index}")
        elif SOLUTION_TAG in tags:
            raise NotebookFormatError(f"{name} cell {index}: only code cells can be tagged '{SOLUTION_TAG}'")
        kept = [t for t in tags if t != CHECK_OUTPUT_TAG]
        if kept:
            cell.metadata["tags"] = kept
        else:
            cell.metadata.pop("tags", None)
        cell.metadata.pop("execution", None)
    return nb


def dumps(nb: nbformat.NotebookNode) -> str:
    """Serialises a notebook the same way every time (so that staleness is a string compare)."""
    return nbformat.writes(nb) + "\n"


def lessons(solutions_dir: Path = SOLUTIONS_DIR) -> list[Path]:
    """The solution notebooks, in lesson order."""
    return sorted(solutions_dir.glob(LESSON_PATTERN))


def generated(solution_path: Path) -> str:
    """The student notebook text generated from one solution notebook."""
    solution = nbformat.read(solution_path, as_version=4)
    return dumps(student_notebook(solution, solution_path.name))


def build(solutions_dir: Path = SOLUTIONS_DIR, notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Path]:
    """Writes every student notebook that differs from its generated version; returns those written."""
    notebooks_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in lessons(solutions_dir):
        target = notebooks_dir / path.name
        text = generated(path)
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            atomic_write_text(target, text)
            written.append(target)
    return written


def stale(solutions_dir: Path = SOLUTIONS_DIR, notebooks_dir: Path = NOTEBOOKS_DIR) -> list[str]:
    """Names of student notebooks that are missing, out of date, or have no solution twin."""
    problems = []
    sources = {p.name for p in lessons(solutions_dir)}
    for path in lessons(solutions_dir):
        target = notebooks_dir / path.name
        if not target.exists():
            problems.append(f"{target.name}: missing")
        elif target.read_text(encoding="utf-8") != generated(path):
            problems.append(f"{target.name}: out of date")
    for path in sorted(notebooks_dir.glob(LESSON_PATTERN)):
        if path.name not in sources:
            problems.append(f"{path.name}: no solutions/{path.name} to generate it from")
    return problems


def trim_outputs(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Keeps a solution notebook's stored outputs light: live-only MIME types and huge outputs go.

    A display that only had live-only data (a widget, a plotly figure) is replaced by a one-line
    note, so a reader of the stored notebook knows that something interactive appears there.
    """
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.get("outputs", []):
            data = output.get("data")
            if data is not None and any(mime in data for mime in LIVE_ONLY_MIME):
                data.clear()
                data["text/plain"] = "[interactive output: run the notebook to see it]"
                output.pop("transient", None)
            if len(str(output)) > MAX_OUTPUT_BYTES:
                output = nbformat.v4.new_output("stream", name="stdout", text="[large output removed from the stored notebook]\n")
            kept.append(output)
        cell.outputs = kept
        cell.metadata.pop("execution", None)
    nb.metadata.pop("widgets", None)
    return nb
