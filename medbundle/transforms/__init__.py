"""medbundle's transforms, MONAI style (array transform + dictionary twin), one concept per module:

- :mod:`~medbundle.transforms.load`: :class:`LoadImage2D` / :class:`LoadImage2Dd`, any supported 2D image file (PNG,
  JPEG, BMP, TIFF, DICOM, NIfTI, ``.mat`` slices, parquet rows) as a ``(1, H, W)`` float32 image;
- :mod:`~medbundle.transforms.grayscale`: :class:`ToGrayscale` / :class:`ToGrayscaled`, one grey channel;
- :mod:`~medbundle.transforms.clahe`: :class:`CLAHE` / :class:`CLAHEd`, contrast-limited adaptive histogram
  equalisation (OpenCV) of a [0, 1] image;
- :mod:`~medbundle.transforms.noise`: :class:`RandSpeckleNoise` / :class:`RandSpeckleNoised`, random multiplicative
  (speckle) noise ``x * (1 + n)``, ``n ~ N(mean, std)``, in the style of MONAI's ``RandGaussianNoise(d)``.

Configs name them by these short paths (``medbundle.transforms.LoadImage2Dd``).
"""

from __future__ import annotations

from medbundle.transforms.clahe import CLAHE, CLAHEd
from medbundle.transforms.grayscale import ToGrayscale, ToGrayscaled
from medbundle.transforms.load import LoadImage2D, LoadImage2Dd
from medbundle.transforms.noise import RandSpeckleNoise, RandSpeckleNoised

__all__ = ["ToGrayscale", "ToGrayscaled", "LoadImage2D", "LoadImage2Dd", "CLAHE", "CLAHEd", "RandSpeckleNoise",
           "RandSpeckleNoised"]
