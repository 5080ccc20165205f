"""Readers and datalists: every supported layout and format, and a clear DataError for every bad input."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import h5py
import nibabel
import numpy as np
import pytest
import scipy.io
from monai.transforms import LoadImage
from PIL import Image

from medbundle.data.datalist import list_inputs, load_datalists, stratified_split
from medbundle.data.errors import DataError
from medbundle.data.matfile import MatSliceReader, read_mat

HEAD_CT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "head_ct"
CT_CLASSES = ["no", "mild", "severe"]


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


def ids(splits: dict[str, list[dict]]) -> dict[str, list[str]]:
    return {s: [item["id"] for item in items] for s, items in splits.items()}


def truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


# ---------------------------------------------------------------- read_mat


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


# ---------------------------------------------------------------- MatSliceReader


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


# ---------------------------------------------------------------- .mat layouts


def test_mat_all_splits_no_split_made(tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    for i, name in enumerate(["Train.mat", "validation.mat", "TEST.mat"]):
        images, labels = stack(n=6 - i, seed=i)
        save_mat(data / name, "v5" if i != 1 else "v73", data=images, label=labels.astype(float))
    save_mat(data / "Train_mask.mat", "v5", mask=np.zeros((6, 8, 8), np.uint8))
    splits = load_datalists(data, CT_CLASSES, output_dir=out)
    assert {s: len(v) for s, v in splits.items()} == {"train": 6, "val": 5, "test": 4}
    assert not (out / "split.json").exists()
    item = splits["train"][1]
    assert item == {
        "image": f"{data / 'Train.mat'}#1",
        "label": 1,
        "id": "Train.mat#1",
        "mask": f"{data / 'Train_mask.mat'}#1",
    }
    assert "mask" not in splits["val"][0]
    mask = LoadImage(reader=MatSliceReader("mask", None), image_only=True, ensure_channel_first=True)(item["mask"])
    assert tuple(mask.shape) == (1, 8, 8)


def test_mat_train_only_split_made_saved_and_reused(tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    images, labels = stack(n=40)
    save_mat(data / "train.mat", "v5", data=images, label=labels)
    first = load_datalists(data, CT_CLASSES, output_dir=out)
    assert {s: len(v) for s, v in first.items()} == {"train": 28, "val": 6, "test": 6}
    for part in first.values():
        assert {item["label"] for item in part} == {0, 1, 2}
    saved = json.loads((out / "split.json").read_text())
    assert saved["splits"] == ids(first)
    assert ids(load_datalists(data, CT_CLASSES, output_dir=out)) == ids(first)
    # the saved file is what is used: move one image from train to val by hand
    moved = saved["splits"]["train"].pop(0)
    saved["splits"]["val"].append(moved)
    (out / "split.json").write_text(json.dumps(saved))
    again = load_datalists(data, CT_CLASSES, output_dir=out)
    assert moved in ids(again)["val"] and len(again["val"]) == 7
    # another seed makes (and saves) a new split
    other = load_datalists(data, CT_CLASSES, output_dir=out, seed=1)
    assert ids(other) != ids(first) and json.loads((out / "split.json").read_text())["seed"] == 1


def test_mat_train_test_only_makes_val(tmp_path):
    for name, n in (("Train.mat", 30), ("Test.mat", 9)):
        images, labels = stack(n=n)
        save_mat(tmp_path / name, "v5", data=images, label=labels)
    splits = load_datalists(tmp_path, CT_CLASSES, output_dir=None)
    assert {s: len(v) for s, v in splits.items()} == {"train": 26, "val": 4, "test": 9}
    assert all(i["id"].startswith("Test.mat#") for i in splits["test"])


def test_mat_custom_keys_and_errors_name_the_file(tmp_path):
    images, labels = stack(n=20)
    save_mat(tmp_path / "Train.mat", "v73", X=images, y=labels)
    assert len(load_datalists(tmp_path, CT_CLASSES, data_key="X", label_key="y")["train"]) == 14
    with pytest.raises(DataError, match=r"Train\.mat: no image variable 'data' \(variables found: \['X', 'y'\]\)"):
        load_datalists(tmp_path, CT_CLASSES)


def test_mat_empty_val_and_bad_mask(tmp_path):
    images, labels = stack()
    save_mat(tmp_path / "Train.mat", "v5", data=images, label=labels)
    save_mat(tmp_path / "Val.mat", "v5", data=np.zeros((0, 8, 8)), label=np.zeros(0))
    with pytest.raises(DataError, match="Val.mat"):
        load_datalists(tmp_path, CT_CLASSES)
    (tmp_path / "Val.mat").unlink()
    save_mat(tmp_path / "Train_mask.mat", "v5", mask=np.zeros((5, 8, 8)))
    with pytest.raises(DataError, match="Train_mask.mat: masks of shape"):
        load_datalists(tmp_path, CT_CLASSES)


def test_mat_labels_out_of_range_via_load_datalists(tmp_path):
    images, labels = stack()
    save_mat(tmp_path / "Train.mat", "v5", data=images, label=labels)
    with pytest.raises(DataError, match=r"Train\.mat: 2 labels in 'label' are outside 0\.\.1"):
        load_datalists(tmp_path, ["a", "b"])


# ---------------------------------------------------------------- folder layouts


def test_class_folders_without_splits(tmp_path):
    classes = ["MildDemented", "NonDemented"]
    make_class_tree(tmp_path, {"Mild Demented": 10, "non_demented": 10})
    # other modes and bit depths
    save_png(tmp_path / "Mild Demented" / "sub" / "rgb.png", np.zeros((9, 11, 3), np.uint8))
    save_png(tmp_path / "Mild Demented" / "rgba.png", np.zeros((9, 11, 4), np.uint8))
    save_png(tmp_path / "non_demented" / "deep.png", (np.arange(99, dtype=np.uint16) * 600).reshape(9, 11))
    # junk that must be ignored
    (tmp_path / "non_demented" / ".DS_Store").write_bytes(b"\0\1junk")
    (tmp_path / "non_demented" / "notes.txt").write_text("not an image")
    make_class_tree(tmp_path / "__MACOSX", {"Mild Demented": 3})
    (tmp_path / "__MACOSX" / "Mild Demented" / "._img0.png").write_bytes(b"resource fork")
    make_class_tree(tmp_path / ".hidden", {"Mild Demented": 3})
    splits = load_datalists(tmp_path, classes, output_dir=tmp_path / "out")
    assert sum(len(v) for v in splits.values()) == 23
    assert (tmp_path / "out" / "split.json").exists()
    by_id = {item["id"]: item for part in splits.values() for item in part}
    assert by_id["Mild Demented/sub/rgb.png"]["label"] == 0 and by_id["non_demented/deep.png"]["label"] == 1
    assert by_id["Mild Demented/sub/rgb.png"]["image"] == str(tmp_path / "Mild Demented" / "sub" / "rgb.png")
    for part in splits.values():
        assert {item["label"] for item in part} == {0, 1}


def test_kaggle_split_folders_with_nested_copy(tmp_path):
    top = tmp_path / "chest_xray"
    counts = {"train": 8, "val": 2, "test": 4}
    for split, n in counts.items():
        make_class_tree(top / split, {"NORMAL": n, "PNEUMONIA": n})
        make_class_tree(top / "chest_xray" / split, {"NORMAL": n, "PNEUMONIA": n})  # duplicate tree
        make_class_tree(tmp_path / "__MACOSX" / "chest_xray" / split, {"NORMAL": n})
    (top / ".DS_Store").write_bytes(b"x")
    splits = load_datalists(tmp_path, ["NORMAL", "PNEUMONIA"], output_dir=tmp_path / "out")
    assert {s: len(v) for s, v in splits.items()} == {s: 2 * n for s, n in counts.items()}
    assert splits["val"][0]["id"] == "chest_xray/val/NORMAL/img0.png"
    assert not (tmp_path / "out" / "split.json").exists()


def test_split_folder_aliases_and_missing_test(tmp_path):
    make_class_tree(tmp_path / "Training", {"a": 10, "b": 10})
    make_class_tree(tmp_path / "valid", {"A": 2, "B": 2})
    splits = load_datalists(tmp_path, ["a", "b"])
    assert {s: len(v) for s, v in splits.items()} == {"train": 17, "val": 4, "test": 3}


def test_nested_copy_beside_class_folders_ignored(tmp_path):
    make_class_tree(tmp_path, {"NORMAL": 5, "HEMORRHAGE": 5})
    make_class_tree(tmp_path / "head_ct", {"NORMAL": 5, "HEMORRHAGE": 5})
    splits = load_datalists(tmp_path, ["NORMAL", "HEMORRHAGE"])
    assert sum(len(v) for v in splits.values()) == 10


def test_layout_found_below_dataset_dir(tmp_path):
    make_class_tree(tmp_path / "archive" / "images", {"NORMAL": 5, "HEMORRHAGE": 5})
    splits = load_datalists(tmp_path, ["NORMAL", "HEMORRHAGE"])
    assert splits["train"][0]["id"].startswith("archive/images/")


@pytest.mark.parametrize("kind", ["png", "jpg"])
def test_truncated_images_reported_together(tmp_path, kind):
    make_class_tree(tmp_path, {"NORMAL": 6, "HEMORRHAGE": 6})
    bad = []
    for name in ("NORMAL/bad1", "HEMORRHAGE/bad2"):
        path = tmp_path / f"{name}.{kind}"
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
        bad.append(truncate(path))
    with pytest.raises(DataError) as info:
        load_datalists(tmp_path, ["NORMAL", "HEMORRHAGE"])
    message = str(info.value)
    assert all(str(p) in message for p in bad) and "2 of 14 image files cannot be read" in message
    assert "Remove or replace" in message
    assert len(load_datalists(tmp_path, ["NORMAL", "HEMORRHAGE"], check=False)["train"]) > 0


def test_folder_errors(tmp_path):
    make_class_tree(tmp_path, {"NORMAL": 4, "HEMORRHAGE": 4, "Hemorrhage_old": 2})
    with pytest.raises(DataError, match=r"Hemorrhage_old: folder name .* matches none of the class names"):
        load_datalists(tmp_path, ["NORMAL", "HEMORRHAGE"])
    shutil.rmtree(tmp_path / "Hemorrhage_old")
    shutil.rmtree(tmp_path / "NORMAL")
    (tmp_path / "NORMAL").mkdir()
    (tmp_path / "NORMAL" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match=r"NORMAL: class folder holds no images"):
        load_datalists(tmp_path, ["NORMAL", "HEMORRHAGE"])


def test_empty_split_folder(tmp_path):
    make_class_tree(tmp_path / "train", {"NORMAL": 4, "HEMORRHAGE": 4})
    (tmp_path / "test").mkdir()
    with pytest.raises(DataError, match=r"/test: no images in class folders"):
        load_datalists(tmp_path, ["NORMAL", "HEMORRHAGE"])


def test_no_layout(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    save_png(tmp_path / "loose" / "a.png", gray())
    with pytest.raises(DataError, match=r"no data found .*Accepted layouts"):
        load_datalists(tmp_path, ["NORMAL", "HEMORRHAGE"])
    with pytest.raises(DataError, match="no such folder"):
        load_datalists(tmp_path / "absent", ["NORMAL"])


# ---------------------------------------------------------------- datalist files


def test_csv_datalist_with_and_without_split(tmp_path):
    make_class_tree(tmp_path / "imgs", {"n": 10, "p": 10})
    rows = [
        (f"imgs/{c}/img{i}.png", c.upper() if i % 2 else str(k), "train" if i < 6 else ("val" if i < 8 else "testing"))
        for k, c in enumerate("np")
        for i in range(10)
    ]
    with open(tmp_path / "datalist.csv", "w", newline="") as f:
        csv.writer(f).writerows([("image", "label", "split"), *rows])
    splits = load_datalists(tmp_path, ["N", "P"], output_dir=tmp_path / "out")
    assert {s: len(v) for s, v in splits.items()} == {"train": 12, "val": 4, "test": 4}
    assert splits["train"][0] == {"image": str(tmp_path / "imgs/n/img0.png"), "label": 0, "id": "imgs/n/img0.png"}
    assert not (tmp_path / "out" / "split.json").exists()
    with open(tmp_path / "datalist.csv", "w", newline="") as f:
        csv.writer(f).writerows([("image", "label"), *(r[:2] for r in rows)])
    splits = load_datalists(tmp_path, ["N", "P"], output_dir=tmp_path / "out")
    assert sum(len(v) for v in splits.values()) == 20 and (tmp_path / "out" / "split.json").exists()


def test_csv_datalist_errors(tmp_path):
    save_png(tmp_path / "a.png", gray())
    (tmp_path / "datalist.csv").write_text("image,label\na.png,0\nmissing1.png,1\nsub/missing2.png,1\n")
    with pytest.raises(DataError, match=r"datalist.csv: 2 of 3 listed images do not exist .*missing1.png"):
        load_datalists(tmp_path, ["x", "y"])
    (tmp_path / "datalist.csv").write_text("image,label\na.png,2\n")
    with pytest.raises(DataError, match=r"datalist.csv, line 2: label '2' is neither"):
        load_datalists(tmp_path, ["x", "y"])
    (tmp_path / "datalist.csv").write_text("path,class\na.png,0\n")
    with pytest.raises(DataError, match=r"datalist.csv: needs columns image,label"):
        load_datalists(tmp_path, ["x", "y"])


def test_json_datalist(tmp_path):
    make_class_tree(tmp_path / "imgs", {"a": 6, "b": 6})
    entries = [{"image": f"imgs/{c}/img{i}.png", "label": c} for c in "ab" for i in range(6)]
    datalist = {"name": "demo", "training": entries[:4] + entries[6:10], "validation": entries[4:6] + entries[10:12]}
    (tmp_path / "datalist.json").write_text(json.dumps(datalist))
    splits = load_datalists(tmp_path, ["a", "b"])
    assert {s: len(v) for s, v in splits.items()} == {"train": 7, "val": 4, "test": 1}
    datalist["test"] = []
    (tmp_path / "datalist.json").write_text(json.dumps(datalist))
    with pytest.raises(DataError, match="the 'test' split has no images"):
        load_datalists(tmp_path, ["a", "b"])


# ---------------------------------------------------------------- list_inputs


def test_list_inputs(tmp_path):
    import pydicom.data

    folder = tmp_path / "in"
    save_png(folder / "a.png", gray())
    save_png(folder / "sub" / "b.jpg", gray(1))
    save_png(folder / "__MACOSX" / "c.png", gray(2))
    (folder / ".DS_Store").write_bytes(b"x")
    dcm = Path(pydicom.data.get_testdata_file("CT_small.dcm"))
    shutil.copy(dcm, folder / "IM0001")  # DICOM without extension
    nibabel.save(nibabel.Nifti1Image(np.zeros((5, 6), np.float32), np.eye(4)), folder / "v.nii.gz")
    assert [i["id"] for i in list_inputs(folder)] == ["IM0001", "a.png", "sub/b.jpg", "v.nii.gz"]
    assert list_inputs(folder / "a.png") == [{"image": str(folder / "a.png"), "id": "a.png"}]
    assert list_inputs(dcm)[0]["id"] == "CT_small.dcm"
    images, _ = stack(n=3)
    mat = save_mat(tmp_path / "Test.mat", "v73", data=images)
    assert [i["id"] for i in list_inputs(mat)] == ["Test.mat#0", "Test.mat#1", "Test.mat#2"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: no images found"):
        list_inputs(tmp_path / "empty")
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(DataError, match="x.txt: not a supported image file"):
        list_inputs(tmp_path / "x.txt")


# ---------------------------------------------------------------- stratified_split


def test_stratified_split():
    items = [{"id": str(i), "label": int(i < 30)} for i in range(100)]
    parts = stratified_split(items, {"val": 0.1, "test": 0.2}, seed=3)
    assert {k: len(v) for k, v in parts.items()} == {"train": 70, "val": 10, "test": 20}
    assert sum(i["label"] for i in parts["test"]) == 6
    assert sorted(i["id"] for p in parts.values() for i in p) == sorted(i["id"] for i in items)
    assert stratified_split(items, {"val": 0.1, "test": 0.2}, seed=3) == parts
    tiny = [{"id": str(i), "label": int(i == 0)} for i in range(6)]  # a class of one: unstratified fallback
    assert sum(len(p) for p in stratified_split(tiny, {"val": 0.2}, seed=0).values()) == 6
    with pytest.raises(ValueError):
        stratified_split(items, {"val": 0.6, "test": 0.5}, seed=0)


# ---------------------------------------------------------------- real data


@pytest.mark.realdata
@pytest.mark.skipif(not HEAD_CT.is_dir(), reason=f"real data absent: {HEAD_CT}")
def test_real_head_ct(tmp_path):
    splits = load_datalists(HEAD_CT, ["NORMAL", "HEMORRHAGE"], output_dir=tmp_path)
    assert sum(len(v) for v in splits.values()) == 140
    assert (tmp_path / "split.json").exists()
    for part in splits.values():
        assert {item["label"] for item in part} == {0, 1}
