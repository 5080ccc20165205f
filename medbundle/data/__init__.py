"""Data: demo generators, readers, and the one entry point from ``dataset_dir`` to MONAI datalists."""

from __future__ import annotations

from medbundle.data.datalist import list_inputs, load_datalists, stratified_split
from medbundle.data.demo import CT_CLASSES, ct_phantom, ensure_demo_data, make_ct_demo
from medbundle.data.errors import DataError
from medbundle.data.matfile import MatSliceReader, read_mat

__all__ = [
    "DataError",
    "read_mat",
    "MatSliceReader",
    "load_datalists",
    "list_inputs",
    "stratified_split",
    "CT_CLASSES",
    "ct_phantom",
    "make_ct_demo",
    "ensure_demo_data",
]
