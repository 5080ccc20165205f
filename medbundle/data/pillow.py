"""PNG, JPEG, BMP and TIFF files as intensities: every PIL mode whose pixels are not grey or colour values (palette
indices, CMYK, YCbCr, 1-bit, premultiplied alpha...) is converted to grey or RGB (made grey by
:class:`medbundle.transforms.ToGrayscale`), 16- and 32-bit grey keep their range, and files holding several frames
(multi-page TIFF) are refused."""

from __future__ import annotations

import os
from collections.abc import Sequence

from monai.data import PILReader
from monai.utils import ensure_tuple
from PIL import Image

from medbundle.data.errors import DataError

__all__ = ["PIL_SUFFIXES", "to_intensities", "PillowReader"]

PIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
# modes whose array values are already intensities: grey (8, 16, 32 bit, float), grey + alpha, RGB, RGBA
_KEPT = ("L", "LA", "I", "F", "RGB", "RGBA", "I;16", "I;16L", "I;16B", "I;16N")
# everything else, converted by PIL: palette -> its colours, 1-bit -> 0/255, CMYK/YCbCr/HSV -> RGB
_CONVERT = {"P": "RGB", "PA": "RGBA", "1": "L", "La": "LA", "RGBa": "RGBA", "RGBX": "RGB", "CMYK": "RGB",
            "YCbCr": "RGB", "HSV": "RGB"}


def to_intensities(im: Image.Image, filename: str | os.PathLike = "") -> Image.Image:
    """``im`` in a mode whose array holds intensities (see :data:`_KEPT`), never palette indices.

    Args:
        im: an opened PIL image (header read; pixels decoded here only when a conversion needs them).
        filename: name used in error messages.

    Raises:
        DataError: for several frames (multi-page TIFF, animation) or a mode without a grey/RGB conversion.
    """
    frames = getattr(im, "n_frames", 1)
    if frames > 1 and im.format != "MPO":  # MPO: a JPEG with preview images, the first frame is the picture
        raise DataError(
            f"{filename}: holds {frames} frames ({im.format}); medbundle classifies single 2D images. Save each "
            "frame as its own file."
        )
    if im.mode in _KEPT:
        return im
    if im.mode == "P" and "transparency" in im.info:
        return im.convert("RGBA")
    target = _CONVERT.get(im.mode)
    if target is None:
        raise DataError(
            f"{filename}: PIL image mode '{im.mode}' has no grey or RGB conversion. Save the image as grey or RGB."
        )
    return im.convert(target)


class PillowReader(PILReader):
    """MONAI's :class:`~monai.data.PILReader`, rows first, for PNG/JPEG/BMP/TIFF, with :func:`to_intensities`.

    Args:
        kwargs: passed to :class:`~monai.data.PILReader` (``reverse_indexing`` is always False).
    """

    def __init__(self, **kwargs) -> None:
        kwargs["reverse_indexing"] = False
        super().__init__(**kwargs)

    def verify_suffix(self, filename: Sequence[str | os.PathLike] | str | os.PathLike) -> bool:
        """Whether every name in ``filename`` ends with one of :data:`PIL_SUFFIXES` (any case)."""
        return all(str(name).lower().endswith(PIL_SUFFIXES) for name in ensure_tuple(filename))

    def read(self, data, **kwargs):
        """Open the image(s) and convert each to intensities (see :func:`to_intensities`)."""
        images = [to_intensities(Image.open(name, **{**self.kwargs, **kwargs}), name) for name in ensure_tuple(data)]
        return images if len(images) > 1 else images[0]
