"""Data: demo generators, readers, and the one entry point from ``dataset_dir`` to MONAI datalists."""

from __future__ import annotations

from medbundle.data.datalists import list_inputs, load_datalists, load_labelled
from medbundle.data.demo import (
    CT_CLASSES,
    MRI_CLASSES,
    ct_phantom,
    ensure_demo_data,
    make_ct_demo,
    make_mri_demo,
    mri_phantom,
)
from medbundle.data.errors import DataError
from medbundle.data.files import is_dicom
from medbundle.data.imbalance import balanced_sampler, class_counts, class_weights
from medbundle.data.kermany import KERMANY_GROUP_PATTERN, kermany_group
from medbundle.data.layouts.folders import IMAGE_FOLDERS, MASK_FOLDERS
from medbundle.data.matfile import MatSliceReader, read_mat
from medbundle.data.parquet import ParquetRowReader, read_parquet
from medbundle.data.splits import grouped_split, stratified_split

__all__ = [
    "DataError",
    "is_dicom",
    "read_mat",
    "MatSliceReader",
    "load_datalists",
    "list_inputs",
    "load_labelled",
    "stratified_split",
    "grouped_split",
    "MRI_CLASSES",
    "mri_phantom",
    "make_mri_demo",
    "class_counts",
    "class_weights",
    "balanced_sampler",
    "ParquetRowReader",
    "read_parquet",
    "CT_CLASSES",
    "ct_phantom",
    "make_ct_demo",
    "ensure_demo_data",
    "KERMANY_GROUP_PATTERN",
    "kermany_group",
    "MASK_FOLDERS",
    "IMAGE_FOLDERS",
]
