"""Multiplicative (speckle) noise, ``x * (1 + n)`` with ``n ~ N(mean, std)``: the grain of ultrasound and of
coherent imaging, where the noise grows with the signal and black stays black. MONAI has only additive noise
(``RandGaussianNoise``, ``RandRicianNoise``); this pair follows ``RandGaussianNoise(d)`` in everything else (``prob``,
``sample_std``, ``dtype``, one draw shared by all the keys of a dictionary)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import DtypeLike, KeysCollection, NdarrayOrTensor
from monai.data.meta_obj import get_track_meta
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import TransformBackends, convert_data_type, convert_to_dst_type, convert_to_tensor

__all__ = ["RandSpeckleNoise", "RandSpeckleNoised"]


class RandSpeckleNoise(RandomizableTransform):
    """Multiply an image by ``1 + n``, ``n`` Gaussian noise drawn per pixel (and channel) with probability ``prob``.

    Zero pixels stay zero and the noise's standard deviation at a pixel is ``std * |x|``: bright tissue gets grainy,
    background does not. The image comes back as a tensor (a ``MetaTensor`` with its metadata when metadata is
    tracked, as MONAI's transforms do; ndarray input becomes a tensor), in ``dtype``. Values may leave the input's
    range (``1 + n`` exceeds 1 about half the time); ``clip=True`` clips them to the input's own [min, max].

    Args:
        prob: probability of adding noise to an image.
        mean: mean of ``n`` (0: the image's expected value is kept).
        std: standard deviation of ``n``, at least 0.
        dtype: output data type; None: the input's, which must be floating point. Defaults to float32.
        sample_std: draw the standard deviation uniformly from [0, ``std``] for each image (as MONAI's
            ``RandGaussianNoise``); False: always ``std``.
        clip: clip the result to the input image's [min, max] (not done by default).

    Raises:
        ValueError: at construction for a negative ``std``; when called, for an image that would come out as
            integers (``dtype=None`` with an integer image), each naming the fix.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        prob: float = 0.1,
        mean: float = 0.0,
        std: float = 0.1,
        dtype: DtypeLike = np.float32,
        sample_std: bool = True,
        clip: bool = False,
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        if not (np.isfinite(std) and std >= 0) or not np.isfinite(mean):
            raise ValueError(f"RandSpeckleNoise: std must be a finite number >= 0 and mean finite, got std={std!r}, "
                             f"mean={mean!r}. Use e.g. std=0.1, mean=0.0.")
        self.mean = float(mean)
        self.std = float(std)
        self.dtype = dtype
        self.sample_std = bool(sample_std)
        self.clip = bool(clip)
        self.noise: NdarrayOrTensor | None = None

    def randomize(self, img: NdarrayOrTensor) -> None:
        """Decide whether to add noise and, if so, draw ``n`` for an image shaped like ``img``."""
        super().randomize(None)
        if not self._do_transform:
            return
        std = self.R.uniform(0, self.std) if self.sample_std else self.std
        noise = self.R.normal(self.mean, std, size=img.shape)
        self.noise = convert_data_type(noise, dtype=self.dtype)[0]  # float64 from numpy: keep only what is needed

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        """Apply the noise to ``img`` (any shape, channel first; MetaTensor, tensor or ndarray).

        Args:
            img: the image.
            randomize: draw new noise first; False: reuse the last draw (of :meth:`randomize`), e.g. for several
                images of one shape that must share it.
        """
        img = convert_to_tensor(img, track_meta=get_track_meta())
        if randomize:
            self.randomize(img)
        if not self._do_transform:
            return img
        if self.noise is None:
            raise RuntimeError("RandSpeckleNoise: call randomize(img) before __call__(img, randomize=False).")
        if tuple(self.noise.shape) != tuple(img.shape):
            raise ValueError(f"RandSpeckleNoise: the noise was drawn for shape {tuple(self.noise.shape)}, the image "
                             f"is {tuple(img.shape)}. Call randomize(img) for this image, or give all the keys of "
                             "RandSpeckleNoised images of one shape.")
        out = convert_data_type(img, dtype=self.dtype)[0]
        if not out.is_floating_point():
            raise ValueError(f"RandSpeckleNoise: the output would be {out.dtype}, which cannot hold the noise. Pass "
                             "a floating dtype (dtype=float32) or scale the image to float first (ScaleIntensity).")
        noise = convert_to_dst_type(self.noise, out)[0]
        noisy = out * (1 + noise)
        if self.clip:
            noisy = torch.clamp(noisy, out.min(), out.max())
        return noisy


class RandSpeckleNoised(RandomizableTransform, MapTransform):
    """Dictionary version of :class:`RandSpeckleNoise`: one draw (whether, and ``n``) shared by all the keys, as
    MONAI's ``RandGaussianNoised``; the images must then have one shape (use one transform per key for
    independent noise).

    Args:
        keys: keys of the images to add noise to.
        prob: probability of adding noise (to all the keys at once).
        mean: mean of ``n``.
        std: standard deviation of ``n``, at least 0.
        dtype: output data type; None: the input's (floating point). Defaults to float32.
        allow_missing_keys: don't raise when a key is missing.
        sample_std: draw the standard deviation uniformly from [0, ``std``] per call.
        clip: clip each result to its input image's [min, max].
    """

    backend = RandSpeckleNoise.backend

    def __init__(
        self,
        keys: KeysCollection,
        prob: float = 0.1,
        mean: float = 0.0,
        std: float = 0.1,
        dtype: DtypeLike = np.float32,
        allow_missing_keys: bool = False,
        sample_std: bool = True,
        clip: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.rand_speckle_noise = RandSpeckleNoise(
            prob=1.0, mean=mean, std=std, dtype=dtype, sample_std=sample_std, clip=clip
        )

    def set_random_state(
        self, seed: int | None = None, state: np.random.RandomState | None = None
    ) -> RandSpeckleNoised:
        super().set_random_state(seed, state)
        self.rand_speckle_noise.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        self.randomize(None)
        first_key = self.first_key(d)
        if not self._do_transform or first_key == ():
            for key in self.key_iterator(d):
                d[key] = convert_to_tensor(d[key], track_meta=get_track_meta())
            return d
        self.rand_speckle_noise.randomize(d[first_key])  # all the keys share this draw
        for key in self.key_iterator(d):
            try:
                d[key] = self.rand_speckle_noise(d[key], randomize=False)
            except ValueError as e:
                raise ValueError(f"key '{key}': {e}") from e
        return d
