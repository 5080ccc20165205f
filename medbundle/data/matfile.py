"""MATLAB ``.mat`` image stacks: validated reading (v5 and v7.3) and a MONAI reader for single slices.

A stack of N 2D images lives in one variable (default ``data``), its class indices in another (default ``label``).
Single images are addressed as ``"<path>.mat#<index>"``; :class:`MatSliceReader` reads such names through
:class:`monai.transforms.LoadImage`, with the whole file cached so it is read once, not once per sample.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import h5py
import numpy as np
import scipy.io
from monai.data import ImageReader
from monai.utils import MetaKeys, SpaceKeys, ensure_tuple

from medbundle.data.errors import DataError
from medbundle.data.names import SLICE_PATTERN, split_indexed_name

__all__ = ["read_mat", "MatSliceReader", "MatSlice", "split_slice_name", "SLICE_PATTERN"]

_KEY_HINT = "pass data_key=/label_key= (bundle keys --data_key/--label_key)"


def split_slice_name(name: str | os.PathLike) -> tuple[str, int]:
    """Split ``"/d/Train.mat#12"`` into ``("/d/Train.mat", 12)``.

    Raises:
        ValueError: when ``name`` is not of that form.
    """
    return split_indexed_name(name, SLICE_PATTERN, ".mat slice name of the form '<file>.mat#<index>'")


def read_mat(
    path: str | os.PathLike,
    data_key: str = "data",
    label_key: str | None = "label",
    num_classes: int | None = None,
    require_labels: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read and validate an image stack (and its labels) from a MATLAB v5 or v7.3 ``.mat`` file.

    Images may be stored as (N, H, W), (H, W, N) (MATLAB's usual order), (N, 1, H, W) or (H, W, 1, N), in any
    integer or float type; v7.3 (HDF5) files are transposed back to MATLAB's axis order first. Which axis is N is
    decided by the label count when that is unambiguous, otherwise (H, W, N) is assumed when the first two sizes
    are equal and differ from the third. Labels may be class indices of any numeric type, shaped (N,), (N, 1) or
    (1, N), or one-hot (N, C) / (C, N). Results are cached per (file, modification time, size, keys): the arrays
    returned are shared and read-only; copy them before changing them.

    Mask files are read the same way: ``read_mat(p, data_key="mask", label_key=None, require_labels=False)``.

    Args:
        path: the ``.mat`` file.
        data_key: name of the image variable.
        label_key: name of the label variable; None to not read labels.
        num_classes: when given, labels must lie in ``[0, num_classes)``.
        require_labels: whether a missing label variable is an error (otherwise labels are returned as None).

    Returns:
        images as float32 (N, H, W) and labels as int64 (N,), or None when not read or absent.

    Raises:
        DataError: unreadable file, missing variables, bad shapes, count mismatch, non-integer or out-of-range
            labels, NaN/infinite pixels, or no images.
    """
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise DataError(f"{path}: no such file. Check the path (bundle keys --dataset_dir/--input).")
    stat = path.stat()
    images, labels, names = _read_mat_cached(str(path), stat.st_mtime_ns, stat.st_size, data_key, label_key)
    if labels is None and label_key is not None and require_labels:
        raise DataError(
            f"{path}: no label variable '{label_key}' (variables found: {names}). Rename the variables or {_KEY_HINT}."
        )
    if labels is not None and num_classes is not None:
        bad = np.flatnonzero(labels >= num_classes)
        if bad.size:
            one_based = labels.min() >= 1 and labels.max() == num_classes
            hint = " They look 1-based (MATLAB style): subtract 1 from every label." if one_based else ""
            raise DataError(
                f"{path}: {bad.size} labels in '{label_key}' are outside 0..{num_classes - 1} (first: image {bad[0]} "
                f"has label {labels[bad[0]]}).{hint} Labels must be class indices into the {num_classes} class names "
                "given; fix the labels or the class names."
            )
    return images, labels


@functools.lru_cache(maxsize=8)
def _read_mat_cached(
    path: str, mtime_ns: int, size: int, data_key: str, label_key: str | None
) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Load and validate once per file version (``mtime_ns`` and ``size`` are part of the cache key only)."""
    try:
        variables, names = _load_variables(path, (data_key, label_key))
    except Exception as e:  # scipy and h5py raise many types for damaged or foreign files
        raise DataError(
            f"{path}: cannot be read as a MATLAB .mat file ({type(e).__name__}: {e}). Replace the file, or re-save it "
            "in MATLAB with save(name, 'data', 'label', '-v7') or '-v7.3'."
        ) from e
    if data_key not in variables:
        raise DataError(
            f"{path}: no image variable '{data_key}' (variables found: {names}). Rename the variables or {_KEY_HINT}."
        )
    raw_labels = variables.get(label_key)
    for key, arr in ((data_key, variables[data_key]), (label_key, raw_labels)):
        if arr is not None and arr.dtype.kind not in "biuf":
            raise DataError(
                f"{path}: variable '{key}' is not a numeric array (type {arr.dtype}, shape {arr.shape}). Store images "
                f"and labels as numeric arrays, or {_KEY_HINT} to name other variables."
            )
    images = _images_nhw(variables[data_key], raw_labels, path, data_key)
    labels = None if raw_labels is None else _class_indices(raw_labels, len(images), path, label_key)
    images.setflags(write=False)
    if labels is not None:
        labels.setflags(write=False)
    return images, labels, names


def _load_variables(path: str, keys: Sequence[str | None]) -> tuple[dict[str, np.ndarray], list[str]]:
    """The variables named in ``keys`` that ``path`` holds, in MATLAB axis order, and the names of all variables."""
    if h5py.is_hdf5(path):  # v7.3
        with h5py.File(path, "r") as f:
            names = [k for k in f if not k.startswith("#")]  # "#refs#" holds the data of cells and strings
            return {k: _h5_array(f[k]) for k in keys if k in names}, names
    variables = scipy.io.loadmat(path)
    names = [k for k in variables if not k.startswith("__")]  # "__header__" etc.
    return {k: variables[k] for k in keys if k in names}, names


def _h5_array(obj: Any) -> np.ndarray:
    """A v7.3 variable in MATLAB's axis order (h5py reverses the axes); non-numeric ones as object arrays."""
    if not isinstance(obj, h5py.Dataset):  # a MATLAB struct
        return np.empty(0, dtype=object)
    if obj.attrs.get("MATLAB_empty", 0):  # MATLAB stores the dimensions of an empty array as its data
        return np.zeros((0, 0, 0))
    matlab_class = obj.attrs.get("MATLAB_class", b"")
    if (matlab_class.decode() if isinstance(matlab_class, bytes) else str(matlab_class)) == "char":
        return np.empty(0, dtype=object)
    return np.transpose(np.asarray(obj[()]))


def _images_nhw(arr: np.ndarray, raw_labels: np.ndarray | None, path: str, key: str) -> np.ndarray:
    """Images as a contiguous float32 (N, H, W) array, validated."""
    if arr.ndim == 4 and 1 in arr.shape[1:3]:  # (N, 1, H, W) or MATLAB's (H, W, 1, N)
        arr = arr[:, 0] if arr.shape[1] == 1 else arr[:, :, 0]
    if arr.ndim != 3:
        raise DataError(
            f"{path}: image variable '{key}' has shape {arr.shape}; expected a stack of 2D images shaped (N, H, W), "
            "(H, W, N) or (N, 1, H, W). Re-save the images as one such array."
        )
    hwn = arr.shape[0] == arr.shape[1] != arr.shape[2]
    if raw_labels is not None:  # the axis whose size matches the label count is N, when only one does
        counts = {raw_labels.size} if raw_labels.ndim < 2 or 1 in raw_labels.shape else set(raw_labels.shape)
        if (arr.shape[0] in counts) != (arr.shape[2] in counts):
            hwn = arr.shape[2] in counts
    images = np.ascontiguousarray(np.moveaxis(arr, 2, 0) if hwn else arr, dtype=np.float32)
    if images.shape[0] == 0 or images.size == 0:
        raise DataError(
            f"{path}: image variable '{key}' holds no images (shape {arr.shape}). Add images or remove the file."
        )
    finite = np.isfinite(images).all(axis=(1, 2))
    if not finite.all():
        n_nan, n_inf = int(np.isnan(images).sum()), int(np.isinf(images).sum())
        raise DataError(
            f"{path}: image variable '{key}' has {n_nan} NaN and {n_inf} infinite pixel values in "
            f"{int((~finite).sum())} images (first: image {int(np.argmin(finite))}). Replace those values "
            "(for example with 0) or remove those images."
        )
    return images


def _class_indices(lab: np.ndarray, n: int, path: str, key: str) -> np.ndarray:
    """Labels as int64 class indices (N,), from indices of any numeric type or one-hot rows/columns."""
    shape = lab.shape
    if lab.ndim == 2 and lab.size != n and n in shape:  # one-hot (N, C), or MATLAB's (C, N)
        lab = lab if shape[0] == n else lab.T
        if not (np.isin(lab, (0, 1)).all() and (lab.sum(axis=1) == 1).all()):
            raise DataError(
                f"{path}: label variable '{key}' of shape {shape} looks one-hot but not every image has exactly one 1. "
                "Store labels as class indices 0..C-1, or as one-hot rows with a single 1 each."
            )
        lab = lab.argmax(axis=1)
    lab = lab.reshape(-1)
    if lab.size != n:
        raise DataError(
            f"{path}: {n} images but {lab.size} labels (label variable '{key}' of shape {shape}). Give exactly one "
            "label per image."
        )
    bad = np.flatnonzero(~np.isfinite(lab) | (lab != np.round(lab)) | (lab < 0))
    if bad.size:
        raise DataError(
            f"{path}: {bad.size} labels in '{key}' are not class indices 0, 1, 2, ... (first: image {bad[0]} has "
            f"label {lab[bad[0]]}). Store each label as the non-negative integer index of its class."
        )
    return lab.astype(np.int64)


class MatSlice(NamedTuple):
    """One image of a ``.mat`` stack, as returned by :meth:`MatSliceReader.read`."""

    array: np.ndarray
    filename: str


class MatSliceReader(ImageReader):
    """MONAI image reader for one 2D image of a ``.mat`` stack, named ``"<path>.mat#<index>"``.

    ``LoadImage(reader=MatSliceReader(), image_only=True, ensure_channel_first=True)("/d/Train.mat#3")`` gives a
    (1, H, W) float32 :class:`monai.data.MetaTensor`. Files are read with :func:`read_mat`, whose cache keeps each
    file in memory, so samples of the same file don't reload it.

    Args:
        data_key: name of the image variable (``"mask"`` for mask files).
        label_key: name of the label variable, validated when present; None for files without labels (masks).
    """

    def __init__(self, data_key: str = "data", label_key: str | None = "label") -> None:
        super().__init__()
        self.data_key = data_key
        self.label_key = label_key

    def verify_suffix(self, filename: Sequence[str | os.PathLike] | str | os.PathLike) -> bool:
        """Whether every name in ``filename`` has the form ``"<path>.mat#<index>"``.

        Args:
            filename: a name or a sequence of names.
        """
        return all(SLICE_PATTERN.match(str(name)) for name in ensure_tuple(filename))

    def read(self, data: Sequence[str | os.PathLike] | str | os.PathLike, **kwargs: Any) -> MatSlice | list[MatSlice]:
        """Read the named slices (several names are stacked as channels by :meth:`get_data`).

        Args:
            data: a name ``"<path>.mat#<index>"`` or a sequence of them.
            kwargs: unused, for the :class:`ImageReader` interface.

        Returns:
            one :class:`MatSlice` per name (a single one when one name is given).
        """
        slices = []
        for name in ensure_tuple(data):
            path, index = split_slice_name(name)
            images, _ = read_mat(path, self.data_key, self.label_key, require_labels=False)
            if index >= len(images):
                raise DataError(
                    f"{path}: no image {index}; the file holds {len(images)} images (0..{len(images) - 1}). "
                    "Rebuild the datalist for the current file."
                )
            slices.append(MatSlice(np.array(images[index]), str(name)))  # a writable copy, not a view into the cache
        return slices if len(slices) > 1 else slices[0]

    def get_data(self, img: MatSlice | Sequence[MatSlice]) -> tuple[np.ndarray, dict]:
        """The (H, W) float32 image (or (C, H, W) for several slices) and its metadata.

        Args:
            img: what :meth:`read` returned.

        Returns:
            the array and a dict with ``spatial_shape``, ``original_channel_dim`` (NaN: no channel),
            ``space`` and ``filename_or_obj``.
        """
        slices = [img] if isinstance(img, MatSlice) else list(img)
        meta = {
            MetaKeys.SPATIAL_SHAPE: np.asarray(slices[0].array.shape),
            MetaKeys.SPACE: SpaceKeys.RAS,
            MetaKeys.ORIGINAL_CHANNEL_DIM: float("nan") if len(slices) == 1 else 0,
            "filename_or_obj": slices[0].filename,
        }
        if len(slices) == 1:
            return slices[0].array, meta
        if any(s.array.shape != slices[0].array.shape for s in slices):
            raise DataError(
                f"{slices[0].filename}: slices to stack as channels differ in size "
                f"({[s.array.shape for s in slices]}). Stack only images of the same size."
            )
        return np.stack([s.array for s in slices]), meta
