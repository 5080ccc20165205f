"""medbundle.data.demo: the synthetic CT and MRI demo sets and ensure_demo_data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from helpers.data import CLASSES
from PIL import Image
from scipy import ndimage

from medbundle.data import load_datalists, make_mri_demo
from medbundle.data.demo import ct_phantom, ensure_demo_data, make_ct_demo


def test_ct_phantom_deterministic_and_typed():
    a_img, a_mask = ct_phantom(np.random.default_rng(5), 2, 64)
    b_img, b_mask = ct_phantom(np.random.default_rng(5), 2, 64)
    c_img, _ = ct_phantom(np.random.default_rng(6), 2, 64)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_mask, b_mask)
    assert not np.array_equal(a_img, c_img)
    assert a_img.shape == (64, 64) and a_img.dtype == np.float32 and a_mask.dtype == np.uint8
    assert 0.0 <= a_img.min() and a_img.max() <= 1.0


def _head(img: np.ndarray) -> np.ndarray:
    """The head: everything inside the bright skull ring (the largest filled region above the background)."""
    filled = ndimage.binary_fill_holes(ndimage.gaussian_filter(img, 1.0) > 0.25)
    lab, n = ndimage.label(filled)
    assert n >= 1
    return lab == (np.argmax(np.bincount(lab.ravel())[1:]) + 1)


@pytest.mark.parametrize("size", [64, 128])
def test_ct_phantom_foci_count_and_place(size):
    rng = np.random.default_rng(11)
    expected = {0: (0, 0), 1: (1, 2), 2: (3, 5)}
    for severity in (0, 1, 2) * 6:
        img, mask = ct_phantom(rng, severity, size)
        n = ndimage.label(mask)[1]
        lo, hi = expected[severity]
        assert lo <= n <= hi, (severity, n)
        head = _head(img)
        assert 0.3 < head.mean() < 0.8
        inner = ndimage.binary_erosion(head, iterations=2)
        assert (mask.astype(bool) <= inner).all(), "a focus lies outside the head"


def test_ct_phantom_class_not_given_away_by_mean_but_by_foci():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(2024)
    labels = np.arange(300) % 3
    means, comps = [], []
    for severity in labels:
        img, mask = ct_phantom(rng, int(severity), 64)
        means.append(img.mean())
        comps.append(ndimage.label(mask)[1])
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    acc_mean = cross_val_score(
        make_pipeline(StandardScaler(), LogisticRegression()), np.array(means)[:, None], labels, cv=cv
    ).mean()
    assert acc_mean < 0.45, acc_mean
    acc_foci = cross_val_score(DecisionTreeClassifier(max_depth=3), np.array(comps)[:, None], labels, cv=cv).mean()
    assert acc_foci == 1.0


def _load_demo(folder: Path) -> dict:
    out = {}
    for split in ("Train", "Val", "Test"):
        out[split] = scipy.io.loadmat(folder / f"{split}.mat")
        out[f"{split}_mask"] = scipy.io.loadmat(folder / f"{split}_mask.mat")
    return out


def test_make_ct_demo_format_and_determinism(tmp_path):
    sizes = {"Train": 12, "Val": 6, "Test": 6}
    a = make_ct_demo(tmp_path / "a", n_train=12, n_val=6, n_test=6, size=48)
    b = make_ct_demo(tmp_path / "b", n_train=12, n_val=6, n_test=6, size=48)
    c = make_ct_demo(tmp_path / "c", n_train=12, n_val=6, n_test=6, size=48, seed=1)
    assert Path(a) == tmp_path / "a"
    assert sorted(os.listdir(a)) == sorted(f"{s}{m}.mat" for s in sizes for m in ("", "_mask"))
    da, db, dc = _load_demo(Path(a)), _load_demo(Path(b)), _load_demo(Path(c))
    for split, n in sizes.items():
        data, label, mask = da[split]["data"], da[split]["label"], da[f"{split}_mask"]["mask"]
        assert data.dtype == np.uint8 and data.shape == (n, 48, 48)
        assert label.dtype == np.float64 and label.size == n
        assert set(np.unique(label)) == {0.0, 1.0, 2.0}
        assert np.bincount(label.ravel().astype(int)).tolist() == [n // 3] * 3  # balanced
        assert mask.dtype == np.uint8 and mask.shape == (n, 48, 48)
        has_foci = mask.reshape(n, -1).any(axis=1)
        assert np.array_equal(has_foci, label.ravel() > 0)
        assert data.max() > 200 and data.std() > 10  # not blank
        for key, var in ((split, "data"), (split, "label"), (f"{split}_mask", "mask")):
            assert da[key][var].tobytes() == db[key][var].tobytes()
        assert da[split]["data"].tobytes() != dc[split]["data"].tobytes()
    assert da["Train"]["data"].tobytes() != da["Val"]["data"].tobytes()[: da["Train"]["data"].nbytes]


def test_ensure_demo_data_leaves_user_folder_untouched(tmp_path):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "scan.png").write_bytes(b"user data")
    before = sorted(os.listdir(user))
    assert ensure_demo_data(user, "ct_infection", n_train=6, n_val=3, n_test=3, size=32) == str(user)
    assert sorted(os.listdir(user)) == before
    assert (user / "scan.png").read_bytes() == b"user data"
    sub = tmp_path / "with_folder"
    (sub / "class_a").mkdir(parents=True)
    ensure_demo_data(sub, "ct_infection", n_train=6, n_val=3, n_test=3, size=32)
    assert os.listdir(sub) == ["class_a"]


@pytest.mark.parametrize("state", ["empty", "missing", "hidden_only"])
def test_ensure_demo_data_creates(tmp_path, state):
    target = tmp_path / "data"
    if state != "missing":
        target.mkdir()
    if state == "hidden_only":
        (target / ".DS_Store").write_bytes(b"")
    assert ensure_demo_data(target, "ct_infection", n_train=6, n_val=3, n_test=3, size=32) == str(target)
    for split, n in (("Train", 6), ("Val", 3), ("Test", 3)):
        data = scipy.io.loadmat(target / f"{split}.mat")["data"]
        assert data.shape == (n, 32, 32)
        assert (target / f"{split}_mask.mat").is_file()


def test_ensure_demo_data_unknown_task(tmp_path):
    with pytest.raises(ValueError, match="no_such_task"):
        ensure_demo_data(tmp_path / "x", "no_such_task")
    assert not (tmp_path / "x").exists()


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
