"""Splits: the split names, stratified and grouped splitting, group keys from file names, and making the splits the
data does not provide (saved to and reused from ``split.json``)."""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from sklearn.model_selection import train_test_split

from medbundle.data.errors import DataError
from medbundle.utils import atomic_write_json

__all__ = ["stratified_split", "grouped_split", "SPLITS"]

logger = logging.getLogger("medbundle.data")

SPLITS = ("train", "val", "test")
_SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}


def stratified_split(items: Sequence[dict], fractions: dict[str, float], seed: int = 0) -> dict[str, list[dict]]:
    """Split ``items`` at random, keeping the class proportions (``"label"``) in every part where possible.

    Falls back to an unstratified split for a part when a class has too few members to stratify.

    Args:
        items: datalist items with a ``"label"``; their order, with ``seed``, fixes the result.
        fractions: share of all items for each part to make, e.g. ``{"val": 0.15, "test": 0.15}``; a positive
            share gives at least one item. What is left goes to ``"train"``.
        seed: random seed.

    Returns:
        ``{"train": [...], **{name: [...] for name in fractions}}``.

    Raises:
        ValueError: when the shares are negative or add up to 1 or more, or there are too few items.
    """
    _check_fractions(fractions)
    rest, parts = list(items), {}
    for name, fraction in fractions.items():
        size = max(1, round(fraction * len(items))) if fraction > 0 else 0
        if size == 0:
            parts[name] = []
            continue
        labels = [item["label"] for item in rest]
        try:
            rest, parts[name] = train_test_split(rest, test_size=size, random_state=seed, stratify=labels)
        except ValueError:  # a class too small to stratify
            logger.info("too few images per class to stratify the '%s' split; splitting without stratification", name)
            rest, parts[name] = train_test_split(rest, test_size=size, random_state=seed)
    return {"train": rest, **parts}


def grouped_split(items: Sequence[dict], fractions: dict[str, float], seed: int = 0) -> dict[str, list[dict]]:
    """Split ``items`` so that no ``"group"`` (subject) is in two parts, keeping class proportions where possible.

    Each part is one fold of :class:`sklearn.model_selection.StratifiedGroupKFold` with ``round(1 / share)``
    folds of what is left (at least 2), so its size is close to ``fraction * len(items)``; a group whose items
    have several labels is stratified by its first.

    Args:
        items: datalist items with ``"label"`` and ``"group"``; their order, with ``seed``, fixes the result.
        fractions: share of all items for each part to make, e.g. ``{"val": 0.15, "test": 0.15}``.
        seed: random seed.

    Returns:
        ``{"train": [...], **{name: [...] for name in fractions}}``.

    Raises:
        ValueError: when the shares are invalid or there are fewer groups than parts.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    _check_fractions(fractions)
    rest, parts = list(items), {}
    for name, fraction in fractions.items():
        if fraction <= 0:
            parts[name] = []
            continue
        groups = [str(item["group"]) for item in rest]
        if len(set(groups)) < 2:
            raise ValueError(f"too few groups ({len(set(groups))}) left to split off '{name}'")
        share = fraction * len(items) / len(rest)
        n_splits = min(max(2, round(1 / share)), len(set(groups)))
        first_label = {}
        for g, item in zip(groups, rest):
            first_label.setdefault(g, item["label"])
        labels = [first_label[g] for g in groups]
        folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        with warnings.catch_warnings():  # "least populated class has fewer members than n_splits"
            warnings.simplefilter("ignore", UserWarning)
            keep, take = next(folds.split(np.zeros(len(rest)), labels, groups))
        parts[name] = [rest[i] for i in take]
        rest = [rest[i] for i in keep]
    return {"train": rest, **parts}


def _check_fractions(fractions: dict[str, float]) -> None:
    """The shares of a split must be non-negative, sum to less than 1 and leave ``train`` to the rest."""
    if any(f < 0 for f in fractions.values()) or sum(fractions.values()) >= 1 or "train" in fractions:
        raise ValueError(f"fractions must be non-negative, sum to less than 1 and not include 'train': {fractions}")


def _groups_from_pattern(splits: dict[str, list[dict]], pattern: str, folder: Path) -> None:
    """Give every item the ``"group"`` that ``pattern`` finds in its id (all or none must match)."""
    try:
        regex = re.compile(pattern)
    except re.error as e:
        raise DataError(f"group_pattern {pattern!r} is not a valid regular expression ({e}). Fix --group_pattern.")
    items = [item for part in splits.values() for item in part]
    found = [regex.search(item["id"]) for item in items]
    matched = sum(m is not None for m in found)
    if matched == 0:
        logger.info("%s: group_pattern %r matches no image id; no groups from file names", folder, pattern)
        return
    if matched < len(items):
        miss = [item["id"] for item, m in zip(items, found) if m is None][:3]
        raise DataError(
            f"{folder}: group_pattern {pattern!r} matches {matched} of {len(items)} image ids (not e.g. {miss}). "
            "Fix the pattern so that it finds the subject in every file name, or set --group_pattern null."
        )
    for item, m in zip(items, found):
        item["group"] = m.groupdict().get("group") or m.group(0)


def _make_missing_splits(
    splits: dict[str, list[dict]],
    fractions: dict[str, float],
    seed: int,
    output_dir: str | os.PathLike | None,
    folder: Path,
    near_duplicates: bool = False,
    group: Callable[[dict[str, list[dict]]], None] | None = None,
) -> tuple[dict[str, list[dict]], str]:
    """Carve the splits named in ``fractions`` out of ``splits["train"]``, or reuse ``<output_dir>/split.json``.

    ``near_duplicates`` says that the groups join near-duplicate clusters (recorded in ``split.json``; a file made
    otherwise is not reused); ``group`` is called on the items before a new split is made (the caller's
    :func:`medbundle.data.near_duplicates.group_near_duplicates`, a pass over the pixels only paid when no saved
    split fits).
    """
    by_id = {item["id"]: item for part in splits.values() for item in part}
    split_file = Path(output_dir).expanduser() / "split.json" if output_dir is not None else None
    saved = _saved_split(split_file, seed, fractions, splits, near_duplicates) if split_file is not None else None
    if saved is not None:
        ids, method, groups = saved
        for i, g in groups.items():  # the groups the split was made by: the split check sees them again
            if by_id[i].get("group") is None:
                by_id[i]["group"] = g
        return {s: [by_id[i] for i in ids[s]] for s in SPLITS}, f"reused from {split_file} ({method})"
    if group is not None:
        group(splits)
    if len(splits["train"]) <= len(fractions):
        raise DataError(
            f"{folder}: {len(splits['train'])} training images are too few to split off {list(fractions)}. Add "
            "images, or provide those splits in the data."
        )
    train = sorted(splits["train"], key=lambda item: item["id"])
    n_groups = len({item.get("group") for item in train})
    if all("group" in item for item in train) and n_groups > len(fractions):
        what = "subject and near-duplicate cluster" if near_duplicates else "subject"
        made, method = grouped_split(train, fractions, seed), f"grouped by {what} ({n_groups} groups)"
    else:
        made, method = stratified_split(train, fractions, seed), "stratified by class (no group key)"
    result = {s: sorted(made[s] if s in made else splits[s], key=lambda item: item["id"]) for s in SPLITS}
    how = f"made from the training data: {method}, seed {seed}, fractions {fractions}"
    if split_file is not None:
        split_ids = {s: [item["id"] for item in result[s]] for s in SPLITS}
        groups = {item["id"]: item["group"] for part in result.values() for item in part
                  if isinstance(item.get("group"), (str, int))}
        atomic_write_json(split_file, {"seed": seed, "fractions": fractions, "method": method,
                                       "near_duplicates": bool(near_duplicates), "splits": split_ids,
                                       "groups": groups})
        how += f" and saved to {split_file}"
    return result, how


def _saved_split(
    split_file: Path, seed: int, fractions: dict[str, float], splits: dict[str, list[dict]],
    near_duplicates: bool = False,
) -> tuple[dict[str, list[str]], str, dict[str, str | int]] | None:
    """The ids per split in ``split_file``, how it was made and the group of each id it was made by (none from a file
    of an earlier version), when made with ``seed``, ``fractions`` and the same ``near_duplicates`` choice from the
    same data."""
    if not split_file.is_file():
        return None
    current = {s: sorted(item["id"] for item in part) for s, part in splits.items()}
    try:
        saved = json.loads(split_file.read_text())
        ids = {s: [str(i) for i in saved["splits"][s]] for s in SPLITS}
        method = str(saved.get("method", "stratified by class"))
        known = {i for part in ids.values() for i in part}
        groups = {str(i): g for i, g in dict(saved.get("groups") or {}).items()
                  if str(i) in known and isinstance(g, (str, int))}
        same = (
            saved["seed"] == seed
            and saved["fractions"] == fractions
            and bool(saved.get("near_duplicates", False)) == bool(near_duplicates)
            and sorted(i for part in ids.values() for i in part) == sorted(i for part in current.values() for i in part)
            and all(sorted(ids[s]) == part for s, part in current.items() if s != "train")
        )
    except (OSError, ValueError, KeyError, TypeError) as e:
        logger.warning("%s: unreadable (%s); making a new split", split_file, e)
        return None
    if not same:
        logger.warning("%s: made for other data, seed, fractions or near_duplicates; making a new split", split_file)
    return (ids, method, groups) if same else None
