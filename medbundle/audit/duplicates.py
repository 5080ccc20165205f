"""Exact and near duplicates among hashed images (:func:`find_duplicates`), and the groups they form
(:func:`near_duplicate_clusters`: one cluster id per image, for splitting data so that no picture is in two splits).

Kinds of pair, each found once (the first that applies):

- ``exact_file``: the same bytes (file SHA-256);
- ``exact_pixels``: other bytes, the same decoded pixels (a re-saved file, other metadata);
- ``near``: 256-bit perceptual hashes at most ``sure_distance`` bits apart, or at most ``max_distance`` apart and
  the aligned thumbnails alike (below): the same picture resized (any aspect), re-encoded, with other contrast;
- ``near_crop``: a copy trimmed at the edges, whose hash has moved further: each image's ``crop_neighbours`` nearest
  by the coarse hashes (at most ``max_coarse_distance`` of 128 bits apart) are aligned and kept when the
  correlations reach ``min_raw`` and ``min_detail`` (see :mod:`medbundle.audit.alignment`).

Near pairs are searched between one image of each group of exact duplicates (the first), so a picture stored five
times gives four exact pairs and its near copies once. Distances are vectorised Hamming distances on ``uint64``
words (XOR and ``np.bitwise_count``), a block of rows at a time; groups are the connected components of the pair
graph (``scipy.sparse.csgraph``).

Default thresholds, chosen on the shared data (``../shared/data``): the 531 Kermany images inside COVID-QU-Ex lie
0-15 bits from their originals (resized from other sizes, aspect not kept), so up to :data:`SURE_DISTANCE` = 20 bits
the hash decides alone. Further out, lookalikes appear: unrelated Kermany films at 38-40 bits, neighbouring head CT
slices from 24 bits, while the six Figure1 originals lie 6-30 bits from COVID-QU-Ex's trimmed, resized copies and
re-contrasted copies inside COVID-QU-Ex up to 40. So pairs 21-40 bits apart (:data:`MAX_DISTANCE`) are kept only when
their aligned thumbnails pass the same check as ``near_crop``. Unrelated chest radiographs are rarely under 58 bits
(the closest of 9.7 million COVID-19 x Kermany pairs: about 64). Neighbouring slices of one volume (Alzheimer MRI,
head CT) often pass as near duplicates too: not the same picture, but the same subject, which a split must keep
together as well.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from medbundle.audit.alignment import MIN_DETAIL, MIN_RAW, aligned_correlation
from medbundle.audit.hashing import HashTable, hash_images

__all__ = ["find_duplicates", "near_duplicate_clusters", "clusters_from_pairs", "hamming", "MAX_DISTANCE",
           "SURE_DISTANCE", "CROP_NEIGHBOURS", "MAX_COARSE_DISTANCE", "PAIR_COLUMNS"]

logger = logging.getLogger("medbundle.audit")

SURE_DISTANCE = 20  # of 256 bits: near without a check
MAX_DISTANCE = 40  # of 256 bits: near when the aligned check passes
CROP_NEIGHBOURS = 3
MAX_COARSE_DISTANCE = 30  # of 128 bits
PAIR_COLUMNS = ("a", "b", "kind", "distance", "raw_correlation", "detail_correlation")
_BLOCK_BYTES = 48 * 2**20  # memory for one block's distance words


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances between every row of ``a`` (M, W) and of ``b`` (N, W), both ``uint64``: (M, N) int32."""
    out = np.zeros((a.shape[0], b.shape[0]), np.int32)
    for w in range(a.shape[1]):
        out += np.bitwise_count(a[:, w, None] ^ b[None, :, w])
    return out


def _exact_pairs(table: HashTable) -> tuple[list[tuple[int, int, str]], np.ndarray]:
    """Exact pairs (first member of each group with every other) and the representative of each image."""
    pairs, rep = [], np.arange(len(table))
    groups: dict[str, list[int]] = {}
    for i, digest in enumerate(table.file_sha256):
        if digest:
            groups.setdefault(digest, []).append(i)
    for members in groups.values():
        pairs += [(members[0], j, "exact_file") for j in members[1:]]
        rep[members] = members[0]
    groups = {}
    for i in np.flatnonzero(table.ok):
        if rep[i] == i:
            groups.setdefault(table.pixel_sha256[i], []).append(int(i))
    for members in groups.values():
        pairs += [(members[0], j, "exact_pixels") for j in members[1:]]
        for j in members[1:]:
            rep[rep == j] = members[0]
    return pairs, rep


def _search(phash: np.ndarray, coarse: np.ndarray, max_distance: int, neighbours: int,
            max_coarse: int) -> tuple[list[tuple[int, int, int]], set[tuple[int, int]]]:
    """Pairs ``(i, j, distance)``, i < j, at most ``max_distance`` apart, and crop candidates ``{(i, j)}`` (each
    row's ``neighbours`` nearest by coarse hash, at most ``max_coarse`` apart, not among the former)."""
    n = len(phash)
    near, candidates = [], set()
    block = max(1, _BLOCK_BYTES // max(1, 8 * n))
    for start in range(0, n, block):
        rows = np.arange(start, min(n, start + block))
        d = hamming(phash[rows], phash)
        i, j = np.nonzero(d <= max_distance)
        keep = j > rows[i]
        near += list(zip(rows[i[keep]].tolist(), j[keep].tolist(), d[i[keep], j[keep]].tolist()))
        if neighbours <= 0 or n < 2:
            continue
        c = hamming(coarse[rows], coarse)
        c[d <= max_distance] = np.iinfo(np.int32).max  # itself and pairs found already: not candidates
        k = min(neighbours, n - 1)
        nearest = np.argpartition(c, k - 1, axis=1)[:, :k]
        for r, js in zip(rows, nearest):
            candidates.update((min(r, j), max(r, j)) for j in js.tolist() if c[r - start, j] <= max_coarse)
    return near, candidates


def _check_pairs(table: HashTable, pairs: list[tuple[int, int]], workers: int | None,
                 progress: bool) -> list[tuple[float, float]]:
    """:func:`aligned_correlation` of each pair's thumbnails, in threads."""
    if not pairs:
        return []
    from tqdm import tqdm

    def check(pair: tuple[int, int]) -> tuple[float, float]:
        return aligned_correlation(table.thumbs[pair[0]], table.thumbs[pair[1]])

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        return list(tqdm(pool.map(check, pairs), total=len(pairs), desc="audit: aligning candidates", unit="pair",
                         disable=not progress, dynamic_ncols=True))


def find_duplicates(
    table: HashTable,
    max_distance: int = MAX_DISTANCE,
    sure_distance: int = SURE_DISTANCE,
    crop_neighbours: int = CROP_NEIGHBOURS,
    max_coarse_distance: int = MAX_COARSE_DISTANCE,
    min_raw: float = MIN_RAW,
    min_detail: float = MIN_DETAIL,
    workers: int | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Exact and near duplicate pairs among the images of ``table`` (see the module docstring).

    Args:
        table: from :func:`medbundle.audit.hash_images`.
        max_distance: most bits (of 256) between the perceptual hashes of a ``near`` pair.
        sure_distance: most bits of a ``near`` pair taken without the aligned check (at most ``max_distance``).
        crop_neighbours: coarse-hash neighbours of each image checked for a trimmed copy; 0: no ``near_crop``.
        max_coarse_distance: most bits (of 128) between the coarse hashes of a pair that is checked.
        min_raw: least correlation of aligned thumbnails.
        min_detail: least high-pass correlation of aligned thumbnails.
        workers: threads for the alignment; None: the number of CPUs.
        progress: show a tqdm progress bar over the alignments.

    Returns:
        One row per pair: ``a`` < ``b`` (row numbers of ``table``), ``kind``, ``distance`` (bits between the
        perceptual hashes; -1 for an unreadable file), ``raw_correlation`` and ``detail_correlation`` (pairs that
        were aligned; else NaN).

    Raises:
        ValueError: for a distance outside 0-256 or ``sure_distance`` above ``max_distance``.
    """
    if not 0 <= sure_distance <= max_distance <= 256:
        raise ValueError(f"sure_distance {sure_distance}, max_distance {max_distance}: not 0 <= sure_distance <= "
                         "max_distance <= 256 (bits of a 256-bit hash). Pass distances in that order.")
    exact, rep = _exact_pairs(table)
    rows = np.flatnonzero(table.ok & (rep == np.arange(len(table))))
    near, candidates = _search(table.phash[rows], table.coarse[rows], max_distance, crop_neighbours,
                               max_coarse_distance)

    def distance(a: int, b: int) -> int:
        return int(hamming(table.phash[[a]], table.phash[[b]])[0, 0]) if table.ok[a] and table.ok[b] else -1

    found = [(a, b, kind, distance(a, b), np.nan, np.nan) for a, b, kind in exact]
    found += [(int(rows[i]), int(rows[j]), "near", d, np.nan, np.nan) for i, j, d in near if d <= sure_distance]
    checks = sorted([(int(rows[i]), int(rows[j])) for i, j, d in near if d > sure_distance]
                    + [(int(rows[i]), int(rows[j])) for i, j in candidates])
    for (a, b), (raw, detail) in zip(checks, _check_pairs(table, checks, workers, progress)):
        if raw >= min_raw and detail >= min_detail:
            d = distance(a, b)
            found.append((a, b, "near" if d <= max_distance else "near_crop", d, round(raw, 4), round(detail, 4)))
    kinds = pd.Series([f[2] for f in found], dtype=object).value_counts().to_dict()
    logger.info("duplicates: %s; %d pair(s) aligned", ", ".join(f"{n} {k}" for k, n in kinds.items()) or "none",
                len(checks))
    pairs = pd.DataFrame([(min(a, b), max(a, b), *rest) for a, b, *rest in found], columns=list(PAIR_COLUMNS))
    return pairs.sort_values(["a", "b"], kind="stable").reset_index(drop=True)


def clusters_from_pairs(n: int, pairs: pd.DataFrame | Sequence[tuple[int, int]]) -> list[int]:
    """Cluster id of each of ``n`` images, the connected components of the ``pairs`` graph, numbered 0, 1, ... in
    order of their first image."""
    if isinstance(pairs, pd.DataFrame):
        a, b = pairs["a"].to_numpy(int), pairs["b"].to_numpy(int)
    else:
        a = np.array([p[0] for p in pairs], int)
        b = np.array([p[1] for p in pairs], int)
    graph = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    _, first = np.unique(labels, return_index=True)
    order = np.empty(len(first), int)
    order[np.argsort(first)] = np.arange(len(first))
    return order[labels].tolist()


def near_duplicate_clusters(images: HashTable | Sequence[str | os.PathLike], max_distance: int = MAX_DISTANCE,
                            **options) -> list[int]:
    """Cluster id of each image: images that are exact or near duplicates (directly or through others) share one.

    Args:
        images: image paths, or their :class:`HashTable` (from :func:`medbundle.audit.hash_images`).
        max_distance: see :func:`find_duplicates`.
        options: other options of :func:`find_duplicates` (``crop_neighbours=0`` skips the trimmed copies).

    Returns:
        One int per image, in order: 0 for the first image's cluster, then numbered as clusters first appear;
        an unreadable image is alone in its cluster.
    """
    table = images if isinstance(images, HashTable) else hash_images(images, progress=False)
    return clusters_from_pairs(len(table), find_duplicates(table, max_distance, **options))
