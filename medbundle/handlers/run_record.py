"""Handler that writes the run record (``<output_dir>/run.json``) once a training really starts."""

from __future__ import annotations

import os
from collections.abc import Mapping

from ignite.engine import Engine, Events

from medbundle.runs import record_run

__all__ = ["RunRecord"]


class RunRecord:
    """Write ``<output_dir>/run.json`` (:func:`medbundle.runs.record_run`) at the trainer's ``STARTED`` event.

    By then the data are loaded, every component is built and the handlers attached before it (a resumed run's
    checkpoint is loaded): a command that fails at start-up never touches the record of an earlier run in the same
    folder. Attach it after :class:`medbundle.handlers.Resume`; only rank 0 writes.

    Args:
        output_dir: the run folder.
        datalists: the run's data lists (``{"train": [...], "val": [...], "test": [...]}``), for the record's data
            fingerprint; None: no fingerprint.
        enabled: False to write nothing.
    """

    def __init__(self, output_dir: str | os.PathLike, datalists: Mapping | None = None, enabled: bool = True) -> None:
        self.output_dir = output_dir
        self.datalists = datalists
        self.enabled = enabled

    def attach(self, engine: Engine) -> None:
        """Write the record when ``engine`` starts."""
        if self.enabled:
            engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine) -> None:
        record_run(self.output_dir, self.datalists)
