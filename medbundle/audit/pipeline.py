"""The whole audit of one or more data folders (:func:`audit`): find the images, read each once, find duplicates and
the pictures each class shares with other classes, splits and sources, check confounds, write the report."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from medbundle.audit.alignment import MIN_DETAIL, MIN_RAW
from medbundle.audit.confounds import confound_checks, confound_table
from medbundle.audit.discovery import find_audit_images
from medbundle.audit.duplicates import (
    CROP_NEIGHBOURS,
    MAX_COARSE_DISTANCE,
    MAX_DISTANCE,
    SURE_DISTANCE,
    clusters_from_pairs,
    find_duplicates,
)
from medbundle.audit.hashing import INFO_COLUMNS, hash_images
from medbundle.audit.report import write_report

__all__ = ["audit", "image_frame", "pair_frame", "shared_pictures"]

logger = logging.getLogger("medbundle.audit")


def _group(source: str, split: str, cls: str) -> str:
    return "/".join(p for p in (source, split, cls) if p)


def image_frame(items: Sequence[dict], table, clusters: Sequence[int]) -> pd.DataFrame:
    """One row per image: path, source, split, class, group, cluster, digests, perceptual hash (hex), header facts
    and intensity statistics."""
    images = pd.DataFrame(list(items), columns=["path", "source", "split", "class"])
    images["group"] = [_group(s, p, c) for s, p, c in zip(images["source"], images["split"], images["class"])]
    images["cluster"] = list(clusters)
    images["file_sha256"] = table.file_sha256
    images["pixel_sha256"] = table.pixel_sha256
    images["phash"] = ["".join(f"{int(w):016x}" for w in row) if ok else "" for row, ok in zip(table.phash, table.ok)]
    info = pd.DataFrame(table.info, columns=list(INFO_COLUMNS))
    return pd.concat([images, info], axis=1)


def pair_frame(pairs: pd.DataFrame, images: pd.DataFrame) -> pd.DataFrame:
    """Duplicate pairs with both images' paths, source, split and class, ``same_*`` flags, ``relation``
    (``within_split``, ``across_splits`` or ``across_sources``) and the ``cluster``."""
    out = pd.DataFrame({"a": images["path"].to_numpy()[pairs["a"]], "b": images["path"].to_numpy()[pairs["b"]]})
    out = pd.concat([out, pairs[["kind", "distance", "raw_correlation", "detail_correlation"]].reset_index(drop=True)],
                    axis=1)
    for key in ("source", "split", "class"):
        for side in ("a", "b"):
            out[f"{key}_{side}"] = images[key].to_numpy()[pairs[side]]
        out[f"same_{key}"] = out[f"{key}_a"] == out[f"{key}_b"]
    out["relation"] = np.where(~out["same_source"], "across_sources",
                               np.where(~out["same_split"], "across_splits", "within_split"))
    out["cluster"] = images["cluster"].to_numpy()[pairs["a"]]
    return out


def shared_pictures(images: pd.DataFrame) -> pd.DataFrame:
    """For every two groups (source/split/class) with a picture in common: how many images of the first share
    their picture (cluster) with an image of the second. Clusters link through chains of pairs."""
    members = images.groupby("cluster")["group"].agg(lambda g: sorted(set(g)))
    multi = members[members.map(len) > 1]
    counts: dict[tuple[str, str], int] = {}
    if len(multi):
        linked = images[images["cluster"].isin(multi.index)]
        for group, cluster in zip(linked["group"], linked["cluster"]):
            for other in multi[cluster]:
                if other != group:
                    counts[(group, other)] = counts.get((group, other), 0) + 1
    rows = [{"group": g, "other": o, "images": n, "of": int((images["group"] == g).sum())}
            for (g, o), n in sorted(counts.items())]
    return pd.DataFrame(rows, columns=["group", "other", "images", "of"])


def audit(
    dirs: Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    max_distance: int = MAX_DISTANCE,
    sure_distance: int = SURE_DISTANCE,
    crop_neighbours: int = CROP_NEIGHBOURS,
    max_coarse_distance: int = MAX_COARSE_DISTANCE,
    min_raw: float = MIN_RAW,
    min_detail: float = MIN_DETAIL,
    pages: int = 4,
    workers: int | None = None,
    progress: bool = True,
) -> dict:
    """Audit the images below ``dirs`` and write the report to ``output_dir``.

    Args:
        dirs: data folders, one per source (see :mod:`medbundle.audit.discovery`).
        output_dir: where ``audit.md``, ``summary.json``, ``images.csv``, ``duplicates.csv``, ``confounds.csv``,
            ``confound_checks.csv`` and ``duplicate_pairs_<n>.png`` are written (atomically).
        max_distance: see :func:`medbundle.audit.find_duplicates`.
        sure_distance: see :func:`medbundle.audit.find_duplicates`.
        crop_neighbours: see :func:`medbundle.audit.find_duplicates`.
        max_coarse_distance: see :func:`medbundle.audit.find_duplicates`.
        min_raw: see :func:`medbundle.audit.find_duplicates`.
        min_detail: see :func:`medbundle.audit.find_duplicates`.
        pages: most pages of duplicate pictures.
        workers: reading and aligning threads; None: the number of CPUs.
        progress: show progress bars.

    Returns:
        The summary (also ``summary.json``): sources, duplicate counts, shared pictures, confound checks, flags.

    Raises:
        DataError: when a folder is missing or holds no image.
    """
    started = time.perf_counter()
    items = find_audit_images(dirs)
    table = hash_images([it["path"] for it in items], workers=workers, progress=progress)
    hashed = time.perf_counter()
    pairs = find_duplicates(table, max_distance=max_distance, sure_distance=sure_distance,
                            crop_neighbours=crop_neighbours, max_coarse_distance=max_coarse_distance, min_raw=min_raw,
                            min_detail=min_detail, workers=workers, progress=progress)
    images = image_frame(items, table, clusters_from_pairs(len(table), pairs))
    duplicates = pair_frame(pairs, images)
    compared = time.perf_counter()
    readable = images[table.ok]
    groups = confound_table(readable)
    checks = confound_checks(readable)
    shared = shared_pictures(images)
    options = {"max_distance": max_distance, "sure_distance": sure_distance, "crop_neighbours": crop_neighbours,
               "max_coarse_distance": max_coarse_distance, "min_raw": min_raw, "min_detail": min_detail}
    seconds = {"reading": hashed - started, "duplicates": compared - hashed}
    summary = write_report(Path(output_dir), [str(d) for d in dirs], items, images, duplicates, groups, checks,
                           shared, options, seconds, pages)
    return summary
