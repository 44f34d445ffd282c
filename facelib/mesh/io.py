"""Mesh export and import: OBJ and PLY with per-vertex colours.

OBJ has no standard vertex colour; the widespread extension ``v x y z r g b`` (colours in [0, 1])
is read by MeshLab, Blender and trimesh. PLY stores colours as uchar red/green/blue properties.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from facelib.files import atomic_write_bytes


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _check(vertices: np.ndarray, triangles: np.ndarray, colors: np.ndarray | None) -> None:
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices must be (V, 3), got {vertices.shape}")
    if triangles.ndim != 2 or triangles.shape[1] != 3:
        raise ValueError(f"triangles must be (F, 3), got {triangles.shape}")
    if colors is not None and colors.shape != vertices.shape:
        raise ValueError(f"colors must be (V, 3) like the vertices, got {colors.shape}")


def _atomic_write(path: Path, data: bytes) -> Path:
    return atomic_write_bytes(path, data)


def write_obj(path: str | Path, vertices, triangles, colors=None) -> Path:
    """Writes an OBJ (1-based faces); colours in [0, 1] go on the ``v`` lines."""
    v, f = _np(vertices).astype(np.float64), _np(triangles).astype(np.int64)
    c = None if colors is None else np.clip(_np(colors).astype(np.float64), 0, 1)
    _check(v, f, c)
    rows = np.hstack([v, c]) if c is not None else v
    lines = ["# facelib mesh"]
    fmt = "v" + " %.6f" * rows.shape[1]
    lines += [fmt % tuple(r) for r in rows]
    lines += ["f %d %d %d" % tuple(t + 1) for t in f]
    return _atomic_write(Path(path), ("\n".join(lines) + "\n").encode())


def read_obj(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Reads an OBJ of triangles: (vertices, triangles 0-based, colours or None)."""
    verts, faces = [], []
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "v":
            verts.append([float(x) for x in parts[1:]])
        elif parts[0] == "f":
            faces.append([int(p.split("/")[0]) - 1 for p in parts[1:4]])
    arr = np.asarray(verts)
    colors = arr[:, 3:6] if arr.shape[1] >= 6 else None
    return arr[:, :3], np.asarray(faces, dtype=np.int64), colors


def write_ply(path: str | Path, vertices, triangles, colors=None) -> Path:
    """Writes a binary little-endian PLY with optional uchar vertex colours."""
    v, f = _np(vertices).astype(np.float32), _np(triangles).astype(np.int32)
    c = None if colors is None else (np.clip(_np(colors), 0, 1) * 255 + 0.5).astype(np.uint8)
    _check(v, f, c)
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {len(v)}", "property float x", "property float y", "property float z"]
    if c is not None:
        header += ["property uchar red", "property uchar green", "property uchar blue"]
    header += [f"element face {len(f)}", "property list uchar int vertex_indices", "end_header"]
    vdtype = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")] + ([("r", "u1"), ("g", "u1"), ("b", "u1")] if c is not None else [])
    vrec = np.empty(len(v), dtype=vdtype)
    vrec["x"], vrec["y"], vrec["z"] = v.T
    if c is not None:
        vrec["r"], vrec["g"], vrec["b"] = c.T
    frec = np.empty(len(f), dtype=[("n", "u1"), ("i", "<i4", 3)])
    frec["n"], frec["i"] = 3, f
    data = ("\n".join(header) + "\n").encode() + vrec.tobytes() + frec.tobytes()
    return _atomic_write(Path(path), data)


def read_ply(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Reads a PLY written by :func:`write_ply`: (vertices, triangles, colours in [0, 1] or None)."""
    raw = Path(path).read_bytes()
    end = raw.index(b"end_header\n") + len(b"end_header\n")
    header = raw[:end].decode().splitlines()
    if "format binary_little_endian 1.0" not in header:
        raise ValueError(f"{path}: only binary little-endian PLY files are read")
    nv = int(next(h for h in header if h.startswith("element vertex")).split()[-1])
    nf = int(next(h for h in header if h.startswith("element face")).split()[-1])
    has_color = "property uchar red" in header
    vdtype = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")] + ([("r", "u1"), ("g", "u1"), ("b", "u1")] if has_color else [])
    vrec = np.frombuffer(raw, dtype=vdtype, count=nv, offset=end)
    frec = np.frombuffer(raw, dtype=[("n", "u1"), ("i", "<i4", 3)], count=nf, offset=end + vrec.nbytes)
    verts = np.stack([vrec["x"], vrec["y"], vrec["z"]], 1)
    colors = np.stack([vrec["r"], vrec["g"], vrec["b"]], 1) / 255.0 if has_color else None
    return verts, frec["i"].astype(np.int64), colors
