"""Is a split subject-clean? The check behind the "figures may be optimistic" warning of every evaluation.

A test split measures performance on new subjects only when no subject (and no copy of an image) sits on two sides.
medbundle knows that when every image carries a group (a subject key from the file names or a table, or a
near-duplicate cluster: adjacent slices of one brain, resized copies of one film, found by
:mod:`medbundle.data.near_duplicates`) and no group is in two splits. Otherwise the split is *not known* to be clean:
a random slice split of the Kaggle MRI release put slices of one brain on both sides and its validation accuracy (0.85)
said nothing about new subjects (0.61). :func:`check_split` decides, :func:`record_split_check` writes
``split_check.json`` into the run folder each time the data lists are made, and the evaluation report reads it
(:func:`split_warning`) and puts the warning at its top.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from medbundle.utils import atomic_write_json

__all__ = ["SPLIT_CHECK", "OPTIMISTIC", "check_split", "record_split_check", "read_split_check", "split_warning"]

logger = logging.getLogger("medbundle.data")

#: the file in the run folder.
SPLIT_CHECK = "split_check.json"

#: the words of the warning (log, report, metrics.json).
OPTIMISTIC = "figures may be optimistic: images of one subject can be in both training and test"


def check_split(splits: Mapping[str, Sequence[dict]]) -> dict:
    """Whether ``splits`` are known to keep every subject on one side.

    Args:
        splits: ``{"train": [...], "val": [...], "test": [...]}`` datalists; items may carry ``"group"``.

    Returns:
        ``{"subject_clean": bool, "reason": str}``: clean when every item has a group and no group is in two splits.
    """
    items = [item for part in splits.values() for item in part]
    ungrouped = sum(1 for item in items if item.get("group") is None)
    if ungrouped:
        return {"subject_clean": False,
                "reason": f"{ungrouped} of {len(items)} images have no subject key and no near-duplicate cluster "
                          "(set group_pattern / group_column; near_duplicates true checks image files, not .mat or "
                          "parquet rows)"}
    sides: dict[str, set[str]] = {}
    for name, part in splits.items():
        for item in part:
            sides.setdefault(str(item["group"]), set()).add(name)
    shared = sorted(g for g, s in sides.items() if len(s) > 1)
    if shared:
        return {"subject_clean": False,
                "reason": f"{len(shared)} subject or near-duplicate groups are in more than one split (e.g. {shared[:3]}"
                          "; set exclude_test_duplicates true where the data brings its own test split)"}
    return {"subject_clean": True,
            "reason": f"every image has a subject or near-duplicate group ({len(sides)} groups); none is in two splits"}


def record_split_check(output_dir: str | os.PathLike | None, splits: Mapping[str, Sequence[dict]], how: str) -> dict:
    """Check ``splits`` (:func:`check_split`), log the warning when not clean, and write ``<output_dir>/split_check.json``.

    Args:
        output_dir: the run folder; None: nothing written.
        splits: the final data lists.
        how: how the split was made (for the record). A split reused from ``split.json`` carries the groups it was
            made by (:mod:`medbundle.data.splits` saves and restores them), so it is checked like a new one.
    """
    record = {**check_split(splits), "split": how}
    if not record["subject_clean"]:
        logger.warning("%s (%s)", OPTIMISTIC.upper(), record["reason"])
    if output_dir is not None:
        folder = Path(output_dir).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(folder / SPLIT_CHECK, record)
    return record


def read_split_check(path: str | os.PathLike | None) -> dict | None:
    """The record at ``path`` (a ``split_check.json`` or the run folder holding it); None when absent or unreadable."""
    if path is None:
        return None
    file = Path(path).expanduser()
    file = file / SPLIT_CHECK if file.is_dir() else file
    try:
        record = json.loads(file.read_text(encoding="utf-8"))
        return record if isinstance(record, dict) and isinstance(record.get("subject_clean"), bool) else None
    except (OSError, ValueError):
        return None


def split_warning(path: str | os.PathLike | None) -> str | None:
    """The warning an evaluation report carries at its top, or None when the split is known to be subject-clean.

    Args:
        path: the run's ``split_check.json`` (or its folder); a missing record counts as not known to be clean.
    """
    record = read_split_check(path)
    if record is None:
        return f"{OPTIMISTIC.upper()} (no split check recorded for this evaluation)"
    return None if record["subject_clean"] else f"{OPTIMISTIC.upper()} ({record['reason']})"
