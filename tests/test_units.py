"""Unit tests of networks, the run-time engine helpers, transforms, the demo data and the ignite handlers.

Everything is small (images of 20-64 px, networks with ``features=(4, 8, 8, 8, 8)``) so the file runs in
seconds on a CPU.
"""

from __future__ import annotations

import csv
import logging
import os
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import scipy.io
import torch
from ignite.engine import Engine, Events
from PIL import Image
from pydicom.data import get_testdata_file
from scipy import ndimage
from torch import nn

import medbundle.handlers as mb_handlers
from medbundle.data import DataError
from medbundle.data.demo import CT_CLASSES, ct_phantom, ensure_demo_data, make_ct_demo
from medbundle.engine import (
    AutocastInferer,
    bf16_supported,
    class_names,
    find_bundle_root,
    prepare_network,
    require_file,
    resolve_device,
)
from medbundle.handlers import CheckpointSaver, EpochLogger, Resume, latest_checkpoint
from medbundle.networks import CTNet, weight_decay_groups
from medbundle.transforms import LoadImage2D, LoadImage2Dd, ToGrayscale, ToGrayscaled

REPO = Path(__file__).resolve().parents[1]
TINY = (4, 8, 8, 8, 8)


def tiny_net(**kwargs) -> CTNet:
    torch.manual_seed(0)
    return CTNet(features=TINY, dense=16, **kwargs)


# ================================================================================================
# networks
# ================================================================================================


@pytest.mark.parametrize("size", [64, 96, 224])
@pytest.mark.parametrize("in_channels", [1, 3])
def test_ctnet_output_shape(size, in_channels):
    net = CTNet(in_channels=in_channels, num_classes=3, features=TINY, dense=16, pooled_size=7).eval()
    with torch.no_grad():
        out = net(torch.randn(2, in_channels, size, size))
    assert out.shape == (2, 3)
    assert torch.isfinite(out).all()


def test_ctnet_non_square_and_other_options():
    net = CTNet(in_channels=1, num_classes=5, features=TINY, dense=16, pooled_size=(2, 3)).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 1, 64, 96)).shape == (1, 5)
    assert net.classifier[1].in_features == 8 * 2 * 3


def test_ctnet_pooling_is_identity_at_224():
    """At 224 px the last feature map is already 7 x 7: the adaptive pooling changes nothing (the seed's network)."""
    net = CTNet(features=TINY, dense=16, pooled_size=7).eval()
    seen = {}
    net.pool.register_forward_hook(lambda m, i, o: seen.update(inp=i[0], out=o))
    with torch.no_grad():
        net(torch.randn(1, 1, 224, 224))
    assert seen["inp"].shape == (1, 8, 7, 7)
    torch.testing.assert_close(seen["out"], seen["inp"])


def test_ctnet_seed_parameter_count():
    """The seed: five 3x3 conv blocks with biases, Dense(512) on 7*7*1024 features, Dense(3)."""
    net = CTNet()
    chans = [1, 64, 128, 256, 512, 1024]
    expected = sum(3 * 3 * cin * cout + cout for cin, cout in zip(chans[:-1], chans[1:]))
    expected += 7 * 7 * 1024 * 512 + 512 + 512 * 3 + 3
    assert expected == 31_961_603  # hand-computed
    assert sum(p.numel() for p in net.parameters()) == expected
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == chans[1:]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) and c.bias is not None for c in convs)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(7 * 7 * 1024, 512), (512, 3)]


def test_ctnet_batch_norm():
    plain, bn = tiny_net(), tiny_net(batch_norm=True)
    convs = [m for m in bn.modules() if isinstance(m, nn.Conv2d)]
    bns = [m for m in bn.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(convs) == 5 and all(c.bias is None for c in convs)
    assert [b.num_features for b in bns] == list(TINY)
    n_plain = sum(p.numel() for p in plain.parameters())
    n_bn = sum(p.numel() for p in bn.parameters())
    assert n_bn == n_plain - sum(TINY) + 2 * sum(TINY)  # conv biases out, BN weight and bias in
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    with torch.no_grad():
        assert bn.eval()(torch.randn(2, 1, 64, 64)).shape == (2, 3)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_weight_decay_groups(batch_norm):
    net = tiny_net(batch_norm=batch_norm)
    groups = weight_decay_groups(net, 1e-3)
    assert len(groups) == 2
    decay, no_decay = groups
    assert decay["weight_decay"] == 1e-3 and no_decay["weight_decay"] == 0.0
    ids_decay = [id(p) for p in decay["params"]]
    ids_no = [id(p) for p in no_decay["params"]]
    all_ids = [id(p) for p in net.parameters()]
    assert sorted(ids_decay + ids_no) == sorted(all_ids)  # every parameter exactly once
    assert len(set(ids_decay + ids_no)) == len(all_ids)
    weights = {id(m.weight) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    assert set(ids_decay) == weights
    others = {id(m.bias) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None}
    others |= {id(p) for m in net.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters()}
    assert set(ids_no) == others
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim < 2 for p in no_decay["params"])


def test_weight_decay_groups_adam_step():
    net = tiny_net()
    bias = net.classifier[-1].bias
    weight = net.classifier[-1].weight
    with torch.no_grad():
        bias.fill_(0.5)
    b0, w0 = bias.detach().clone(), weight.detach().clone()
    opt = torch.optim.Adam(weight_decay_groups(net, 0.1), lr=1e-2)
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    torch.testing.assert_close(bias.detach(), b0, rtol=0, atol=0)  # no decay on biases
    nonzero = w0 != 0
    assert nonzero.any()
    assert (weight.detach().abs()[nonzero] < w0.abs()[nonzero]).all()  # weights shrink towards 0


def test_weight_decay_groups_skip_frozen():
    net = tiny_net()
    net.features[0][0].weight.requires_grad_(False)
    decay, no_decay = weight_decay_groups(net, 0.1)
    ids = {id(p) for p in decay["params"] + no_decay["params"]}
    assert id(net.features[0][0].weight) not in ids


# ================================================================================================
# engine
# ================================================================================================


class _Recorder(nn.Module):
    """Wraps a network and records the input memory format and the dtype of the inner activations."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.channels_last = None
        self.dtype = None

    def forward(self, x):
        self.channels_last = x.is_contiguous(memory_format=torch.channels_last)
        feats = self.net.features[0][0](x)
        self.dtype = feats.dtype
        return self.net(x)


@pytest.mark.parametrize("amp", [True, False, "auto"])
def test_autocast_inferer_float32_and_close_to_plain(amp):
    net = tiny_net().eval()
    x = torch.rand(3, 1, 64, 64)
    with torch.no_grad():
        ref = net(x)
        rec = _Recorder(net)
        out = AutocastInferer(amp=amp)(x, rec)
    assert out.dtype == torch.float32
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, atol=0.05, rtol=0.05)
    autocast_on = bf16_supported("cpu") if amp == "auto" else amp
    assert rec.dtype == (torch.bfloat16 if autocast_on else torch.float32)
    assert rec.channels_last


def test_autocast_inferer_channels_last_does_not_change_results():
    net = tiny_net(in_channels=3).eval()  # 3 channels: a 1-channel tensor is contiguous in both formats
    x = torch.rand(2, 3, 48, 48)
    with torch.no_grad():
        ref = net(x).clone()
        prepared = prepare_network(tiny_net(in_channels=3).eval(), "cpu", channels_last=True)
        assert prepared.features[0][0].weight.is_contiguous(memory_format=torch.channels_last)
        rec = _Recorder(prepared)
        out_cl = AutocastInferer(amp=False, channels_last=True)(x, rec)
        assert rec.channels_last
        out_plain = AutocastInferer(amp=False, channels_last=False)(x, rec)
        assert not rec.channels_last
    torch.testing.assert_close(out_cl, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out_plain, ref, atol=1e-5, rtol=1e-5)


def test_autocast_inferer_non_tensor_output_passes_through():
    class Two(nn.Module):
        def forward(self, x):
            return {"a": x.sum()}

    out = AutocastInferer(amp=False)(torch.ones(1, 1, 4, 4), Two())
    assert isinstance(out, dict) and float(out["a"]) == 16.0


def test_resolve_device():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device().type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_class_names_integer_order():
    meta = {"network_data_format": {"outputs": {"pred": {"channel_def": {
        "10": "ten", "2": "two", "0": "zero", "1": "one", "3": "three", "4": "four",
        "5": "five", "6": "six", "7": "seven", "8": "eight", "9": "nine"}}}}}
    assert class_names(meta) == ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]


@pytest.mark.parametrize("meta", [{}, {"network_data_format": {"outputs": {"pred": {}}}}, None,
                                  {"network_data_format": {"outputs": {}}}])
def test_class_names_missing_channel_def(meta):
    with pytest.raises(ValueError, match=r"configs/metadata\.json"):
        class_names(meta)


def test_class_names_of_the_bundle():
    import json

    meta = json.loads((REPO / "bundles" / "ct_infection" / "configs" / "metadata.json").read_text())
    assert class_names(meta) == list(CT_CLASSES)


def test_find_bundle_root(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "argv", ["pytest"])
    root = find_bundle_root("ct_infection")
    assert Path(root) == REPO / "bundles" / "ct_infection"
    assert (Path(root) / "configs").is_dir()
    with pytest.raises(FileNotFoundError, match="no_such_bundle"):
        find_bundle_root("no_such_bundle")


def test_find_bundle_root_from_config_file(monkeypatch, tmp_path):
    cfg = tmp_path / "elsewhere" / "ct_infection" / "configs"
    cfg.mkdir(parents=True)
    monkeypatch.setattr(sys, "argv", ["monai.bundle", "run", "--config_file", str(cfg / "train.json")])
    assert Path(find_bundle_root("ct_infection")) == (tmp_path / "elsewhere" / "ct_infection").resolve()
    listed = f"['{cfg / 'train.json'}','{cfg / 'evaluate.json'}']"
    monkeypatch.setattr(sys, "argv", ["monai.bundle", "run", f"--config_file={listed}"])
    assert Path(find_bundle_root("ct_infection")) == (tmp_path / "elsewhere" / "ct_infection").resolve()


def test_require_file(tmp_path):
    f = tmp_path / "model.pt"
    with pytest.raises(FileNotFoundError, match="run the train config first") as info:
        require_file(str(f), "trained model", "run the train config first")
    assert str(f) in str(info.value) and "trained model" in str(info.value)
    f.write_bytes(b"x")
    assert require_file(str(f), "trained model", "hint") == str(f)


# ================================================================================================
# transforms
# ================================================================================================


def test_to_grayscale_one_channel_unchanged():
    img = torch.rand(1, 5, 7)
    assert torch.equal(ToGrayscale()(img), img)


def test_to_grayscale_rgb_bt601():
    red = torch.zeros(3, 4, 5)
    red[0] = 200.0
    torch.testing.assert_close(ToGrayscale()(red), torch.full((1, 4, 5), 0.299 * 200))
    green = torch.zeros(3, 4, 5)
    green[1] = 100.0
    torch.testing.assert_close(ToGrayscale()(green), torch.full((1, 4, 5), 0.587 * 100))
    blue = torch.zeros(3, 4, 5)
    blue[2] = 100.0
    torch.testing.assert_close(ToGrayscale()(blue), torch.full((1, 4, 5), 0.114 * 100))
    white = torch.full((3, 4, 5), 255.0)
    torch.testing.assert_close(ToGrayscale()(white), torch.full((1, 4, 5), 255.0))


def test_to_grayscale_rgba_ignores_alpha_and_grey_alpha():
    rgb = torch.rand(3, 6, 6)
    a1 = torch.cat([rgb, torch.zeros(1, 6, 6)])
    a2 = torch.cat([rgb, torch.full((1, 6, 6), 255.0)])
    torch.testing.assert_close(ToGrayscale()(a1), ToGrayscale()(rgb))
    torch.testing.assert_close(ToGrayscale()(a2), ToGrayscale()(rgb))
    la = torch.stack([torch.rand(6, 6), torch.full((6, 6), 9.0)])
    assert torch.equal(ToGrayscale()(la), la[:1])


def test_to_grayscale_trailing_singleton():
    img = torch.rand(3, 4, 5, 1)
    out = ToGrayscale()(img)
    assert out.shape == (1, 4, 5)
    torch.testing.assert_close(out, ToGrayscale()(img[..., 0]))
    assert ToGrayscale()(torch.rand(1, 4, 5, 1, 1)).shape == (1, 4, 5)


def test_to_grayscale_volume_raises():
    with pytest.raises(DataError, match="vol.nii"):
        ToGrayscale()(torch.rand(1, 4, 5, 6), filename="vol.nii")
    with pytest.raises(DataError):
        ToGrayscale()(torch.rand(4, 5))


def test_to_grayscaled():
    d = ToGrayscaled(["image"])({"image": torch.rand(3, 4, 4), "label": 1})
    assert d["image"].shape == (1, 4, 4) and d["label"] == 1


def _marked(rows: int = 20, cols: int = 30, dtype=np.uint8, bright=255) -> np.ndarray:
    """A non-square image with a bright top-left pixel and a mid-grey marker at (5, 20)."""
    arr = np.zeros((rows, cols), dtype)
    arr[0, 0] = bright
    arr[5, 20] = 100
    return arr


def _check_marked(img: torch.Tensor, bright: float = 255.0) -> None:
    assert isinstance(img, torch.Tensor)
    assert img.dtype == torch.float32
    assert tuple(img.shape) == (1, 20, 30)
    assert float(img[0, 0, 0]) == pytest.approx(bright)
    assert float(img[0, 5, 20]) == pytest.approx(100.0)
    assert float(img[0, 20 - 1, 30 - 1]) == 0.0
    assert float(img.sum()) == pytest.approx(bright + 100.0)


def test_load_png_gray(tmp_path):
    p = tmp_path / "g.png"
    Image.fromarray(_marked()).save(p)
    _check_marked(LoadImage2D()(str(p)))


def test_load_png_rgb_and_rgba(tmp_path):
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[0, 0] = (200, 0, 0)  # pure red
    rgb[5, 20] = (100, 100, 100)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    img = LoadImage2D()(str(tmp_path / "rgb.png"))
    assert img.shape == (1, 20, 30) and img.dtype == torch.float32
    assert float(img[0, 0, 0]) == pytest.approx(0.299 * 200, abs=1e-3)
    assert float(img[0, 5, 20]) == pytest.approx(100.0, abs=1e-3)
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., :3] = rgb
    rgba[..., 3] = np.random.default_rng(0).integers(1, 255, (20, 30))
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    img2 = LoadImage2D()(str(tmp_path / "rgba.png"))
    assert img2.shape == (1, 20, 30)
    torch.testing.assert_close(img2, img)


def test_load_png_16bit(tmp_path):
    p = tmp_path / "g16.png"
    Image.fromarray(_marked(dtype=np.uint16, bright=40000)).save(p)
    _check_marked(LoadImage2D()(str(p)), bright=40000.0)


def test_load_jpeg(tmp_path):
    arr = np.zeros((20, 30), np.uint8)
    arr[:8, :8] = 255
    p = tmp_path / "j.jpg"
    Image.fromarray(arr).save(p, quality=95)
    img = LoadImage2D()(str(p))
    assert img.shape == (1, 20, 30) and img.dtype == torch.float32
    assert float(img[0, 0, 0]) > 200 and float(img[0, -1, -1]) < 30


def test_load_dicom():
    path = get_testdata_file("CT_small.dcm")
    img = LoadImage2D()(path)
    ds = pydicom.dcmread(path)
    expected = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert img.shape == (1, ds.Rows, ds.Columns) and img.dtype == torch.float32
    assert not np.allclose(expected, expected.T)  # so the next line checks the orientation
    np.testing.assert_allclose(np.asarray(img[0]), expected)


def test_load_dicom_without_extension(tmp_path):
    target = tmp_path / "IM0001"
    target.write_bytes(Path(get_testdata_file("CT_small.dcm")).read_bytes())
    img = LoadImage2D()(str(target))
    assert img.shape == (1, 128, 128)


@pytest.mark.parametrize("shape", ["2d", "2d+1"])
def test_load_nifti(tmp_path, shape):
    arr = _marked().astype(np.float32)
    if shape == "2d+1":
        arr = arr[..., None]
    p = tmp_path / "n.nii.gz"
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(p))
    _check_marked(LoadImage2D()(str(p)))


def _write_mat(path: Path, images: np.ndarray, labels) -> Path:
    scipy.io.savemat(path, {"data": images, "label": np.asarray(labels, dtype=np.float64)})
    return path


def test_load_mat_slice_matches_png(tmp_path):
    data = np.zeros((3, 20, 30), np.uint8)
    data[1] = _marked()
    data[0, 10, 10] = 7
    mat = _write_mat(tmp_path / "file.mat", data, [0.0, 1.0, 2.0])
    img = LoadImage2D()(f"{mat}#1")
    _check_marked(img)
    Image.fromarray(data[1]).save(tmp_path / "same.png")
    png = LoadImage2D()(str(tmp_path / "same.png"))
    torch.testing.assert_close(torch.as_tensor(img), torch.as_tensor(png))
    assert float(LoadImage2D()(f"{mat}#0")[0, 10, 10]) == 7.0


def test_load_mat_slice_errors(tmp_path):
    data = np.zeros((3, 20, 30))
    data[2, 3, 3] = np.nan
    mat = _write_mat(tmp_path / "nan.mat", data, [0, 1, 2])
    with pytest.raises(DataError, match="nan.mat"):
        LoadImage2D()(f"{mat}#2")
    good = _write_mat(tmp_path / "good.mat", np.zeros((3, 20, 30)), [0, 1, 2])
    with pytest.raises(DataError, match="good.mat"):
        LoadImage2D()(f"{good}#5")


def test_load_unreadable_file_is_data_error(tmp_path):
    p = tmp_path / "broken.png"
    p.write_bytes(b"not a png at all")
    with pytest.raises(DataError, match="broken.png"):
        LoadImage2D()(str(p))


def test_load_image2dd(tmp_path):
    Image.fromarray(_marked()).save(tmp_path / "a.png")
    out = LoadImage2Dd(["image", "mask"], allow_missing_keys=True)({"image": str(tmp_path / "a.png"), "label": 2})
    _check_marked(out["image"])
    assert out["label"] == 2 and "mask" not in out


# ================================================================================================
# demo data
# ================================================================================================


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


# ================================================================================================
# handlers
# ================================================================================================


def _trainer(model: nn.Module, optimizer: torch.optim.Optimizer) -> Engine:
    """A real (tiny) training loop, so that model and optimizer states change every iteration."""
    torch.manual_seed(1)
    x, y = torch.randn(4, 3), torch.randn(4, 1)

    def step(engine, batch):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        return {"loss": loss.detach()}

    return Engine(step)


def _model_and_opt(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Linear(3, 1)
    return model, torch.optim.Adam(model.parameters(), lr=0.01)


def _evaluator(score: list) -> Engine:
    """An engine whose ``acc`` metric is ``score[0]`` at the end of every epoch."""
    ev = Engine(lambda e, b: None)
    ev.add_event_handler(Events.ITERATION_COMPLETED, lambda e: e.state.metrics.update(acc=score[0]))
    return ev


def _no_temp_files(folder: Path) -> bool:
    return not [n for n in os.listdir(folder) if n.endswith(".tmp") or n.startswith(".")]


def test_checkpoint_saver_interval_files_and_latest(tmp_path):
    model, opt = _model_and_opt()
    trainer = _trainer(model, opt)
    CheckpointSaver(str(tmp_path), {"model": model, "optimizer": opt}, save_interval=1, n_saved=2,
                    epoch_level=True).attach(trainer)
    trainer.run([0, 1], max_epochs=3)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint_epoch=2.pt", "checkpoint_epoch=3.pt"]
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint_epoch=3.pt"
    mode = (tmp_path / "checkpoint_epoch=3.pt").stat().st_mode
    assert mode & 0o044 == 0o044  # readable by group and others, unlike ignite's atomic DiskSaver
    saved = torch.load(tmp_path / "checkpoint_epoch=3.pt", weights_only=False)
    assert set(saved) == {"model", "optimizer"}
    torch.testing.assert_close(saved["model"]["weight"], model.weight.detach())


def test_latest_checkpoint_numeric_order(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    assert latest_checkpoint(tmp_path / "missing") is None
    for name in ("checkpoint_epoch=9.pt", "checkpoint_epoch=10.pt", "model.pt", "checkpoint_epoch=2.pt"):
        (tmp_path / name).write_bytes(b"")
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint_epoch=10.pt"
    (tmp_path / "run_epoch=99.pt").write_bytes(b"")
    assert latest_checkpoint(tmp_path, prefix="run") == tmp_path / "run_epoch=99.pt"


def _failing_save(obj, f, *args, **kwargs):
    f.write(b"half a checkpoint")
    raise OSError("disk full")


def test_checkpoint_saver_failed_save_leaves_nothing(tmp_path, monkeypatch):
    model, opt = _model_and_opt()
    trainer = _trainer(model, opt)
    CheckpointSaver(str(tmp_path), {"model": model, "optimizer": opt}, save_interval=1, n_saved=2).attach(trainer)
    monkeypatch.setattr(mb_handlers.torch, "save", _failing_save)
    with pytest.raises(OSError, match="disk full"):
        trainer.run([0], max_epochs=1)
    assert not (tmp_path / "checkpoint_epoch=1.pt").exists()
    assert os.listdir(tmp_path) == []


def test_checkpoint_saver_failed_save_keeps_previous_file(tmp_path, monkeypatch):
    model, _ = _model_and_opt()
    score = [0.5]
    saver = CheckpointSaver(str(tmp_path), {"model": model}, save_key_metric=True, key_metric_name="acc",
                            key_metric_filename="model.pt")
    ev = _evaluator(score)
    saver.attach(ev)
    ev.run([0], max_epochs=1)
    before = (tmp_path / "model.pt").read_bytes()
    with torch.no_grad():
        model.weight.add_(1.0)
    score[0] = 0.9
    monkeypatch.setattr(mb_handlers.torch, "save", _failing_save)
    with pytest.raises(OSError, match="disk full"):
        ev.run([0], max_epochs=1)
    assert (tmp_path / "model.pt").read_bytes() == before
    assert os.listdir(tmp_path) == ["model.pt"]


def _key_metric_run(folder: Path, model: nn.Module, score: float, state: dict | None = None) -> CheckpointSaver:
    saver = CheckpointSaver(str(folder), {"model": model}, save_key_metric=True, key_metric_name="acc",
                            key_metric_filename="model.pt", key_metric_greater_or_equal=True)
    if state is not None:
        saver.load_state_dict(state)
    ev = _evaluator([score])
    saver.attach(ev)
    ev.run([0], max_epochs=1)
    return saver


def test_checkpoint_saver_best_record_round_trip(tmp_path):
    model, _ = _model_and_opt()
    first = _key_metric_run(tmp_path, model, 0.8)
    state = first.state_dict()
    assert state  # the record of the best checkpoint
    best = torch.load(tmp_path / "model.pt", weights_only=True)
    torch.testing.assert_close(best["weight"], model.weight.detach())
    # the record survives a round trip through a checkpoint file (as in the full training state)
    torch.save({"best_model": state}, tmp_path / "state.pt")
    state = torch.load(tmp_path / "state.pt", weights_only=False)["best_model"]
    (tmp_path / "state.pt").unlink()

    worse, _ = _model_and_opt(seed=1)
    _key_metric_run(tmp_path, worse, 0.5, state=state)
    kept = torch.load(tmp_path / "model.pt", weights_only=True)
    torch.testing.assert_close(kept["weight"], model.weight.detach())  # not overwritten by a worse score

    better, _ = _model_and_opt(seed=2)
    saver = _key_metric_run(tmp_path, better, 0.9, state=state)
    new = torch.load(tmp_path / "model.pt", weights_only=True)
    torch.testing.assert_close(new["weight"], better.weight.detach())
    assert os.listdir(tmp_path) == ["model.pt"]
    assert saver.state_dict()["_saved"][0][0] == pytest.approx(0.9)


def test_checkpoint_saver_without_record_overwrites(tmp_path):
    """Control for the round trip: a saver that does not load the record saves the worse model."""
    model, _ = _model_and_opt()
    _key_metric_run(tmp_path, model, 0.8)
    worse, _ = _model_and_opt(seed=1)
    _key_metric_run(tmp_path, worse, 0.5)
    torch.testing.assert_close(torch.load(tmp_path / "model.pt", weights_only=True)["weight"], worse.weight.detach())


def test_checkpoint_saver_state_dict_without_key_metric(tmp_path):
    model, _ = _model_and_opt()
    saver = CheckpointSaver(str(tmp_path), {"model": model}, save_interval=1)
    assert saver.state_dict() == {}
    saver.load_state_dict({})  # no error, nothing to restore


def test_checkpoint_saver_engine_key(tmp_path):
    model, opt = _model_and_opt()
    trainer = _trainer(model, opt)
    CheckpointSaver(str(tmp_path), {"model": model, "optimizer": opt}, engine_key="trainer",
                    save_interval=1, n_saved=1).attach(trainer)
    trainer.run([0, 1, 2], max_epochs=2)
    assert os.listdir(tmp_path) == ["checkpoint_epoch=2.pt"]
    saved = torch.load(tmp_path / "checkpoint_epoch=2.pt", weights_only=False)
    assert set(saved) == {"model", "optimizer", "trainer"}
    assert saved["trainer"]["iteration"] == 6 and saved["trainer"]["epoch_length"] == 3  # ignite: epoch 2


def test_resume_from_scratch(tmp_path, caplog):
    model, opt = _model_and_opt()
    trainer = _trainer(model, opt)
    resume = Resume(str(tmp_path / "ckpt"), {"model": model, "optimizer": opt}, enabled=True)
    resume.attach(trainer)
    w0 = model.weight.detach().clone()
    with caplog.at_level(logging.INFO, logger="medbundle.handlers"):
        resume(trainer)
    assert "from scratch" in caplog.text
    assert trainer.state.epoch == 0 and resume.resumed_from is None
    assert torch.equal(model.weight.detach(), w0)
    epochs = []
    trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: epochs.append(e.state.epoch))
    trainer.run([0], max_epochs=2)
    assert epochs == [1, 2]


def _interrupted_run(ckpt: Path, epochs: int = 2):
    """Train a model for ``epochs`` epochs, saving full checkpoints (with the trainer) every epoch."""
    model, opt = _model_and_opt(seed=0)
    trainer = _trainer(model, opt)
    CheckpointSaver(str(ckpt), {"model": model, "optimizer": opt}, engine_key="trainer", save_interval=1,
                    n_saved=2).attach(trainer)
    trainer.run([0, 1], max_epochs=epochs)
    return model, opt


def test_resume_restores_model_optimizer_and_epoch(tmp_path):
    ckpt = tmp_path / "ckpt"
    model1, opt1 = _interrupted_run(ckpt)
    model2, opt2 = _model_and_opt(seed=7)
    assert not torch.equal(model2.weight, model1.weight)
    trainer = _trainer(model2, opt2)
    resume = Resume(str(ckpt), {"model": model2, "optimizer": opt2}, engine_key="trainer", enabled=True)
    resume.attach(trainer)
    seen = {}

    @trainer.on(Events.STARTED)
    def _record(engine):  # registered after Resume: runs right after the checkpoint is loaded
        seen["epoch"] = engine.state.epoch
        seen["iteration"] = engine.state.iteration
        seen["weight"] = model2.weight.detach().clone()
        seen["exp_avg"] = opt2.state[model2.weight]["exp_avg"].clone()
        seen["step"] = float(opt2.state[model2.weight]["step"])

    epochs = []
    trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: epochs.append(e.state.epoch))
    trainer.run([0, 1], max_epochs=3)
    assert resume.resumed_from == ckpt / "checkpoint_epoch=2.pt"
    assert seen["epoch"] == 2 and seen["iteration"] == 4
    torch.testing.assert_close(seen["weight"], model1.weight.detach())
    torch.testing.assert_close(seen["exp_avg"], opt1.state[model1.weight]["exp_avg"])
    assert seen["step"] == 4.0
    assert epochs == [3]  # only the remaining epoch runs
    assert trainer.state.epoch == 3
    assert latest_checkpoint(ckpt) == ckpt / "checkpoint_epoch=2.pt"  # this trainer has no saver


def test_resume_disabled_ignores_checkpoint(tmp_path):
    ckpt = tmp_path / "ckpt"
    _interrupted_run(ckpt)
    model2, opt2 = _model_and_opt(seed=7)
    w0 = model2.weight.detach().clone()
    trainer = _trainer(model2, opt2)
    Resume(str(ckpt), {"model": model2, "optimizer": opt2}, enabled=False).attach(trainer)
    seen = {}
    trainer.add_event_handler(Events.STARTED, lambda e: seen.update(w=model2.weight.detach().clone()))
    epochs = []
    trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: epochs.append(e.state.epoch))
    trainer.run([0], max_epochs=2)
    assert torch.equal(seen["w"], w0) and epochs == [1, 2]


class _FakeWriter:
    def __init__(self):
        self.scalars = []
        self.flushed = 0

    def add_scalar(self, key, value, step):
        self.scalars.append((key, float(value), step))

    def flush(self):
        self.flushed += 1


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_epoch_logger_rows_and_append(tmp_path):
    log = tmp_path / "logs" / "train_log.csv"
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.25)
    evaluator = Engine(lambda e, b: None)
    evaluator.state.metrics = {"acc": 0.5, "val_auc": 0.75, "cm": torch.eye(2), "one": torch.tensor([0.25])}
    trainer = Engine(lambda e, b: {"loss": torch.tensor(float(b))})
    writer = _FakeWriter()
    EpochLogger(str(log), opt, evaluator=evaluator, summary_writer=writer).attach(trainer)
    trainer.run([1.0, 3.0], max_epochs=2)
    rows = _read_csv(log)
    assert len(rows) == 2
    assert list(rows[0]) == ["epoch", "train_loss", "lr", "epoch_seconds", "val_acc", "val_auc", "val_one"]
    assert [r["epoch"] for r in rows] == ["1", "2"]
    for r in rows:
        assert float(r["train_loss"]) == 2.0
        assert float(r["lr"]) == 0.25
        assert float(r["val_acc"]) == 0.5 and float(r["val_auc"]) == 0.75 and float(r["val_one"]) == 0.25
        assert float(r["epoch_seconds"]) >= 0
    assert ("train_loss", 2.0, 1) in writer.scalars and ("val_acc", 0.5, 2) in writer.scalars
    assert not any(k == "epoch" for k, _, _ in writer.scalars) and writer.flushed == 2
    assert _no_temp_files(log.parent)

    # a resumed run appends to the log of the interrupted one
    opt.param_groups[0]["lr"] = 0.125
    trainer2 = Engine(lambda e, b: {"loss": torch.tensor(float(b))})
    trainer2.add_event_handler(Events.STARTED, lambda e: setattr(e.state, "epoch", 2))
    EpochLogger(str(log), opt).attach(trainer2)
    trainer2.run([5.0], max_epochs=3)
    rows2 = _read_csv(log)
    assert len(rows2) == 3
    assert rows2[:2] == rows
    assert rows2[2]["epoch"] == "3" and float(rows2[2]["train_loss"]) == 5.0 and float(rows2[2]["lr"]) == 0.125


def test_epoch_logger_lr_of_the_epoch(tmp_path):
    """A scheduler stepping at the end of an epoch (before the logger) doesn't shift the logged lr."""
    log = tmp_path / "log.csv"
    opt = torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=0.4)
    trainer = Engine(lambda e, b: (opt.step(), {"loss": torch.tensor(1.0)})[1])
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: sched.step())
    EpochLogger(str(log), opt).attach(trainer)
    trainer.run([0], max_epochs=3)
    assert [float(r["lr"]) for r in _read_csv(log)] == [0.4, 0.2, 0.1]


def test_epoch_logger_list_output(tmp_path):
    """Engines that decollate their output (a list of dicts) are read from the first item."""
    log = tmp_path / "log.csv"
    opt = torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1)
    trainer = Engine(lambda e, b: [{"loss": torch.tensor(float(b))}, {"loss": torch.tensor(99.0)}])
    EpochLogger(str(log), opt).attach(trainer)
    trainer.run([2.0, 4.0], max_epochs=1)
    rows = _read_csv(log)
    assert len(rows) == 1 and float(rows[0]["train_loss"]) == 3.0
    assert not any(k.startswith("val_") for k in rows[0])


def test_resume_disabled_clears_an_earlier_run(tmp_path):
    """A fresh run in a used folder removes the earlier run's interval checkpoints and log (not the best model)."""
    from ignite.engine import Engine

    from medbundle.handlers import Resume, latest_checkpoint

    ckpt_dir = tmp_path / "models"
    ckpt_dir.mkdir()
    for name in ("checkpoint_epoch=5.pt", "checkpoint_epoch=6.pt", "model.pt"):
        (ckpt_dir / name).write_bytes(b"old")
    log = tmp_path / "train_log.csv"
    log.write_text("epoch,train_loss\n1,0.5\n")
    engine = Engine(lambda e, b: None)
    Resume(str(ckpt_dir), {}, enabled=False, log_csv=str(log)).attach(engine)
    engine.run([0], max_epochs=1)
    assert latest_checkpoint(ckpt_dir) is None and not log.exists()
    assert (ckpt_dir / "model.pt").read_bytes() == b"old"


def test_to_grayscale_integer_rgb():
    from medbundle.transforms import ToGrayscale

    img = torch.zeros(3, 2, 2, dtype=torch.uint8)
    img[0] = 200
    assert torch.allclose(ToGrayscale()(img), torch.full((1, 2, 2), 0.299 * 200))
