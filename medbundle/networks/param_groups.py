"""Optimiser parameter groups: weight decay on weights only, and groups named by parameter prefix."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import nn

__all__ = ["weight_decay_groups", "matching_prefix", "named_param_groups"]


def weight_decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split a model's parameters so that weight decay (an L2 penalty) applies to weights only.

    Convolution and dense weights (parameters with two or more dimensions) get ``weight_decay``;
    biases and normalisation parameters get none. For Adam, ``weight_decay=2 * l2`` reproduces a
    Keras ``kernel_regularizer=l2(l2)`` penalty, whose gradient is ``2 * l2 * w``.

    Args:
        model: the network.
        weight_decay: decay for the weights.

    Returns:
        two parameter groups for a ``torch.optim`` optimiser.
    """
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def matching_prefix(name: str, prefixes: Sequence[str]) -> str | None:
    """The first of ``prefixes`` that names the module holding parameter ``name`` (``"fc"`` for ``"fc.1.weight"``).

    A prefix matches the whole name or a leading run of its dotted parts, never part of a part (``"fc"`` does not
    match ``"fc2.weight"``).
    """
    return next((pre for pre in prefixes if name == pre or name.startswith(pre + ".")), None)


def named_param_groups(
    model: nn.Module, groups: Mapping[str, Sequence[str]], rest: str = "backbone", weight_decay: float = 0.0
) -> list[dict]:
    """Parameter groups named by module prefix, for per-group learning rates (see ``medbundle.handlers.PhaseSchedule``).

    Args:
        model: the network.
        groups: group name -> parameter name prefixes (``{"head": ["fc"]}``); the first matching group wins.
        rest: name of the group of all other parameters (left out when empty).
        weight_decay: decay of every group.

    Returns:
        ``[{"name": ..., "params": [...], "weight_decay": ...}, ...]`` in the order of ``groups``, ``rest`` last.

    Raises:
        ValueError: when a prefix matches no parameter (a typo would otherwise leave a group silently empty).
    """
    out = {name: [] for name in [*groups, rest]}
    used = set()
    for pname, p in model.named_parameters():
        for gname, prefixes in groups.items():
            hit = matching_prefix(pname, prefixes)
            if hit is not None:
                out[gname].append(p)
                used.add(hit)
                break
        else:
            out[rest].append(p)
    unused = [pre for prefixes in groups.values() for pre in prefixes if pre not in used]
    if unused:
        names = sorted({n.split(".")[0] for n, _ in model.named_parameters()})
        raise ValueError(f"parameter prefixes {unused} match no parameter of {type(model).__name__} (top-level: {names})")
    return [{"name": n, "params": ps, "weight_decay": weight_decay} for n, ps in out.items() if ps]
