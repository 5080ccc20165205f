"""One entry point from a dataset folder, whatever its layout, to MONAI datalists for train/val/test.

Items are dicts ``{"image": <absolute path, or "<path>.mat#<index>">, "label": <class index>, "id": <unique str>}``,
plus ``"mask"`` (a lesion mask: ``"<path>_mask.mat#<index>"`` when a ``.mat`` stack has a mask file beside it, or
the file of a mask folder) and ``"lung_mask"`` (an anatomy mask) where the data has them. Accepted layouts (one
module each in :mod:`medbundle.data.layouts`):

1. ``Train.mat`` / ``Val.mat`` / ``Test.mat`` (case-insensitive; also ``validation``, ``valid``...), each holding an
   image stack and its labels (see :func:`medbundle.data.matfile.read_mat`); optional ``<Split>_mask.mat`` (``mask``).
2. one sub-folder per class holding images (searched recursively), optionally inside ``train``/``val``/``test``
   split folders. Folder names match class names (or ``class_aliases``) ignoring case, spaces, ``_`` and ``-``. A
   class folder may hold ``images/`` beside mask folders (``lung masks``, ``infection masks``, ...: COVID-QU-Ex; see
   :mod:`medbundle.data.layouts.folders`).
3. ``datalist.csv`` (columns ``image,label[,split][,group][,mask]``) or ``datalist.json`` (MONAI style, keys
   ``training``/``validation``/``test`` or ``train``/``val``/``test``), image paths relative to the file or absolute.
4. parquet tables as published on the Hugging Face hub (``train-*.parquet``, ``test-*.parquet``, ...; see
   :mod:`medbundle.data.parquet`): items ``"<file>.parquet#<row>"``, decoded lazily by the loading transform.
   Integer labels are mapped by class *name* (Hugging Face ``ClassLabel`` metadata, or ``label_names``).
5. a metadata table (``table_file``, default ``metadata.csv``; only when ``label_column`` is given, and then before
   the others) with one row per image and its finding (Figure1, ieee8023; see :mod:`medbundle.data.layouts.table`).

Splits the data does not provide are carved out of the training data: grouped (no group in two splits) when every
item has a group key (a ``group`` column, ``group_column`` of a parquet file, or ``group_pattern`` matched on the
ids), stratified by class otherwise. The log and ``split.json`` say which.

The layout is looked for in ``dataset_dir`` and then below it, breadth first: the topmost folder showing one wins,
so nested duplicate copies of the tree (as in some Kaggle archives) are ignored. Hidden files and folders, ``__MACOSX``
and ``._*`` resource forks are always ignored (the macOS ones counted in one log line).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path
from typing import Mapping, Sequence

from medbundle.data.errors import DataError
from medbundle.data.files import _check_images, _log_macos_leftovers, _norm
from medbundle.data.limits import MAX_PIXELS
from medbundle.data.layouts.datalist import _from_datalist
from medbundle.data.layouts.discover import _find_layout
from medbundle.data.layouts.folders import _from_folders
from medbundle.data.layouts.mat import _from_mat
from medbundle.data.layouts.parquet import _from_parquet
from medbundle.data.layouts.table import _from_table
from medbundle.options import as_bool
from medbundle.data.near_duplicates import (exclude_copies_of as exclude_copies_of_images,
                                            exclude_duplicates_of_held_out, group_near_duplicates, log_confounds)
from medbundle.data.split_check import record_split_check
from medbundle.data.splits import SPLITS, _groups_from_pattern, _make_missing_splits

from medbundle.data.inputs import list_inputs  # noqa: F401 (re-exported: medbundle.data.datalists.list_inputs)

__all__ = ["load_datalists", "load_labelled", "list_inputs"]

logger = logging.getLogger("medbundle.data")


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
    max_pixels: int | None = MAX_PIXELS,
    min_val_size: int = 0,
    class_aliases: Mapping[str, str] | None = None,
    table_file: str = "metadata.csv",
    label_column: str | None = None,
    finding_map: Mapping[str, str | None] | None = None,
    row_filter: Mapping[str, Sequence[str]] | None = None,
    source_column: str | None = None,
    near_duplicates: bool = False,
    exclude_test_duplicates: bool = False,
    exclude_copies_of: Sequence[str | os.PathLike] | None = None,
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
        image_column: image column of parquet files (a struct with ``bytes``, or binary), or of the metadata table
            (a path relative to the table's folder, or a file name or stem there or in its ``images`` folder).
        label_names: class names of the integer labels of parquet files, in their order (used when the file has
            no Hugging Face ``ClassLabel`` metadata); None: integers are indices into ``class_names``.
        group_column: column of parquet files or of the metadata table holding a group key (subject), if any.
        group_pattern: regular expression searched in each item's id; its group ``group`` (or the whole match)
            is the item's group key. Ignored (stratified split) when it matches no id; an error when it matches
            only some.
        max_pixels: the most pixels one image file may have, checked from its header by the ``check`` (see
            :func:`medbundle.data.limits.check_pixels`); None: no limit.
        min_val_size: a validation split of the data with fewer images joins the training data, and a
            validation split is made from it by ``val_fraction`` (the Kermany release's ``val`` folder holds 16
            films: too few to choose a model or fit a calibration, threshold or conformal quantile); 0: always keep
            the data's own.
        class_aliases: other names of classes, ``{folder or finding name: class name}`` (matched ignoring case,
            spaces, ``_`` and ``-``), e.g. ``{"Non-COVID": "Pneumonia", "COVID": "COVID-19"}``.
        table_file: file name of the metadata table (in the dataset folder or below), read when ``label_column`` is
            set.
        label_column: the findings column of the metadata table; None: no table layout.
        finding_map: finding -> class name or alias, or None (null) to leave its rows out on purpose; findings not
            in it must be class names or aliases.
        row_filter: column -> allowed values of the metadata table (e.g. ``{"view": ["PA", "AP"]}``); other rows
            are left out (counted in the log).
        source_column: column of the metadata table giving each item's ``"source"``.
        near_duplicates: splits made from the training data keep near-duplicate images (resized, trimmed or
            re-encoded copies: :func:`medbundle.audit.near_duplicate_clusters`) together with each other and with
            their subject's group (:mod:`medbundle.data.near_duplicates`); costs a pass over the pixels when a new
            split is made.
        exclude_test_duplicates: where the data brings its own validation/test images, training images that are
            near duplicates of them (or of their subject) are left out, with a warning naming how many.
        exclude_copies_of: folders (or files) whose images' near duplicates are left out of the train and val
            splits after the split is made (the test split is untouched): an ablation of a source, e.g. the Kermany
            pediatric films inside COVID-QU-Ex.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}``, each list sorted by ``"id"``; items carry ``"group"``,
        ``"source"``, ``"mask"`` and ``"lung_mask"`` when they have one. Whether the split is known to keep each
        subject on one side is logged (a warning when not) and written to ``<output_dir>/split_check.json``
        (:mod:`medbundle.data.split_check`).

    Raises:
        DataError: for any problem with the data; the message names the file or folder and what to do.
    """
    root = Path(dataset_dir).expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"{root}: no such folder. Point --dataset_dir at the folder that holds the data.")
    class_names = list(class_names)
    table = _table_options(table_file, label_column, finding_map, row_filter, source_column)
    folder, splits = _read_layout(root, class_names, data_key, label_key, image_column, label_names, group_column,
                                  class_aliases, table)
    if "train" not in splits:
        raise DataError(
            f"{folder}: no training data (found only the splits {sorted(splits)}). Add a train split, or put all "
            "the data in one split-free layout so that it is split automatically."
        )
    _require_classes(splits["train"], class_names, folder)
    if group_pattern:
        _groups_from_pattern(splits, group_pattern, folder)
    if "val" in splits and len(splits["val"]) < int(min_val_size or 0):
        logger.warning(
            "%s: the data's validation split has %d images, fewer than min_val_size %d: it joins the training data "
            "and a validation split is made from it (val_fraction %s)", folder, len(splits["val"]), min_val_size,
            val_fraction)
        splits["train"] = splits["train"] + splits.pop("val")
    grouped = False
    near_duplicates = as_bool(near_duplicates, "near_duplicates")
    if as_bool(exclude_test_duplicates, "exclude_test_duplicates") and any(s in splits for s in ("val", "test")):
        group_near_duplicates(splits, folder)
        exclude_duplicates_of_held_out(splits, folder)
        grouped = True
    missing = [s for s in SPLITS if s not in splits]
    if missing:
        fractions = {s: {"val": val_fraction, "test": test_fraction}[s] for s in missing}
        group = None if grouped or not near_duplicates else (lambda parts: group_near_duplicates(parts, folder))
        splits, how = _make_missing_splits(splits, fractions, seed, output_dir, folder,
                                           near_duplicates=near_duplicates, group=group)
    else:
        how = "taken from the data"
    if exclude_copies_of:
        others = [exclude_copies_of] if isinstance(exclude_copies_of, (str, os.PathLike)) else list(exclude_copies_of)
        exclude_copies_of_images(splits, others, folder)
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
    record_split_check(output_dir, splits, how)
    if check:
        log_confounds(splits, class_names)
        items = [item for s in SPLITS for item in splits[s]]
        _check_images([item["image"] for item in items], folder, image_column, max_pixels, _mask_pairs(items))
    return splits


def _read_layout(
    root: Path,
    class_names: list[str],
    data_key: str,
    label_key: str,
    image_column: str,
    label_names: Sequence[str] | None,
    group_column: str | None,
    class_aliases: Mapping[str, str] | None = None,
    table: dict | None = None,
) -> tuple[Path, dict[str, list[dict]]]:
    """The folder holding the data under ``root`` and the items of each split the data provides, in whichever layout
    it is (metadata table when ``table`` is given, datalist, ``.mat``, parquet, class folders with or without split
    folders)."""
    class_keys = _class_keys(class_names, class_aliases)
    table_file = table["table_file"] if table else None
    folder, layout = _find_layout(root, class_keys, data_key, label_key, class_names, table_file)
    logger.info("%s: found %s layout in %s", root, layout, folder)
    _log_macos_leftovers(root)
    if layout == "table":
        return folder, _from_table(folder, root, class_names, class_keys, image_column=image_column,
                                   group_column=group_column, **table)
    if layout == "datalist":
        return folder, _from_datalist(folder, root, class_names, class_keys)
    if layout == ".mat":
        return folder, _from_mat(folder, root, len(class_names), data_key, label_key)
    if layout == "parquet":
        return folder, _from_parquet(folder, root, class_names, class_keys, image_column, label_key, label_names,
                                     group_column)
    return folder, _from_folders(folder, root, class_names, class_keys, layout)


def _class_keys(class_names: list[str], class_aliases: Mapping[str, str] | None) -> dict[str, int]:
    """Normalised class names and aliases -> class index (see :func:`medbundle.data.files._norm`)."""
    keys = {_norm(c): i for i, c in enumerate(class_names)}
    if class_aliases is not None and not isinstance(class_aliases, Mapping):
        raise DataError(f"class_aliases must map folder or finding names to class names, not {class_aliases!r}. "
                        "Fix --class_aliases.")
    aliases = {}
    for alias, name in (class_aliases or {}).items():
        if _norm(str(name)) not in keys:
            raise DataError(f"class_aliases: '{alias}' -> '{name}', which is none of the classes {class_names}. "
                            "Map each alias to a class name (--class_aliases).")
        index, key = keys[_norm(str(name))], _norm(str(alias))
        other = keys.get(key, aliases.get(key, index))
        if other != index:
            raise DataError(f"class_aliases: '{alias}' -> '{name}', but '{alias}' names the class "
                            f"'{class_names[other]}' already. Give each name one class (--class_aliases).")
        aliases[key] = index
    return {**aliases, **keys}


def _table_options(
    table_file: str,
    label_column: str | None,
    finding_map: Mapping[str, str | None] | None,
    row_filter: Mapping[str, Sequence[str]] | None,
    source_column: str | None,
) -> dict | None:
    """The metadata table's options for :func:`_from_table`, None when ``label_column`` is not set (no table)."""
    if not label_column:
        return None
    return {"table_file": table_file or "metadata.csv", "label_column": label_column, "finding_map": finding_map,
            "row_filter": row_filter, "source_column": source_column}


def _mask_pairs(items: list[dict]) -> list[tuple[str, str]]:
    """``(image, mask)`` for every mask of every item (``"mask"``, ``"lung_mask"``), whose sizes must agree."""
    return [(item["image"], item[key]) for item in items for key in ("mask", "lung_mask") if item.get(key)]


def _require_classes(train: list[dict], class_names: list[str], folder: Path) -> None:
    """Refuse training data (before any split is carved from it) that lacks a class altogether.

    A classifier needs at least two classes, and a class without a single training image can never be predicted:
    its output is dead weight and its figures are undefined. So either is a :class:`DataError` naming the classes
    found, the classes missing and the folder, rather than a run that reports accuracy 1.0 on one class.
    """
    counts = Counter(item["label"] for item in train)
    found = [c for i, c in enumerate(class_names) if counts[i]]
    missing = [c for i, c in enumerate(class_names) if not counts[i]]
    if len(found) < 2:
        raise DataError(
            f"{folder}: the training data holds images of {len(found)} class(es) {found} ({len(train)} images); a "
            f"classifier needs at least 2. Add the images of {missing} (folder names or labels must match the class "
            "names), or point --dataset_dir at the complete data set."
        )
    if missing:
        raise DataError(
            f"{folder}: no training images of the classes {missing} (found only {found}). Add their images, or "
            "remove these classes from the bundle's classes (configs/metadata.json channel_def, or --class_names)."
        )


def load_labelled(
    input_path: str | os.PathLike,
    class_names: Sequence[str],
    data_key: str = "data",
    label_key: str = "label",
    image_column: str = "image",
    label_names: Sequence[str] | None = None,
    check: bool = True,
    max_pixels: int | None = MAX_PIXELS,
    class_aliases: Mapping[str, str] | None = None,
    table_file: str = "metadata.csv",
    label_column: str | None = None,
    finding_map: Mapping[str, str | None] | None = None,
    row_filter: Mapping[str, Sequence[str]] | None = None,
    group_column: str | None = None,
    source_column: str | None = None,
) -> list[dict]:
    """All labelled items of ``input_path``, every split together, nothing carved out (a test set for comparing).

    A folder is read as :func:`load_datalists` reads a dataset folder (class folders, split folders, ``.mat``
    stacks, datalist, parquet); a file as :func:`list_inputs` reads it (items without a label are the caller's
    to refuse).

    Args:
        input_path: a dataset folder in any layout, a ``datalist.csv``/``.json`` or a ``.mat`` file with labels.
        class_names: the classes; labels are indices into this list.
        data_key: image variable of ``.mat`` files.
        label_key: label variable of ``.mat`` files.
        image_column: image column of parquet files or of the metadata table.
        label_names: class names of integer parquet labels (see :func:`load_datalists`).
        check: open every image once and report all unreadable ones in one error.
        max_pixels: the most pixels one image file may have; None: no limit.
        class_aliases: other names of classes, ``{folder or finding name: class name}``.
        table_file: file name of the metadata table, read when ``label_column`` is set.
        label_column: the findings column of the metadata table; None: no table layout.
        finding_map: finding -> class name or alias, or None to leave its rows out (see :func:`load_datalists`).
        row_filter: column -> allowed values of the metadata table.
        group_column: column of parquet files or of the metadata table giving each item's ``"group"``.
        source_column: column of the metadata table giving each item's ``"source"``.

    Raises:
        DataError: for any problem with the data.
    """
    path = Path(input_path).expanduser().resolve()
    if not path.is_dir():
        return list_inputs(path, data_key, label_key, class_names)
    table = _table_options(table_file, label_column, finding_map, row_filter, source_column)
    folder, splits = _read_layout(path, list(class_names), data_key, label_key, image_column, label_names,
                                  group_column, class_aliases, table)
    items = sorted((item for part in splits.values() for item in part), key=lambda item: item["id"])
    if check:
        _check_images([item["image"] for item in items], folder, image_column, max_pixels, _mask_pairs(items))
    return items
