"""One entry point from a dataset folder, whatever its layout, to MONAI datalists for train/val/test.

Items are dicts ``{"image": <absolute path, or "<path>.mat#<index>">, "label": <class index>, "id": <unique str>}``,
plus ``"mask": "<path>_mask.mat#<index>"`` when a ``.mat`` stack has a mask file beside it. Accepted layouts (one
module each in :mod:`medbundle.data.layouts`):

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
so nested duplicate copies of the tree (as in some Kaggle archives) are ignored. Hidden files and folders, ``__MACOSX``
and ``._*`` resource forks are always ignored (the macOS ones counted in one log line).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path
from typing import Sequence

from medbundle.data.errors import DataError
from medbundle.data.files import (IMAGE_SUFFIXES, _check_images, _find_images, _is_image, _is_resource_fork,
                                  _log_macos_leftovers, _norm)
from medbundle.data.limits import MAX_PIXELS
from medbundle.data.layouts.datalist import _DATALIST_FILES, _from_datalist
from medbundle.data.layouts.discover import _find_layout
from medbundle.data.layouts.folders import _from_folders
from medbundle.data.layouts.mat import _add_masks, _from_mat
from medbundle.data.layouts.parquet import _from_parquet
from medbundle.data.matfile import read_mat
from medbundle.data.splits import SPLITS, _groups_from_pattern, _make_missing_splits

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
        max_pixels: the most pixels one image file may have, checked from its header by the ``check`` (see
            :func:`medbundle.data.limits.check_pixels`); None: no limit.
        min_val_size: a validation split of the data with fewer images joins the training data, and a
            validation split is made from it by ``val_fraction`` (the Kermany release's ``val`` folder holds 16
            films: too few to choose a model or fit a calibration, threshold or conformal quantile); 0: always keep
            the data's own.

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
    folder, splits = _read_layout(root, class_names, data_key, label_key, image_column, label_names, group_column)
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
        _check_images([item["image"] for s in SPLITS for item in splits[s]], folder, image_column, max_pixels)
    return splits


def _read_layout(
    root: Path,
    class_names: list[str],
    data_key: str,
    label_key: str,
    image_column: str,
    label_names: Sequence[str] | None,
    group_column: str | None,
) -> tuple[Path, dict[str, list[dict]]]:
    """The folder holding the data under ``root`` and the items of each split the data provides, in whichever layout
    it is (datalist, ``.mat``, parquet, class folders with or without split folders)."""
    class_keys = {_norm(c): i for i, c in enumerate(class_names)}
    folder, layout = _find_layout(root, class_keys, data_key, label_key, class_names)
    logger.info("%s: found %s layout in %s", root, layout, folder)
    _log_macos_leftovers(root)
    if layout == "datalist":
        return folder, _from_datalist(folder, root, class_names, class_keys)
    if layout == ".mat":
        return folder, _from_mat(folder, root, len(class_names), data_key, label_key)
    if layout == "parquet":
        return folder, _from_parquet(folder, root, class_names, class_keys, image_column, label_key, label_names,
                                     group_column)
    return folder, _from_folders(folder, root, class_names, class_keys, layout)


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
        image_column: image column of parquet files.
        label_names: class names of integer parquet labels (see :func:`load_datalists`).
        check: open every image once and report all unreadable ones in one error.
        max_pixels: the most pixels one image file may have; None: no limit.

    Raises:
        DataError: for any problem with the data.
    """
    path = Path(input_path).expanduser().resolve()
    if not path.is_dir():
        return list_inputs(path, data_key, label_key, class_names)
    folder, splits = _read_layout(path, list(class_names), data_key, label_key, image_column, label_names, None)
    items = sorted((item for part in splits.values() for item in part), key=lambda item: item["id"])
    if check:
        _check_images([item["image"] for item in items], folder, image_column, max_pixels)
    return items


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
        _log_macos_leftovers(path)
    elif _is_resource_fork(path.name):
        raise DataError(f"{path}: a macOS resource fork ('._' file from an archive), not an image. Give the image "
                        f"file itself ({path.name[2:]}) or its folder.")
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
