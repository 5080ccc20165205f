"""Class probabilities of ``N`` forward passes per image: test-time augmentation (TTA) or Monte Carlo dropout.

The predictive entropy of their mean (:func:`medbundle.metrics.predictive_entropy`) is the per-image uncertainty
of the evaluation report: high where the passes disagree or each is unsure.

- ``"tta"``: deterministic views of the batch as tensor ops: the image, its left-right mirror, and both shifted by
  about 3 % of the size (zero padding, as the training augmentation pads) right, left, down and up; pass ``i``
  uses view ``i`` modulo the 10 views. The bundles train with left-right flips and shifts, so each view is one the
  model has learnt to classify.
- ``"mc_dropout"``: the dropout layers sample (train mode) while everything else, batch norm included, stays in
  evaluation mode (Gal & Ghahramani, 2016); the layers' modes are restored afterwards.
- ``"none"``: no extra passes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch

from medbundle.errors import OptionError

__all__ = ["UNCERTAINTY_METHODS", "check_uncertainty", "tta_view", "mc_dropout", "predictive_passes"]

UNCERTAINTY_METHODS = ("tta", "mc_dropout", "none")
_SHIFTS = ((0, 0), (0, 1), (0, -1), (1, 0), (-1, 0))  # (rows, columns) in units of the shift step


def check_uncertainty(method: str, passes: int) -> tuple[str, int]:
    """Validate the evaluate keys ``uncertainty`` and ``uncertainty_passes``.

    Raises:
        OptionError: an unknown method or a pass count below 1.
    """
    m = str(method).strip().lower()
    if m not in UNCERTAINTY_METHODS:
        raise OptionError(f"uncertainty {method!r} is not a method: use one of {', '.join(UNCERTAINTY_METHODS)} "
                          "(evaluate key uncertainty)")
    try:
        n = int(passes)
    except (TypeError, ValueError):
        n = 0
    if n < 1 or n != float(passes):
        raise OptionError(f"uncertainty_passes {passes!r} is not a whole number >= 1: pass e.g. 8 "
                          "(evaluate key uncertainty_passes)")
    return m, n


def _shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Shift the last two axes by ``(dy, dx)`` pixels, filling with zeros."""
    if dy == 0 and dx == 0:
        return x
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[..., yd, xd] = x[..., ys, xs]
    return out


def tta_view(images: torch.Tensor, index: int, shift_fraction: float = 0.03) -> torch.Tensor:
    """The ``index``-th deterministic test-time view of a ``(B, C, H, W)`` batch (see the module docstring).

    Args:
        images: the batch.
        index: view number; views repeat every 10.
        shift_fraction: the shift step as a fraction of the height / width (at least one pixel).
    """
    i = int(index) % (2 * len(_SHIFTS))
    x = torch.flip(images, dims=(-1,)) if i >= len(_SHIFTS) else images
    sy, sx = _SHIFTS[i % len(_SHIFTS)]
    h, w = images.shape[-2:]
    step_y, step_x = max(1, round(shift_fraction * h)), max(1, round(shift_fraction * w))
    return _shift(x, sy * step_y, sx * step_x)


def _dropout_layers(network: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in network.modules() if isinstance(m, torch.nn.modules.dropout._DropoutNd) and m.p > 0]


@contextlib.contextmanager
def mc_dropout(network: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Within the block the network is in evaluation mode except its dropout layers, which sample.

    Raises:
        OptionError: the network has no dropout layer with ``p > 0``.
    """
    layers = _dropout_layers(network)
    if not layers:
        raise OptionError(f"uncertainty 'mc_dropout' needs dropout layers, and {type(network).__name__} has none "
                          "with p > 0: use uncertainty tta (evaluate key uncertainty)")
    modes = {m: m.training for m in network.modules()}
    network.eval()
    for layer in layers:
        layer.train()
    try:
        yield network
    finally:
        for m, mode in modes.items():
            m.train(mode)


def predictive_passes(network: torch.nn.Module, images: torch.Tensor, method: str = "tta", passes: int = 8,
                      inferer: Callable[..., torch.Tensor] | None = None) -> torch.Tensor:
    """Softmax class probabilities of ``passes`` forward passes, shape ``(passes, B, C)``.

    Args:
        network: the classifier (logits out).
        images: a ``(B, C, H, W)`` batch on the network's device.
        method: ``"tta"`` or ``"mc_dropout"`` (``"none"``: one plain pass).
        passes: number of passes.
        inferer: ``inferer(images, network)`` for the forward pass (the bundle's inferer: autocast, channels-last);
            default ``network(images)``; a :class:`medbundle.inferers.TTAInferer` is run one view at a time.
    """
    method, passes = check_uncertainty(method, passes)
    inferer = getattr(inferer, "single_view", inferer)  # a TTAInferer's own views would multiply the passes
    run: Callable[..., Any] = inferer if inferer is not None else (lambda x, net: net(x))
    out = []
    with torch.no_grad():
        if method == "mc_dropout":
            with mc_dropout(network):
                for _ in range(passes):
                    out.append(torch.softmax(run(images, network).float(), dim=1))
        else:
            was_training = network.training
            network.eval()
            try:
                for i in range(passes if method == "tta" else 1):
                    out.append(torch.softmax(run(tta_view(images, i), network).float(), dim=1))
            finally:
                network.train(was_training)
    return torch.stack(out)
