"""medbundle.data.matfile: read_mat (v5 and v7.3, every layout and label form, a DataError for every bad file) and
MatSliceReader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.data import save_mat, stack, truncate
from monai.transforms import LoadImage

from medbundle.data.errors import DataError
from medbundle.data.matfile import MatSliceReader, read_mat


@pytest.mark.parametrize("version", ["v5", "v73"])
@pytest.mark.parametrize("layout", ["nhw", "hwn", "n1hw"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.float64])
@pytest.mark.parametrize("label_form", ["float", "int", "column", "onehot"])
def test_read_mat_formats(tmp_path, version, layout, dtype, label_form):
    images, labels = stack()
    data = {"nhw": images, "hwn": np.moveaxis(images, 0, 2), "n1hw": images[:, None]}[layout].astype(dtype)
    raw_labels = {
        "float": labels.astype(np.float64),
        "int": labels.astype(np.int32),
        "column": labels.reshape(-1, 1).astype(np.uint8),
        "onehot": np.eye(3)[labels],
    }[label_form]
    path = save_mat(tmp_path / "Train.mat", version, data=data, label=raw_labels)
    got_images, got_labels = read_mat(path, num_classes=3)
    assert got_images.dtype == np.float32 and got_images.shape == (6, 8, 8)
    np.testing.assert_array_equal(got_images, images.astype(np.float32))
    assert got_labels.dtype == np.int64
    np.testing.assert_array_equal(got_labels, labels)


@pytest.mark.parametrize("version", ["v5", "v73"])
def test_read_mat_non_square_hwn_and_custom_keys(tmp_path, version):
    images, labels = stack(n=5, h=7, w=9)
    path = save_mat(tmp_path / "x.mat", version, X=np.moveaxis(images, 0, 2), y=labels[None].astype(float))
    got_images, got_labels = read_mat(path, data_key="X", label_key="y")
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert read_mat(path, data_key="X", label_key="missing", require_labels=False)[1] is None
    assert not got_images.flags.writeable  # cached arrays are shared


def test_read_mat_cache_follows_file_changes(tmp_path):
    images, labels = stack()
    path = save_mat(tmp_path / "Train.mat", "v5", data=images, label=labels)
    assert read_mat(path)[0] is read_mat(path)[0]
    save_mat(path, "v5", data=images[:4], label=labels[:4])
    assert len(read_mat(path)[0]) == 4


def _bad_mat(tmp_path: Path, case: str) -> tuple[Path, dict, str]:
    """A bad .mat file, read_mat kwargs, and a fragment the error message must contain."""
    images, labels = stack()
    path = tmp_path / f"{case}.mat"
    if case == "missing_vars":
        save_mat(path, "v5", X=images, y=labels)
        return path, {}, "variables found: ['X', 'y']"
    if case == "missing_label":
        save_mat(path, "v73", data=images, y=labels)
        return path, {}, "no label variable 'label'"
    if case == "count_mismatch":
        save_mat(path, "v5", data=images, label=labels[:4])
        return path, {}, "6 images but 4 labels"
    if case == "out_of_range":
        save_mat(path, "v5", data=images, label=labels + 1)
        return path, {"num_classes": 3}, "1-based"
    if case == "non_integer":
        save_mat(path, "v5", data=images, label=np.where(labels == 2, 1.5, labels))
        return path, {}, "2 labels in 'label' are not class indices 0, 1, 2, ... (first: image 2 has label 1.5)"
    if case == "negative":
        save_mat(path, "v73", data=images, label=labels - 1)
        return path, {}, "-1"
    if case == "nan":
        images[2, 1, 1] = images[4, 0, 0] = np.nan
        save_mat(path, "v5", data=images, label=labels)
        return path, {}, "2 NaN and 0 infinite pixel values in 2 images (first: image 2)"
    if case == "inf":
        images[3, 0, 0] = np.inf
        save_mat(path, "v73", data=images, label=labels)
        return path, {}, "0 NaN and 1 infinite pixel values in 1 images (first: image 3)"
    if case == "no_images":
        save_mat(path, "v5", data=np.zeros((0, 8, 8)), label=np.zeros(0))
        return path, {}, "holds no images"
    if case == "bad_onehot":
        save_mat(path, "v5", data=images, label=np.ones((6, 3)))
        return path, {}, "one-hot"
    if case == "wrong_ndim":
        save_mat(path, "v5", data=images[0], label=labels[:1])
        return path, {}, "expected a stack of 2D images"
    if case == "text":
        path.write_text("this is not a MATLAB file\n" * 20)
        return path, {}, "cannot be read as a MATLAB .mat file"
    if case == "truncated_v5":
        truncate(save_mat(path, "v5", data=images, label=labels))
        return path, {}, "cannot be read as a MATLAB .mat file"
    if case == "truncated_v73":
        truncate(save_mat(path, "v73", data=np.random.default_rng(0).random((50, 32, 32)), label=np.zeros(50)))
        return path, {}, "cannot be read as a MATLAB .mat file"
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    [
        "missing_vars",
        "missing_label",
        "count_mismatch",
        "out_of_range",
        "non_integer",
        "negative",
        "nan",
        "inf",
        "no_images",
        "bad_onehot",
        "wrong_ndim",
        "text",
        "truncated_v5",
        "truncated_v73",
    ],
)
def test_read_mat_errors(tmp_path, case):
    path, kwargs, fragment = _bad_mat(tmp_path, case)
    with pytest.raises(DataError) as info:
        read_mat(path, **kwargs)
    assert str(path) in str(info.value) and fragment in str(info.value)


def test_read_mat_missing_file(tmp_path):
    with pytest.raises(DataError, match="Train.mat: no such file"):
        read_mat(tmp_path / "Train.mat")


@pytest.mark.parametrize("version", ["v5", "v73"])
def test_mat_slice_reader_through_load_image(tmp_path, version):
    images, labels = stack(n=5, h=7, w=9)
    path = save_mat(tmp_path / "Train.mat", version, data=images.astype(np.uint8), label=labels)
    reader = MatSliceReader()
    assert reader.verify_suffix(f"{path}#3") and not reader.verify_suffix(str(path))
    assert not reader.verify_suffix("/x/a.png")
    img = LoadImage(reader=reader, image_only=True, ensure_channel_first=True)(f"{path}#3")
    assert tuple(img.shape) == (1, 7, 9)
    np.testing.assert_array_equal(img[0].numpy(), images[3])
    assert img.meta["filename_or_obj"] == f"{path}#3"
    # chosen automatically among the default readers too
    img = LoadImage(reader=MatSliceReader, image_only=True, ensure_channel_first=True)(f"{path}#0")
    np.testing.assert_array_equal(img[0].numpy(), images[0])
    with pytest.raises(DataError, match="no image 5"):
        reader.read(f"{path}#5")


def test_mat_slice_reader_get_data_meta(tmp_path):
    images, labels = stack()
    path = save_mat(tmp_path / "Test.mat", "v5", data=images, label=labels)
    reader = MatSliceReader()
    array, meta = reader.get_data(reader.read(f"{path}#1"))
    assert array.shape == (8, 8) and array.dtype == np.float32 and array.flags.writeable
    assert np.isnan(meta["original_channel_dim"]) and list(meta["spatial_shape"]) == [8, 8]
    assert meta["filename_or_obj"] == f"{path}#1"
