"""Choosing a photo in a notebook: one of the bundled photos, or your own (JupyterLab and Colab).

A notebook cell cannot wait for a click, so choosing is two cells: the first shows a
:class:`PhotoPicker` (a list of the bundled photos and an upload button), the next reads
:meth:`PhotoPicker.path`. In a headless run (CI, nbval) there is no one to click: the picker says
so and :meth:`~PhotoPicker.path` returns the default photo.
"""

from __future__ import annotations

import re
from pathlib import Path

from facelib.config import OUT_DIR
from facelib.data import PHOTOS
from facelib.viz.widgets import headless
from facelib.files import atomic_write_bytes

UPLOAD_DIR = OUT_DIR / "uploads"
"""Where uploaded photos are saved (inside the course folder, git-ignored)."""


def _safe_name(name: str) -> str:
    # Uploaded names come from the user's machine: keep letters, digits, dots, dashes.
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name).strip("._") or "photo"
    return stem[:80]


class PhotoPicker:
    """A dropdown of the bundled photos and an upload button.

    Args:
        default: the bundled photo chosen at first (a key of :data:`facelib.data.PHOTOS`).
        upload_dir: where uploads are written.

    Example::

        picker = PhotoPicker()     # cell 1: shows the controls
        path = picker.path()       # cell 2: the upload if there is one, else the chosen photo
    """

    def __init__(self, default: str = "grace_hopper", upload_dir: Path = UPLOAD_DIR) -> None:
        if default not in PHOTOS:
            raise ValueError(f"unknown bundled photo {default!r}; choose one of {sorted(PHOTOS)}")
        self.default, self.upload_dir = default, Path(upload_dir)
        self._dropdown = self._upload = None
        if headless():
            print(f"(a photo picker appears here in a live notebook; using the bundled {default!r})")
            return
        import ipywidgets
        from IPython.display import display

        self._dropdown = ipywidgets.Dropdown(options=sorted(PHOTOS), value=default, description="bundled:")
        self._upload = ipywidgets.FileUpload(accept="image/*", multiple=False, description="or upload")
        display(ipywidgets.HBox([self._dropdown, self._upload]))
        print("Pick a photo or upload your own (JPEG/PNG, one face, at least ~100 pixels across), then run the next cell.")

    def path(self) -> Path:
        """The uploaded photo (saved to ``upload_dir``), else the chosen bundled one."""
        if self._upload is not None and self._upload.value:
            item = self._upload.value[0]  # ipywidgets 8: a tuple of dicts with name and content
            self.upload_dir.mkdir(parents=True, exist_ok=True)
            target = self.upload_dir / _safe_name(item["name"])
            atomic_write_bytes(target, bytes(item["content"]))
            print(f"using your upload, saved as {target}")
            return target
        name = self._dropdown.value if self._dropdown is not None else self.default
        print(f"using the bundled photo {name!r} ({PHOTOS[name].name})")
        return PHOTOS[name]
