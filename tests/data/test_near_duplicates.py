"""medbundle.data.near_duplicates through load_datalists: copies of a film (resized, trimmed, re-encoded) stay on one
side of a split made by the bundle, and training copies of the data's own test images are left out."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from medbundle.data import load_datalists

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "audit"))
from audit_images import picture, resized, save, trimmed  # noqa: E402

CLASSES = ["A", "B"]


def _tree(root: Path, n: int = 14) -> dict[str, list[str]]:
    """Class folders of distinct pictures; each of the first four of class A has two copies in the same class."""
    copies = {}
    for k, cls in enumerate(CLASSES):
        for i in range(n):
            image = picture(1000 * k + i)
            save(root / cls / f"{cls}_{i}.png", image)
            if cls == "A" and i < 4:
                names = [f"A_{i}_copy_small.jpg", f"A_{i}_copy_trim.png"]
                save(root / cls / names[0], resized(image, 200, 230), quality=85)
                save(root / cls / names[1], trimmed(image, 0.02, 0.03, 0.02, 0.02))
                copies[f"A/A_{i}.png"] = [f"A/{name}" for name in names]
    return copies


def test_copies_of_a_film_stay_on_one_side_of_the_split(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    copies = _tree(tmp_path / "data")
    for seed in range(3):
        splits = load_datalists(tmp_path / "data", CLASSES, output_dir=tmp_path / f"out{seed}", seed=seed,
                                val_fraction=0.25, test_fraction=0.25, near_duplicates=True)
        where = {item["id"]: s for s, part in splits.items() for item in part}
        for original, others in copies.items():
            assert {where[original]} == {where[o] for o in others}, (seed, original)
        assert "grouped by subject and near-duplicate cluster" in json.loads(
            (tmp_path / f"out{seed}" / "split.json").read_text())["method"]
    assert "12 of 36 images have a near duplicate (4 clusters of 2 or more)" in caplog.text


def test_without_near_duplicates_a_copy_can_cross_the_split(tmp_path):
    """The control: the same data split by class only puts some copy on the other side of its film."""
    copies = _tree(tmp_path / "data")
    crossed = 0
    for seed in range(3):
        splits = load_datalists(tmp_path / "data", CLASSES, seed=seed, val_fraction=0.25, test_fraction=0.25)
        where = {item["id"]: s for s, part in splits.items() for item in part}
        crossed += sum(len({where[o], *[where[c] for c in cs]}) > 1 for o, cs in copies.items())
    assert crossed > 0


def test_a_saved_split_made_without_near_duplicates_is_not_reused(tmp_path, caplog):
    _tree(tmp_path / "data", n=8)
    load_datalists(tmp_path / "data", CLASSES, output_dir=tmp_path / "out", val_fraction=0.25, test_fraction=0.25)
    caplog.set_level(logging.WARNING)
    load_datalists(tmp_path / "data", CLASSES, output_dir=tmp_path / "out", val_fraction=0.25, test_fraction=0.25,
                   near_duplicates=True)
    assert "near_duplicates; making a new split" in caplog.text
    assert json.loads((tmp_path / "out" / "split.json").read_text())["near_duplicates"] is True


def test_training_copies_of_the_datas_own_test_images_are_left_out(tmp_path, caplog):
    data = tmp_path / "data"
    for k, cls in enumerate(CLASSES):
        for i in range(6):
            image = picture(2000 + 100 * k + i)
            save(data / "train" / cls / f"{cls}_{i}.png", image)
            save(data / "test" / cls / f"{cls}_t{i}.png", picture(3000 + 100 * k + i))
            save(data / "val" / cls / f"{cls}_v{i}.png", picture(4000 + 100 * k + i))
    leaked = picture(3000)  # the first test film of class A, resized into the training data
    save(data / "train" / "A" / "A_leak.jpg", resized(leaked, 210, 250), quality=80)
    caplog.set_level(logging.WARNING)
    kept = load_datalists(data, CLASSES, exclude_test_duplicates=True)
    assert "train/A/A_leak.jpg" not in {item["id"] for item in kept["train"]} and len(kept["train"]) == 12
    assert "1 training images are near duplicates" in caplog.text
    plain = load_datalists(data, CLASSES)
    assert "train/A/A_leak.jpg" in {item["id"] for item in plain["train"]}


def test_copies_of_another_source_leave_training_and_validation_but_not_test(tmp_path, caplog):
    copies = _tree(tmp_path / "data", n=10)
    other = tmp_path / "other_source"
    for i in range(4):  # the originals of A's copies, as another collection holds them
        save(other / "x" / f"orig_{i}.png", picture(i))
    base = load_datalists(tmp_path / "data", CLASSES, output_dir=tmp_path / "out", val_fraction=0.2,
                          test_fraction=0.2, near_duplicates=True)
    caplog.set_level(logging.WARNING)
    ablated = load_datalists(tmp_path / "data", CLASSES, output_dir=tmp_path / "out", val_fraction=0.2,
                             test_fraction=0.2, near_duplicates=True, exclude_copies_of=[other])
    family = {k for k, v in copies.items()} | {c for v in copies.values() for c in v}
    assert [i["id"] for i in ablated["test"]] == [i["id"] for i in base["test"]]
    for s in ("train", "val"):
        assert {i["id"] for i in ablated[s]} == {i["id"] for i in base[s]} - family
    assert "are copies of images in" in caplog.text


def test_exclude_copies_of_takes_one_path_as_a_string(tmp_path):
    """A single folder given as a string is that folder, not its characters (which would name '/' and '.')."""
    _tree(tmp_path / "data", n=6)
    other = tmp_path / "other_source"
    save(other / "x" / "orig_0.png", picture(0))
    kept = load_datalists(tmp_path / "data", CLASSES, val_fraction=0.2, test_fraction=0.2, near_duplicates=True,
                          exclude_copies_of=str(other))
    base = load_datalists(tmp_path / "data", CLASSES, val_fraction=0.2, test_fraction=0.2, near_duplicates=True)
    assert sum(len(v) for v in kept.values()) < sum(len(v) for v in base.values())
