"""Normalisation layers with running statistics, frozen or not (shared by PhaseSchedule and BatchNormRecalibration)."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["frozen_norm_in_eval_mode", "norm_layers"]


def frozen_norm_in_eval_mode(module: torch.nn.Module, args: Any) -> None:
    """Forward pre-hook of a frozen normalisation layer: use (and keep) its running statistics."""
    module.train(False)


def norm_layers(network: torch.nn.Module, frozen: bool) -> list[torch.nn.Module]:
    """Normalisation layers with running statistics and parameters, all frozen (``frozen``) or not."""
    layers = []
    for m in network.modules():
        params = list(m.parameters(recurse=False))
        if isinstance(m, torch.nn.modules.batchnorm._NormBase) and m.track_running_stats and params:
            if frozen != any(p.requires_grad for p in params):
                layers.append(m)
    return layers
