"""Data audit: duplicates and class confounds that no model should be allowed to use.

Usage::

    python -m medbundle.audit DIR [DIR ...] [--output_dir OUT]

Each ``DIR`` is one source (a data set). Its images are found as training finds them (hidden files, ``__MACOSX``
and ``._*`` left out; images in mask folders such as ``lung masks/`` skipped), and each image's class and split are
read from its folders: the class is the nearest folder that is neither a split folder (``train``, ``val``,
``test``...) nor ``images``; the split is the nearest split folder (see :mod:`medbundle.audit.discovery`).

The audit reads every image once (:func:`hash_images`) and finds

- **duplicates** (:func:`find_duplicates`, :func:`near_duplicate_clusters`): the same file or pixels, the same
  picture resized (any aspect), re-encoded or with other contrast (256-bit perceptual hash), and copies trimmed at the
  edges (coarse hashes, then aligned thumbnails); within a split, across splits and across sources;
- **confounds** (:mod:`medbundle.audit.confounds`): size, aspect, bit depth, colour mode, format and intensity
  statistics per class and source, and how well a trivial classifier on those alone predicts the class or the source
  (flagged at chance + 0.2 or more). :func:`quick_confounds` checks a datalist's headers before training.

It writes ``audit.md`` (findings first), ``summary.json``, ``images.csv``, ``duplicates.csv``, ``confounds.csv``,
``confound_checks.csv`` and ``duplicate_pairs_<n>.png`` to ``--output_dir`` (default
``<MEDBUNDLE_HOME>/audit``).
"""

from __future__ import annotations

from medbundle.audit.alignment import aligned_correlation
from medbundle.audit.confounds import confound_checks, confound_table, quick_confounds
from medbundle.audit.discovery import find_audit_images
from medbundle.audit.duplicates import MAX_DISTANCE, clusters_from_pairs, find_duplicates, near_duplicate_clusters
from medbundle.audit.hashing import HashTable, hash_image, hash_images
from medbundle.audit.pipeline import audit

__all__ = [
    "audit",
    "find_audit_images",
    "HashTable",
    "hash_image",
    "hash_images",
    "find_duplicates",
    "near_duplicate_clusters",
    "clusters_from_pairs",
    "aligned_correlation",
    "confound_table",
    "confound_checks",
    "quick_confounds",
    "MAX_DISTANCE",
]
