"""medbundle.networks.densenet: MONAI's DenseNet121 with a dropout head, torchvision-format weights into it (current
and 2017 key names, as MONAI's own loader renames them), and the loader's one-line errors."""

from __future__ import annotations

import logging

import monai.networks.nets.densenet as monai_densenet
import pytest
import torch
from helpers.networks import torchvision_format_file, torchvision_format_state_dict, torchvision_keys
from monai.networks.nets import DenseNet121
from torch import nn

from medbundle.networks import densenet121, gradcam_layer, load_torchvision_densenet, network_spec
from medbundle.networks.densenet import DENSE_LAYER_KEY

# torchvision name (as in tests/networks/torchvision_keys/densenet121.txt) -> MONAI name
SAMPLE = {
    "features.norm0.running_mean": "features.norm0.running_mean",
    "features.denseblock1.denselayer1.norm1.weight": "features.denseblock1.denselayer1.layers.norm1.weight",
    "features.denseblock1.denselayer1.conv1.weight": "features.denseblock1.denselayer1.layers.conv1.weight",
    "features.denseblock3.denselayer24.conv2.weight": "features.denseblock3.denselayer24.layers.conv2.weight",
    "features.denseblock4.denselayer16.norm2.running_var": "features.denseblock4.denselayer16.layers.norm2.running_var",
    "features.transition2.conv.weight": "features.transition2.conv.weight",
    "features.norm5.bias": "features.norm5.bias",
}


def _monai_name(key: str) -> str:
    m = DENSE_LAYER_KEY.match(key)
    return f"{m[1]}.layers.{m[2]}{m[3]}.{m[4]}" if m else key


@pytest.fixture(scope="module")
def tv_file(tmp_path_factory):
    return torchvision_format_file("densenet121", tmp_path_factory.mktemp("densenet"))


def test_committed_key_list_is_torchvisions():
    listed = torchvision_keys("densenet121")
    assert len(listed) == 727
    assert listed["features.conv0.weight"] == "64x3x7x7" and listed["classifier.weight"] == "1000x1024"
    assert listed["features.denseblock3.denselayer24.conv2.weight"] == "32x128x3x3"
    assert listed["features.transition3.conv.weight"] == "512x1024x1x1"
    own = densenet121(in_channels=3, num_classes=1000).state_dict()
    renamed = {_monai_name(k): k for k in listed if not k.startswith("classifier.")}
    assert set(renamed) == {k for k in own if not k.startswith("class_layers.")}
    for key, tv_key in renamed.items():
        assert ("x".join(map(str, own[key].shape)) or "-") == listed[tv_key], key


def test_torchvision_weights_load_into_one_channel_densenet121(tv_file, caplog):
    caplog.set_level(logging.INFO)
    state, path = tv_file
    model = densenet121(in_channels=1, num_classes=2, pretrained=str(path))
    own = model.state_dict()
    torch.testing.assert_close(own["features.conv0.weight"], state["features.conv0.weight"].sum(1, keepdim=True))
    for tv_key, monai_key in SAMPLE.items():
        torch.testing.assert_close(own[monai_key], state[tv_key])
    for key, value in state.items():  # every backbone tensor, with its new name
        if not key.startswith(("classifier.", "features.conv0.")):
            torch.testing.assert_close(own[_monai_name(key)], value, rtol=0, atol=0)
    assert own["class_layers.out.weight"].shape == (2, 1024)  # the new head; ImageNet's is never loaded
    assert not torch.allclose(own["class_layers.out.weight"], state["classifier.weight"][:2])
    assert isinstance(model.class_layers.dropout, nn.Dropout) and model.class_layers.dropout.p == 0.5
    assert [n for n, _ in model.class_layers.named_children()] == ["relu", "pool", "flatten", "dropout", "out"]
    assert "loaded pretrained weights" in caplog.text
    x = torch.rand(1, 1, 32, 32)  # a grey image through the summed stem == the same image in RGB
    rgb = nn.functional.conv2d(x.repeat(1, 3, 1, 1), state["features.conv0.weight"], stride=2, padding=3)
    torch.testing.assert_close(model.features.conv0(x), rgb, rtol=1e-4, atol=1e-4)


def test_2017_key_names_as_monai_renames_them(tv_file, monkeypatch, tmp_path):
    """torchvision's published densenet121-a639ec97.pth says ``denselayer1.norm.1.weight`` and has no
    ``num_batches_tracked``: our loader reads it as MONAI's own ``_load_state_dict`` does (run here on the same
    dict, its download replaced by it), and as it reads the current names."""
    state, _ = tv_file
    old = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        m = DENSE_LAYER_KEY.match(key)
        old[f"{m[1]}.{m[2]}.{m[3]}.{m[4]}" if m else key] = value
    assert "features.denseblock2.denselayer3.conv.2.weight" in old
    torch.save(old, tmp_path / "densenet121-a639ec97.pth")
    ours = densenet121(in_channels=3, num_classes=1000, pretrained=str(tmp_path / "densenet121-a639ec97.pth"))
    monkeypatch.setattr(monai_densenet, "load_state_dict_from_url", lambda *a, **k: dict(old))
    theirs = DenseNet121(spatial_dims=2, in_channels=3, out_channels=1000)
    monai_densenet._load_state_dict(theirs, "densenet121", progress=False)
    mine, monai = ours.state_dict(), theirs.state_dict()
    for key in monai:
        if key.startswith("features.") and not key.endswith("num_batches_tracked"):
            torch.testing.assert_close(mine[key], monai[key], rtol=0, atol=0, msg=key)
    assert all(torch.equal(mine[k], state[tv]) for tv, k in SAMPLE.items())


def test_registry_and_shapes():
    model = densenet121(num_classes=3, dropout=0.1)
    assert network_spec(model).head == ("class_layers",) and model.class_layers.dropout.p == 0.1
    assert gradcam_layer(model, 224) == "features.denseblock3" and gradcam_layer(model, 64) == "features.denseblock2"
    with torch.no_grad():
        for size in ((32, 32), (224, 224), (97, 130)):
            assert model.eval()(torch.zeros(2, 1, *size)).shape == (2, 3)


def test_loader_errors(tv_file, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    state, _ = tv_file
    with pytest.raises(FileNotFoundError, match="no pretrained weights there.*never downloads") as err:
        densenet121(pretrained=str(tmp_path / "absent.pth"))
    assert "\n" not in str(err.value)
    bad = dict(state)
    del bad["features.denseblock2.denselayer5.conv1.weight"]
    bad["features.extra.weight"] = torch.zeros(1)
    bad["features.norm5.weight"] = torch.ones(512)
    torch.save(bad, tmp_path / "bad.pth")
    expected = (r"missing \['features.denseblock2.denselayer5.layers.conv1.weight'\], "
                r"unexpected \['features.extra.weight'\], wrong shape \[\('features.norm5.weight'")
    with pytest.raises(ValueError, match=expected) as err:
        densenet121(pretrained=str(tmp_path / "bad.pth"))
    assert "\n" not in str(err.value) and "torchvision" in str(err.value)
    torch.save(torchvision_format_state_dict("efficientnet_b0"), tmp_path / "b0.pth")
    with pytest.raises(ValueError, match="not a torchvision DenseNet121 state dict") as err:
        load_torchvision_densenet(densenet121(), tmp_path / "b0.pth")
    assert "\n" not in str(err.value)
    (tmp_path / "junk.pth").write_text("not a checkpoint\nsecond line")
    with pytest.raises(ValueError, match="not a PyTorch state dict") as err:
        densenet121(pretrained=str(tmp_path / "junk.pth"))
    assert "\n" not in str(err.value)
    caplog.clear()
    for text in (None, "null", "None", ""):
        densenet121(pretrained=text)
    assert caplog.text.count("random initial weights") == 4
