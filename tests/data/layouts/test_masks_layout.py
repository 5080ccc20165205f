"""medbundle.data.layouts.folders: class folders holding images/ beside mask folders (COVID-QU-Ex), class aliases,
and the mask size check of medbundle.data.files._check_images, through load_datalists and load_labelled."""

from __future__ import annotations

import logging
import shutil
from collections import Counter

import numpy as np
import pytest
from conftest import SHARED_DATA
from helpers.data import gray, make_class_tree, save_png
from PIL import Image

from medbundle.data import load_datalists, load_labelled
from medbundle.data.errors import DataError

CLASSES = ["COVID-19", "Pneumonia", "Normal"]
ALIASES = {"Non-COVID": "Pneumonia", "COVID": "COVID-19"}
COVID_QU_EX = SHARED_DATA / "covid_xray"
MASKS = ("lung masks", "infection masks")


def qu_ex_tree(root, n=6, size=(12, 10), classes=("COVID-19", "Non-COVID", "Normal")):
    """``root/Infection Segmentation Data/Train/<Class>/{images,lung masks,infection masks}/<name> (<i>).png``."""
    train = root / "Infection Segmentation Data" / "Train"
    for k, cls in enumerate(classes):
        for i in range(n):
            name = f"{cls} ({i}).png"
            save_png(train / cls / "images" / name, gray(10 * k + i, size))
            for folder in MASKS:
                save_png(train / cls / folder / name, (gray(i, size) > 128).astype(np.uint8) * 255)
    return train


def test_qu_ex_tree_gives_images_with_both_masks(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    train = qu_ex_tree(tmp_path)
    splits = load_datalists(tmp_path, CLASSES, class_aliases=ALIASES, output_dir=tmp_path / "out")
    items = [item for part in splits.values() for item in part]
    assert len(items) == 18 and Counter(item["label"] for item in items) == {0: 6, 1: 6, 2: 6}
    by_id = {item["id"]: item for item in items}
    rel = "Infection Segmentation Data/Train/Non-COVID/images/Non-COVID (3).png"
    assert by_id[rel] == {
        "image": str(train / "Non-COVID" / "images" / "Non-COVID (3).png"),
        "label": 1,
        "id": rel,
        "lung_mask": str(train / "Non-COVID" / "lung masks" / "Non-COVID (3).png"),
        "mask": str(train / "Non-COVID" / "infection masks" / "Non-COVID (3).png"),
    }
    assert all("/images/" in item["image"] and "masks" not in item["image"] for item in items)
    assert all(item["mask"].split("/")[-1] == item["lung_mask"].split("/")[-1] == item["image"].split("/")[-1]
               for item in items)
    assert "'Non-COVID' -> Pneumonia (class_aliases)" in caplog.text and "'Normal' -> Normal" in caplog.text
    assert "each with its lung_mask ('lung masks') and mask ('infection masks')" in caplog.text
    # load_labelled reads the same tree, every split together
    labelled = load_labelled(tmp_path, CLASSES, class_aliases=ALIASES)
    assert sorted(item["id"] for item in labelled) == sorted(by_id) and all("lung_mask" in i for i in labelled)


def test_without_alias_the_folder_is_refused(tmp_path):
    qu_ex_tree(tmp_path, n=2)
    with pytest.raises(DataError, match=r"Non-COVID: folder name 'Non-COVID' matches none of the class names .*"
                                        r"class_aliases"):
        load_datalists(tmp_path, CLASSES)


def test_seed_folders_through_aliases(tmp_path):
    """The seed's internal set (COVID, NORMAL, PNEUMONIA) and external set (Data/{train,test}/{COVID19,...})."""
    make_class_tree(tmp_path / "internal", {"COVID": 6, "NORMAL": 6, "PNEUMONIA": 6})
    make_class_tree(tmp_path / "external" / "Data" / "train", {"COVID19": 6, "NORMAL": 6, "PNEUMONIA": 6})
    make_class_tree(tmp_path / "external" / "Data" / "test", {"COVID19": 2, "NORMAL": 2, "PNEUMONIA": 2})
    internal = load_labelled(tmp_path / "internal", CLASSES, class_aliases=ALIASES)
    assert {item["id"].split("/")[0]: item["label"] for item in internal} == {"COVID": 0, "PNEUMONIA": 1, "NORMAL": 2}
    external = load_datalists(tmp_path / "external", CLASSES, class_aliases=ALIASES)
    assert {item["id"].split("/")[2]: item["label"] for item in external["test"]} == {
        "COVID19": 0, "PNEUMONIA": 1, "NORMAL": 2}
    with pytest.raises(DataError, match=r"COVID: folder name 'COVID' matches none"):
        load_labelled(tmp_path / "internal", CLASSES)


@pytest.mark.parametrize("aliases, message", [
    ({"Non-COVID": "Viral"}, r"class_aliases: 'Non-COVID' -> 'Viral', which is none of the classes"),
    ({"Normal": "Pneumonia"}, r"class_aliases: 'Normal' -> 'Pneumonia', but 'Normal' names the class 'Normal'"),
    ({"other": "Normal", "OTHER": "Pneumonia"}, r"'OTHER' -> 'Pneumonia', but 'OTHER' names the class 'Normal'"),
    (["Non-COVID"], r"class_aliases must map folder or finding names to class names"),
])
def test_bad_aliases(tmp_path, aliases, message):
    make_class_tree(tmp_path, {"COVID": 2, "Normal": 2})
    with pytest.raises(DataError, match=message) as info:
        load_datalists(tmp_path, CLASSES, class_aliases=aliases)
    assert "\n" not in str(info.value)


def test_image_missing_its_mask_is_an_error_naming_count_and_files(tmp_path):
    train = qu_ex_tree(tmp_path)
    for i in (1, 4):
        (train / "Normal" / "infection masks" / f"Normal ({i}).png").unlink()
    with pytest.raises(DataError, match=r"Normal: 2 image\(s\) have no mask in 'infection masks' \(first: "
                                        r"\['images/Normal \(1\).png', 'images/Normal \(4\).png'\]\)") as info:
        load_datalists(tmp_path, CLASSES, class_aliases=ALIASES)
    assert "\n" not in str(info.value) and "add the missing masks" in str(info.value)


def test_mask_without_image_is_logged_and_left_out(tmp_path, caplog):
    train = qu_ex_tree(tmp_path)
    shutil.copy(train / "COVID-19" / "lung masks" / "COVID-19 (0).png", train / "COVID-19" / "lung masks" / "x.png")
    items = load_labelled(tmp_path, CLASSES, class_aliases=ALIASES)
    assert len(items) == 18 and not any(item["lung_mask"].endswith("/x.png") for item in items)
    assert "1 mask(s) in 'lung masks' have no image of their name, left out (first: ['x'])" in caplog.text


def test_mask_folder_without_images_folder(tmp_path):
    make_class_tree(tmp_path, {"COVID": 3, "Normal": 3})
    make_class_tree(tmp_path / "Normal", {"lung_mask": 3})
    with pytest.raises(DataError, match=r"/Normal: mask folder\(s\) \['lung_mask'\] but no 'images' folder beside "
                                        r"them\. Put the images in .*/Normal/images") as info:
        load_datalists(tmp_path, CLASSES, class_aliases=ALIASES)
    assert "\n" not in str(info.value)


def test_masks_never_taken_as_images_and_pairing_rules(tmp_path):
    """A generic 'masks' folder gives "mask"; a mask pairs with its image whatever the suffix; two folders of one
    kind are refused; a deeper images/masks pair is found below the class folder."""
    for k, cls in enumerate(("COVID", "Normal")):
        (tmp_path / cls / "images").mkdir(parents=True)
        for i in range(4):
            Image.fromarray(gray(k * 10 + i)).save(tmp_path / cls / "images" / f"{i}.jpg")
            save_png(tmp_path / cls / "Masks" / f"{i}.png", gray(i))
    save_png(tmp_path / "Normal" / "site2" / "imgs" / "a.png", gray(1))
    save_png(tmp_path / "Normal" / "site2" / "Lungs" / "a.png", gray(2))
    save_png(tmp_path / "Normal" / "site2" / "Lesion Masks" / "a.png", gray(3))
    items = {item["id"]: item for item in load_labelled(tmp_path, CLASSES, class_aliases=ALIASES)}
    assert len(items) == 9 and not any("asks/" in i or "Lungs" in i for i in items)
    assert items["COVID/images/2.jpg"]["mask"] == str(tmp_path / "COVID" / "Masks" / "2.png")
    assert "lung_mask" not in items["COVID/images/2.jpg"]
    assert items["Normal/site2/imgs/a.png"]["lung_mask"] == str(tmp_path / "Normal" / "site2" / "Lungs" / "a.png")
    save_png(tmp_path / "COVID" / "infection_masks" / "0.png", gray(0))
    with pytest.raises(DataError, match=r"COVID: both 'Masks' and 'infection_masks' are mask folders\. Keep one"):
        load_labelled(tmp_path, CLASSES, class_aliases=ALIASES)


def test_mask_size_is_checked_from_the_headers(tmp_path):
    train = qu_ex_tree(tmp_path, n=3)
    save_png(train / "Normal" / "lung masks" / "Normal (2).png", np.zeros((8, 8), np.uint8))
    assert len(load_labelled(tmp_path, CLASSES, class_aliases=ALIASES, check=False)) == 9  # not checked
    with pytest.raises(DataError, match=r"1 of 18 masks do not fit their image \(first: .*lung masks/Normal \(2\)"
                                        r"\.png: 8x8 pixels, its image 12x10 .*\)\. A mask is a readable image") as info:
        load_datalists(tmp_path, CLASSES, class_aliases=ALIASES)
    assert "\n" not in str(info.value)
    (train / "Normal" / "lung masks" / "Normal (2).png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"Normal \(2\)\.png: its header cannot be read"):
        load_labelled(tmp_path, CLASSES, class_aliases=ALIASES)


def test_datalist_masks_are_size_checked_too(tmp_path):
    save_png(tmp_path / "a.png", gray(0))
    save_png(tmp_path / "b.png", gray(1))
    save_png(tmp_path / "a_mask.png", gray(2))
    save_png(tmp_path / "b_mask.png", gray(3, (5, 5)))
    (tmp_path / "datalist.csv").write_text("image,label,mask\na.png,0,a_mask.png\nb.png,2,b_mask.png\n")
    with pytest.raises(DataError, match=r"1 of 2 masks do not fit their image \(first: .*b_mask\.png: 5x5 pixels"):
        load_labelled(tmp_path, CLASSES)
    assert len(load_labelled(tmp_path, CLASSES, check=False)) == 2


@pytest.mark.realdata
@pytest.mark.skipif(not COVID_QU_EX.is_dir(), reason=f"real data absent: {COVID_QU_EX}")
def test_real_covid_qu_ex_as_published(tmp_path):
    splits = load_datalists(COVID_QU_EX, CLASSES, class_aliases=ALIASES, output_dir=tmp_path, check=False)
    items = [item for part in splits.values() for item in part]
    assert Counter(CLASSES[item["label"]] for item in items) == {"COVID-19": 1864, "Pneumonia": 932, "Normal": 932}
    assert all(item["image"].split("/")[-2] == "images" for item in items)
    assert all(item["lung_mask"].split("/")[-2] == "lung masks" and item["mask"].split("/")[-2] == "infection masks"
               for item in items)
    assert all(item["mask"].rsplit("/", 1)[1] == item["image"].rsplit("/", 1)[1] for item in items)
    assert sum(len(v) for v in splits.values()) == 3728 and len(splits["test"]) == 559


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.skipif(not COVID_QU_EX.is_dir(), reason=f"real data absent: {COVID_QU_EX}")
def test_real_covid_qu_ex_images_and_masks_check():
    """Every image decodes and every mask (7,456) has its image's size (headers), in the loader's one-pass check."""
    items = load_labelled(COVID_QU_EX, CLASSES, class_aliases=ALIASES, check=True)
    assert len(items) == 3728 and all("mask" in item and "lung_mask" in item for item in items)


def test_inference_inputs_of_a_qu_ex_folder_are_its_images_with_their_masks(tmp_path):
    """list_inputs (inference.json, explain) on a COVID-QU-Ex tree: the images only, each carrying its masks."""
    from medbundle.data import list_inputs

    qu_ex_tree(tmp_path, n=3)
    items = list_inputs(tmp_path)
    assert len(items) == 9
    assert all("/images/" in item["image"] and "label" not in item for item in items)
    assert all(item["lung_mask"].endswith(item["image"].split("/")[-1]) and "/lung masks/" in item["lung_mask"]
               for item in items)
    assert all("/infection masks/" in item["mask"] for item in items)
