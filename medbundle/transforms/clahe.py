"""Contrast-limited adaptive histogram equalisation (CLAHE) of a one-channel image in [0, 1], on OpenCV's 8-bit path
(the seed's ``cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))``): deterministic, so a bundle applies it once, at
cache time, before its random transforms. An order of magnitude faster than scikit-image's ``equalize_adapthist`` at
the same tiles and clip level (``scripts/benchmark_clahe.py``)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import cv2
import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_numpy

__all__ = ["CLAHE", "CLAHEd"]

_TOLERANCE = 1e-3  # values this far outside [0, 1] (rounding of an earlier scaling) are clipped, not refused


class CLAHE(Transform):
    """Contrast-limited adaptive histogram equalisation of a channel-first one-channel image with values in [0, 1].

    The image is quantised to 8 bits (``round(255 * x)``), equalised by OpenCV's CLAHE, and returned as float32 in
    [0, 1] of the input's type (``MetaTensor`` with its metadata, tensor on its device, or ndarray) and shape
    ``(1, H, W)``. Scale the image to [0, 1] first (for example with MONAI's ``ScaleIntensity``).

    Args:
        clip_limit: OpenCV's ``clipLimit``: the contrast limit per tile (histogram bins are clipped at this multiple
            of the mean bin count); higher gives more contrast and more noise. Greater than 0.
        tile_grid_size: tiles along (rows, columns) (OpenCV's ``tileGridSize`` is (columns, rows): it is passed
            reversed); one int for both.

    Raises:
        ValueError: at construction for a non-positive clip limit or tile count; when called, for an image that is
            not ``(1, H, W)``, not floating point, not finite or outside [0, 1], each naming the fix.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, clip_limit: float = 2.0, tile_grid_size: int | Sequence[int] = (8, 8)) -> None:
        tiles = (tile_grid_size, tile_grid_size) if isinstance(tile_grid_size, int) else tuple(tile_grid_size)
        if not clip_limit > 0:
            raise ValueError(f"CLAHE: clip_limit must be greater than 0, got {clip_limit}. Use e.g. 2.0.")
        if len(tiles) != 2 or not all(isinstance(t, (int, np.integer)) and t > 0 for t in tiles):
            raise ValueError(f"CLAHE: tile_grid_size must be one or two positive ints, got {tile_grid_size}. Use "
                             "e.g. (8, 8).")
        self.clip_limit = float(clip_limit)
        self.tile_grid_size = (int(tiles[0]), int(tiles[1]))

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """Equalise ``img``, a ``(1, H, W)`` float image in [0, 1] (MetaTensor, tensor or ndarray)."""
        shape = tuple(img.shape)
        if len(shape) != 3 or shape[0] != 1:
            raise ValueError(f"CLAHE: expected a channel-first one-channel 2D image (1, H, W), got shape {shape}. "
                             "Add a channel first (EnsureChannelFirst) or make it grey (ToGrayscale) before CLAHE.")
        array = convert_to_numpy(img)
        if not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"CLAHE: expected a float image in [0, 1], got dtype {array.dtype}. Scale it to [0, 1] "
                             "first (ScaleIntensity).")
        low, high = float(array.min()), float(array.max())  # NaN when any pixel is NaN
        if not (np.isfinite(low) and np.isfinite(high)):
            raise ValueError("CLAHE: the image holds NaN or infinite values. Fix the image or the transform before "
                             "CLAHE.")
        if low < -_TOLERANCE or high > 1 + _TOLERANCE:
            raise ValueError(f"CLAHE: expected values in [0, 1], got [{low:g}, {high:g}]. Scale the image to [0, 1] "
                             "first (ScaleIntensity).")
        # round(255 * x) saturated to 0..255 (|x| for the rounding noise below 0): one pass in C, 10x numpy's
        grey = cv2.convertScaleAbs(np.asarray(array[0], dtype=np.float32 if array.itemsize < 4 else array.dtype),
                                   alpha=255.0)
        # a new OpenCV object per call: it cannot be pickled into DataLoader workers, and costs microseconds
        clahe = cv2.createCLAHE(clipLimit=self.clip_limit, tileGridSize=self.tile_grid_size[::-1])
        out = (clahe.apply(np.ascontiguousarray(grey)).astype(np.float32) / np.float32(255.0))[None]
        dtype = torch.float32 if isinstance(img, torch.Tensor) else np.float32
        return convert_to_dst_type(out, img, dtype=dtype)[0]


class CLAHEd(MapTransform):
    """Dictionary version of :class:`CLAHE`.

    Args:
        keys: keys of the images to equalise (each ``(1, H, W)`` float in [0, 1]).
        clip_limit: OpenCV's contrast limit per tile (see :class:`CLAHE`).
        tile_grid_size: tiles along (rows, columns); one int for both.
        allow_missing_keys: don't raise when a key is missing.
    """

    backend = CLAHE.backend

    def __init__(
        self,
        keys: KeysCollection,
        clip_limit: float = 2.0,
        tile_grid_size: int | Sequence[int] = (8, 8),
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.clahe = CLAHE(clip_limit=clip_limit, tile_grid_size=tile_grid_size)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            try:
                d[key] = self.clahe(d[key])
            except ValueError as e:
                raise ValueError(f"key '{key}': {e}") from e
        return d
