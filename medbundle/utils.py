"""Small shared utilities: atomic file writes and default run locations."""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

__all__ = [
    "atomic_write",
    "atomic_write_json",
    "atomic_write_csv",
    "to_numpy",
    "jsonable",
]


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[Any]:
    """Open a temporary file next to ``path`` and move it into place only when the block succeeds.

    A process killed inside the block leaves the previous ``path`` (or nothing), never a truncated file.

    Args:
        path: final file path; parent folders are created.
        mode: ``"w"`` for text or ``"wb"`` for bytes.
        kwargs: passed to :func:`open` (for example ``newline=""``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    with atomic_write(path) as f:
        json.dump(obj, f, indent=2, default=_json_default)
        f.write("\n")


def atomic_write_csv(path: str | os.PathLike, rows: list[dict]) -> None:
    """Write dict rows as CSV to ``path`` atomically; the columns are every key, in order of first appearance."""
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with atomic_write(path, newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def to_numpy(x: Any) -> np.ndarray:
    """Convert lists, numpy arrays and torch tensors (also on GPU, with grad, or bf16) to numpy."""
    if hasattr(x, "detach"):  # torch.Tensor / MetaTensor without importing torch
        x = x.detach().cpu()
        if str(getattr(x, "dtype", "")) == "torch.bfloat16":
            x = x.float()
        x = x.numpy()
    return np.asarray(x)


def jsonable(obj: Any) -> Any:
    """Recursively turn numpy scalars/arrays and paths into python objects and NaN/inf into ``None`` (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj
