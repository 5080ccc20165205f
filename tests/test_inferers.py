"""medbundle.inferers: AutocastInferer (float32 outputs, channels-last, non-tensor outputs); TTAInferer."""

from __future__ import annotations

import pytest
import torch
from helpers.networks import tiny_net
from torch import nn

from medbundle.errors import OptionError
from medbundle.inferers import AutocastInferer, TTAInferer, bf16_supported
from medbundle.runtime import prepare_network
from medbundle.uncertainty import predictive_passes, tta_view


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


class _Counter(nn.Module):
    """A network that is not mirror- or shift-invariant (a linear map of the raw pixels), counting its calls."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(16 * 16, 3)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.fc(x.flatten(1)) * 5


def test_tta_inferer_one_view_is_the_inner_inferer_unchanged():
    net, x = _Counter(), torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(TTAInferer(AutocastInferer(amp=False), views=1)(x, net), net(x), rtol=0, atol=0)


@pytest.mark.parametrize("views", [2, 5, 10])
def test_tta_inferer_gives_the_mean_probabilities_of_its_views(views):
    net, x = _Counter(), torch.rand(3, 1, 16, 16)
    with torch.no_grad():
        expected = torch.stack([torch.softmax(net(tta_view(x, i)), dim=1) for i in range(views)]).mean(0)
        single = torch.softmax(net(x), dim=1)
        net.calls = 0
        out = TTAInferer(AutocastInferer(amp=False), views=str(views))(x, net)
    assert net.calls == views
    torch.testing.assert_close(torch.softmax(out, dim=1), expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(expected, single, atol=1e-3)  # the views differ: the test can tell averaging from one pass


def test_tta_view_five_has_no_mirror_and_six_has():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert all(not torch.equal(tta_view(x, i), torch.flip(x, dims=(-1,))) for i in range(5))
    assert torch.equal(tta_view(x, 5), torch.flip(x, dims=(-1,)))


@pytest.mark.parametrize("views", [0, 11, "two", "2.5"])
def test_tta_inferer_bad_views_is_one_line(views):
    with pytest.raises(OptionError) as e:
        TTAInferer(AutocastInferer(amp=False), views=views)
    assert f"tta_views {views}:" in str(e.value) and "\n" not in str(e.value)


def test_uncertainty_passes_run_one_view_each_under_a_tta_inferer():
    net, x = _Counter(), torch.rand(2, 1, 16, 16)
    probs = predictive_passes(net, x, "tta", passes=4, inferer=TTAInferer(AutocastInferer(amp=False), views=5))
    assert probs.shape == (4, 2, 3) and net.calls == 4
