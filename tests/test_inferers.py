"""medbundle.inferers: AutocastInferer (float32 outputs, channels-last, non-tensor outputs)."""

from __future__ import annotations

import pytest
import torch
from helpers.networks import tiny_net
from torch import nn

from medbundle.inferers import AutocastInferer, bf16_supported
from medbundle.runtime import prepare_network


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
