"""Local pretrained weights into a network: read a state dict file, adapt its stem, load the backbone or say why not.

The shared steps of the torchvision loaders (:func:`medbundle.networks.load_torchvision_densenet`,
:func:`medbundle.networks.load_torchvision_efficientnet`): nothing is downloaded, the head is never loaded, the
first convolution is adapted to the model's input channels, and every other weight must be present with its shape.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Mapping

import torch
from torch import nn

__all__ = ["read_state_dict", "adapt_stem", "load_backbone"]


def read_state_dict(path: str | os.PathLike, hint: str) -> dict[str, torch.Tensor]:
    """The tensors of a local state dict file (``weights_only``), unwrapped from ``state_dict`` / ``model`` and
    stripped of a ``module.`` (``DistributedDataParallel``) prefix.

    Args:
        path: the file.
        hint: what to give instead, ending the one-line errors (``"Give a DenseNet121 state dict saved from
            torchvision"``).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a PyTorch state dict.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path}: no pretrained weights there. {hint} (--pretrained), or null to train from scratch; medbundle "
            "never downloads weights."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path}: not a PyTorch state dict ({first}). {hint}.") from exc
    for key in ("state_dict", "model"):
        if isinstance(state, Mapping) and key in state and isinstance(state[key], Mapping):
            state = state[key]
    if not isinstance(state, Mapping) or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError(f"{path}: holds a {type(state).__name__}, not a state dict of tensors. {hint}.")
    return {str(k).removeprefix("module."): v for k, v in state.items()}


def adapt_stem(weight: torch.Tensor, channels: int) -> torch.Tensor:
    """A first-convolution weight ``(out, in, kh, kw)`` for ``channels`` inputs.

    One channel: the sum over the input (colour) channels, so the response to a grey image equals the original
    filters' response to that image repeated as RGB. Other counts: the mean, repeated (the response to a grey
    image is kept). The same count: unchanged.
    """
    if weight.ndim != 4 or weight.shape[1] == channels:
        return weight
    return weight.sum(1, keepdim=True) if channels == 1 else weight.mean(1, keepdim=True).repeat(1, channels, 1, 1)


def load_backbone(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    path: str | os.PathLike,
    *,
    is_head: Callable[[str], bool],
    stem: str,
    what: str,
    hint: str,
) -> nn.Module:
    """Load ``state`` (already in ``model``'s key names) into ``model``: every key but the head's, checked first.

    ``num_batches_tracked`` counters may be absent (files saved before PyTorch 0.4.1 have none): the model's own
    are kept.

    Args:
        model: the network, filled in place.
        state: the renamed state dict; head keys in it are ignored.
        path: the file it came from (for the message).
        is_head: whether a key belongs to the head (never loaded).
        stem: the key of the first convolution's weight, adapted with :func:`adapt_stem`.
        what: what the file should be, with its article (``"a torchvision DenseNet121"``), for the message.
        hint: what to give instead, ending the message.

    Raises:
        ValueError: keys missing, unexpected or of the wrong shape; one line naming the first ones.
    """
    own = model.state_dict()
    state = {k: v for k, v in state.items() if not is_head(k)}
    if stem in state and stem in own:
        state[stem] = adapt_stem(state[stem], own[stem].shape[1])
    wanted = {k for k in own if not is_head(k)}
    missing = sorted(k for k in wanted - state.keys() if not k.endswith("num_batches_tracked"))
    unexpected = sorted(state.keys() - wanted)
    wrong = sorted(k for k in wanted & state.keys() if tuple(state[k].shape) != tuple(own[k].shape))
    if missing or unexpected or wrong:
        raise ValueError(
            f"{path}: not {what} state dict (missing {missing[:3]}, unexpected {unexpected[:3]}, wrong shape "
            f"{[(k, tuple(state[k].shape), tuple(own[k].shape)) for k in wrong[:2]]}; "
            f"{len(missing)}/{len(unexpected)}/{len(wrong)} in all). {hint}."
        )
    model.load_state_dict(state, strict=False)
    return model
