"""Parquet image tables as published on the Hugging Face hub: validated reading and a MONAI reader for one row.

A table holds one image per row in a struct column (default ``image``) with fields ``bytes`` (an encoded PNG or
JPEG) and ``path``, and a class in another column (default ``label``: an integer, or a class name). Single
images are addressed as ``"<path>.parquet#<row>"``; :class:`ParquetRowReader` reads such names through
:class:`monai.transforms.LoadImage`. Only the encoded bytes are kept in memory (cached per file, a few tens of
MB for the Alzheimer MRI release); each image is decoded when a dataset asks for it, not up front.

Integer labels are mapped to class *names* before they become indices of the bundle's classes, because
releases order the classes differently (the Alzheimer parquet files number ``Mild_Demented`` 0 while the
Kaggle folders sort ``NonDemented`` first). The names come from the file's Hugging Face metadata
(``ClassLabel`` names) when it has them, else from the caller (``label_names``).
"""

from __future__ import annotations

import functools
import io
import json
import os
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from monai.data import ImageReader
from monai.utils import MetaKeys, SpaceKeys, ensure_tuple
from PIL import Image

from medbundle.data.errors import DataError
from medbundle.data.pillow import to_intensities
from medbundle.data.names import ROW_PATTERN, split_indexed_name

__all__ = ["ParquetTable", "read_parquet", "ParquetRowReader", "decode_row", "ROW_PATTERN"]

class ParquetTable(NamedTuple):
    """What :func:`read_parquet` returns: encoded images, raw labels, label names (or None) and groups (or None)."""

    images: pa.Array
    labels: list
    label_names: list[str] | None
    groups: list[str] | None


def read_parquet(
    path: str | os.PathLike,
    image_column: str = "image",
    label_column: str | None = "label",
    group_column: str | None = None,
) -> ParquetTable:
    """Read and validate an image table.

    The encoded images are cached per (file, modification time, size, image column), whichever other columns are
    asked for, so the datalist and every later :func:`decode_row` share one copy of the bytes; the small label and
    group columns are read each call.

    Args:
        path: the ``.parquet`` file.
        image_column: struct column with a ``bytes`` field (or a plain binary column) of encoded images.
        label_column: class column (integers or names); None for unlabelled tables.
        group_column: optional column of group keys (for example a subject id), for grouped splits.

    Raises:
        DataError: unreadable file, missing or mistyped columns, missing images or labels.
    """
    path = _stat_key(path)[0]
    schema = _schema(path)
    wanted = [c for c in (image_column, label_column, group_column) if c is not None]
    missing = [c for c in wanted if c not in schema.names]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {missing}; the file has {schema.names}. Expected the Hugging Face image "
            f"schema (column '{image_column}' a struct of bytes and path, column '{label_column}' the class). "
            "Rename the columns or pass image_column/label_column (bundle keys --image_column/--label_column)."
        )
    images = _image_bytes(*_stat_key(path), image_column)
    table = pq.read_table(path, columns=wanted[1:]) if len(wanted) > 1 else None
    labels, names = [], None
    if label_column is not None:
        column = table.column(label_column).combine_chunks()
        if not (pa.types.is_integer(column.type) or pa.types.is_string(column.type)
                or pa.types.is_large_string(column.type)):
            raise DataError(
                f"{path}: column '{label_column}' holds {column.type}; expected integer class indices or class "
                "names. Convert the column."
            )
        if column.null_count:
            raise DataError(f"{path}: {column.null_count} rows have no '{label_column}'. Label or remove them.")
        labels = column.to_pylist()
        names = _class_label_names(schema, label_column)
    groups = None
    if group_column is not None:
        groups = [None if g is None else str(g) for g in table.column(group_column).to_pylist()]
    return ParquetTable(images, labels, names, groups)


def _stat_key(path: str | os.PathLike) -> tuple[str, int, int]:
    """``(resolved path, modification time, size)``: the cache key of a file's contents."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as e:
        raise DataError(f"{p}: cannot be opened ({e}). Check the path.") from e
    return str(p.resolve()), st.st_mtime_ns, st.st_size


def _schema(path: str) -> pa.Schema:
    try:
        return pq.read_schema(path)
    except Exception as e:  # pyarrow raises several types for damaged or non-parquet files
        raise DataError(f"{path}: not a readable parquet file ({type(e).__name__}: {e}). Replace the file.") from e


@functools.lru_cache(maxsize=16)
def _image_bytes(path: str, mtime: int, size: int, image_column: str) -> pa.Array:
    """The validated encoded images of ``image_column`` (cached: the one copy of a file's bytes in memory)."""
    schema = _schema(path)
    if image_column not in schema.names:
        raise DataError(f"{path}: no column '{image_column}' (the file has {schema.names}). Pass --image_column.")
    images = pq.read_table(path, columns=[image_column]).column(image_column).combine_chunks()
    if pa.types.is_struct(images.type):
        if images.type.get_field_index("bytes") < 0:
            raise DataError(
                f"{path}: column '{image_column}' is a struct without a 'bytes' field ({images.type}). Expected "
                "struct<bytes: binary, path: string> as written by the Hugging Face datasets library."
            )
        images = images.field("bytes")
    if not (pa.types.is_binary(images.type) or pa.types.is_large_binary(images.type)):
        raise DataError(
            f"{path}: column '{image_column}' holds {images.type}, not encoded images. Expected a struct with a "
            "'bytes' field or a binary column of PNG/JPEG bytes."
        )
    if images.null_count:
        first = next(i for i, v in enumerate(images.is_null().to_pylist()) if v)
        raise DataError(f"{path}: {images.null_count} rows have no image bytes (first: row {first}). Remove them.")
    return images


def _class_label_names(schema: pa.Schema, column: str) -> list[str] | None:
    """The ``ClassLabel`` names of ``column`` in the Hugging Face metadata of ``schema``, if present."""
    try:
        meta = json.loads((schema.metadata or {}).get(b"huggingface", b"{}"))
        feature = meta.get("info", {}).get("features", {}).get(column, {})
        names = feature.get("names") if feature.get("_type") == "ClassLabel" else None
    except (ValueError, AttributeError):
        return None
    return [str(n) for n in names] if names else None


def split_row_name(name: str | os.PathLike) -> tuple[str, int]:
    """Split ``"/d/train-0.parquet#12"`` into ``("/d/train-0.parquet", 12)``.

    Raises:
        ValueError: when ``name`` is not of that form.
    """
    return split_indexed_name(name, ROW_PATTERN, "parquet row name of the form '<file>.parquet#<row>'")


def decode_row(name: str | os.PathLike, image_column: str = "image") -> np.ndarray:
    """Decode the image of ``"<file>.parquet#<row>"`` to a float32 array, rows first: (H, W), or (H, W, C) for colour.

    Raises:
        DataError: when the row does not exist or its bytes are not a readable image.
    """
    path, row = split_row_name(name)
    images = _image_bytes(*_stat_key(path), image_column)
    if row >= len(images):
        raise DataError(f"{path}: no row {row}; the file has {len(images)} rows. Rebuild the datalist.")
    try:
        with Image.open(io.BytesIO(images[row].as_py())) as im:
            return np.asarray(to_intensities(im, f"{path}, row {row}"), dtype=np.float32)
    except DataError:
        raise
    except Exception as e:  # PIL raises several types for damaged bytes
        raise DataError(f"{path}, row {row}: the image bytes cannot be decoded ({type(e).__name__}: {e}).") from e


class _Row(NamedTuple):
    array: np.ndarray
    filename: str


class ParquetRowReader(ImageReader):
    """MONAI image reader for the image of one parquet row, named ``"<path>.parquet#<row>"``.

    The encoded bytes of the whole file are cached by :func:`read_parquet`; only the row asked for is decoded.

    Args:
        image_column: the image column of the files.
    """

    def __init__(self, image_column: str = "image") -> None:
        super().__init__()
        self.image_column = image_column

    def verify_suffix(self, filename: Sequence[str | os.PathLike] | str | os.PathLike) -> bool:
        """Whether every name in ``filename`` has the form ``"<path>.parquet#<row>"``."""
        return all(ROW_PATTERN.match(str(name)) for name in ensure_tuple(filename))

    def read(self, data: Sequence[str | os.PathLike] | str | os.PathLike, **kwargs: Any) -> _Row | list[_Row]:
        """Decode the named rows.

        Args:
            data: a name ``"<path>.parquet#<row>"`` or a sequence of them.
            kwargs: unused, for the :class:`ImageReader` interface.
        """
        rows = [_Row(decode_row(name, self.image_column), str(name)) for name in ensure_tuple(data)]
        return rows if len(rows) > 1 else rows[0]

    def get_data(self, img: _Row | Sequence[_Row]) -> tuple[np.ndarray, dict]:
        """The image (channel last for colour) and its metadata; several rows must be grey and are stacked."""
        rows = [img] if isinstance(img, _Row) else list(img)
        if len(rows) > 1 and any(r.array.ndim != 2 or r.array.shape != rows[0].array.shape for r in rows):
            raise DataError(f"{rows[0].filename}: rows to stack as channels must be grey images of one size.")
        array = rows[0].array if len(rows) == 1 else np.stack([r.array for r in rows])
        channel = float("nan") if array.ndim == 2 else (0 if len(rows) > 1 else -1)
        meta = {
            MetaKeys.SPATIAL_SHAPE: np.asarray(array.shape[:2] if len(rows) == 1 else array.shape[1:]),
            MetaKeys.SPACE: SpaceKeys.RAS,
            MetaKeys.ORIGINAL_CHANNEL_DIM: channel,
            "filename_or_obj": rows[0].filename,
        }
        return array, meta
