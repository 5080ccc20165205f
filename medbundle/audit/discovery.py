"""The images of an audit: every image file below each folder given, with its source, class and split inferred from
the folder names (an audit is given no class names).

- **source**: the folder given on the command line (its name; ``parent/name`` when two given folders share a name);
- **split**: the nearest ancestor folder named like a split (``train``, ``Training``, ``val``, ``valid``,
  ``validation``, ``test``, ``testing``: the names :mod:`medbundle.data.splits` reads, matched as
  :func:`medbundle.data.files._norm` matches names), else empty;
- **class**: the nearest ancestor folder below the source that is neither a split folder nor named ``images``, else
  empty (images lying directly in the source folder).

Files are found as training finds them (:func:`medbundle.data.files._find_images`: hidden files, ``__MACOSX``
folders and ``._*`` resource forks left out). Images below a *mask folder* (a folder whose name ends with ``mask`` or
``masks``, such as COVID-QU-Ex's ``lung masks`` and ``infection masks``) are segmentation masks, not images of a
class: they are counted and skipped.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from medbundle.data.errors import DataError
from medbundle.data.files import _find_images, _log_macos_leftovers, _norm
from medbundle.data.splits import _SPLIT_NAMES

__all__ = ["AuditImages", "find_audit_images", "is_mask_folder"]

logger = logging.getLogger("medbundle.audit")

_SPLITS = {_norm(name): split for name, split in _SPLIT_NAMES.items()}
_NOT_A_CLASS = {"images", "image", "imgs", "img"}


def is_mask_folder(name: str) -> bool:
    """Whether a folder named ``name`` holds segmentation masks (``lung masks``, ``Masks``, ``infection_mask``)."""
    return _norm(name).endswith(("mask", "masks"))


class AuditImages(list):
    """The images found: a list of dicts ``{"path", "source", "class", "split"}``, plus what was skipped.

    Attributes:
        skipped_masks: number of images skipped in mask folders, per source.
    """

    def __init__(self, items: Sequence[dict] = (), skipped_masks: dict[str, int] | None = None) -> None:
        super().__init__(items)
        self.skipped_masks = dict(skipped_masks or {})


def _source_names(folders: Sequence[Path]) -> list[str]:
    """A name per folder: its own name, or ``parent/name`` where two folders have the same name."""
    names = [f.resolve().name for f in folders]
    counts = Counter(names)
    names = [f"{f.resolve().parent.name}/{n}" if counts[n] > 1 else n for f, n in zip(folders, names)]
    counts = Counter(names)
    return [f"{n}#{i + 1}" if counts[n] > 1 else n for i, n in enumerate(names)]


def _labels(relative_folders: Sequence[str]) -> tuple[str, str, bool]:
    """``(class, split, in_mask_folder)`` of an image from its folders below the source, outermost first."""
    cls, split, mask = "", "", False
    for name in reversed(relative_folders):
        key = _norm(name)
        if is_mask_folder(name):
            mask = True
        elif key in _SPLITS:
            split = split or _SPLITS[key]
        elif key not in _NOT_A_CLASS and not cls:
            cls = name
    return cls, split, mask


def find_audit_images(dirs: Sequence[str | os.PathLike]) -> AuditImages:
    """Every image below each folder of ``dirs``, with its source, class and split (see the module docstring).

    Args:
        dirs: the folders to audit (each one a source).

    Returns:
        The images, sorted by source then path; ``skipped_masks`` counts the mask images left out.

    Raises:
        DataError: when a folder does not exist, is not a folder, or holds no image file.
    """
    if not dirs:
        raise DataError("no folder to audit. Pass one or more image folders, e.g. python -m medbundle.audit "
                        "/data/covid_xray /data/pneumonia_xray")
    folders = [Path(d).expanduser().absolute() for d in dirs]
    for folder in folders:
        if not folder.exists():
            raise DataError(f"{folder}: no such folder. Pass an existing folder of images (class folders, split "
                            "folders or images directly inside).")
        if not folder.is_dir():
            raise DataError(f"{folder}: not a folder. Pass the folder that holds the images, not a file.")
    real = [f.resolve() for f in folders]
    for i, a in enumerate(real):
        for j, b in enumerate(real):
            if i != j and (a == b and i > j or a != b and a.is_relative_to(b)):
                raise DataError(f"{folders[i]}: {'the same folder as' if a == b else 'inside'} {folders[j]}, also "
                                "given: its images would be audited twice. Pass each folder once, none inside another.")
    items, skipped = [], {}
    for folder, source in zip(folders, _source_names(folders)):
        _log_macos_leftovers(folder)
        found, masks = [], 0
        for path in _find_images(folder):
            cls, split, mask = _labels(path.relative_to(folder).parts[:-1])
            if mask:
                masks += 1
                continue
            found.append({"path": str(path), "source": source, "class": cls, "split": split})
        if masks:
            logger.info("%s: skipped %d image(s) in mask folders (segmentation masks, not images of a class)",
                        folder, masks)
        if not found:
            raise DataError(f"{folder}: no image files below it ({', '.join(('.png', '.jpg', '.dcm', '...'))}; "
                            f"{masks} mask image(s) skipped). Pass a folder that holds images.")
        skipped[source] = masks
        items += found
    return AuditImages(items, skipped)
