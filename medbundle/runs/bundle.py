"""A bundle and its folders: where a bundle and its outputs live, its class names, its command line."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from medbundle.inferers import bf16_supported
from medbundle.options import _command_line  # noqa: F401 (re-exported: run records read the same command line)
from medbundle.runtime import is_rank_zero

__all__ = [
    "BUNDLES",
    "find_bundle_root",
    "resolve_bundle",
    "medbundle_home",
    "default_output_dir",
    "default_dataset_dir",
    "class_names",
    "log_run",
    "require_file",
    "trained_model",
]

logger = logging.getLogger("medbundle.runs")

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"
"""The ``bundles/`` folder of the medbundle source tree."""


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
    root = BUNDLES / name
    if root.is_dir():
        return str(root)
    raise FileNotFoundError(f"cannot locate the bundle folder {name!r}: pass --bundle_root /path/to/{name}")


def resolve_bundle(bundle: str | os.PathLike, config: str = "inference.json", example: str = "") -> Path:
    """The bundle folder ``bundle`` names: a folder holding ``configs/<config>``, or a bundle's name (see
    :func:`find_bundle_root`).

    Args:
        bundle: a folder, or a name such as ``"ct_infection"``.
        config: the config file the caller needs in the bundle, e.g. ``"explain.json"``.
        example: words put after "Pass a bundle folder" in the error, e.g. ``", e.g. bundles/ct_infection,"``.

    Raises:
        ValueError: one line naming ``bundle``, what is wrong with it and the bundles that exist.
    """
    root = Path(str(bundle)).expanduser()
    if not (root / "configs" / config).is_file() and "/" not in str(bundle) and os.sep not in str(bundle):
        try:
            root = Path(find_bundle_root(str(bundle)))
        except FileNotFoundError:
            pass
    if (root / "configs" / config).is_file():
        return root.resolve()
    known = sorted(p.parent.parent.name for p in BUNDLES.glob(f"*/configs/{config}")) if BUNDLES.is_dir() else []
    what = "no such folder" if not root.exists() else f"not a medbundle bundle (no configs/{config} in it)"
    raise ValueError(f"{bundle}: {what}. Pass a bundle folder{example} or one of: {', '.join(known) or 'see bundles/'}.")


def medbundle_home() -> Path:
    """Root of medbundle's default outputs: ``$MEDBUNDLE_HOME`` or ``~/medbundle``."""
    return Path(os.environ.get("MEDBUNDLE_HOME", Path.home() / "medbundle")).expanduser()


def default_output_dir(bundle_root: str | os.PathLike) -> str:
    """Default run folder of a bundle: ``<medbundle_home>/runs/<bundle folder name>``.

    Outputs never go into the source tree by default; ``--output_dir`` overrides this.
    """
    return str(medbundle_home() / "runs" / Path(bundle_root).resolve().name)


def default_dataset_dir(bundle_root: str | os.PathLike) -> str:
    """Default data folder of a bundle: ``<medbundle_home>/data/<bundle folder name>`` (demo data is made there)."""
    return str(medbundle_home() / "data" / Path(bundle_root).resolve().name)


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


def trained_model(output_dir: str | os.PathLike, bundle_root: str | os.PathLike) -> str:
    """The model an inference uses: ``<output_dir>/models/model.pt`` when the run folder holds a trained model, else
    the model shipped with the bundle (``<bundle_root>/models/model.pt``), else the run folder's path (so that the
    missing-model message names the run folder).

    Args:
        output_dir: the run folder.
        bundle_root: the bundle folder.
    """
    run_model = Path(output_dir).expanduser() / "models" / "model.pt"
    shipped = Path(bundle_root) / "models" / "model.pt"
    if run_model.is_file() or not shipped.is_file():
        return str(run_model)
    logger.info("no trained model in %s: using the model shipped with the bundle, %s", output_dir, shipped)
    return str(shipped)
