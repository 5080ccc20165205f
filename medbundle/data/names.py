"""Names that address one image inside a file: ``"<file>.mat#<index>"`` (a slice of a ``.mat`` stack, see
:mod:`medbundle.data.matfile`) and ``"<file>.parquet#<row>"`` (a row of a parquet table, see
:mod:`medbundle.data.parquet`)."""

from __future__ import annotations

import os
import re

__all__ = ["SLICE_PATTERN", "ROW_PATTERN", "split_indexed_name", "file_of"]

SLICE_PATTERN = re.compile(r"^(?P<path>.+\.mat)#(?P<index>\d+)$", re.IGNORECASE)
ROW_PATTERN = re.compile(r"^(?P<path>.+\.parquet)#(?P<index>\d+)$", re.IGNORECASE)


def split_indexed_name(name: str | os.PathLike, pattern: re.Pattern, form: str) -> tuple[str, int]:
    """Split a name matching ``pattern`` into its file and index: ``"/d/Train.mat#12"`` into ``("/d/Train.mat", 12)``.

    Args:
        name: the name.
        pattern: :data:`SLICE_PATTERN` or :data:`ROW_PATTERN` (groups ``path`` and ``index``).
        form: what such a name is, for the error message (``"parquet row name of the form '<file>.parquet#<row>'"``).

    Raises:
        ValueError: when ``name`` does not match ``pattern``.
    """
    match = pattern.match(str(name))
    if match is None:
        raise ValueError(f"not a {form}: {name}")
    return match["path"], int(match["index"])


def file_of(image: str) -> str:
    """The file behind an item's image (the ``.mat`` file of ``"<path>.mat#<index>"``, the parquet file of a row)."""
    match = SLICE_PATTERN.match(image) or ROW_PATTERN.match(image)
    return match["path"] if match else image
