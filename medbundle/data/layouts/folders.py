"""Layout 2: one sub-folder per class holding images (searched recursively), optionally inside ``train``/``val``/
``test`` split folders. Folder names match class names ignoring case, spaces, ``_`` and ``-``."""

from __future__ import annotations

import logging
from pathlib import Path

from medbundle.data.errors import DataError
from medbundle.data.files import IMAGE_SUFFIXES, _find_images, _folder_key, _norm, _scan
from medbundle.data.layouts.discover import _layout_of
from medbundle.data.splits import _SPLIT_NAMES

__all__: list[str] = []

logger = logging.getLogger("medbundle.data")


def _from_folders(
    folder: Path, root: Path, class_names: list[str], class_keys: dict[str, int], layout: str
) -> dict[str, list[dict]]:
    """Items of class folders, inside split folders when ``layout`` is ``"split folders"``."""
    seen = {k for k in (_folder_key(root), _folder_key(folder)) if k is not None}
    if layout == "class folders":
        return {"train": _class_folder_items(folder, root, class_names, class_keys, seen)}
    splits: dict[str, list[dict]] = {}
    split_dirs = [d for d in _scan(folder)[1] if _norm(d.name) in _SPLIT_NAMES]
    seen |= {k for d in split_dirs if (k := _folder_key(d)) is not None}
    for d in _scan(folder)[1]:
        split = _SPLIT_NAMES.get(_norm(d.name))
        if split is None:
            logger.warning("%s: ignoring folder '%s', which is not a train/val/test folder", folder, d.name)
            continue
        splits.setdefault(split, []).extend(_class_folder_items(d, root, class_names, class_keys, seen))
    return splits


def _class_folder_items(
    folder: Path, root: Path, class_names: list[str], class_keys: dict[str, int], seen: set | None = None
) -> list[dict]:
    """Items of the class sub-folders of ``folder``; nested copies of the tree are skipped.

    Links are followed, but never into a folder searched already or searched as another class or split folder
    (``seen``, updated), so that no image is found twice or under the wrong class (see
    :func:`medbundle.data.files._first_visit`).
    """
    items = []
    class_dirs = [d for d in _scan(folder)[1] if _norm(d.name) in class_keys]
    seen = set() if seen is None else seen
    seen |= {k for d in class_dirs if (k := _folder_key(d)) is not None}
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
        images = _find_images(d, seen)
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
