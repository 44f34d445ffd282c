"""Test-session set-up for everything pytest collects: tests/, and notebooks/ and solutions/ through nbval.

Tests must not write into a user's files. facelib keeps what it builds once per machine (the open
face model, mesh hierarchies, dlib's converted network, regressor pools, aligned photo folders) in
``facelib.config.CACHE_DIR``, which is ``$FACELIB_CACHE`` or ``~/.cache/facelib``. So before anything
imports facelib, this file points ``FACELIB_CACHE`` at a fresh temporary folder for the whole session;
the Jupyter kernels that nbval starts (and any subprocess) inherit the environment, so notebooks write
there too. The folder is removed when the session ends; a session that was killed leaves it
behind, and the next session removes it (its ``owner.pid`` names a process that is gone).

It lives at the repository root (not in tests/) because pytest loads a folder's conftest.py only
when it collects that folder: ``pytest solutions/00_welcome.ipynb`` never loads tests/conftest.py.

Seeding: building the open model takes about 20 s and converting dlib's network a few more, so the
expensive, small, machine-independent files of the user's cache (:data:`SEED_PATTERNS`, about 95 MB)
are copied into the temporary folder when they exist. The user's cache is only read. Where it has
none, facelib builds them into the temporary folder as on a new machine.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

SEED_PATTERNS = ("open_face_model_*.npz", "hierarchy/hierarchy-*.npz", "identity/*.pt", "landmarks/*.pt")
"""The cache files copied in: the open model (~8 MB, ~20 s to build), mesh hierarchies (~1 MB each,
seconds each), dlib's converted network (~22 MB) and its parsed 68-point landmark detector (~65 MB, ~10 s to parse). Pools and aligned folders are left out: they are
large, and tests that make them use their own folders."""

TEMP_PREFIX = "facelib-test-cache-"

if "facelib.config" in sys.modules:  # too late: CACHE_DIR was read already (a plugin imported facelib)
    raise RuntimeError("facelib was imported before the root conftest.py could give the tests their own FACELIB_CACHE")

USER_CACHE = Path(os.environ.setdefault(
    "FACELIB_TEST_USER_CACHE", os.environ.get("FACELIB_CACHE", str(Path.home() / ".cache" / "facelib")))).expanduser()
"""The cache that the session would otherwise use: read from (to seed), never written. Recorded in the
environment before FACELIB_CACHE is moved, so that pytest-xdist's workers (which inherit the moved one)
still know the user's."""


def _remove_stale_folders() -> list[Path]:
    """Removes the top-level test folders of sessions that were killed (their owner process is gone), which
    no clean-up of theirs could remove."""
    removed = []
    for folder in Path(tempfile.gettempdir()).glob(TEMP_PREFIX + "*"):
        try:
            pid = int((folder / "owner.pid").read_text())
        except (OSError, ValueError):
            continue  # not ours to judge: no owner recorded
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        except PermissionError:
            pass  # alive, another user's
    return removed


STALE_REMOVED = [] if os.environ.get("FACELIB_TEST_ROOT") else _remove_stale_folders()

TEST_CACHE = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=os.environ.get("FACELIB_TEST_ROOT")))
"""The session's own cache. Under pytest-xdist each worker makes its own inside the controller's, so
removing the controller's folder removes every worker's too, even after a worker was killed."""
if "FACELIB_TEST_ROOT" not in os.environ:  # the top-level folder: say whose it is, for _remove_stale_folders
    os.environ["FACELIB_TEST_ROOT"] = str(TEST_CACHE)
    (TEST_CACHE / "owner.pid").write_text(str(os.getpid()))


def _seed(source: Path, target: Path) -> list[Path]:
    copied = []
    if source.is_dir():
        for pattern in SEED_PATTERNS:
            for path in sorted(source.glob(pattern)):
                if path.is_file():
                    destination = target / path.relative_to(source)
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, destination)
                    copied.append(destination)
    return copied


_start = time.perf_counter()
SEEDED = _seed(USER_CACHE, TEST_CACHE)
SEED_SECONDS = time.perf_counter() - _start
os.environ["FACELIB_CACHE"] = str(TEST_CACHE)
# Measuring commands write results files (facelib.results), and lessons and commands their outputs
# (facelib.config.OUT_DIR); in tests both go here, not into the repository's results/ and out/. Each
# pytest-xdist worker is its own process with its own folder, so a lesson's student and solution
# notebooks, run side by side, never write into each other's run folders.
os.environ["FACELIB_RESULTS"] = str(TEST_CACHE / "results")
os.environ["FACELIB_OUT"] = str(TEST_CACHE / "out")


def _remove_test_cache() -> None:
    shutil.rmtree(TEST_CACHE, ignore_errors=True)


atexit.register(_remove_test_cache)  # also when the session ends in a crash


def pytest_report_header(config) -> str:
    stale = f"; removed {len(STALE_REMOVED)} folders of killed sessions" if STALE_REMOVED else ""
    return (f"facelib cache: {TEST_CACHE} (temporary; {len(SEEDED)} files copied from {USER_CACHE} "
            f"in {SEED_SECONDS:.2f} s{stale})")


def pytest_unconfigure(config) -> None:
    _remove_test_cache()


@pytest.fixture(scope="session")
def user_cache_dir() -> Path:
    """The user's cache folder (the one the session must not write into)."""
    return USER_CACHE


@pytest.fixture(scope="session")
def test_cache_dir() -> Path:
    """The session's temporary cache folder (``$FACELIB_CACHE`` here and in every subprocess)."""
    return TEST_CACHE
