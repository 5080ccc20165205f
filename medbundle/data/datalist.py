"""One entry point from a dataset folder, whatever its layout, to MONAI datalists for train/val/test.

Items are dicts ``{"image": <absolute path, or "<path>.mat#<index>">, "label": <class index>, "id": <unique str>}``,
plus ``"mask": "<path>_mask.mat#<index>"`` when a ``.mat`` stack has a mask file beside it. Accepted layouts:

1. ``Train.mat`` / ``Val.mat`` / ``Test.mat`` (case-insensitive; also ``validation``, ``valid``...), each holding an
   image stack and its labels (see :func:`medbundle.data.matfile.read_mat`); optional ``<Split>_mask.mat`` (``mask``).
2. one sub-folder per class holding images (searched recursively), optionally inside ``train``/``val``/``test``
   split folders. Folder names match class names ignoring case, spaces, ``_`` and ``-``.
3. ``datalist.csv`` (columns ``image,label[,split][,group][,mask]``) or ``datalist.json`` (MONAI style, keys
   ``training``/``validation``/``test`` or ``train``/``val``/``test``), image paths relative to the file or absolute.
4. parquet tables as published on the Hugging Face hub (``train-*.parquet``, ``test-*.parquet``, ...; see
   :mod:`medbundle.data.parquet`): items ``"<file>.parquet#<row>"``, decoded lazily by the loading transform.
   Integer labels are mapped by class *name* (Hugging Face ``ClassLabel`` metadata, or ``label_names``).

Splits the data does not provide are carved out of the training data: grouped (no group in two splits) when every
item has a group key (a ``group`` column, ``group_column`` of a parquet file, or ``group_pattern`` matched on the
ids), stratified by class otherwise. The log and ``split.json`` say which.

The layout is looked for in ``dataset_dir`` and then below it, breadth first: the topmost folder showing one wins,
so nested duplicate copies of the tree (as in some Kaggle archives) are ignored. Hidden files and folders and
``__MACOSX`` are always ignored.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import nibabel
import numpy as np
import pydicom
from PIL import Image
from sklearn.model_selection import train_test_split

from medbundle.data.errors import DataError
from medbundle.data.matfile import SLICE_PATTERN, read_mat
from medbundle.data.parquet import ROW_PATTERN, decode_row, read_parquet
from medbundle.utils import atomic_write_json

__all__ = ["load_datalists", "list_inputs", "stratified_split", "grouped_split", "is_dicom", "IMAGE_SUFFIXES",
           "SPLITS"]

logger = logging.getLogger("medbundle.data")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm", ".nii", ".nii.gz")
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
_DATALIST_FILES = ("datalist.csv", "datalist.json")


def load_datalists(
    dataset_dir: str | os.PathLike,
    class_names: Sequence[str],
    output_dir: str | os.PathLike | None = None,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
    data_key: str = "data",
    label_key: str = "label",
    check: bool = True,
    image_column: str = "image",
    label_names: Sequence[str] | None = None,
    group_column: str | None = None,
    group_pattern: str | None = None,
) -> dict[str, list[dict]]:
    """Find the data in ``dataset_dir`` and return its train/val/test datalists.

    Splits the data does not provide are made from the training data by :func:`grouped_split` when every
    training item has a group key, else by :func:`stratified_split`, and saved to ``<output_dir>/split.json``; a
    later call on the same data with the same seed and fractions reuses that file, so a resumed run trains and
    validates on the same images.

    Args:
        dataset_dir: the dataset folder, in any of the layouts of this module.
        class_names: the class names; labels are indices into this list.
        output_dir: where ``split.json`` is written and looked for; None to not persist the split.
        val_fraction: share of the training data for validation, when the data has no validation split.
        test_fraction: share of the training data for testing, when the data has no test split.
        seed: random seed of the split.
        data_key: image variable of ``.mat`` files.
        label_key: label variable of ``.mat`` files.
        check: open every image file once (in threads) and report all unreadable ones in one error.
        image_column: image column of parquet files (a struct with ``bytes``, or binary).
        label_names: class names of the integer labels of parquet files, in their order (used when the file has
            no Hugging Face ``ClassLabel`` metadata); None: integers are indices into ``class_names``.
        group_column: column of parquet files holding a group key (subject), if any.
        group_pattern: regular expression searched in each item's id; its group ``group`` (or the whole match)
            is the item's group key. Ignored (stratified split) when it matches no id; an error when it matches
            only some.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}``, each list sorted by ``"id"``; items carry ``"group"``
        when they have one.

    Raises:
        DataError: for any problem with the data; the message names the file or folder and what to do.
    """
    root = Path(dataset_dir).expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"{root}: no such folder. Point --dataset_dir at the folder that holds the data.")
    class_names = list(class_names)
    class_keys = {_norm(c): i for i, c in enumerate(class_names)}
    folder, layout = _find_layout(root, class_keys, data_key, label_key, class_names)
    logger.info("%s: found %s layout in %s", root, layout, folder)
    if layout == "datalist":
        splits = _from_datalist(folder, root, class_names, class_keys)
    elif layout == ".mat":
        splits = _from_mat(folder, root, len(class_names), data_key, label_key)
    elif layout == "parquet":
        splits = _from_parquet(folder, root, class_names, class_keys, image_column, label_key, label_names,
                               group_column)
    else:
        splits = _from_folders(folder, root, class_names, class_keys, layout)
    if "train" not in splits:
        raise DataError(
            f"{folder}: no training data (found only the splits {sorted(splits)}). Add a train split, or put all "
            "the data in one split-free layout so that it is split automatically."
        )
    if group_pattern:
        _groups_from_pattern(splits, group_pattern, folder)
    missing = [s for s in SPLITS if s not in splits]
    if missing:
        fractions = {s: {"val": val_fraction, "test": test_fraction}[s] for s in missing}
        splits, how = _make_missing_splits(splits, fractions, seed, output_dir, folder)
    else:
        how = "taken from the data"
    for s in SPLITS:
        if not splits[s]:
            raise DataError(
                f"{folder}: the '{s}' split has no images. Add images to it, or, when it is made from the training "
                f"data, raise {s}_fraction."
            )
        splits[s] = sorted(splits[s], key=lambda item: item["id"])
        counts = Counter(item["label"] for item in splits[s])
        per_class = ", ".join(f"{c} {counts[i]}" for i, c in enumerate(class_names))
        logger.info("%s: %d images (%s)", s, len(splits[s]), per_class)
        if len(counts) < len(class_names):
            absent = [c for i, c in enumerate(class_names) if i not in counts]
            logger.warning("%s: the '%s' split has no images of classes %s", folder, s, absent)
    logger.info("split %s", how)
    if check:
        _check_images([item["image"] for s in SPLITS for item in splits[s]], folder, image_column)
    return splits


def list_inputs(
    input_path: str | os.PathLike,
    data_key: str = "data",
    label_key: str = "label",
    class_names: Sequence[str] | None = None,
) -> list[dict]:
    """Items ``{"image", "id"}`` to run inference on (plus ``"label"`` and ``"mask"`` where a ``.mat`` file has them).

    Args:
        input_path: a folder of images (searched recursively), one image file (PNG, JPEG, BMP, TIFF, DICOM with or
            without ``.dcm``, NIfTI), a ``.mat`` file (all its images; its labels when it has them, and
            its masks from ``<stem>_mask.mat`` beside it, as in the demo data), or a ``datalist.csv`` /
            ``datalist.json`` (all its entries, every split, with their labels, groups and masks).
        data_key: image variable of a ``.mat`` file.
        label_key: label variable of a ``.mat`` file (optional in the file).
        class_names: the classes, to read the class-name labels of a datalist file as indices.

    Returns:
        the items, sorted by path; ids are paths relative to the folder, file names, or ``"<file>.mat#<index>"``.

    Raises:
        DataError: when the path does not exist, is not a supported file, or holds no images.
    """
    path = Path(input_path).expanduser().resolve()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder. Check the path given as --input_path.")
    if path.is_dir():
        items = [{"image": str(p), "id": p.relative_to(path).as_posix()} for p in _find_images(path)]
    elif path.name.lower() in _DATALIST_FILES:
        names = list(class_names) if class_names is not None else None
        keys = {_norm(c): i for i, c in enumerate(names or [])}
        items = [item for part in _from_datalist(path, path.parent, names, keys).values() for item in part]
    elif path.name.lower().endswith(".mat"):
        images, labels = read_mat(path, data_key, label_key, require_labels=False)
        items = [{"image": f"{path}#{i}", "id": f"{path.name}#{i}"} for i in range(len(images))]
        if labels is not None:
            for item, label in zip(items, labels):
                item["label"] = int(label)
        _add_masks(items, path, images.shape)
    elif _is_image(path):
        items = [{"image": str(path), "id": path.name}]
    else:
        raise DataError(
            f"{path}: not a supported image file ({', '.join(IMAGE_SUFFIXES)}, DICOM or .mat). Convert it or give "
            "a folder of supported images."
        )
    if not items:
        raise DataError(
            f"{path}: no images found ({', '.join(IMAGE_SUFFIXES)} or extension-less DICOM, hidden files ignored). "
            "Give a folder that holds images, one image file or one .mat file."
        )
    return items


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


def _norm(name: str) -> str:
    """Folder, class or split name for matching: lower case without spaces, ``_`` and ``-``."""
    return re.sub(r"[\s_\-]+", "", name).lower()


def _ignored(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def _scan(folder: Path) -> tuple[list[Path], list[Path]]:
    """Files and sub-folders of ``folder``, sorted, hidden ones and ``__MACOSX`` left out."""
    with os.scandir(folder) as entries:
        kept = sorted((e for e in entries if not _ignored(e.name)), key=lambda e: e.name)
    return [Path(e.path) for e in kept if e.is_file()], [Path(e.path) for e in kept if e.is_dir()]


def _is_image(path: Path) -> bool:
    """A supported image file by its name, or a DICOM file by its ``DICM`` preamble."""
    return path.name.lower().endswith(IMAGE_SUFFIXES) or is_dicom(path)


def is_dicom(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a DICOM file, by the ``DICM`` marker after its 128-byte preamble."""
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def _find_images(folder: Path) -> list[Path]:
    """Image files below ``folder`` (recursive, sorted), hidden ones and ``__MACOSX`` left out."""
    found = []
    for parent, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not _ignored(d)]
        found += [p for f in files if not _ignored(f) and _is_image(p := Path(parent, f))]
    return sorted(found)


def _mat_splits(files: list[Path]) -> dict[str, Path]:
    """``Train.mat``-style files by split (mask files ``*_mask.mat`` never match)."""
    found: dict[str, Path] = {}
    for f in files:
        split = _SPLIT_NAMES.get(_norm(f.stem)) if f.suffix.lower() == ".mat" else None
        if split in found:
            raise DataError(f"{f.parent}: both {found[split].name} and {f.name} hold the '{split}' split. Keep one.")
        if split:
            found[split] = f
    return found


def _layout_of(folder: Path, class_keys: dict[str, int]) -> str | None:
    """The layout ``folder`` shows directly, if any."""
    files, dirs = _scan(folder)
    if any(f.name.lower() in _DATALIST_FILES for f in files):
        return "datalist"
    if _mat_splits(files):
        return ".mat"
    if any(f.name.lower().endswith(".parquet") for f in files):
        return "parquet"
    if any(_norm(d.name) in _SPLIT_NAMES for d in dirs):
        return "split folders"
    if any(_norm(d.name) in class_keys for d in dirs):
        return "class folders"
    return None


def _find_layout(
    root: Path, class_keys: dict[str, int], data_key: str, label_key: str, class_names: list[str]
) -> tuple[Path, str]:
    """The topmost folder at or below ``root`` that shows a layout (breadth first), and that layout."""
    queue = [root]
    while queue:
        folder = queue.pop(0)
        layout = _layout_of(folder, class_keys)
        if layout:
            return folder, layout
        queue += _scan(folder)[1]
    found = sorted(p.name for p in root.iterdir())[:10]
    raise DataError(
        f"{root}: no data found (top-level entries: {found}). Accepted layouts: (1) Train.mat with optional Val.mat "
        f"and Test.mat, each holding variables '{data_key}' and '{label_key}'; (2) one folder per class named "
        f"{class_names} holding images ({', '.join(IMAGE_SUFFIXES)}), optionally inside train/val/test folders; "
        "(3) datalist.csv (columns image,label[,split][,group][,mask]) or datalist.json (MONAI style); (4) "
        "parquet files in the Hugging Face image schema (train-*.parquet, test-*.parquet). Arrange the data in "
        "one of these layouts, or point --dataset_dir at it."
    )


def _from_mat(folder: Path, root: Path, num_classes: int, data_key: str, label_key: str) -> dict[str, list[dict]]:
    """Items of the ``Train.mat``-style files in ``folder``, with masks from ``<Split>_mask.mat`` when present."""
    splits = {}
    for split, path in _mat_splits(_scan(folder)[0]).items():
        images, labels = read_mat(path, data_key, label_key, num_classes=num_classes)
        rel = path.relative_to(root).as_posix()
        splits[split] = [{"image": f"{path}#{i}", "label": int(y), "id": f"{rel}#{i}"} for i, y in enumerate(labels)]
        _add_masks(splits[split], path, images.shape)
    return splits


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


def _add_masks(items: list[dict], path: Path, shape: tuple[int, ...]) -> None:
    """Give each item of ``path`` (a ``.mat`` file) its ``"mask"`` slice from ``<stem>_mask.mat`` beside it, if any."""
    mask = next((p for p in path.parent.iterdir() if p.name.lower() == f"{path.stem.lower()}_mask.mat"), None)
    if mask is None:
        return
    masks, _ = read_mat(mask, "mask", None, require_labels=False)
    if masks.shape != shape:
        raise DataError(
            f"{mask}: masks of shape {masks.shape} do not match the images of {path.name} {shape}. "
            "Give one mask of the image size per image, or remove the mask file."
        )
    for i, item in enumerate(items):
        item["mask"] = f"{mask}#{i}"


def _from_folders(
    folder: Path, root: Path, class_names: list[str], class_keys: dict[str, int], layout: str
) -> dict[str, list[dict]]:
    """Items of class folders, inside split folders when ``layout`` is ``"split folders"``."""
    if layout == "class folders":
        return {"train": _class_folder_items(folder, root, class_names, class_keys)}
    splits: dict[str, list[dict]] = {}
    for d in _scan(folder)[1]:
        split = _SPLIT_NAMES.get(_norm(d.name))
        if split is None:
            logger.warning("%s: ignoring folder '%s', which is not a train/val/test folder", folder, d.name)
            continue
        splits.setdefault(split, []).extend(_class_folder_items(d, root, class_names, class_keys))
    return splits


def _class_folder_items(folder: Path, root: Path, class_names: list[str], class_keys: dict[str, int]) -> list[dict]:
    """Items of the class sub-folders of ``folder``; nested copies of the tree are skipped."""
    items = []
    for d in _scan(folder)[1]:
        label = class_keys.get(_norm(d.name))
        if label is None:
            if _layout_of(d, class_keys):
                logger.warning("%s: ignoring '%s', a nested copy of the data tree", folder, d.name)
            elif _find_images(d):
                raise DataError(
                    f"{d}: folder name '{d.name}' matches none of the class names {class_names} (case, spaces, '_' "
                    "and '-' are ignored). Rename the folder, remove it, or change the class names (--class_names)."
                )
            continue
        images = _find_images(d)
        if not images:
            raise DataError(
                f"{d}: class folder holds no images ({', '.join(IMAGE_SUFFIXES)}). Add images or remove the folder."
            )
        items += [{"image": str(p), "label": label, "id": p.relative_to(root).as_posix()} for p in images]
    if not items:
        raise DataError(
            f"{folder}: no images in class folders (expected sub-folders named {class_names}). Put each image in "
            "the sub-folder of its class, or remove this folder."
        )
    return items


def _from_datalist(
    folder: Path, root: Path, class_names: list[str] | None, class_keys: dict[str, int]
) -> dict[str, list[dict]]:
    """Items of ``datalist.csv`` or ``datalist.json`` in ``folder`` (the CSV when both exist), or of that file."""
    path = folder if folder.is_file() else next(f for name in _DATALIST_FILES for f in _scan(folder)[0]
                                                if f.name.lower() == name)
    entries: list[tuple[str | None, Any, Any, str, dict]] = []  # (split, image, label, where, group/mask)
    splits: dict[str, list[dict]] = {}
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
        columns = {k.strip().lower(): k for k in (rows[0] if rows else {})}
        if not {"image", "label"} <= columns.keys():
            raise DataError(
                f"{path}: needs columns image,label[,split][,group][,mask] (found {list(columns)}). Rename the columns."
            )
        for n, row in enumerate(rows, start=2):
            split = row[columns["split"]] if "split" in columns else None
            extra = {k: row[columns[k]].strip() for k in ("group", "mask") if k in columns and row[columns[k]].strip()}
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
    absent = [f for item in items for f in (item["image"], item.get("mask")) if f and not os.path.isfile(_file_of(f))]
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


def _file_of(image: str) -> str:
    """The file behind an item's image (the ``.mat`` file of ``"<path>.mat#<index>"``)."""
    match = SLICE_PATTERN.match(image) or ROW_PATTERN.match(image)
    return match["path"] if match else image


def _make_missing_splits(
    splits: dict[str, list[dict]],
    fractions: dict[str, float],
    seed: int,
    output_dir: str | os.PathLike | None,
    folder: Path,
) -> tuple[dict[str, list[dict]], str]:
    """Carve the splits named in ``fractions`` out of ``splits["train"]``, or reuse ``<output_dir>/split.json``."""
    by_id = {item["id"]: item for part in splits.values() for item in part}
    split_file = Path(output_dir).expanduser() / "split.json" if output_dir is not None else None
    saved = _saved_split(split_file, seed, fractions, splits) if split_file is not None else None
    if saved is not None:
        ids, method = saved
        return {s: [by_id[i] for i in ids[s]] for s in SPLITS}, f"reused from {split_file} ({method})"
    if len(splits["train"]) <= len(fractions):
        raise DataError(
            f"{folder}: {len(splits['train'])} training images are too few to split off {list(fractions)}. Add "
            "images, or provide those splits in the data."
        )
    train = sorted(splits["train"], key=lambda item: item["id"])
    n_groups = len({item.get("group") for item in train})
    if all("group" in item for item in train) and n_groups > len(fractions):
        made, method = grouped_split(train, fractions, seed), f"grouped by subject ({n_groups} groups)"
    else:
        made, method = stratified_split(train, fractions, seed), "stratified by class (no group key)"
    result = {s: sorted(made[s] if s in made else splits[s], key=lambda item: item["id"]) for s in SPLITS}
    how = f"made from the training data: {method}, seed {seed}, fractions {fractions}"
    if split_file is not None:
        split_ids = {s: [item["id"] for item in result[s]] for s in SPLITS}
        atomic_write_json(split_file, {"seed": seed, "fractions": fractions, "method": method, "splits": split_ids})
        how += f" and saved to {split_file}"
    return result, how


def _saved_split(
    split_file: Path, seed: int, fractions: dict[str, float], splits: dict[str, list[dict]]
) -> tuple[dict[str, list[str]], str] | None:
    """The ids per split in ``split_file`` and how it was made, when made with ``seed`` and ``fractions`` from the
    same data."""
    if not split_file.is_file():
        return None
    current = {s: sorted(item["id"] for item in part) for s, part in splits.items()}
    try:
        saved = json.loads(split_file.read_text())
        ids = {s: [str(i) for i in saved["splits"][s]] for s in SPLITS}
        method = str(saved.get("method", "stratified by class"))
        same = (
            saved["seed"] == seed
            and saved["fractions"] == fractions
            and sorted(i for part in ids.values() for i in part) == sorted(i for part in current.values() for i in part)
            and all(sorted(ids[s]) == part for s, part in current.items() if s != "train")
        )
    except (OSError, ValueError, KeyError, TypeError) as e:
        logger.warning("%s: unreadable (%s); making a new split", split_file, e)
        return None
    if not same:
        logger.warning("%s: made for other data, seed or fractions; making a new split", split_file)
    return (ids, method) if same else None


def _image_error(path: str, image_column: str = "image") -> str | None:
    """Why the image file (or parquet row) at ``path`` cannot be read, or None when it can."""
    name = path.lower()
    try:
        if ROW_PATTERN.match(path):
            decode_row(path, image_column)
        elif name.endswith((".nii", ".nii.gz")):
            _ = np.asanyarray(nibabel.load(path).dataobj)
        elif name.endswith(IMAGE_SUFFIXES) and not name.endswith(".dcm"):
            with Image.open(path) as im:
                im.load()
        else:
            _ = pydicom.dcmread(path).pixel_array
    except DataError as e:
        return str(e).split(": ", 1)[-1] if str(e).startswith(path.rsplit("#", 1)[0]) else str(e)
    except Exception as e:  # each library raises its own types for damaged files
        return f"{type(e).__name__}: {e}"
    return None


def _check_images(images: list[str], folder: Path, image_column: str = "image") -> None:
    """Open every image file and parquet row once (``.mat`` stacks are validated when read); report all failures."""
    paths = sorted({image for image in images if not SLICE_PATTERN.match(image)})
    with ThreadPoolExecutor(max_workers=min(32, 4 * (os.cpu_count() or 1))) as pool:
        errors = pool.map(lambda p: _image_error(p, image_column), paths)
        bad = [(p, e) for p, e in zip(paths, errors) if e is not None]
    if bad:
        listed = "\n".join(f"  {p}: {e}" for p, e in bad[:10]) + ("\n  ..." if len(bad) > 10 else "")
        raise DataError(
            f"{folder}: {len(bad)} of {len(paths)} image files cannot be read:\n{listed}\nRemove or replace these "
            "files, then start again."
        )
