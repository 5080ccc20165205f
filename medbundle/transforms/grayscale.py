"""Reducing a loaded channel-first 2D image to one grey channel (RGB as BT.601 luminance, alpha dropped)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform

from medbundle.data.errors import DataError

__all__ = ["ToGrayscale", "ToGrayscaled"]

_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601


class ToGrayscale(Transform):
    """Reduce a channel-first 2D image to one channel.

    One channel is kept; RGB becomes BT.601 luminance; RGBA drops alpha first; grey+alpha keeps
    grey. Trailing singleton spatial dimensions (a 2D DICOM or NIfTI read as H x W x 1) are removed.

    Args:
        filename: name used in error messages when the image is not 2D.
    """

    def __call__(self, img: torch.Tensor, filename: str = "") -> torch.Tensor:
        while img.ndim > 3 and img.shape[-1] == 1:
            img = img[..., 0]
        if img.ndim != 3:
            raise DataError(
                f"{filename or 'image'}: expected a 2D image, got shape {tuple(img.shape[1:])} (after the channel). "
                "medbundle classifies 2D slices: export the slices of a volume as 2D files."
            )
        c = img.shape[0]
        if c == 1:
            return img
        if c in (3, 4):
            if not img.is_floating_point():
                img = img.float()
            w = torch.as_tensor(_LUMA, dtype=img.dtype, device=img.device).view(3, 1, 1)
            return (img[:3] * w).sum(0, keepdim=True)
        return img[:1]


class ToGrayscaled(MapTransform):
    """Dictionary version of :class:`ToGrayscale`.

    Args:
        keys: keys of the images to convert.
        allow_missing_keys: don't raise when a key is missing.
    """

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.converter = ToGrayscale()

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.converter(d[key])
        return d
