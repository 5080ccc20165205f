"""The base of the saliency methods: :class:`Explainer`, :class:`Explanation`, map normalisation, model hygiene.

Built after ``monai.visualize`` (same methods, same upsampling), without the defects of its 1.6.1 release
(per-sample Grad-CAM / Grad-CAM++ maps: see :mod:`medbundle.explain.gradcam`):

* **The model is left exactly as found.** Hooks are removed in ``finally`` blocks, ``inplace`` flags are not
  touched (a target layer's output is captured and a clone is passed on, so downstream in-place operations
  cannot modify it), every module's train/eval flag and every parameter's ``requires_grad`` are restored,
  and no parameter ``.grad`` is created (parameters are frozen while explaining: only the gradient at the
  target layer, or at the input for integrated gradients, is computed, which is also where the speed comes
  from). This holds when the explainer raises, e.g. for a bad ``class_idx``.
* **1 = most relevant.** MONAI's default post-processing maps the maximum to 0. Here maps are min-max
  normalised per sample to ``[0, 1]`` with 1 at the most relevant pixel; a constant map (e.g. all zero)
  is returned as all zeros, never divided by zero.

Every explainer runs the model in eval mode and in float32 (autocast disabled, whatever the caller's
context), inside ``torch.enable_grad()`` and outside inference mode where gradients are needed. Inputs are
``(B, C, *spatial)`` (occlusion: 2D only); the maps are ``(B, 1, *spatial)`` float32 on the input's device.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import torch
from torch import nn

__all__ = [
    "Explanation",
    "Explainer",
    "find_target_layer",
    "normalize_maps",
    "model_guard",
]

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


class Explanation(NamedTuple):
    """What :meth:`Explainer.explain` returns.

    Attributes:
        maps: ``(B, 1, *spatial)`` float32 relevance maps in ``[0, 1]``, 1 = most relevant.
        class_idx: ``(B,)`` int64, the class explained for each sample.
        probs: ``(B, num_classes)`` float32 softmax probabilities of the model on the unmodified inputs.
    """

    maps: torch.Tensor
    class_idx: torch.Tensor
    probs: torch.Tensor


def normalize_maps(maps: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each sample's map to ``[0, 1]``; a constant map becomes all zeros.

    A map is treated as constant when its range is within float32 rounding of its magnitude, so maps that
    differ only by rounding noise are not blown up to ``[0, 1]``, and nothing is ever divided by zero.

    Args:
        maps: ``(B, ...)`` tensor; every sample is normalised on its own.

    Returns:
        float32 tensor of the same shape.
    """
    flat = maps.detach().float().reshape(maps.shape[0], -1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    span = hi - lo
    flat_ok = span > 4 * torch.finfo(torch.float32).eps * torch.maximum(hi.abs(), lo.abs())
    out = torch.where(flat_ok, (flat - lo) / torch.where(flat_ok, span, torch.ones_like(span)), torch.zeros_like(flat))
    return out.reshape(maps.shape)


@contextlib.contextmanager
def model_guard(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode with frozen parameters; restore every module's mode and ``requires_grad``.

    The state is restored on exit, also when an exception is raised inside the block.

    Args:
        model: the network.

    Yields:
        the model.
    """
    modes = [(m, m.training) for m in model.modules()]
    grads = [(p, p.requires_grad) for p in model.parameters()]
    try:
        model.eval()
        for p, _ in grads:
            p.requires_grad_(False)
        yield model
    finally:
        for m, training in modes:
            m.training = training
        for p, requires_grad in grads:
            p.requires_grad_(requires_grad)


@contextlib.contextmanager
def _capture(module: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Record ``module``'s output as a leaf that requires grad and pass a clone of it on; remove the hook on exit."""
    acts: list[torch.Tensor] = []

    def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(output):
            raise ValueError(f"the target layer must return a tensor, got {type(output).__name__}")
        act = output.detach().requires_grad_(True)
        acts.append(act)
        return act.clone()  # downstream in-place ops (ReLU(inplace=True)) modify the clone, not ``act``

    handle = module.register_forward_hook(hook)
    try:
        yield acts
    finally:
        handle.remove()


def _model_device(model: nn.Module, default: torch.device) -> torch.device:
    p = next(model.parameters(), None)
    return default if p is None else p.device


def find_target_layer(model: nn.Module, input_shape: Sequence[int] = (1, 1, 64, 64)) -> str:
    """The dotted name of the last convolution whose output still has more than one spatial position.

    A dry forward pass of zeros of ``input_shape`` (eval mode, no grad, model state restored) records the
    output shape of every ``nn.Conv1d/2d/3d`` in the order they run; the last one with a spatial extent
    larger than ``1 x 1`` is returned (for ``CTNet`` at 64 px: ``"features.4.0"``; for MONAI's
    ``DenseNet121`` the last dense layer's 3x3 conv; for ``resnet50`` ``"layer4.2.conv3"``; for
    ``EfficientNetBN`` ``"_conv_head"``). Pass ``target_layer=`` to an explainer to choose another layer.

    Args:
        model: the network.
        input_shape: shape of the dry-run input, ``(1, C, *spatial)``: use the size the model will explain.

    Returns:
        the layer's name in ``model.named_modules()``.

    Raises:
        ValueError: no convolution produces a map larger than one position at this input size.
    """
    names = {m: n for n, m in model.named_modules() if isinstance(m, _CONV)}
    calls: list[tuple[str, tuple[int, ...]]] = []

    def record(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        calls.append((names[module], tuple(output.shape[2:])))

    handles = [m.register_forward_hook(record) for m in names]
    try:
        p = next(model.parameters(), None)
        x = torch.zeros(tuple(input_shape), device=_model_device(model, torch.device("cpu")),
                        dtype=p.dtype if p is not None and p.is_floating_point() else torch.float32)
        with model_guard(model), torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    found = [n for n, spatial in calls if math.prod(spatial) > 1]
    if not found:
        raise ValueError(f"no convolution of the model outputs more than 1 position for input {tuple(input_shape)}")
    return found[-1]


def _resolve_class_idx(class_idx: None | int | Sequence[int] | torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """``class_idx`` as a ``(B,)`` int64 tensor on the logits' device, checked against the batch and class count."""
    b, k = logits.shape[0], logits.shape[1]
    if class_idx is None:
        return logits.detach().argmax(1)
    idx = torch.as_tensor(class_idx, device=logits.device)
    if idx.is_floating_point() or idx.is_complex() or idx.dtype == torch.bool:
        raise ValueError(f"class_idx must hold integers, got dtype {idx.dtype}")
    if idx.ndim == 0:
        idx = idx.expand(b)
    if idx.ndim != 1 or idx.numel() != b:
        raise ValueError(f"class_idx must be None, an int or one index per sample ({b}), got shape {tuple(idx.shape)}")
    if ((idx < 0) | (idx >= k)).any():
        raise ValueError(f"class_idx must be in 0..{k - 1} (the model has {k} outputs), got {idx.tolist()}")
    return idx.long()


class Explainer:
    """Base class: input checks, model state and precision handling, class selection and normalisation.

    Subclasses implement :meth:`_compute`. Three ways to call an explainer:

    * ``explainer(x, class_idx)`` returns the normalised maps ``(B, 1, *spatial)`` in ``[0, 1]``;
    * ``explainer.explain(x, class_idx)`` returns an :class:`Explanation` (maps, classes explained, softmax
      probabilities of the unmodified input);
    * ``explainer.attribute(x, class_idx)`` returns the raw, unnormalised attributions (``(B, C, *spatial)``
      for integrated gradients, ``(B, 1, *spatial)`` otherwise).

    ``class_idx``: ``None`` (the predicted class of each sample), an ``int`` (the same class for all) or one
    index per sample (sequence or tensor); anything else raises ``ValueError``.

    Args:
        model: a classifier returning ``(B, num_classes)`` logits.
        channels_last: pass 4D inputs in the channels-last memory format (pairs with a channels-last model).
    """

    def __init__(self, model: nn.Module, channels_last: bool = False) -> None:
        self.model = model
        self.channels_last = channels_last

    def __call__(self, x: torch.Tensor, class_idx: None | int | Sequence[int] | torch.Tensor = None) -> torch.Tensor:
        """Normalised maps ``(B, 1, *spatial)``: see :meth:`explain`."""
        return self.explain(x, class_idx).maps

    def explain(self, x: torch.Tensor, class_idx: None | int | Sequence[int] | torch.Tensor = None) -> Explanation:
        """Explain ``x`` for ``class_idx``.

        Args:
            x: ``(B, C, *spatial)`` inputs.
            class_idx: ``None`` (predicted class), an int, or one index per sample.

        Returns:
            :class:`Explanation` with per-sample normalised maps (1 = most relevant), the explained classes
            and the model's softmax probabilities.
        """
        raw, idx, probs = self._run(x, class_idx)
        return Explanation(normalize_maps(self._to_map(raw)), idx, probs)

    def attribute(self, x: torch.Tensor, class_idx: None | int | Sequence[int] | torch.Tensor = None) -> torch.Tensor:
        """Raw attributions of ``x`` for ``class_idx``, before reduction to a map and normalisation."""
        return self._run(x, class_idx)[0]

    def _run(self, x: torch.Tensor, class_idx) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if not torch.is_tensor(x) or x.ndim < 3:
            raise ValueError(f"x must be a (B, C, *spatial) tensor, got {getattr(x, 'shape', type(x))}")
        with torch.inference_mode(False), model_guard(self.model), torch.autocast(x.device.type, enabled=False):
            x = x.detach().to(device=_model_device(self.model, x.device), dtype=torch.float32)
            if x.is_inference():
                x = x.clone()
            if self.channels_last and x.ndim == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            raw, idx, logits = self._compute(x, class_idx)
        return raw.float(), idx, logits.detach().float().softmax(1)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        if not torch.is_tensor(out) or out.ndim != 2:
            raise ValueError(f"the model must return (B, num_classes) logits, got {getattr(out, 'shape', type(out))}")
        return out

    def _to_map(self, raw: torch.Tensor) -> torch.Tensor:
        return raw

    def _compute(self, x: torch.Tensor, class_idx) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return raw attributions, the ``(B,)`` classes explained and the logits of ``x``."""
        raise NotImplementedError
