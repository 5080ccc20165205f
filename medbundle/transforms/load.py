"""Loading any supported 2D image file as a one-channel float image: :class:`LoadImage2D` and its dictionary twin.

MONAI's ``LoadImage`` reads the files, through medbundle's readers: PNG/JPEG/BMP/TIFF as intensities (palette,
CMYK, 1-bit... converted; :mod:`medbundle.data.pillow`), DICOM with its modality LUT, VOI LUT or window and
MONOCHROME1 inverted (:mod:`medbundle.data.dicom`), NIfTI (nibabel); every image is first checked against a pixel
limit read from its header (:mod:`medbundle.data.limits`). medbundle adds slices of seed-style ``.mat`` files
(``"/data/Train.mat#12"``, see :class:`medbundle.data.MatSliceReader`) and rows of parquet image tables
(``"/data/train-0.parquet#7"``, see :class:`medbundle.data.parquet.ParquetRowReader`), and reads every format in the
same (row, column) order, so that a model trained on ``.mat`` slices sees exported PNGs of the same slices the same
way round.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import ImageReader, NibabelReader
from monai.transforms import LoadImage, MapTransform, Transform

from medbundle.data.dicom import DicomReader
from medbundle.data.errors import DataError
from medbundle.data.limits import MAX_PIXELS, allow_pil_pixels, check_pixels
from medbundle.data.matfile import MatSliceReader
from medbundle.data.parquet import ParquetRowReader
from medbundle.data.pillow import PillowReader
from medbundle.transforms.grayscale import ToGrayscale

__all__ = ["LoadImage2D", "LoadImage2Dd"]


class LoadImage2D(Transform):
    """Load a 2D image of any supported format as a ``(1, H, W)`` float32 image.

    The reader is chosen by file name: ``.mat`` slices, parquet rows, PNG/JPEG/BMP/TIFF (rows first, pixels as
    intensities: :class:`medbundle.data.pillow.PillowReader`), NIfTI (array order as stored), DICOM by suffix or
    content (rows first, modality LUT, VOI LUT or window, MONOCHROME1 inverted:
    :class:`medbundle.data.dicom.DicomReader`), and MONAI's defaults for anything else. Before decoding, the header's
    size is checked against ``max_pixels``. The result is grey-scale (:class:`ToGrayscale`), float32, and any
    non-finite pixel is an error naming the file.

    Args:
        data_key: image variable of ``.mat`` files.
        label_key: label variable of ``.mat`` files.
        image_column: image column of parquet files.
        image_only: return only the image (default) or ``(image, meta)``.
        max_pixels: the most pixels (rows x columns) an image file may have, checked from its header before
            decoding; None: no limit. A higher limit than PIL's own (~89 M) raises PIL's for the process.
    """

    def __init__(
        self,
        data_key: str = "data",
        label_key: str = "label",
        image_column: str = "image",
        image_only: bool = True,
        max_pixels: int | None = MAX_PIXELS,
    ) -> None:
        self.readers = [MatSliceReader(data_key=data_key, label_key=label_key), ParquetRowReader(image_column),
                        PillowReader(), NibabelReader(), DicomReader()]
        self.loader = LoadImage(image_only=True, ensure_channel_first=True, dtype=np.float32)
        self.gray = ToGrayscale()
        self.max_pixels = max_pixels
        allow_pil_pixels(max_pixels)

    def _reader_for(self, filename: str) -> ImageReader | None:
        for reader in self.readers:
            if reader.verify_suffix(filename):
                return reader
        return None  # MONAI chooses by suffix

    def __call__(self, filename: str) -> torch.Tensor:
        try:
            check_pixels(filename, self.max_pixels)
            img = self.loader(filename, reader=self._reader_for(str(filename)))
        except DataError:
            raise
        except Exception as e:  # a file that passed the preflight check but fails now (changed on disk)
            raise DataError(f"{filename}: cannot be read as an image ({e}). Replace or remove the file.") from e
        img = self.gray(img, filename=str(filename))
        if not torch.isfinite(img).all():
            raise DataError(f"{filename}: contains NaN or infinite pixels. Fix or remove the image.")
        return img


class LoadImage2Dd(MapTransform):
    """Dictionary version of :class:`LoadImage2D`.

    Args:
        keys: keys holding file names (for example ``"image"`` and ``"mask"``).
        data_key: image variable of ``.mat`` files.
        label_key: label variable of ``.mat`` files.
        image_column: image column of parquet files.
        allow_missing_keys: don't raise when a key is missing (an item without a mask).
        max_pixels: the most pixels an image file may have (see :class:`LoadImage2D`); None: no limit.
    """

    def __init__(
        self,
        keys: KeysCollection,
        data_key: str = "data",
        label_key: str = "label",
        image_column: str = "image",
        allow_missing_keys: bool = False,
        max_pixels: int | None = MAX_PIXELS,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.loader = LoadImage2D(data_key=data_key, label_key=label_key, image_column=image_column,
                                  max_pixels=max_pixels)

    def __call__(self, data: Mapping[Hashable, str]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.loader(d[key])
        return d
