"""The DICOM header facts a reader of the demo needs, read without the pixel data."""

from __future__ import annotations

import os
import warnings
from typing import Any

__all__ = ["dicom_facts", "FACT_TAGS"]

#: the header attributes shown, with their labels on the page.
FACT_TAGS = (("Modality", "modality"), ("PhotometricInterpretation", "photometric interpretation"),
             ("ViewPosition", "view position"), ("BodyPartExamined", "body part"))


def dicom_facts(path: str | os.PathLike) -> dict[str, Any] | None:
    """Modality, photometric interpretation, view position, body part and size of a DICOM file.

    The header is read with ``pydicom.dcmread(stop_before_pixels=True)``: the pixel data is never decoded here.

    Args:
        path: any file; a DICOM file is recognised by its ``DICM`` marker or, without a preamble, by pydicom.

    Returns:
        ``{"modality", "photometric interpretation", "view position", "body part", "rows x columns"}`` (values as
        strings, ``"-"`` where the header lacks them; ``"frames"`` added for multi-frame files), or None when the
        file is not DICOM.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    from medbundle.data.dicom import is_dicom

    force = not is_dicom(path)
    if force and not str(path).lower().endswith((".dcm", ".dicom")):
        return None
    try:
        with warnings.catch_warnings():  # a forced read of a file without preamble warns about what it guesses
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(str(path), stop_before_pixels=True, force=force)
    except (InvalidDicomError, OSError, ValueError, EOFError, AttributeError, KeyError):
        return None
    if "Rows" not in ds and "Modality" not in ds:  # forced read of a file that is not DICOM
        return None
    facts = {label: str(ds.get(tag, "") or "-") for tag, label in FACT_TAGS}
    rows, cols = ds.get("Rows"), ds.get("Columns")
    facts["rows x columns"] = f"{rows} x {cols}" if rows and cols else "-"
    frames = ds.get("NumberOfFrames")
    if frames not in (None, "", 1, "1"):
        facts["frames"] = str(frames)
    return facts
