"""alzheimer_mri data: parquet in the Hugging Face schema, Kaggle class folders, grouped splits, imbalance, demo."""

from __future__ import annotations

import io
import json
import logging

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from conftest import SHARED_DATA
from PIL import Image

from medbundle.data import (
    MRI_CLASSES,
    DataError,
    balanced_sampler,
    class_weights,
    ensure_demo_data,
    grouped_split,
    load_datalists,
    make_mri_demo,
)
from medbundle.transforms import LoadImage2D

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


@pytest.mark.parametrize("metadata", [True, False])
def test_parquet_labels_are_mapped_by_name_and_decoded_lazily(tmp_path, metadata):
    labels = [0, 1, 2, 3] * 10  # Mild, Moderate, Non, VeryMild in the parquet numbering
    write_hf_parquet(tmp_path / "data" / "train-00000-of-00001.parquet", labels, class_label_metadata=metadata)
    write_hf_parquet(tmp_path / "data" / "test-00000-of-00001.parquet", [2, 3, 0, 1], values=[7, 8, 9, 10],
                     class_label_metadata=metadata)
    lists = load_datalists(tmp_path, CLASSES, output_dir=tmp_path / "run", label_names=None if metadata else HF_NAMES)
    assert len(lists["test"]) == 4 and len(lists["train"]) + len(lists["val"]) == 40
    by_row = {int(it["image"].rsplit("#", 1)[1]): it["label"] for it in lists["test"]}
    # parquet 2 Non_Demented -> 0 NonDemented, 3 Very_Mild -> 1, 0 Mild -> 2, 1 Moderate -> 3
    assert by_row == {0: 0, 1: 1, 2: 2, 3: 3}
    assert lists["test"][0]["image"].endswith("test-00000-of-00001.parquet#0")
    img = LoadImage2D()(lists["test"][0]["image"])
    assert img.shape == (1, 24, 20) and abs(float(img[0, 10, 10]) - 7) <= 3 and float(img[0, 3, 5]) > 200


def test_parquet_without_names_uses_indices_with_a_warning(tmp_path, caplog):
    write_hf_parquet(tmp_path / "train.parquet", [0, 1, 2, 3] * 3, class_label_metadata=False)
    lists = load_datalists(tmp_path, CLASSES, val_fraction=0.25, test_fraction=0.25)
    assert sorted(it["label"] for s in lists.values() for it in s) == sorted([0, 1, 2, 3] * 3)
    assert "integer labels without class names" in caplog.text


def test_malformed_parquet_gives_clear_errors(tmp_path):
    bad = tmp_path / "a"
    bad.mkdir()
    pq.write_table(pa.table({"img": pa.array([b"x"]), "label": pa.array([0])}), bad / "train.parquet")
    with pytest.raises(DataError, match=r"missing column\(s\) \['image'\].*--image_column"):
        load_datalists(bad, CLASSES)
    nobytes = tmp_path / "b"
    nobytes.mkdir()
    pq.write_table(pa.table({"image": pa.array([{"path": "p"}]), "label": pa.array([0])}), nobytes / "train.parquet")
    with pytest.raises(DataError, match="struct without a 'bytes' field"):
        load_datalists(nobytes, CLASSES)
    floats = tmp_path / "c"
    write_hf_parquet(floats / "train.parquet", [0, 1])
    pq.write_table(pq.read_table(floats / "train.parquet").set_column(1, "label", pa.array([0.5, 1.0])),
                   floats / "train.parquet")
    with pytest.raises(DataError, match="'label' holds double"):
        load_datalists(floats, CLASSES)
    out_of_range = tmp_path / "d"
    write_hf_parquet(out_of_range / "train.parquet", [0, 7])
    with pytest.raises(DataError, match="label 7 is outside 0..3"):
        load_datalists(out_of_range, CLASSES)
    corrupt = tmp_path / "e"
    write_hf_parquet(corrupt / "train.parquet", [0, 1, 2, 3] * 2)
    table = pq.read_table(corrupt / "train.parquet")
    images = pa.array([{"bytes": b"not a jpeg", "path": "x"}] * 8, type=table.column("image").type)
    pq.write_table(table.set_column(0, "image", images), corrupt / "train.parquet")
    with pytest.raises(DataError, match=r"(?s)8 of 8 image files cannot be read.*train.parquet#0: the image bytes cannot be decoded"):
        load_datalists(corrupt, CLASSES, val_fraction=0.25, test_fraction=0.25)
    junk = tmp_path / "f"
    junk.mkdir()
    (junk / "train.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="not a readable parquet file"):
        load_datalists(junk, CLASSES)


def _kaggle_tree(root, names, n=6):
    for k, name in enumerate(names):
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((20, 16), 30 * k + i, np.uint8)).save(root / name / f"{name[:4]}{i}.jpg")


def test_kaggle_folders_with_spaces_underscores_and_split_folders(tmp_path):
    _kaggle_tree(tmp_path / "Alzheimer_s Dataset" / "train", ["Mild Demented", "Moderate_Demented", "NonDemented",
                                                               "Very Mild Demented"])
    _kaggle_tree(tmp_path / "Alzheimer_s Dataset" / "test", ["MildDemented", "ModerateDemented", "Non_Demented",
                                                              "VeryMildDemented"], n=2)
    lists = load_datalists(tmp_path, CLASSES, output_dir=tmp_path / "run")
    assert len(lists["test"]) == 8 and len(lists["train"]) + len(lists["val"]) == 24
    assert {it["label"] for it in lists["test"] if "Mild" in it["image"] and "Very" not in it["image"]} == {2}
    assert {it["label"] for it in lists["test"] if "Non_Demented" in it["image"]} == {0}


def test_unmatched_class_folder_is_named_in_the_error(tmp_path):
    _kaggle_tree(tmp_path, ["MildDemented", "NonDemented", "SevereDemented"])
    with pytest.raises(DataError, match=r"SevereDemented: folder name 'SevereDemented' matches none of the class"):
        load_datalists(tmp_path, CLASSES)


def test_grouped_split_keeps_subjects_together_and_is_reported(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    items = [{"image": f"s{g}_{k}", "label": g % 4, "group": f"sub-{g}", "id": f"sub-{g}_slice-{k}"}
             for g in range(40) for k in range(5)]
    parts = grouped_split(items, {"val": 0.15, "test": 0.15}, seed=3)
    groups = {s: {it["group"] for it in part} for s, part in parts.items()}
    assert not (groups["train"] & groups["val"] or groups["train"] & groups["test"] or groups["val"] & groups["test"])
    assert sum(len(p) for p in parts.values()) == 200 and 20 <= len(parts["test"]) <= 45
    assert {it["label"] for it in parts["test"]} == {0, 1, 2, 3}  # stratified as well
    # through load_datalists: a datalist.csv with a group column, and a pattern on file names
    root = tmp_path / "csv"
    root.mkdir()
    rows = ["image,label,group"]
    for g in range(20):
        for k in range(3):
            name = f"sub-{g:02d}_slice-{k}.png"
            Image.fromarray(np.full((8, 8), g, np.uint8)).save(root / name)
            rows.append(f"{name},{CLASSES[g % 4]},sub-{g:02d}")
    (root / "datalist.csv").write_text("\n".join(rows) + "\n")
    lists = load_datalists(root, CLASSES, output_dir=tmp_path / "run")
    seen = [{it["group"] for it in lists[s]} for s in ("train", "val", "test")]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    assert "grouped by subject (20 groups)" in caplog.text
    assert json.loads((tmp_path / "run" / "split.json").read_text())["method"].startswith("grouped by subject")
    (root / "datalist.csv").write_text("\n".join(r.rsplit(",", 1)[0] for r in rows) + "\n")  # drop the group column
    caplog.clear()
    lists = load_datalists(root, CLASSES, group_pattern=r"sub-\d+")
    assert all(it["group"] == it["id"][:6] for s in lists.values() for it in s)
    assert "grouped by subject (20 groups)" in caplog.text
    caplog.clear()
    load_datalists(root, CLASSES, group_pattern=r"patient-\d+")
    assert "matches no image id" in caplog.text and "stratified by class (no group key)" in caplog.text
    (root / "other.png").write_bytes((root / "sub-00_slice-0.png").read_bytes())
    with open(root / "datalist.csv", "a") as f:
        f.write("other.png,NonDemented\n")
    with pytest.raises(DataError, match=r"group_pattern 'sub-\\\\d\+' matches 60 of 61 image ids"):
        load_datalists(root, CLASSES, group_pattern=r"sub-\d+")


def test_class_weights_and_balanced_sampler():
    items = [{"label": 0}] * 60 + [{"label": 1}] * 30 + [{"label": 2}] * 10
    w = class_weights(items, 4)
    torch.testing.assert_close(w, torch.tensor([100 / 240, 100 / 120, 100 / 40, 0.0]))
    torch.testing.assert_close(class_weights(items, 4, power=0.5), w.sqrt())
    drawn = torch.tensor([items[i]["label"] for i in balanced_sampler(items, 4, num_samples=6000, seed=1)])
    counts = torch.bincount(drawn, minlength=3).float() / 6000
    assert (counts[:3] - 1 / 3).abs().max() < 0.03
    assert list(balanced_sampler(items, 4, seed=5)) == list(balanced_sampler(items, 4, seed=5))


def test_mri_demo_has_subjects_masks_and_atrophy(tmp_path):
    root = make_mri_demo(tmp_path / "demo", n_subjects=12, slices_per_subject=3, seed=2)
    lines = (root / "datalist.csv").read_text().splitlines()
    assert lines[0] == "image,label,group,mask" and len(lines) == 1 + 12 * 3
    lists = load_datalists(root, CLASSES, output_dir=tmp_path / "run", val_fraction=0.2, test_fraction=0.2)
    for part in lists.values():
        for it in part:
            mask = np.asarray(Image.open(it["mask"]))
            image = np.asarray(Image.open(it["image"]))
            assert image.shape == mask.shape == (208, 176)
            assert (mask.sum() == 0) == (it["label"] == 0)  # atrophy masks only where there is atrophy
    csf = {}  # dark pixels inside the head grow with the stage
    for it in (it for part in lists.values() for it in part):
        image = np.asarray(Image.open(it["image"])).astype(float)
        head = image > 10
        csf.setdefault(it["label"], []).append(((image < 70) & head).sum() / head.sum())
    means = [np.mean(csf[k]) for k in range(4)]
    assert means == sorted(means), means


def test_ensure_demo_data_is_atomic_and_never_overwrites(tmp_path, monkeypatch):
    import medbundle.data.demo as demo

    def broken(out_dir, **kwargs):
        (out_dir / "half.png").write_bytes(b"x")
        raise RuntimeError("interrupted")

    monkeypatch.setitem(demo._GENERATORS, "alzheimer_mri", broken)
    with pytest.raises(RuntimeError):
        ensure_demo_data(tmp_path / "data", "alzheimer_mri")
    assert not (tmp_path / "data").exists() and list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    ensure_demo_data(tmp_path / "data", "alzheimer_mri", n_subjects=4, slices_per_subject=1)
    assert (tmp_path / "data" / "datalist.csv").is_file()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "x.txt").write_text("user data")
    ensure_demo_data(tmp_path / "mine", "alzheimer_mri")
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["x.txt"]


@pytest.mark.skipif(not (SHARED_DATA / "alzheimer_mri" / "train").is_dir(),
                    reason="real Alzheimer MRI data not present at ../shared/data/alzheimer_mri")
def test_real_kaggle_alzheimer_folders(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    lists = load_datalists(SHARED_DATA / "alzheimer_mri" / "train", CLASSES, output_dir=tmp_path, check=False,
                           group_pattern="sub-[^_/]+")
    counts = np.bincount([it["label"] for s in lists.values() for it in s], minlength=4)
    assert counts.tolist() == [2560, 1792, 717, 52]  # Non, VeryMild, Mild, Moderate
    assert "stratified by class (no group key)" in caplog.text  # Kaggle file names carry no subject
    img = LoadImage2D()(lists["test"][0]["image"])
    assert img.shape == (1, 208, 176) and img.dtype == torch.float32
