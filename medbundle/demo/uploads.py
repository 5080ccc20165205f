"""An uploaded file on disk, where the predictor reads it: size checked, name made safe, written atomically."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from medbundle.data.errors import DataError

__all__ = ["save_upload", "safe_suffix"]


def safe_suffix(name: str) -> str:
    """The extension of ``name`` when it is short and plain (``.png``, ``.dcm``, ``.nii.gz``), else ``""`` (DICOM is
    then found by its ``DICM`` marker)."""
    suffixes = [s.lower() for s in Path(name).suffixes[-2:]]
    if len(suffixes) == 2 and suffixes[1] == ".gz":  # volume.nii.gz: the loader needs both
        suffix = "".join(suffixes)
    else:
        suffix = suffixes[-1] if suffixes else ""
    return suffix if re.fullmatch(r"(\.[a-z0-9]{1,6}){1,2}", suffix) else ""


def save_upload(data: bytes, name: str, folder: str | os.PathLike, max_bytes: int) -> Path:
    """Write ``data`` (the upload called ``name``) into ``folder`` as ``upload<suffix>``.

    The user's file name is never used as a path: only its plain extension is kept, so that the bundle's loader picks
    the reader by it as it does for files on disk.

    Raises:
        DataError: an empty file, or one above ``max_bytes`` (one line, with the limit).
    """
    if len(data) == 0:
        raise DataError(f"{name}: the file is empty. Upload a PNG, JPEG or DICOM image.")
    if len(data) > max_bytes:
        raise DataError(f"{name}: {len(data) / 2**20:.1f} MB is above the upload limit of {max_bytes / 2**20:.0f} MB. "
                        f"Upload a smaller image or start the demo with a larger --max_upload_mb.")
    target = Path(folder) / f"upload{safe_suffix(name)}"
    fd, tmp = tempfile.mkstemp(prefix=".upload.", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
