"""Near-duplicate images in splits: clusters kept on one side of every split, and copies of test images left out of
training.

Public chest X-ray collections copy each other: COVID-QU-Ex holds hundreds of the Kermany films and some of Figure1's,
resized and trimmed; a film and its resized copy on both sides of a split make the test score a memory test. The
clusters come from :func:`medbundle.audit.near_duplicate_clusters` (perceptual hashes checked by aligned thumbnails,
robust to resizing, small crops and re-encoding). The cheap part of the audit, class confounds read from the file
headers (:func:`medbundle.audit.quick_confounds`), is logged at the same time.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

__all__: list[str] = []

logger = logging.getLogger("medbundle.data")


def _is_file_item(item: dict) -> bool:
    """An item whose image is a file of its own (not a ``.mat`` row or a parquet row)."""
    return "#" not in Path(str(item["image"])).name


def _components(n: int, edges: list[tuple[int, int]]) -> np.ndarray:
    if not edges:
        return np.arange(n)
    a, b = np.asarray(edges).T
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def group_near_duplicates(splits: dict[str, list[dict]], folder: Path) -> None:
    """Give every item a ``"group"`` that joins its own group (subject) with its near-duplicate cluster.

    Items with one group key, or in one near-duplicate cluster, directly or through others, end in one group, so a
    grouped split keeps every copy of a film, and every film of a subject, on one side. Items without a group key of
    their own are their own group unless a copy joins them. Items that are not image files (``.mat`` stacks, parquet
    rows) keep their groups as they are.

    Args:
        splits: the items of each split the data provides (updated in place).
        folder: the data folder (for the log).
    """
    from medbundle.audit.duplicates import near_duplicate_clusters

    items = [item for part in splits.values() for item in part if _is_file_item(item)]
    if len(items) < 2:
        return
    clusters = near_duplicate_clusters([item["image"] for item in items])
    edges, first_of = [], {}
    for i, (item, cluster) in enumerate(zip(items, clusters)):
        for key in (("cluster", cluster), ("group", item.get("group"))):
            if key[1] is None:
                continue
            if key in first_of:
                edges.append((first_of[key], i))
            else:
                first_of[key] = i
    components = _components(len(items), edges)
    sizes = np.bincount(clusters)
    copies = int((sizes[clusters] > 1).sum())
    for item, component in zip(items, components):
        item["group"] = f"g{int(component)}"
    logger.info(
        "%s: %d of %d images have a near duplicate (%d clusters of 2 or more); with the subjects, %d groups that no "
        "split divides", folder, copies, len(items), int((sizes > 1).sum()), len(set(components.tolist())))


def exclude_duplicates_of_held_out(splits: dict[str, list[dict]], folder: Path) -> None:
    """Remove from ``splits["train"]`` the images grouped (by :func:`group_near_duplicates`) with a val or test image.

    Only needed where the data brings its own val/test splits: splits made by the bundle keep groups together.

    Args:
        splits: the items of each split, grouped (updated in place).
        folder: the data folder (for the log).
    """
    held_out = {item.get("group") for s in ("val", "test") for item in splits.get(s, []) if item.get("group")}
    train = splits.get("train", [])
    drop = [item for item in train if item.get("group") in held_out]
    if not drop:
        return
    splits["train"] = [item for item in train if item.get("group") not in held_out]
    logger.warning(
        "%s: %d training images are near duplicates (or the same subject) of validation/test images and are left out "
        "of training (exclude_test_duplicates; first: %s)", folder, len(drop), [item["id"] for item in drop[:5]])


def log_confounds(splits: dict[str, list[dict]], class_names: list[str]) -> None:
    """Log a warning for each class confound the file headers show (size, aspect, mode, format, bit depth)."""
    from medbundle.audit.confounds import quick_confounds

    items = [item for part in splits.values() for item in part if _is_file_item(item)]
    if not items:
        return
    for line in quick_confounds(items, class_names):
        logger.warning("audit: %s", line)


def exclude_copies_of(splits: dict[str, list[dict]], others: Sequence[str | os.PathLike], folder: Path) -> None:
    """Leave out of training and validation the images that are near duplicates of any image in ``others``.

    For ablations of a source: e.g. train COVID-QU-Ex without its copies of the Kermany pediatric films
    (``--exclude_copies_of "['../shared/data/pneumonia_xray']"``) and compare with the model trained with them on the
    same, untouched test split.

    Args:
        splits: the train/val/test items (train and val updated in place; test is never changed).
        others: folders (searched recursively for images, masks skipped) or image files.
        folder: the data folder (for the log).
    """
    from medbundle.audit.discovery import find_audit_images
    from medbundle.audit.duplicates import near_duplicate_clusters
    from medbundle.data.errors import DataError

    theirs = []
    for other in others:
        path = Path(other).expanduser()
        if not path.exists():
            raise DataError(f"{path}: no such file or folder (exclude_copies_of). Give folders of the images whose "
                            "copies to leave out of training, or [] for none.")
        theirs += [str(path)] if path.is_file() else [str(image["path"]) for image in find_audit_images([path])]
    ours = [(s, item) for s in ("train", "val") for item in splits.get(s, []) if _is_file_item(item)]
    clusters = near_duplicate_clusters([item["image"] for _, item in ours] + theirs)
    copied = set(clusters[len(ours):])
    drop = {id(item) for (_, item), c in zip(ours, clusters[: len(ours)]) if c in copied}
    for s in ("train", "val"):
        before = len(splits.get(s, []))
        splits[s] = [item for item in splits.get(s, []) if id(item) not in drop]
        logger.warning("%s: %d of %d %s images are copies of images in %s and are left out (exclude_copies_of)",
                       folder, before - len(splits[s]), before, s, [str(o) for o in others])
