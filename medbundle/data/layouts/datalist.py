"""Layouts 3: ``datalist.csv`` (columns ``image,label[,split][,group][,mask]``) or ``datalist.json`` (MONAI style),
image paths relative to the file or absolute; and the reading of labels given as class names or indices."""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from medbundle.data.errors import DataError
from medbundle.data.files import _norm, _scan
from medbundle.data.names import file_of
from medbundle.data.splits import _SPLIT_NAMES

__all__: list[str] = []

_DATALIST_FILES = ("datalist.csv", "datalist.json")


def _from_datalist(
    folder: Path, root: Path, class_names: list[str] | None, class_keys: dict[str, int]
) -> dict[str, list[dict]]:
    """Items of ``datalist.csv`` or ``datalist.json`` in ``folder`` (the CSV when both exist), or of that file."""
    path = folder if folder.is_file() else next(f for name in _DATALIST_FILES for f in _scan(folder)[0]
                                                if f.name.lower() == name)
    entries: list[tuple[str | None, Any, Any, str, dict]] = []  # (split, image, label, where, group/mask)
    splits: dict[str, list[dict]] = {}
    if path.suffix.lower() == ".csv":
        try:
            with open(path, newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                rows = list(reader)
                columns = {k.strip().lower(): k for k in (reader.fieldnames or []) if k is not None}
        except (UnicodeDecodeError, csv.Error) as e:
            raise DataError(f"{path}: not a readable UTF-8 CSV file ({e}). Save it as UTF-8 CSV.") from e
        if not {"image", "label"} <= columns.keys():
            raise DataError(
                f"{path}: needs columns image,label[,split][,group][,mask] (found {list(columns)}). Rename the columns."
            )
        for n, row in enumerate(rows, start=2):
            split = row[columns["split"]] if "split" in columns else None
            if not (row[columns["image"]] or "").strip() or not (row[columns["label"]] or "").strip():
                raise DataError(f"{path}, line {n}: the image or the label is missing. Complete or remove the line.")
            extra = {k: (row[columns[k]] or "").strip() for k in ("group", "mask")
                     if k in columns and (row[columns[k]] or "").strip()}
            entries.append((split, row[columns["image"]], row[columns["label"]], f"{path}, line {n}", extra))
    else:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: not valid JSON ({e}). Fix or replace the file.") from e
        data = {"train": data} if isinstance(data, list) else data
        keys = [k for k in data if _norm(k) in _SPLIT_NAMES] if isinstance(data, dict) else []
        if not keys:
            raise DataError(
                f"{path}: expected a list of {{\"image\", \"label\"}} entries or an object with keys training/"
                "validation/test (or train/val/test) holding such lists. Fix the file."
            )
        for key in keys:
            splits[_SPLIT_NAMES[_norm(key)]] = []  # an empty list is an empty split, not a missing one
            for n, entry in enumerate(data[key]):
                if not isinstance(entry, dict) or not {"image", "label"} <= entry.keys():
                    raise DataError(f"{path}, '{key}' entry {n}: needs keys 'image' and 'label'. Fix the entry.")
                extra = {k: str(entry[k]) for k in ("group", "mask") if entry.get(k) not in (None, "")}
                entries.append((key, entry["image"], entry["label"], f"{path}, '{key}' entry {n}", extra))
    if not entries:
        raise DataError(
            f"{path}: lists no images (only a header, or empty lists). Add one entry per image (image,label"
            "[,split][,group][,mask]), or remove the file."
        )
    for split, image, label, where, extra in entries:
        name = "train" if split is None else _SPLIT_NAMES.get(_norm(str(split)))
        if name is None:
            raise DataError(f"{where}: split '{split}' is none of train/val/test. Fix the split.")
        image = os.path.abspath(os.path.join(path.parent, str(image).strip()))
        rel = os.path.relpath(image, root)
        item_id = image if rel.startswith("..") else rel  # absolute for images outside dataset_dir
        item = {"image": image, "label": _parse_label(label, class_names, class_keys, where), "id": item_id, **extra}
        if "mask" in item:
            item["mask"] = os.path.abspath(os.path.join(path.parent, item["mask"]))
        splits.setdefault(name, []).append(item)
    items = [item for part in splits.values() for item in part]
    ids = Counter(item["id"] for item in items)
    if len(ids) < len(items):
        twice = [i for i, n in ids.items() if n > 1]
        raise DataError(f"{path}: images listed more than once: {twice[:5]}. List each image once.")
    absent = [f for item in items for f in (item["image"], item.get("mask")) if f and not os.path.isfile(file_of(f))]
    if absent:
        raise DataError(
            f"{path}: {len(absent)} of {len(items)} listed images do not exist (first: {absent[:5]}). Paths are "
            f"relative to {path.parent}; fix the paths or add the files."
        )
    return splits


def _parse_label(value: Any, class_names: list[str] | None, class_keys: dict[str, int], where: str) -> int | str:
    """A label given as a class name or a class index (kept as given when ``class_names`` is None)."""
    text = str(value).strip()
    if class_names is None:
        return int(text) if text.lstrip("-").isdigit() else text
    if _norm(text) in class_keys:
        return class_keys[_norm(text)]
    try:
        number = float(text)
    except ValueError:
        number = float("nan")
    if number.is_integer() and 0 <= number < len(class_names):
        return int(number)
    raise DataError(
        f"{where}: label '{value}' is neither one of the class names {class_names} nor a class index "
        f"0..{len(class_names) - 1}. Fix the label."
    )
