"""DICOM files as intensities, as a viewer shows them: the modality LUT (rescale slope and intercept), then the VOI LUT
or window centre/width (as float, never squeezed to 8 bits), then MONOCHROME1 images (white = low values, as many
radiographs are stored) inverted to the MONOCHROME2 convention within the output range; colour images (palette
colour through its colour table) as RGB; files without pixel data (structured reports, ...) or with several frames
refused with a one-line error."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pydicom
from monai.data import ImageReader
from monai.utils import MetaKeys, SpaceKeys, ensure_tuple
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut

from medbundle.data.errors import DataError

__all__ = ["is_dicom", "dicom_intensities", "DicomReader"]

_PIXEL_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def is_dicom(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a DICOM file, by the ``DICM`` marker after its 128-byte preamble."""
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def _value_range(ds: pydicom.Dataset) -> tuple[float, float]:
    """Lowest and highest value the stored bit range can take after the modality LUT."""
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)) or 16)
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    if bits > 16:  # too many values to map one by one; a LUT this deep does not occur
        values = apply_modality_lut(np.array([low, high], dtype=np.float64), ds)
    else:
        values = apply_modality_lut(np.arange(low, high + 1, dtype=np.int64), ds)
    return float(np.min(values)), float(np.max(values))


def dicom_intensities(ds: pydicom.Dataset, filename: str | os.PathLike = "") -> np.ndarray:
    """The pixels of ``ds`` as intensities, rows first: ``(H, W)`` grey (MONOCHROME2 convention) or ``(H, W, 3)`` RGB.

    Args:
        ds: a DICOM data set read with its pixel data.
        filename: name used in error messages.

    Raises:
        DataError: when the file has no pixel data, several frames, or pixels that cannot be decoded.
    """
    if not any(tag in ds for tag in _PIXEL_TAGS):
        kind = getattr(ds.get("SOPClassUID"), "name", None) or ds.get("Modality", "unknown kind")
        raise DataError(
            f"{filename}: a DICOM file without pixel data ({kind}), not an image. Remove it from the image folder."
        )
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise DataError(
            f"{filename}: a multi-frame DICOM ({frames} frames); medbundle classifies single 2D images. Export each "
            "frame as its own file."
        )
    try:
        pixels = ds.pixel_array
    except Exception as e:  # missing decoder for the transfer syntax, damaged data
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        raise DataError(
            f"{filename}: DICOM pixels cannot be decoded ({type(e).__name__}: {e}; transfer syntax "
            f"{getattr(syntax, 'name', syntax)}). Install the decoder pydicom names, or convert the file."
        ) from e
    if int(ds.get("SamplesPerPixel", 1) or 1) > 1:
        return pixels  # colour: pydicom returns RGB (H, W, 3)
    if str(ds.get("PhotometricInterpretation", "")).strip() == "PALETTE COLOR":  # indices into a colour table
        return apply_color_lut(pixels, ds)  # RGB (H, W, 3), made grey as any colour image
    image = apply_modality_lut(pixels, ds).astype(np.float64)
    image, (low, high) = _apply_voi(image, ds, filename)
    if str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip() == "MONOCHROME1":
        image = (low + high) - image
    return image


def _apply_voi(image: np.ndarray, ds: pydicom.Dataset, filename: str | os.PathLike) -> tuple[np.ndarray,
                                                                                            tuple[float, float]]:
    """``image`` (after the modality LUT) through the first VOI LUT or window of ``ds``, as float, and the range of
    values that output can take (the range MONOCHROME1 is inverted in).

    Without a VOI LUT or window, ``image`` and the range of the modality LUT's output (:func:`_value_range`).
    """
    try:
        if ds.get("VOILUTSequence"):
            depth = int(ds.VOILUTSequence[0].LUTDescriptor[2])
            out = apply_voi_lut(np.rint(image).astype(np.int64), ds, index=0, prefer_lut=True)
            return out.astype(np.float64), (0.0, float(2**depth - 1))
        if all(ds.get(tag) not in (None, "", []) for tag in ("WindowCenter", "WindowWidth")):  # empty: no window
            out = apply_voi_lut(image, ds, index=0, prefer_lut=False)
            # every windowing function (linear, linear exact, sigmoid) sends -inf and +inf to its output's ends
            ends = apply_voi_lut(np.array([-np.inf, np.inf]), ds, index=0, prefer_lut=False)
            return out.astype(np.float64), (float(ends[0]), float(ends[1]))
    except (ValueError, NotImplementedError, AttributeError, TypeError, IndexError) as e:
        raise DataError(
            f"{filename}: the DICOM VOI LUT or window (centre {ds.get('WindowCenter')}, width "
            f"{ds.get('WindowWidth')}) cannot be applied ({e}). Fix or remove these tags, or convert the file."
        ) from e
    return image, _value_range(ds)


class DicomReader(ImageReader):
    """MONAI image reader for single-frame DICOM files (any name; recognised by suffix or ``DICM`` marker), rows
    first, through :func:`dicom_intensities`."""

    def verify_suffix(self, filename: Sequence[str | os.PathLike] | str | os.PathLike) -> bool:
        """Whether every name in ``filename`` ends with ``.dcm``/``.dicom`` or is a DICOM file by content."""
        return all(str(n).lower().endswith((".dcm", ".dicom")) or is_dicom(n) for n in ensure_tuple(filename))

    def read(self, data: Sequence[str | os.PathLike] | str | os.PathLike, **kwargs: Any) -> Any:
        """The DICOM data set(s) of ``data``, each with its file name."""
        read = [(pydicom.dcmread(str(name), **kwargs), str(name)) for name in ensure_tuple(data)]
        return read if len(read) > 1 else read[0]

    def get_data(self, img: Any) -> tuple[np.ndarray, dict]:
        """The image array (grey ``(H, W)`` or RGB ``(H, W, 3)``) and its metadata.

        Args:
            img: what :meth:`read` returned.
        """
        if isinstance(img, list):
            raise DataError(f"{img[0][1]}: several DICOM files given for one image. Give one file per image.")
        ds, filename = img
        array = dicom_intensities(ds, filename)
        meta = {
            MetaKeys.SPATIAL_SHAPE: np.asarray(array.shape[:2]),
            MetaKeys.SPACE: SpaceKeys.RAS,
            MetaKeys.ORIGINAL_CHANNEL_DIM: float("nan") if array.ndim == 2 else -1,
            "filename_or_obj": filename,
        }
        return array, meta
