"""Run a Python script as ranks of one process group on this machine, through ``python -m medbundle.launch``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def launch_ranks(source: str, folder: Path, *args: str, nproc: int = 2,
                 timeout: int = 300) -> subprocess.CompletedProcess:
    """Write ``source`` to ``folder/worker.py`` and start it as ``nproc`` ranks with ``args``; the finished process.

    Args:
        source: the worker's Python source.
        folder: where the worker script is written.
        args: the worker's command-line arguments.
        nproc: the number of ranks.
        timeout: seconds before the launcher is killed (``subprocess.TimeoutExpired``).
    """
    script = Path(folder) / "worker.py"
    script.write_text(source)
    return subprocess.run([sys.executable, "-m", "medbundle.launch", "--nproc_per_node", str(nproc), str(script),
                           *args], capture_output=True, text=True, timeout=timeout)
