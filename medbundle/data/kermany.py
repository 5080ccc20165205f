"""The Kermany chest X-ray release (Kermany et al. 2018, Kaggle "Chest X-Ray Images (Pneumonia)"): the patient in
its file names, for a split by patient.

File names of the release, by class:

- pneumonia: ``person<N>_bacteria_<k>.jpeg`` and ``person<N>_virus_<k>.jpeg`` (one ``person<N>_virus_<k>_<j>.jpeg``);
  ``<N>`` is the patient, who may have bacterial and viral images;
- normal: ``IM-<N>-<k>[-<j>].jpeg`` and ``NORMAL2-IM-<N>-<k>[-<j>].jpeg``.

:data:`KERMANY_GROUP_PATTERN` puts ``person<N>`` in group ``person<N>``, and both ``IM-<N>`` and ``NORMAL2-IM-<N>``
in group ``IM-<N>``: whether the two normal series number the same patients is not documented, so they are merged
(a coarser group never leaks a patient; a finer one might). On the official training split (1,341 normal, 3,875
pneumonia images) this gives 2,635 groups, the largest ``person23`` with 30 images, and every exact duplicate image
of the folder lies inside one group. It is meant for a bundle's ``group_pattern`` key (see
:func:`medbundle.data.load_datalists`), which searches it in each image id (the path below ``dataset_dir``).
"""

from __future__ import annotations

import re

__all__ = ["KERMANY_GROUP_PATTERN", "kermany_group"]

KERMANY_GROUP_PATTERN = r"(?:^|/)(?:NORMAL2-)?(?P<group>person\d+|IM-\d+)[-_]"

_REGEX = re.compile(KERMANY_GROUP_PATTERN)


def kermany_group(name: str) -> str | None:
    """The patient group of a Kermany image name or path (``"person12"``, ``"IM-0115"``), None for other names.

    Args:
        name: a file name, or a path with ``/`` separators (an item's ``"id"``).
    """
    match = _REGEX.search(name)
    return match["group"] if match else None
