"""pydicom-seg 0.4 on pydicom 3: the one module it imports that pydicom 3 removed (``pydicom._storage_sopclass_uids``).

MONAI Label 0.8.5 imports pydicom-seg at start-up (its ``/infer`` endpoint can write DICOM SEG for segmentation
models); a classification server never calls it, but the import must succeed. ``scripts/label_env.sh`` copies this
file into the label environment with a ``.pth`` line, so the alias exists before MONAI Label starts. The module is
built on first import of that name only (a meta-path finder): nothing is imported at interpreter start-up.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys

_NAME = "pydicom._storage_sopclass_uids"


class _StorageUIDs(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves ``pydicom._storage_sopclass_uids`` from ``pydicom.uid`` (where pydicom 3 keeps the storage UIDs)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != _NAME:
            return None
        import pydicom

        if int(pydicom.__version__.split(".")[0]) < 3:  # pydicom 2 has the real module
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec):
        return None  # the default module

    def exec_module(self, module):
        import pydicom.uid

        module.__dict__.update({k: v for k, v in vars(pydicom.uid).items() if not k.startswith("_")})


if not any(isinstance(f, _StorageUIDs) for f in sys.meta_path):
    sys.meta_path.insert(0, _StorageUIDs())
