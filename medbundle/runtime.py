"""Devices and distributed training: where a bundle runs and which rank writes."""

from __future__ import annotations

import logging
import os

import torch
import torch.distributed as dist

from medbundle.options import as_bool

__all__ = ["resolve_device", "prepare_network", "init_distributed", "is_rank_zero"]

logger = logging.getLogger("medbundle.runtime")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: the local rank's CUDA device when there is one, else the CPU; otherwise ``torch.device(device)``."""
    if str(device) != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
    return torch.device("cpu")


def prepare_network(network: torch.nn.Module, device: torch.device | str, channels_last: bool = True) -> torch.nn.Module:
    """Move a network to ``device``, in the channels-last memory format for 2D convolutions.

    Args:
        network: the network.
        device: target device.
        channels_last: convert parameters to channels-last (pairs with :class:`AutocastInferer`).
    """
    channels_last = as_bool(channels_last, "prepare_network's channels_last (bundle key channels_last)")
    network = network.to(device)
    return network.to(memory_format=torch.channels_last) if channels_last else network


def init_distributed(device: str | torch.device = "auto") -> torch.device:
    """Join the ``torchrun`` process group (NCCL on GPU, gloo on CPU) and return this rank's device.

    Args:
        device: this rank's device, or ``"auto"`` (``cuda:$LOCAL_RANK`` where CUDA is available).
    """
    device = resolve_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    logger.info(f"rank {dist.get_rank()}/{dist.get_world_size()} on {device}")
    return device


def is_rank_zero() -> bool:
    """True outside distributed runs and on rank 0 of a distributed run."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0
