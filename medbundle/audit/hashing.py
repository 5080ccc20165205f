"""Each image read once: its header (size, mode, bit depth, format), intensity statistics, content digests and
perceptual hashes, and a small thumbnail for checking near duplicates (:func:`hash_images`).

- ``file_sha256``: SHA-256 of the file's bytes; ``pixel_sha256``: SHA-256 of the decoded pixels (array shape, type
  and values: the same picture saved twice, or with other metadata, has the same one). JPEGs whose short side is
  at least 512 px are decoded at 1/2, 1/4 or 1/8 scale (``cv2.IMREAD_REDUCED_GRAYSCALE_*``, the short side kept
  at 256 px or more): for them the digest, the statistics and the hashes are of that decoding.
- ``phash``: 256-bit DCT hash (pHash): the grey image squeezed to 64 x 64 (aspect ratio dropped, so a copy resized
  to another aspect keeps its hash), the 16 x 16 lowest DCT frequencies, 1 where above their median. Robust to
  resizing, re-encoding and contrast changes; not to crops (5% off each side moves it as far as another image).
- ``coarse``: two 64-bit DCT hashes (8 x 8 frequencies of 32 x 32) of the whole image and of its centre 80%: less
  precise, more tolerant of crops; they only propose pairs that :mod:`medbundle.audit.alignment` then checks.
- ``thumbs``: the grey image squeezed to 64 x 64, stretched to 0-255 (uint8), for that check.

Grey is decoded as OpenCV reads the file (``IMREAD_UNCHANGED``: 16-bit kept, palette expanded, alpha dropped,
colour made grey), with PIL as fallback for what OpenCV cannot decode; DICOM files through
:func:`medbundle.data.dicom.dicom_intensities`; 2D NIfTI files through nibabel. Intensity statistics are of the
grey values divided by their type's maximum (0-1 for 8- and 16-bit files; DICOM and float files as stored).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

__all__ = ["HashTable", "hash_images", "hash_image", "INFO_COLUMNS"]

logger = logging.getLogger("medbundle.audit")

INFO_COLUMNS = ("width", "height", "aspect", "mode", "channels", "bit_depth", "format", "file_size", "decoded_scale",
                "mean", "std", "p01", "p05", "p50", "p95", "p99", "error")
_BIT_DEPTH = {"1": 1, "L": 8, "P": 8, "LA": 8, "PA": 8, "RGB": 8, "RGBA": 8, "RGBX": 8, "CMYK": 8, "YCbCr": 8,
              "I;16": 16, "I;16L": 16, "I;16B": 16, "I;16N": 16, "I": 32, "F": 32}
_CHANNELS = {"LA": 2, "PA": 2, "RGB": 3, "YCbCr": 3, "RGBA": 4, "RGBX": 4, "CMYK": 4}
_REDUCED = {2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4, 8: cv2.IMREAD_REDUCED_GRAYSCALE_8}
_STATS_PIXELS = 512  # statistics from every k-th pixel, k making the long side about this long


@dataclass
class HashTable:
    """Digests, hashes, thumbnails and header facts of images, one row per path (see the module docstring).

    Rows of files that could not be read have ``ok`` False, an ``error`` in ``info`` and zero hashes; nothing is
    compared with them.
    """

    paths: list[str]
    ok: np.ndarray  # (N,) bool
    file_sha256: list[str]
    pixel_sha256: list[str]
    phash: np.ndarray  # (N, 4) uint64: 256 bits
    coarse: np.ndarray  # (N, 2) uint64: 64 bits of the whole image, 64 of its centre 80%
    thumbs: np.ndarray  # (N, 64, 64) uint8
    info: list[dict] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)


def _dct_bits(image: np.ndarray, keep: int) -> np.ndarray:
    """``keep`` x ``keep`` lowest DCT frequencies of a square float32 image, 1 where above their median, packed."""
    low = cv2.dct(image)[:keep, :keep].ravel()
    return np.packbits(low > np.median(low)).view(np.uint64)


def _hashes(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(phash (4,), coarse (2,), thumb (64, 64) uint8)`` of a 2D grey image."""
    g = np.nan_to_num(gray.astype(np.float32, copy=False))
    t128 = cv2.resize(g, (128, 128), interpolation=cv2.INTER_AREA)
    t64 = cv2.resize(t128, (64, 64), interpolation=cv2.INTER_AREA)
    t32 = cv2.resize(t128, (32, 32), interpolation=cv2.INTER_AREA)
    c32 = cv2.resize(t128[13:115, 13:115], (32, 32), interpolation=cv2.INTER_AREA)
    coarse = np.concatenate([_dct_bits(t32, 8), _dct_bits(c32, 8)])
    low, high = float(t64.min()), float(t64.max())
    if high > low:
        thumb = np.round((t64 - low) * (255 / (high - low))).astype(np.uint8)
    else:
        thumb = np.zeros((64, 64), np.uint8)
    return _dct_bits(t64, 16), coarse, thumb


def _to_gray(array: np.ndarray, rgb: bool) -> np.ndarray:
    """A 2D grey image from a decoded array: alpha dropped, colour made grey (``rgb``: RGB order, else BGR)."""
    if array.ndim == 2:
        return array
    if array.shape[2] >= 3:
        colour = np.ascontiguousarray(array[..., :3])
        if colour.dtype not in (np.uint8, np.uint16, np.float32):
            colour = colour.astype(np.float32)
        return cv2.cvtColor(colour, cv2.COLOR_RGB2GRAY if rgb else cv2.COLOR_BGR2GRAY)
    return array[..., 0]


def _decode_raster(data: bytes, path: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(decoded array, grey, header facts)`` of a PNG/JPEG/BMP/TIFF file's bytes."""
    with Image.open(io.BytesIO(data)) as im:
        width, height, mode, fmt = im.width, im.height, im.mode, im.format or Path(path).suffix[1:].upper()
        info = {"width": width, "height": height, "mode": mode, "channels": _CHANNELS.get(mode, 1),
                "bit_depth": _BIT_DEPTH.get(mode, 8), "format": fmt, "decoded_scale": 1}
        buffer = np.frombuffer(data, np.uint8)
        array, rgb = None, False
        if fmt == "JPEG" and min(width, height) >= 512:
            scale = max(s for s in (1, 2, 4, 8) if min(width, height) // s >= 256)
            array = cv2.imdecode(buffer, _REDUCED[scale] | cv2.IMREAD_IGNORE_ORIENTATION) if scale > 1 else None
            info["decoded_scale"] = scale if array is not None else 1
        if array is None:
            array = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
        if array is None:  # what OpenCV cannot decode (some TIFF and BMP variants, GIF): PIL
            from medbundle.data.pillow import to_intensities

            array, rgb = np.asarray(to_intensities(im, path)), True
    return array, _to_gray(array, rgb), info


def _decode_dicom(data: bytes, path: str) -> tuple[np.ndarray, np.ndarray, dict]:
    import pydicom

    from medbundle.data.dicom import dicom_intensities

    ds = pydicom.dcmread(io.BytesIO(data))
    array = dicom_intensities(ds, path)
    info = {"width": array.shape[1], "height": array.shape[0], "format": "DICOM", "decoded_scale": 1,
            "mode": f"DICOM {ds.get('PhotometricInterpretation', '')}",
            "channels": 1 if array.ndim == 2 else array.shape[2],
            "bit_depth": int(ds.get("BitsStored", ds.get("BitsAllocated", 16)) or 16)}
    return array, _to_gray(array, rgb=True), info


def _decode_nifti(path: str) -> tuple[np.ndarray, np.ndarray, dict]:
    import nibabel

    array = np.squeeze(np.asanyarray(nibabel.load(path).dataobj))
    if array.ndim != 2:
        raise ValueError(f"a {array.ndim}D NIfTI volume {array.shape}, not a 2D image: skipped")
    info = {"width": array.shape[1], "height": array.shape[0], "mode": "NIfTI", "channels": 1, "format": "NIfTI",
            "bit_depth": array.dtype.itemsize * 8, "decoded_scale": 1}
    return array, array, info


def _statistics(gray: np.ndarray) -> dict:
    """Mean, standard deviation and percentiles of every k-th pixel, integer types divided by their maximum."""
    step = max(1, int(np.ceil(max(gray.shape) / _STATS_PIXELS)))
    values = gray[::step, ::step].astype(np.float64).ravel()
    if np.issubdtype(gray.dtype, np.integer):
        values /= np.iinfo(gray.dtype).max
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {}
    p = np.percentile(values, [1, 5, 50, 95, 99])
    return {"mean": values.mean(), "std": values.std(), "p01": p[0], "p05": p[1], "p50": p[2], "p95": p[3],
            "p99": p[4]}


def hash_image(path: str | os.PathLike) -> dict:
    """Read one image file: ``{"file_sha256", "pixel_sha256", "phash", "coarse", "thumb", "info"}``.

    Never raises for a damaged or unsupported file: ``info["error"]`` then says why, and the rest is empty.
    """
    path = str(path)
    out: dict = {"file_sha256": "", "pixel_sha256": "", "phash": None, "coarse": None, "thumb": None,
                 "info": {"error": ""}}
    try:
        data = Path(path).read_bytes()
        out["file_sha256"] = hashlib.sha256(data).hexdigest()
        out["info"]["file_size"] = len(data)
        name = path.lower()
        if name.endswith((".nii", ".nii.gz")):
            array, gray, info = _decode_nifti(path)
        elif data[128:132] == b"DICM" or name.endswith(".dcm"):
            array, gray, info = _decode_dicom(data, path)
        else:
            array, gray, info = _decode_raster(data, path)
        array = np.ascontiguousarray(array)
        digest = hashlib.sha256(f"{array.shape}{array.dtype.str}".encode())
        digest.update(array.data)
        out["pixel_sha256"] = digest.hexdigest()
        out["phash"], out["coarse"], out["thumb"] = _hashes(gray)
        out["info"].update(info, aspect=info["width"] / info["height"], **_statistics(gray))
    except Exception as e:  # each reader raises its own types for damaged files
        message = " ".join(str(e).split()) or type(e).__name__
        out["info"]["error"] = f"{type(e).__name__}: {message}" if type(e).__name__ not in message else message
        out.update(pixel_sha256="", phash=None, coarse=None, thumb=None)
    return out


def hash_images(paths: Sequence[str | os.PathLike], workers: int | None = None, progress: bool = True) -> HashTable:
    """Read every image of ``paths`` once (in threads) and return their digests, hashes and header facts.

    Args:
        paths: image files (PNG, JPEG, BMP, TIFF, DICOM, 2D NIfTI).
        workers: reading threads; None: the number of CPUs.
        progress: show a tqdm progress bar (on stderr).
    """
    from tqdm import tqdm

    paths = [str(p) for p in paths]
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        rows = list(tqdm(pool.map(hash_image, paths), total=len(paths), desc="audit: reading images", unit="img",
                         disable=not progress or not paths, dynamic_ncols=True))
    ok = np.array([r["phash"] is not None for r in rows], bool)
    for path, row in zip(paths, rows):
        if row["info"]["error"]:
            logger.warning("%s: cannot be read (%s); left out of the audit", path, row["info"]["error"])
    return HashTable(
        paths=paths,
        ok=ok,
        file_sha256=[r["file_sha256"] for r in rows],
        pixel_sha256=[r["pixel_sha256"] for r in rows],
        phash=np.stack([r["phash"] if r["phash"] is not None else np.zeros(4, np.uint64) for r in rows])
        if rows else np.zeros((0, 4), np.uint64),
        coarse=np.stack([r["coarse"] if r["phash"] is not None else np.zeros(2, np.uint64) for r in rows])
        if rows else np.zeros((0, 2), np.uint64),
        thumbs=np.stack([r["thumb"] if r["phash"] is not None else np.zeros((64, 64), np.uint8) for r in rows])
        if rows else np.zeros((0, 64, 64), np.uint8),
        info=[{c: r["info"].get(c, "") for c in INFO_COLUMNS} for r in rows],
    )
