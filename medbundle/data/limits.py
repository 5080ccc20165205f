"""The pixel limit: an image's size read from its header (PIL formats, DICOM, NIfTI) and refused before decoding
when it exceeds ``max_pixels``, so that a 10,000 x 10,000 file fails at once instead of after seconds and gigabytes.
"""

from __future__ import annotations

import os
import re
import warnings

import nibabel
import pydicom
from PIL import Image

from medbundle.data.errors import DataError
from medbundle.data.names import ROW_PATTERN, SLICE_PATTERN

__all__ = ["MAX_PIXELS", "PixelLimitError", "image_shape", "check_pixels", "allow_pil_pixels"]

MAX_PIXELS = 40_000_000  # below PIL's decompression-bomb warning (~89 M) and error (~179 M) thresholds
_PIL_LIMIT = re.compile(r"Image size \((\d+) pixels\)")


class PixelLimitError(DataError):
    """An image with more pixels than allowed. ``what`` says how many against which limit, without the remedy, for
    front ends whose user cannot change the limit (the web demo says "downscale it" instead of naming bundle keys)."""

    def __init__(self, message: str, what: str) -> None:
        super().__init__(message)
        self.what = what


def allow_pil_pixels(max_pixels: int | None) -> None:
    """Raise PIL's process-wide decompression-bomb limit to ``max_pixels`` when that is higher (None: no limit).

    medbundle checks every image against its own ``max_pixels`` before decoding; PIL's own, lower check would
    otherwise refuse images the user explicitly allowed.
    """
    if Image.MAX_IMAGE_PIXELS is not None and (max_pixels is None or max_pixels > Image.MAX_IMAGE_PIXELS):
        Image.MAX_IMAGE_PIXELS = max_pixels


def image_shape(path: str | os.PathLike) -> tuple[int, ...] | None:
    """The array shape of the image file at ``path`` from its header only, without decoding the pixels.

    ``(rows, columns)`` for PIL formats (times ``frames`` as a leading dimension when there are several) and DICOM,
    the stored shape for NIfTI; None for ``.mat`` slices and parquet rows (checked as they are decoded) and for
    files whose header cannot be read (their reader reports why).

    Raises:
        DataError: when PIL refuses to open the file as a decompression bomb (far above any sensible limit).
    """
    name = str(path)
    lower = name.lower()
    if SLICE_PATTERN.match(name) or ROW_PATTERN.match(name):
        return None
    try:
        if lower.endswith((".nii", ".nii.gz")):
            return tuple(int(n) for n in nibabel.load(name).shape)
        if lower.endswith((".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(name) as im:  # reads the header only
                    frames = getattr(im, "n_frames", 1) if im.format == "TIFF" else 1
                    return (im.height, im.width) if frames == 1 else (frames, im.height, im.width)
        ds = pydicom.dcmread(name, stop_before_pixels=True)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        shape = (int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0))
        return shape if frames == 1 else (frames, *shape)
    except Image.DecompressionBombError as e:
        match = _PIL_LIMIT.search(str(e))
        pixels = f"{int(match[1]):,} pixels" if match else "too many pixels"
        what = f"{pixels}, far more than PIL opens (decompression-bomb limit {Image.MAX_IMAGE_PIXELS * 2:,})"
        raise PixelLimitError(
            f"{path}: {what} and than medbundle's max_pixels. Downscale the image, or raise max_pixels (bundle key "
            "--max_pixels).", what) from e
    except Exception:  # unreadable headers are reported by the reader that decodes the file
        return None


def check_pixels(path: str | os.PathLike, max_pixels: int | None = MAX_PIXELS) -> None:
    """Refuse the image at ``path`` before decoding when its header says it has more than ``max_pixels`` pixels.

    Args:
        path: an image file (``.mat`` slices and parquet rows pass unchecked).
        max_pixels: the most pixels (rows x columns x frames) one image may have; None: no limit.

    Raises:
        DataError: naming the file, its size and the limit, and how to raise it.
    """
    if max_pixels is None:
        return
    shape = image_shape(path)
    if shape is None:
        return
    pixels = 1
    for n in shape:
        pixels *= n
    if pixels > max_pixels:
        what = f"{' x '.join(str(n) for n in shape)} = {pixels:,} pixels, more than the limit of {max_pixels:,}"
        raise PixelLimitError(
            f"{path}: {what} (max_pixels). Downscale the image, or raise the limit: --max_pixels {pixels} for the "
            "bundle, max_pixels= for LoadImage2D(d) and load_datalists.", what)
