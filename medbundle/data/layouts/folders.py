"""Layout 2: one sub-folder per class holding images (searched recursively), optionally inside ``train``/``val``/
``test`` split folders. Folder names match class names (or ``class_aliases``) ignoring case, spaces, ``_`` and ``-``.

A class folder may hold its images in an ``images`` folder (also ``image``, ``imgs``) beside mask folders, as
COVID-QU-Ex publishes them (``<Class>/{images,lung masks,infection masks}/<file>.png``). Mask folders are recognised
by name (:data:`MASK_FOLDERS`, normalised as class names are), never taken as images of the class, and each mask is
paired with the image of the same file name (its path below the mask folder, suffix aside: ``x.png`` masks
``x.jpg``): anatomy masks (``lung masks``, ``lung_mask``, ``lungs``, ...) become the item's ``"lung_mask"``, lesion
masks (``infection masks``, ``lesion masks``, ``masks``, ...) its ``"mask"`` (the key explanations are scored
against). Errors name the folder and the fix: a mask folder without an ``images`` folder beside it, images without a
mask where the folder has masks for others, two mask folders of one kind; a mask without an image is only logged
(a warning: it cannot mislabel anything). Mask sizes are checked against their images by
:func:`medbundle.data.files._check_images`, from the headers.
"""

from __future__ import annotations

import logging
from pathlib import Path

from medbundle.data.errors import DataError
from medbundle.data.files import IMAGE_SUFFIXES, _find_images, _folder_key, _norm, _scan
from medbundle.data.layouts.discover import _layout_of
from medbundle.data.splits import _SPLIT_NAMES

__all__ = ["MASK_FOLDERS", "IMAGE_FOLDERS"]

logger = logging.getLogger("medbundle.data")

#: names of the folder of a class folder's images when mask folders sit beside it (normalised as class names)
IMAGE_FOLDERS = ("image", "images", "img", "imgs")
#: mask folder names (normalised: lower case without spaces, ``_`` and ``-``) -> the item key of their masks
MASK_FOLDERS = {
    **dict.fromkeys(("lung", "lungs", "lungmask", "lungmasks", "lungsegmentation", "lungsegmentations"), "lung_mask"),
    **dict.fromkeys(("mask", "masks", "infection", "infections", "infectionmask", "infectionmasks", "lesion",
                     "lesions", "lesionmask", "lesionmasks"), "mask"),
}


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
    items, named = [], []
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
                    "and '-' are ignored). Rename the folder, remove it, or change the class names (--class_names) "
                    "or map it to a class (class_aliases)."
                )
            continue
        images = _find_images(d, seen)
        if not images:
            raise DataError(
                f"{d}: class folder holds no images ({', '.join(IMAGE_SUFFIXES)}). Add images or remove the folder."
            )
        found = _with_masks(d, images, label)
        if not found:
            raise DataError(f"{d}: class folder holds only masks, no images. Add the images (in {d / 'images'}).")
        items += [{**item, "id": Path(item["image"]).relative_to(root).as_posix()} for item in found]
        named.append(f"'{d.name}' -> {class_names[label]}" + ("" if _norm(d.name) == _norm(class_names[label])
                                                              else " (class_aliases)"))
    if not items:
        raise DataError(
            f"{folder}: no images in class folders (expected sub-folders named {class_names}). Put each image in "
            "the sub-folder of its class, or remove this folder."
        )
    logger.info("%s: class folders %s", folder, ", ".join(named))
    _warn_uneven_masks(folder, items)
    return items


def _key(parts: tuple[str, ...]) -> str:
    """The pairing key of a file below an images or mask folder: its path there without the image suffix."""
    name = parts[-1]
    suffix = next((s for s in sorted(IMAGE_SUFFIXES, key=len, reverse=True) if name.lower().endswith(s)), "")
    return "/".join((*parts[:-1], name[: len(name) - len(suffix)]))


def _with_masks(class_dir: Path, paths: list[Path], label: int) -> list[dict]:
    """Items ``{"image", "label"[, "mask"][, "lung_mask"]}`` of the image files ``paths`` found in ``class_dir``.

    Files below a mask folder (:data:`MASK_FOLDERS`) are masks, paired by :func:`_key` with the images of the
    folder that holds that mask folder (its ``images`` folder and anything else below it but masks).
    """
    masks: dict[Path, dict[str, dict[str, Path]]] = {}  # owner folder -> item key -> pairing key -> mask
    mask_dirs: dict[Path, dict[str, str]] = {}  # owner folder -> item key -> mask folder name
    images = []
    for p in paths:
        parts = p.relative_to(class_dir).parts
        at = next((i for i, part in enumerate(parts[:-1]) if _norm(part) in MASK_FOLDERS), None)
        if at is None:
            images.append((p, parts))
            continue
        owner, kind = class_dir.joinpath(*parts[:at]), MASK_FOLDERS[_norm(parts[at])]
        other = mask_dirs.setdefault(owner, {}).setdefault(kind, parts[at])
        if other != parts[at]:
            raise DataError(f"{owner}: both '{other}' and '{parts[at]}' are {kind} folders. Keep one of them.")
        by_key = masks.setdefault(owner, {}).setdefault(kind, {})
        key = _key(parts[at + 1:])
        if key in by_key:
            raise DataError(f"{owner / parts[at]}: two masks {by_key[key].name} and {p.name} for one image name. "
                            "Keep one.")
        by_key[key] = p
    for owner, dirs in mask_dirs.items():
        if not any(_norm(d.name) in IMAGE_FOLDERS for d in _scan(owner)[1]):
            raise DataError(
                f"{owner}: mask folder(s) {sorted(dirs.values())} but no 'images' folder beside them. Put the images "
                f"in {owner / 'images'} (a mask has its image's file name), or move the masks out of the class folder."
            )
    items, paired = [], {owner: {kind: set() for kind in kinds} for owner, kinds in masks.items()}
    missing: dict[tuple[Path, str], list[str]] = {}
    for p, parts in images:
        item = {"image": str(p), "label": label}
        owner_at = next((i for i in range(len(parts) - 1, -1, -1) if class_dir.joinpath(*parts[:i]) in masks), None)
        if owner_at is not None:
            owner, below = class_dir.joinpath(*parts[:owner_at]), parts[owner_at:]
            key = _key(below[1:] if len(below) > 1 and _norm(below[0]) in IMAGE_FOLDERS else below)
            for kind, by_key in masks[owner].items():
                if key in by_key:
                    item[kind] = str(by_key[key])
                    paired[owner][kind].add(key)
                else:
                    missing.setdefault((owner, kind), []).append("/".join(below))
        items.append(item)
    if missing:
        (owner, kind), names = next(iter(missing.items()))
        raise DataError(
            f"{owner}: {len(names)} image(s) have no mask in '{mask_dirs[owner][kind]}' (first: {names[:5]}), which "
            "has masks for others. A mask has its image's file name: add the missing masks or remove the mask folder."
        )
    for owner, kinds in masks.items():
        for kind, by_key in kinds.items():
            orphans = sorted(set(by_key) - paired[owner][kind])
            if orphans:
                logger.warning("%s: %d mask(s) in '%s' have no image of their name, left out (first: %s)", owner,
                               len(orphans), mask_dirs[owner][kind], orphans[:5])
        logger.info("%s: %d images, each with its %s", owner, len(next(iter(paired[owner].values()))),
                    " and ".join(f"{kind} ('{mask_dirs[owner][kind]}')" for kind in sorted(kinds)))
    return items


def _warn_uneven_masks(folder: Path, items: list[dict]) -> None:
    """Warn when some class folders give masks that others do not (a batch mixing them has no common keys)."""
    for kind in sorted(set(MASK_FOLDERS.values())):
        have = sum(kind in item for item in items)
        if 0 < have < len(items):
            lacking = sorted({Path(item["image"]).relative_to(folder).parts[0] for item in items if kind not in item})
            logger.warning("%s: %d of %d images have a '%s', those of %s have none", folder, have, len(items), kind,
                           lacking)
