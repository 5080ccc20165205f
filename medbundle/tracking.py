"""Experiment tracking through MONAI's own MLflow settings (``monai.bundle run ... --tracking mlflow``).

``--tracking mlflow`` makes ``monai.bundle`` add its ``MLFlowHandler`` to ``train#handlers``, ``validate#handlers``
and the inference config's ``handlers``, with the ``tracking_uri``, ``experiment_name`` and ``run_name`` of the bundle
config (each bundle points them at ``<run folder>/mlruns.db`` with artifacts in ``<run folder>/mlruns``: a local
SQLite store, no server; MONAI's handler refuses a plain ``file:`` store). Two of MONAI's defaults do not fit these
bundles, and :func:`mlflow_ready` mends them on the handlers the configs hand to their engines:

* the trainer's handler reads the loss with ``from_engine(['loss'], first=True)``, which returns a 1-tuple for the
  one-dict output of a ``SupervisedTrainer(decollate=False)``; it gets the bundle's own loss transform instead;
* the config file it records as an artifact is named by joining strings onto ``output_dir``, which is a path only
  when ``output_dir`` is an expression: with ``--output_dir /some/path`` it names no file. The artifact is looked up
  in the run folder instead.

Without ``--tracking`` there is no ``MLFlowHandler`` among the handlers and nothing changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from monai.handlers import MLFlowHandler

__all__ = ["mlflow_ready", "close_mlflow"]


def mlflow_ready(handlers: Sequence[Any], output_dir: str, loss_transform: Callable | None = None) -> list:
    """The handlers, with MONAI's tracking ``MLFlowHandler`` instances adjusted for medbundle's engines.

    Args:
        handlers: an engine's handlers (``@train#handlers``, ``@handlers``), possibly holding ``MLFlowHandler``.
        output_dir: the run folder, where ``monai.bundle`` writes the executed config it records as an artifact.
        loss_transform: for the trainer's handler, the engine output to a float loss (``@train#loss_value``).
    """
    for handler in handlers:
        if not isinstance(handler, MLFlowHandler):
            continue
        if loss_transform is not None:
            handler.output_transform = loss_transform
        handler.artifacts = tuple(
            str(Path(output_dir) / Path(str(a).rstrip("'")).name) for a in handler.artifacts if a
        )
    return list(handlers)


def close_mlflow(handlers: Sequence[Any]) -> None:
    """End the MLflow runs of ``handlers`` whose engine does not close them itself (MONAI's validator handler).

    Args:
        handlers: an engine's handlers.
    """
    for handler in handlers:
        if isinstance(handler, MLFlowHandler):
            handler.close()
