"""Image files: which files are images, finding them below a folder (hidden files and ``__MACOSX`` left out), the
name matching shared by the layouts, and the check that opens every image of a datalist once."""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nibabel
import numpy as np
import pydicom
from PIL import Image

from medbundle.data.errors import DataError
from medbundle.data.names import ROW_PATTERN, SLICE_PATTERN
from medbundle.data.parquet import decode_row

__all__ = ["IMAGE_SUFFIXES", "is_dicom"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm", ".nii", ".nii.gz")


def _norm(name: str) -> str:
    """Folder, class or split name for matching: lower case without spaces, ``_`` and ``-``."""
    return re.sub(r"[\s_\-]+", "", name).lower()


def _ignored(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def _scan(folder: Path) -> tuple[list[Path], list[Path]]:
    """Files and sub-folders of ``folder``, sorted, hidden ones and ``__MACOSX`` left out."""
    with os.scandir(folder) as entries:
        kept = sorted((e for e in entries if not _ignored(e.name)), key=lambda e: e.name)
    return [Path(e.path) for e in kept if e.is_file()], [Path(e.path) for e in kept if e.is_dir()]


def _is_image(path: Path) -> bool:
    """A supported image file by its name, or a DICOM file by its ``DICM`` preamble."""
    return path.name.lower().endswith(IMAGE_SUFFIXES) or is_dicom(path)


def is_dicom(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a DICOM file, by the ``DICM`` marker after its 128-byte preamble."""
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def _find_images(folder: Path) -> list[Path]:
    """Image files below ``folder`` (recursive, sorted), hidden ones and ``__MACOSX`` left out."""
    found = []
    for parent, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not _ignored(d)]
        found += [p for f in files if not _ignored(f) and _is_image(p := Path(parent, f))]
    return sorted(found)


def _image_error(path: str, image_column: str = "image") -> str | None:
    """Why the image file (or parquet row) at ``path`` cannot be read, or None when it can."""
    name = path.lower()
    try:
        if ROW_PATTERN.match(path):
            decode_row(path, image_column)
        elif name.endswith((".nii", ".nii.gz")):
            _ = np.asanyarray(nibabel.load(path).dataobj)
        elif name.endswith(IMAGE_SUFFIXES) and not name.endswith(".dcm"):
            with Image.open(path) as im:
                im.load()
        else:
            _ = pydicom.dcmread(path).pixel_array
    except DataError as e:
        return str(e).split(": ", 1)[-1] if str(e).startswith(path.rsplit("#", 1)[0]) else str(e)
    except Exception as e:  # each library raises its own types for damaged files
        return f"{type(e).__name__}: {e}"
    return None


def _check_images(images: list[str], folder: Path, image_column: str = "image") -> None:
    """Open every image file and parquet row once (``.mat`` stacks are validated when read); report all failures."""
    paths = sorted({image for image in images if not SLICE_PATTERN.match(image)})
    with ThreadPoolExecutor(max_workers=min(32, 4 * (os.cpu_count() or 1))) as pool:
        errors = pool.map(lambda p: _image_error(p, image_column), paths)
        bad = [(p, e) for p, e in zip(paths, errors) if e is not None]
    if bad:
        listed = "\n".join(f"  {p}: {e}" for p, e in bad[:10]) + ("\n  ..." if len(bad) > 10 else "")
        raise DataError(
            f"{folder}: {len(bad)} of {len(paths)} image files cannot be read:\n{listed}\nRemove or replace these "
            "files, then start again."
        )
