"""Inferers the bundle configs use: bf16 autocast on CPU and GPU with channels-last inputs; test-time views."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch
from monai.inferers import Inferer, SimpleInferer

from medbundle.errors import OptionError
from medbundle.options import as_bool
from medbundle.uncertainty import tta_view

__all__ = ["AutocastInferer", "TTAInferer", "bf16_supported", "averaged_views"]


def bf16_supported(device: torch.device | str) -> bool:
    """Whether bf16 autocast pays on ``device``: a CUDA GPU with bf16, or a CPU with AVX512-BF16 or AMX."""
    return _bf16_supported(torch.device(device).type)


@functools.lru_cache(maxsize=None)
def _bf16_supported(device_type: str) -> bool:
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device_type == "cpu":
        try:
            flags = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
        return "avx512_bf16" in flags or "amx_bf16" in flags
    return False


class AutocastInferer(SimpleInferer):
    """``SimpleInferer`` that runs the forward pass under ``torch.autocast`` in bf16, on CPU and GPU.

    ``SupervisedTrainer(amp=True)`` only autocasts on CUDA (fp16 with a gradient scaler); bf16 needs
    no scaler and also speeds up CPUs that have bf16 instructions. Inputs of 4 dimensions are made
    ``channels_last`` to match a network converted with :func:`prepare_network`. Outputs are
    returned as float32, so losses, metrics and probabilities are computed in full precision.

    Args:
        amp: ``True``, ``False`` or ``"auto"`` (bf16 where :func:`bf16_supported` says it pays); the words
            true/false/yes/no/1/0 of a command line are read as booleans (:func:`medbundle.options.as_bool`).
        channels_last: convert 4D inputs to the channels-last memory format.
        dtype: the autocast dtype.
    """

    def __init__(self, amp: bool | str = "auto", channels_last: bool = True, dtype: torch.dtype = torch.bfloat16):
        super().__init__()
        self.amp = "auto" if amp == "auto" else as_bool(amp, "AutocastInferer's amp (bundle key amp; or auto)")
        self.channels_last = as_bool(channels_last, "AutocastInferer's channels_last (bundle key channels_last)")
        self.dtype = dtype

    def __call__(self, inputs: torch.Tensor, network: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        enabled = bf16_supported(inputs.device) if self.amp == "auto" else self.amp
        if self.channels_last and inputs.ndim == 4:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=inputs.device.type, dtype=self.dtype, enabled=enabled):
            out = network(inputs, *args, **kwargs)
        return out.float() if torch.is_tensor(out) else out


class TTAInferer(Inferer):
    """Class scores averaged over deterministic test-time views: the image, its shifts and mirrors.

    Runs ``inferer`` on each of the first ``views`` views of :func:`medbundle.uncertainty.tta_view` (the image; shifts
    of ``shift_fraction`` of its size in four directions; then the same five mirrored left-right) and returns the
    logarithm of the mean softmax probabilities, so that a softmax downstream gives exactly the mean probabilities
    and temperature scaling fitted on these outputs works as on logits. ``views`` 1 returns ``inferer``'s output
    unchanged. Views 6 and above are mirror images: use at most 5 where left and right are not interchangeable
    (a chest film's heart).

    Args:
        inferer: the inferer of one pass (e.g. :class:`AutocastInferer`).
        views: number of views averaged, 1 to 10; the words of a command line are read as integers.
        shift_fraction: the shift step as a fraction of the height and width (at least one pixel).
    """

    def __init__(self, inferer: Any, views: int | str = 1, shift_fraction: float = 0.03) -> None:
        super().__init__()
        given = views
        try:
            views = int(str(views))
        except ValueError:
            views = 0
        if not 1 <= views <= 10:
            raise OptionError(f"tta_views {given}: must be a whole number from 1 (no test-time views) to 10 "
                              "(5 shifts, then the same mirrored); pass e.g. --tta_views 5")
        self.inferer, self.views, self.shift_fraction = inferer, views, float(shift_fraction)

    @property
    def single_view(self) -> Any:
        """The inferer of one pass (what :func:`medbundle.uncertainty.predictive_passes` runs per view)."""
        return self.inferer

    def __call__(self, inputs: torch.Tensor, network: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        if self.views == 1:
            return self.inferer(inputs, network, *args, **kwargs)
        probs = None
        for i in range(self.views):
            p = torch.softmax(self.inferer(tta_view(inputs, i, self.shift_fraction), network, *args, **kwargs).float(),
                              dim=1)
            probs = p if probs is None else probs + p
        return torch.log((probs / self.views).clamp_min(torch.finfo(torch.float32).tiny))


def averaged_views(inferer: Any) -> int:
    """How many test-time views the outputs of ``inferer`` average: a :class:`TTAInferer`'s ``views``, else 1."""
    return int(getattr(inferer, "views", 1))
