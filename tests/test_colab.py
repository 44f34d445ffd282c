"""The Colab set-up cell: where the course comes from, run against local clones (no network, no pip)."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest

from facelib.config import REPO_DIR
from facelib.course import colab


def test_every_notebook_takes_its_setup_cell_and_badge_from_one_address():
    for path in sorted((REPO_DIR / "solutions").glob("*.ipynb")):
        nb = nbformat.read(path, 4)
        lesson = int(path.name[:2])
        setup = [c.source for c in nb.cells if c.cell_type == "code" and c.source.startswith("# Set-up.")]
        assert setup == [colab.setup_cell(lesson)], f"{path.name}: regenerate its set-up cell with facelib.course.colab.setup_cell"
        assert any(colab.badge(path.name) in c.source for c in nb.cells if c.cell_type == "markdown"), path.name
    assert colab.REPOSITORY in (REPO_DIR / "README.md").read_text(), "the README must say where the course is published"


def _course_repo(root: Path) -> Path:
    """A git repository that looks like the course to the set-up cell (its one marker file)."""
    (root / "facelib" / "course").mkdir(parents=True)
    (root / "facelib" / "course" / "colab.py").write_text("# marker\n")
    git = ["git", "-C", str(root), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "course"], check=True)
    return root


def _run_colab_block(monkeypatch, cwd: Path) -> list[list[str]]:
    """Executes the cell's Colab half as on Colab; git runs for real, pip and facelib.course are recorded only."""
    calls: list[list[str]] = []
    real_run = subprocess.run

    def run(cmd, *args, **kwargs):
        calls.append([str(c) for c in cmd])
        if cmd[0] == "git":
            return real_run(cmd, *args, **kwargs)
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(sys, "path", list(sys.path))  # the cell puts the course on sys.path
    monkeypatch.chdir(cwd)
    exec(compile(colab.COLAB_BLOCK, "setup-cell", "exec"), {"sys": sys})
    return calls


def _installed(calls: list[list[str]]) -> Path:
    pip = [c for c in calls if c[1:4] == ["-m", "pip", "install"]]
    assert len(pip) == 1, calls
    assert calls[-1][1:] == ["-m", "facelib.course", "colab-setup"], calls
    return Path(pip[0][-1])


def test_setup_cell_clones_the_course_when_the_notebook_is_on_its_own(tmp_path, monkeypatch):
    origin = _course_repo(tmp_path / "origin")
    (tmp_path / "content").mkdir()
    monkeypatch.setenv("FACELIB_REPO", str(origin))
    monkeypatch.setenv("FACELIB_HOME", str(tmp_path / "content" / "facelib"))
    calls = _run_colab_block(monkeypatch, tmp_path / "content")
    assert [c[:2] for c in calls if c[0] == "git"] == [["git", "clone"]]
    assert _installed(calls) == tmp_path / "content" / "facelib"
    assert (tmp_path / "content" / "facelib" / "facelib" / "course" / "colab.py").is_file()
    # Run again (a second notebook in the same runtime): the clone is reused, not fetched twice.
    calls = _run_colab_block(monkeypatch, tmp_path / "content")
    assert not [c for c in calls if c[0] == "git"] and _installed(calls) == tmp_path / "content" / "facelib"


def test_setup_cell_installs_the_clone_it_was_opened_in(tmp_path, monkeypatch):
    clone = _course_repo(tmp_path / "drive" / "facelib")
    (clone / "notebooks").mkdir()
    monkeypatch.setenv("FACELIB_REPO", str(tmp_path / "nowhere"))
    monkeypatch.setenv("FACELIB_HOME", str(tmp_path / "home"))
    calls = _run_colab_block(monkeypatch, clone / "notebooks")
    assert not [c for c in calls if c[0] == "git"]
    assert _installed(calls) == clone


def test_setup_cell_says_what_to_set_when_the_address_is_wrong(tmp_path, monkeypatch):
    monkeypatch.setenv("FACELIB_REPO", str(tmp_path / "no-such-repository"))
    monkeypatch.setenv("FACELIB_HOME", str(tmp_path / "home"))
    (tmp_path / "content").mkdir()
    with pytest.raises(RuntimeError, match="FACELIB_REPO"):
        _run_colab_block(monkeypatch, tmp_path / "content")
