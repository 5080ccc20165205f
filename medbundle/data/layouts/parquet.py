"""Layout 4: parquet tables as published on the Hugging Face hub (``train-*.parquet``, ``test-*.parquet``, ...; read
by :mod:`medbundle.data.parquet`), split by file-name prefix; integer labels are mapped by class *name*."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Sequence

from medbundle.data.errors import DataError
from medbundle.data.files import _norm, _scan
from medbundle.data.layouts.datalist import _parse_label
from medbundle.data.parquet import read_parquet
from medbundle.data.splits import _SPLIT_NAMES

__all__: list[str] = []

logger = logging.getLogger("medbundle.data")


def _from_parquet(
    folder: Path,
    root: Path,
    class_names: list[str],
    class_keys: dict[str, int],
    image_column: str,
    label_column: str,
    label_names: Sequence[str] | None,
    group_column: str | None,
) -> dict[str, list[dict]]:
    """Items of the parquet files in ``folder``, split by the file-name prefix (``train-``, ``test-``, ...)."""
    splits: dict[str, list[dict]] = {}
    for path in (f for f in _scan(folder)[0] if f.name.lower().endswith(".parquet")):
        prefix = re.split(r"[-_.]", path.name, maxsplit=1)[0]
        split = _SPLIT_NAMES.get(_norm(prefix))
        if split is None:
            logger.info("%s: name does not start with train/val/test; its rows are training data", path.name)
            split = "train"
        table = read_parquet(path, image_column, label_column, group_column)
        names = table.label_names or (list(label_names) if label_names else None)
        rel = path.relative_to(root).as_posix()
        items = []
        for row, value in enumerate(table.labels):
            where = f"{path}, row {row}"
            if isinstance(value, int) and names is not None:
                if not 0 <= value < len(names):
                    raise DataError(f"{where}: label {value} is outside 0..{len(names) - 1} of the names {names}.")
                value = names[value]  # by name: releases order the classes differently
            item = {"image": f"{path}#{row}", "label": _parse_label(value, class_names, class_keys, where),
                    "id": f"{rel}#{row}"}
            if table.groups is not None and table.groups[row] is not None:
                item["group"] = table.groups[row]
            items.append(item)
        if names is None and any(isinstance(v, int) for v in table.labels):
            logger.warning("%s: integer labels without class names (no ClassLabel metadata, no label_names): "
                           "taken as indices into %s", path, class_names)
        if not items:
            raise DataError(f"{path}: the table has no rows. Remove the file or add data.")
        splits.setdefault(split, []).extend(items)
    return splits
