"""Writers of small data files (.mat stacks, PNG class trees, Hugging Face parquet) shared by the data and bundle
tests."""

from __future__ import annotations

import io
import json
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.io
from PIL import Image

from medbundle.data import MRI_CLASSES


def save_mat(path: Path, version: str, **variables: np.ndarray) -> Path:
    """Write ``variables`` as MATLAB would: v5 with scipy, v7.3 as HDF5 with reversed axes and a 512-byte header."""
    if version == "v5":
        scipy.io.savemat(path, variables)
        return path
    with h5py.File(path, "w", userblock_size=512) as f:
        for name, arr in variables.items():
            f.create_dataset(name, data=np.transpose(arr))  # MATLAB's column-major order as h5py sees it
    with open(path, "r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(116))
    return path


def stack(n: int = 6, h: int = 8, w: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images (N, H, W) with distinct values and labels cycling over 3 classes."""
    images = np.random.default_rng(seed).integers(0, 200, (n, h, w)).astype(np.float64)
    return images, np.arange(n) % 3


def save_png(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def gray(seed: int = 0, size: tuple[int, int] = (12, 10)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, size, dtype=np.uint8)


def make_class_tree(root: Path, classes: dict[str, int], prefix: str = "") -> None:
    """``root/<folder>/<prefix>img<i>.png`` for each folder name and count."""
    for k, (folder, n) in enumerate(classes.items()):
        for i in range(n):
            save_png(root / folder / f"{prefix}img{i}.png", gray(100 * k + i))


def truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


CLASSES = list(MRI_CLASSES)  # NonDemented, VeryMildDemented, MildDemented, ModerateDemented
HF_NAMES = ["Mild_Demented", "Moderate_Demented", "Non_Demented", "Very_Mild_Demented"]  # the parquet release order


def _jpeg(value: int, size=(24, 20)) -> bytes:
    buf = io.BytesIO()
    img = np.full(size, value, np.uint8)
    img[2:6, 3:9] = 255 - value  # not constant, and a known pixel pattern
    Image.fromarray(img).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def write_hf_parquet(path, labels, values=None, class_label_metadata=True, groups=None):
    """A parquet file as the Hugging Face datasets library writes it: image struct<bytes, path>, label int64."""
    values = values if values is not None else [10 * (i % 20) for i in range(len(labels))]
    images = pa.array([{"bytes": _jpeg(v), "path": f"img{i}.jpg"} for i, v in enumerate(values)],
                      type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    columns = {"image": images, "label": pa.array(labels, pa.int64())}
    if groups is not None:
        columns["subject"] = pa.array(groups)
    table = pa.table(columns)
    if class_label_metadata:
        features = {"image": {"_type": "Image"}, "label": {"names": HF_NAMES, "_type": "ClassLabel"}}
        table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path
