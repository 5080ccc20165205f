"""Randomisation sanity check of saliency maps: cascading model-parameter randomisation (Adebayo et al. 2018).

Conventions (inputs, NaN, per-image records): see :mod:`medbundle.explain.measures`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from medbundle.explain.measures._common import (
    SIMILARITY_KEYS,
    Explainer,
    _device,
    _explain,
    _nanmean,
    _pair_baseline,
    _predict,
    _similarity,
    _ssim_win,
)

__all__ = ["cascading_randomisation"]


def _execution_order(model: nn.Module, sample: torch.Tensor) -> list[str]:
    """Names of the modules holding parameters of their own, in the order a forward pass first calls them."""
    cands = {name: m for name, m in model.named_modules() if next(m.parameters(recurse=False), None) is not None}
    order: list[str] = []

    def hook(name: str) -> Callable:
        return lambda *_: None if name in order else order.append(name)

    handles = [m.register_forward_hook(hook(name)) for name, m in cands.items()]
    try:
        with torch.no_grad():
            model(sample.to(_device(model)))
    finally:
        for h in handles:
            h.remove()
    return order or list(cands)


def _reinit(module: nn.Module, seed: int) -> None:
    """Re-initialise ``module``'s own parameters under a fixed seed, leaving the global RNG state as it was.

    ``module.reset_parameters()`` when it exists (conv, linear, norm layers: the layer's default init, running
    statistics included); otherwise each parameter is redrawn from ``N(0, sd(p)^2)``.
    """
    devices = sorted({p.device.index or 0 for p in module.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        if callable(getattr(module, "reset_parameters", None)):
            module.reset_parameters()
        else:
            with torch.no_grad():
                for p in module.parameters(recurse=False):
                    p.normal_(0.0, float(p.std()) if p.numel() > 1 else 1.0)


def cascading_randomisation(
    explain_factory: Callable[[nn.Module], Explainer],
    model: nn.Module,
    images: torch.Tensor,
    seed: int = 0,
    layers: Sequence[str] | None = None,
    class_idx: Any = None,
    win_size: int = 7,
    batch_size: int = 16,
    max_pairs: int = 200,
) -> dict[str, Any]:
    """Cascading model-parameter randomisation (Adebayo et al. 2018): maps must change when the weights do.

    A deep copy of ``model`` has its parameterised layers re-initialised one at a time from the output backwards,
    cumulatively (step ``s`` = layers ``1..s`` from the top randomised). After each step the explainer is rebuilt
    with ``explain_factory`` on a snapshot of the copy and the maps ``S_s`` of the target classes compared with the
    original maps ``S_0`` (the explainer on an untouched copy): Spearman ``rho(|S_0|, |S_s|)``, SSIM (data range 1,
    window ``win_size``) and Pearson ``r`` of ``|S_0|, |S_s|`` (a map turned constant correlates 0). A faithful
    explainer's similarity falls towards the random-pair baseline (original maps of different images); ``model``
    itself is never modified. Note that ``reset_parameters`` of a norm layer restores its deterministic default
    (weight 1, bias 0, running statistics 0/1), so that step changes nothing in an untrained network.

    Args:
        explain_factory: ``explain_factory(model) -> explain`` building an explainer bound to ``model``.
        model: the trained classifier (left untouched; the copies are in eval mode).
        images: ``(N,C,H,W)``.
        seed: step ``s`` re-initialises under ``torch.manual_seed(seed + s)`` (global RNG state preserved).
        layers: names (as in ``named_modules``) to randomise, in this order; None = every module with parameters
            of its own, in reverse order of execution in a forward pass.
        class_idx: target classes ``(N,)``; None = the original model's predictions (kept for every step).
        win_size: SSIM window (reduced to fit the map).
        batch_size: images per explainer call.
        max_pairs: most image pairs in the baseline.

    Returns:
        ``{"layers": [names in order of randomisation], "ssim": [...], "pearson": [...], "spearman": [...]``
        (mean similarity after each step), ``"per_image": [{"index", "step", "layer", "ssim", "pearson",
        "spearman"}]``, ``"pair_baseline": {"ssim", "pearson", "spearman", "n_pairs"}, "ssim_win_size", "seed"}``.
    """
    images = torch.as_tensor(images).float()
    work = copy.deepcopy(model).eval()  # never handed to the factory, so it stays free of explainer hooks
    if layers is None:
        layers = _execution_order(work, images[:1])[::-1]
    modules = dict(work.named_modules())
    missing = [name for name in layers if name not in modules]
    if missing:
        raise ValueError(f"unknown layers {missing}.")
    if class_idx is None:
        class_idx = _predict(work, images, batch_size).argmax(1)
    class_idx = torch.as_tensor(class_idx).reshape(-1)
    win = _ssim_win(images.shape[-2:], win_size)

    def maps_of(net: nn.Module) -> np.ndarray:
        return np.abs(_explain(explain_factory(copy.deepcopy(net).eval()), images, class_idx, batch_size, _device(net)))

    original = maps_of(work)
    out: dict[str, Any] = {"layers": list(layers), **{k: [] for k in SIMILARITY_KEYS}, "per_image": []}
    for step, name in enumerate(layers, start=1):
        _reinit(modules[name], seed + step)
        sim = _similarity(original, maps_of(work), win)
        for k, v in sim.items():
            out[k].append(_nanmean(v))
        out["per_image"] += [
            {"index": i, "step": step, "layer": name, **{k: float(v[i]) for k, v in sim.items()}}
            for i in range(len(images))
        ]
    out.update(pair_baseline=_pair_baseline(original, win, seed, max_pairs), ssim_win_size=win, seed=seed)
    return out
