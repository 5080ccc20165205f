"""Explain a folder, a file or a dataset with a trained bundle.

Usage::

    python -m medbundle.explain bundles/ct_infection --input_path /data/scans [--output_dir runs/ct] [--key value ...]

Runs the bundle's ``inference.json`` merged with its ``explain.json`` (so every key of either can be
given on the command line, e.g. ``--explain_methods "['gradcam']"`` or ``--anatomy lung``), shows a
progress bar, and writes the pictures, ``explanations.csv`` and ``summary.json`` to ``explain_dir``
(default ``<output_dir>/explain``).
"""

from __future__ import annotations

from pathlib import Path

import fire
from monai.bundle import run

from medbundle.runs.bundle import resolve_bundle


def bundle_root(bundle: str) -> Path:
    """The bundle folder ``bundle`` names: a path, or the name of a bundle under the repository's ``bundles/``.

    Raises:
        SystemExit: with one line naming ``bundle``, what is wrong with it and what to pass instead.
    """
    try:
        return resolve_bundle(bundle, "explain.json", example=", e.g. python -m medbundle.explain bundles/ct_infection "
                              "--input_path <images>,")
    except ValueError as e:
        raise SystemExit(str(e)) from None


def explain(bundle: str, **override) -> None:
    """Explain inputs with the trained model of ``bundle`` (a bundle folder, or a name under ``bundles/``).

    Args:
        bundle: path of the bundle folder, e.g. ``bundles/ct_infection``, or its name.
        override: bundle keys, e.g. ``input_path``, ``output_dir``, ``explain_methods``.
    """
    root = bundle_root(bundle)
    configs = root / "configs"
    run(
        config_file=[str(configs / "inference.json"), str(configs / "explain.json")],
        meta_file=str(configs / "metadata.json"),
        logging_file=str(configs / "logging.conf"),
        bundle_root=str(root.resolve()),
        **override,
    )


if __name__ == "__main__":
    fire.Fire(explain)
