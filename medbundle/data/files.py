"""Image files: which files are images, finding them below a folder (hidden files and ``__MACOSX`` left out), the
name matching shared by the layouts, and the check that opens every image of a datalist once."""

from __future__ import annotations

import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import nibabel
import numpy as np
import pydicom
from PIL import Image

from medbundle.data.dicom import dicom_intensities, is_dicom
from medbundle.data.errors import DataError
from medbundle.data.limits import MAX_PIXELS, allow_pil_pixels, check_pixels, image_shape
from medbundle.data.names import ROW_PATTERN, SLICE_PATTERN
from medbundle.data.parquet import decode_row
from medbundle.data.pillow import PIL_SUFFIXES, to_intensities

__all__ = ["IMAGE_SUFFIXES", "is_dicom"]

logger = logging.getLogger("medbundle.data")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm", ".nii", ".nii.gz")


def _norm(name: str) -> str:
    """Folder, class or split name for matching: lower case without spaces, ``_`` and ``-``."""
    return re.sub(r"[\s_\-]+", "", name).lower()


def _ignored(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def _is_resource_fork(name: str) -> bool:
    """Whether ``name`` is a macOS AppleDouble file (``._<name>``: the resource fork of ``<name>``, not an image)."""
    return name.startswith("._")


def _log_macos_leftovers(folder: Path) -> None:
    """Log, in one line, how many ``__MACOSX`` folders and ``._*`` resource forks below ``folder`` are skipped.

    Archives made on macOS carry them beside the images (``._IM-0001.jpeg`` next to ``IM-0001.jpeg``); they are
    never data, and every search leaves them out (:func:`_scan`). Links are not followed; other hidden folders are
    not entered.
    """
    folders = forks = 0
    for _, dirs, files in os.walk(folder):
        folders += dirs.count("__MACOSX")
        forks += sum(_is_resource_fork(f) for f in files)
        dirs[:] = [d for d in dirs if d == "__MACOSX" or not d.startswith(".")]
    if folders or forks:
        logger.info("%s: skipped %d __MACOSX folder(s) and %d '._*' macOS resource fork(s) (archive metadata, not "
                    "images)", folder, folders, forks)


def _scan(folder: Path) -> tuple[list[Path], list[Path]]:
    """Files and sub-folders of ``folder``, sorted, hidden ones and ``__MACOSX`` left out (links followed)."""
    try:
        with os.scandir(folder) as entries:
            kept = sorted((e for e in entries if not _ignored(e.name)), key=lambda e: e.name)
    except OSError as e:
        raise DataError(f"{folder}: the folder cannot be listed ({e.strerror or e}). Fix its permissions or remove "
                        "it.") from e
    return [Path(e.path) for e in kept if e.is_file()], [Path(e.path) for e in kept if e.is_dir()]


def _is_image(path: Path) -> bool:
    """A supported image file by its name, or a DICOM file by its ``DICM`` preamble; never a ``._`` resource fork."""
    if _is_resource_fork(path.name):
        return False
    return path.name.lower().endswith(IMAGE_SUFFIXES) or is_dicom(path)


def _folder_key(folder: Path) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of the real folder behind ``folder``; None for a dangling link."""
    try:
        st = folder.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _first_visit(folder: Path, seen: set[tuple[int, int]]) -> bool:
    """Whether the real folder behind ``folder`` is not in ``seen`` (then added), by device and inode.

    A folder reached a second time, through a symbolic link to itself, to a folder above it (a loop) or to one
    already searched, is skipped with a warning naming the link, so that no search runs without end and no image
    is found twice.
    """
    key = _folder_key(folder)
    if key is None:
        return False  # a dangling link: nothing to search
    if key in seen:
        logger.warning("%s: skipped, a link to the folder %s, which is searched already (a loop or a second "
                       "path to the same images)", folder, os.path.realpath(folder))
        return False
    seen.add(key)
    return True


def _find_images(folder: Path, seen: set[tuple[int, int]] | None = None) -> list[Path]:
    """Image files below ``folder`` (recursive, sorted), hidden ones and ``__MACOSX`` left out.

    Links to folders are followed, each real folder once (see :func:`_first_visit`).

    Args:
        folder: the folder to search (searched even when it is in ``seen``).
        seen: ``(st_dev, st_ino)`` of real folders not to enter (already searched, or searched separately, such as
            the other class folders); updated. None: a new set.
    """
    seen = set() if seen is None else seen
    if (key := _folder_key(Path(folder))) is not None:
        seen.add(key)  # searched even when in ``seen`` (the caller asks for it), without _first_visit's warning
    found, stack = [], [Path(folder)]
    while stack:
        files, dirs = _scan(stack.pop())
        found += [p for p in files if _is_image(p)]
        stack += [d for d in reversed(dirs) if _first_visit(d, seen)]
    return sorted(found)


def _image_error(path: str, image_column: str = "image", max_pixels: int | None = MAX_PIXELS) -> str | None:
    """Why the image file (or parquet row) at ``path`` cannot be read, or None when it can.

    Files are decoded as :class:`medbundle.transforms.LoadImage2D` decodes them, after the pixel limit is checked
    from their header (:func:`medbundle.data.limits.check_pixels`).
    """
    name = path.lower()
    try:
        if ROW_PATTERN.match(path):
            decode_row(path, image_column)
            return None
        check_pixels(path, max_pixels)
        if name.endswith((".nii", ".nii.gz")):
            _ = np.asanyarray(nibabel.load(path).dataobj)
        elif name.endswith(PIL_SUFFIXES):
            with Image.open(path) as im:
                to_intensities(im, path).load()
        else:
            dicom_intensities(pydicom.dcmread(path), path)
    except DataError as e:
        return str(e).split(": ", 1)[-1] if str(e).startswith(path.rsplit("#", 1)[0]) else str(e)
    except Exception as e:  # each library raises its own types for damaged files
        return f"{type(e).__name__}: {e}"
    return None


def _check_images(
    images: list[str],
    folder: Path,
    image_column: str = "image",
    max_pixels: int | None = MAX_PIXELS,
    masks: Sequence[tuple[str, str]] = (),
) -> None:
    """Open every image file and parquet row once (``.mat`` stacks are validated when read); report all failures.

    Masks are checked from their headers only (no decoding): each must be readable and of its image's size.

    Args:
        images: the items' image names.
        folder: the data folder, named in the error.
        image_column: image column of parquet files.
        max_pixels: the most pixels one image may have (checked from the header, before decoding); None: no limit.
        masks: ``(image, mask)`` file pairs (an item's ``"mask"``, ``"lung_mask"``); ``.mat`` slices and parquet rows
            are left out (checked when read).
    """
    allow_pil_pixels(max_pixels)
    paths = sorted({image for image in images if not SLICE_PATTERN.match(image)})
    indexed = (SLICE_PATTERN, ROW_PATTERN)
    pairs = sorted({(i, m) for i, m in masks if not any(p.match(n) for p in indexed for n in (i, m))})
    with ThreadPoolExecutor(max_workers=min(32, 4 * (os.cpu_count() or 1))) as pool:
        errors = pool.map(lambda p: _image_error(p, image_column, max_pixels), paths)
        bad = [(p, e) for p, e in zip(paths, errors) if e is not None]
        files = sorted({name for pair in pairs for name in pair})
        shapes = dict(zip(files, pool.map(image_shape, files)))  # headers only, each file once
    mismatched = [(m, e) for i, m in pairs if (e := _mask_error(shapes[i], shapes[m], i)) is not None]
    if mismatched and not bad:
        first = "; ".join(f"{m}: {e}" for m, e in mismatched[:3])
        raise DataError(
            f"{folder}: {len(mismatched)} of {len(pairs)} masks do not fit their image (first: {first}). A mask is a "
            "readable image of its image's size: replace these masks, or remove the mask folders (or mask column)."
        )
    if bad:
        listed = "\n".join(f"  {p}: {e}" for p, e in bad[:10]) + ("\n  ..." if len(bad) > 10 else "")
        raise DataError(
            f"{folder}: {len(bad)} of {len(paths)} image files cannot be read:\n{listed}\nRemove or replace these "
            "files, then start again."
        )


def _mask_error(image_size: tuple[int, ...] | None, mask_size: tuple[int, ...] | None, image: str) -> str | None:
    """Why a mask of header shape ``mask_size`` does not fit its image (``image``, of ``image_size``); None if it
    does."""
    if mask_size is None:
        return "its header cannot be read"
    if image_size is not None and image_size[-2:] != mask_size[-2:]:
        return f"{mask_size[-2]}x{mask_size[-1]} pixels, its image {image_size[-2]}x{image_size[-1]} ({image})"
    return None
