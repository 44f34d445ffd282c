"""Every file facelib saves is written atomically, through these few functions.

The data go to a temporary file in the destination's folder (``.<name>.<pid>.tmp``: processes that
share a cache never write into each other's), are flushed and fsynced, then ``os.replace``-d onto
the name, which is atomic on POSIX and Windows within one file system; the folder is fsynced so that
the rename survives a power cut. A reader therefore sees the old file or the new one, never half of
one. When writing fails with an exception the temporary file is removed; a process killed outright
can leave one behind, which nothing reads.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import IO, Any, Iterator


def _fsync_folder(folder: Path) -> None:
    # Makes the rename durable; not possible on every platform (Windows), where it is skipped.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Opens a temporary file to write ``path`` through; on a clean exit it replaces ``path``.

    Args:
        path: the destination; its folder is created.
        mode: ``"wb"`` or ``"w"`` (text, UTF-8).

    Example::

        with atomic_open(path) as handle:
            image.save(handle, format="PNG")
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Writes ``data`` to ``path`` atomically; returns the path."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Writes ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    with atomic_open(path, "w") as handle:
        handle.write(text)
    return Path(path)


def atomic_save(payload: dict[str, Any], path: str | Path) -> Path:
    """Writes ``payload`` with ``torch.save`` to ``path`` atomically (read it back with ``weights_only=True``); returns the path."""
    import torch

    with atomic_open(path, "wb") as handle:
        torch.save(payload, handle)
    return Path(path)
