"""Run-time pieces the bundle configs use: the mixed-precision inferer, devices, distributed set-up."""

from __future__ import annotations

import ast
import functools
import logging
import os
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from monai.inferers import SimpleInferer

from medbundle.utils import atomic_write_json

__all__ = [
    "AutocastInferer",
    "record_run",
    "bf16_supported",
    "resolve_device",
    "prepare_network",
    "find_bundle_root",
    "init_distributed",
    "is_rank_zero",
    "class_names",
    "log_run",
    "require_file",
]

logger = logging.getLogger("medbundle.engine")


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
        amp: ``True``, ``False`` or ``"auto"`` (bf16 where :func:`bf16_supported` says it pays).
        channels_last: convert 4D inputs to the channels-last memory format.
        dtype: the autocast dtype.
    """

    def __init__(self, amp: bool | str = "auto", channels_last: bool = True, dtype: torch.dtype = torch.bfloat16):
        super().__init__()
        self.amp = amp
        self.channels_last = channels_last
        self.dtype = dtype

    def __call__(self, inputs: torch.Tensor, network: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        enabled = bf16_supported(inputs.device) if self.amp == "auto" else bool(self.amp)
        if self.channels_last and inputs.ndim == 4:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=inputs.device.type, dtype=self.dtype, enabled=enabled):
            out = network(inputs, *args, **kwargs)
        return out.float() if torch.is_tensor(out) else out


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
    network = network.to(device)
    return network.to(memory_format=torch.channels_last) if channels_last else network


def find_bundle_root(name: str) -> str:
    """Locate the bundle folder ``name`` without relying on the current directory.

    In order: a ``--config_file`` on the command line inside ``<root>/configs/`` of a folder called
    ``name``; the ``bundles/<name>`` folder of the medbundle source tree. Override with
    ``--bundle_root`` when the bundle lives elsewhere.

    Args:
        name: the bundle's folder name, e.g. ``"ct_infection"``.
    """
    for file in _command_line()[0]:
        path = Path(file).expanduser().resolve()
        if path.parent.name == "configs" and path.parent.parent.name == name:
            return str(path.parent.parent)
    root = Path(__file__).resolve().parents[1] / "bundles" / name
    if root.is_dir():
        return str(root)
    raise FileNotFoundError(f"cannot locate the bundle folder {name!r}: pass --bundle_root /path/to/{name}")


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


def class_names(meta: dict) -> list[str]:
    """Class names of a bundle, in output order, from its metadata's ``channel_def`` of the ``pred`` output.

    Args:
        meta: the parsed ``configs/metadata.json`` (``@_meta_`` in a bundle config).
    """
    try:
        channel_def = meta["network_data_format"]["outputs"]["pred"]["channel_def"]
    except (KeyError, TypeError) as e:
        raise ValueError(
            "configs/metadata.json: network_data_format.outputs.pred.channel_def must map output "
            'indices to class names, e.g. {"0": "normal", "1": "abnormal"}'
        ) from e
    return [channel_def[k] for k in sorted(channel_def, key=int)]


def log_run(bundle_name: str, dataset_dir: str, output_dir: str, device: torch.device | str) -> None:
    """Create the run folder and log where a bundle reads its data and writes its outputs."""
    if is_rank_zero():
        Path(output_dir).mkdir(parents=True, exist_ok=True)
    amp = "bf16 autocast" if bf16_supported(device) else "fp32"
    logger.info(f"{bundle_name}: data {dataset_dir} -> outputs {output_dir} (device {device}, {amp})")


def record_run(output_dir: str) -> None:
    """Write ``<output_dir>/run.json``: the config files and overrides of this ``monai.bundle run`` command.

    Read from the command line (``--config_file`` as a path or a list of paths, every other ``--key value`` or
    ``--key=value`` an override; values parsed as Python literals where they are one, as ``monai.bundle`` does).
    :mod:`medbundle.compare` rebuilds a run's network and preprocessing from it. Nothing is written on ranks
    other than 0, or when the process was not started by ``monai.bundle run``.

    Args:
        output_dir: the run folder.
    """
    if not is_rank_zero() or "run" not in sys.argv[1:2]:
        return
    files, overrides = _command_line()
    run = {"config_file": [os.path.abspath(f) for f in files], "overrides": overrides}
    atomic_write_json(Path(output_dir) / "run.json", run)


def _command_line(argv: list[str] | None = None) -> tuple[list[str], dict[str, Any]]:
    """The ``--config_file`` paths and the other ``--key value`` / ``--key=value`` options of a bundle command.

    Values are parsed as Python literals where they are one (``"[64, 64]"``, ``"2"``), as ``monai.bundle`` does;
    ``--config_file`` may be one path, a list (quoted or not), or comma-separated paths. Words that are not options (``run``)
    are skipped.

    Args:
        argv: the arguments; default ``sys.argv[1:]``.
    """
    argv = sys.argv[1:] if argv is None else argv
    args: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--"):
            key, eq, value = arg[2:].partition("=")
            if not eq and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                value, i = argv[i + 1], i + 1
            elif not eq:
                value = "True"
            try:
                args[key] = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                args[key] = value
        i += 1
    files = args.pop("config_file", [])
    if isinstance(files, str):  # one path, "a,b", or a list literal that is not Python ("[a.json, b.json]")
        files = files.strip().strip("[]").split(",")
    files = [str(f).strip().strip("'\"") for f in files]
    return files, args


def require_file(path: str, what: str, hint: str) -> str:
    """Return ``path`` when it is a file; otherwise stop with a message saying what is missing and what to do.

    Args:
        path: the file needed.
        what: what the file is, for the message (e.g. ``"trained model"``).
        hint: what to do about it.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"no {what} at {path}: {hint}")
    return path
