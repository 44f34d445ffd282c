"""What a training run writes down: a CSV row per step, TensorBoard scalars, and a ``history`` in memory.

* **CSV** (always): ``<run>/log.csv``, one row per logged step with fixed columns (every loss term,
  the weights s1..s4, the learning rate, images/s); a term that a run does not compute (no critic,
  no identity loss) stays empty. The file is flushed after every row, so it is readable while
  training runs and survives a crash up to the last row.
* **TensorBoard** (when the ``tensorboard`` package is installed; announced once when it is not):
  ``<run>/tensorboard``, one scalar per column, under ``loss/``, ``weight/`` and ``speed/``.
* **history**: column -> list of floats, for plotting in a notebook (``Records.history``).

Resuming: a checkpoint stores how many rows the CSV had (:attr:`Records.rows`). On resume the CSV
is cut back to that many rows (rows written after the checkpoint belong to steps that are run
again), the history is read back from it, and TensorBoard drops events past the resumed step
(``purge_step``), so every record shows each step once.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from facelib.files import atomic_write_text

COLUMNS = ("step", "epoch", "total", "pixel", "identity", "adversarial", "vertex", "projected", "critic", "wasserstein", "penalty",
           "s1", "s2", "s3", "s4", "lr", "images_per_s", "seconds")
"""The CSV columns, in order ("seconds": wall time since the run (or its resume) started)."""

_ANNOUNCED = False
"""Whether the missing tensorboard package was announced (once per process)."""

_GROUPS = {"s1": "weight", "s2": "weight", "s3": "weight", "s4": "weight", "lr": "weight", "images_per_s": "speed", "seconds": "speed"}


def tensorboard_writer(folder: Path, purge_step: int | None = None):
    """A ``torch.utils.tensorboard.SummaryWriter`` for ``folder``, or None (announced) without ``tensorboard``."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch's writer needs the tensorboard package
        global _ANNOUNCED
        if not _ANNOUNCED:
            _ANNOUNCED = True
            print("facelib.train: tensorboard is not installed, logging to CSV only (pip install tensorboard for its logs)")
        return None
    return SummaryWriter(log_dir=str(folder), purge_step=purge_step)



class Records:
    """The CSV log, the TensorBoard writer and the in-memory history of one run.

    Args:
        folder: the run folder (``log.csv`` and ``tensorboard/`` go here).
        resume_rows: when resuming, the number of CSV rows the checkpoint saw (the rest are cut);
            None starts a new log (an existing one is replaced).
        resume_step: the step training resumes at (TensorBoard events from it on are purged).
        tensorboard: write TensorBoard events when the package is installed.

    Attributes:
        history: column -> list of values (NaN where a row left it empty), for plotting.
        rows: how many data rows the CSV holds.
    """

    def __init__(self, folder: str | Path, resume_rows: int | None = None, resume_step: int | None = None,
                 tensorboard: bool = True) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "log.csv"
        self.history: dict[str, list[float]] = {c: [] for c in COLUMNS}
        self.rows = 0
        if resume_rows is not None and self.path.is_file():
            self._cut(resume_rows)
        else:
            self._write_text(",".join(COLUMNS) + "\n")
        self._tensorboard = tensorboard
        self._open(resume_step)

    def _open(self, purge_step: int | None = None) -> None:
        self._file = open(self.path, "a", newline="")
        self._csv = csv.DictWriter(self._file, fieldnames=COLUMNS, extrasaction="ignore")
        self.writer = tensorboard_writer(self.folder / "tensorboard", purge_step) if self._tensorboard else None

    def _write_text(self, text: str) -> None:
        atomic_write_text(self.path, text)

    def _cut(self, rows: int) -> None:
        with open(self.path, newline="") as handle:
            reader = csv.DictReader(handle)
            if tuple(reader.fieldnames or ()) != COLUMNS:
                raise ValueError(f"{self.path} has columns {reader.fieldnames}, not a facelib training log's: "
                                 "resume in the run folder that wrote the checkpoint")
            kept = []
            for row in reader:
                if len(kept) == rows:
                    break
                kept.append(row)
        if len(kept) < rows:
            raise ValueError(f"{self.path} holds {len(kept)} rows but the checkpoint saw {rows}: the log was truncated or replaced")
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept)
        self._write_text(out.getvalue())
        for row in kept:
            self._remember(row)

    def _remember(self, row: dict) -> None:
        for c in COLUMNS:
            value = row.get(c)
            self.history[c].append(math.nan if value in (None, "") else float(value))
        self.rows += 1

    def log(self, row: dict[str, float]) -> None:
        """Appends one step's values (keys outside :data:`COLUMNS` are ignored; missing ones stay empty)."""
        if "step" not in row:
            raise ValueError("a log row needs its 'step'")
        if self._file.closed:  # closed by an earlier train() call: append again
            self._open()
        clean = {k: (int(v) if k in ("step", "epoch") else f"{float(v):.6g}") for k, v in row.items() if k in COLUMNS and v is not None}
        self._csv.writerow(clean)
        self._file.flush()
        self._remember(clean)
        if self.writer is not None:
            step = int(row["step"])
            for key, value in clean.items():
                if key not in ("step", "epoch"):
                    self.writer.add_scalar(f"{_GROUPS.get(key, 'loss')}/{key}", float(value), step)

    def close(self) -> None:
        """Flushes and closes the CSV and TensorBoard files (the history stays)."""
        if not self._file.closed:
            self._file.close()
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def read_log(path: str | Path) -> dict[str, list[float]]:
    """A run's ``log.csv`` as column -> values (NaN for empty cells), e.g. to plot a finished run."""
    history: dict[str, list[float]] = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            for key, value in row.items():
                history.setdefault(key, []).append(math.nan if value in (None, "") else float(value))
    return history
