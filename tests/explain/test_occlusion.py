"""medbundle.explain.occlusion: against MONAI's OcclusionSensitivity, the signed drop, grid and interpolation."""

from __future__ import annotations

import pytest
import torch
from helpers.explain import _inputs, tiny_ctnet
from monai import visualize as mv

from medbundle.explain import OcclusionSensitivity


def test_occlusion_matches_monai_with_the_same_settings():
    """MONAI with a constant fill, softmax and ``int(m * (1 - overlap))`` == stride computes ``p(x) - ours``."""
    model, x = tiny_ctnet(), _inputs(1, 32)
    ours = OcclusionSensitivity(model, mask_size=8, stride=4, baseline=0.25, smooth=False)
    raw, exp = ours.attribute(x, 2), ours.explain(x, 2)
    occ, _ = mv.OcclusionSensitivity(model, mask_size=8, mode=0.25, overlap=0.5, verbose=False,
                                     activate=lambda o: o.softmax(1))(x)
    torch.testing.assert_close(raw, exp.probs[:, 2, None, None, None] - occ[:, 2:3].as_tensor(), rtol=0, atol=1e-6)


def test_occlusion_map_is_the_signed_drop_rescaled_and_positive_only_clips():
    """Default: min-max of the signed drop (affine, so MONAI-comparable); ``positive_only``: drops below 0 read 0."""
    model, x = tiny_ctnet(), _inputs(2, 32)
    signed = OcclusionSensitivity(model, mask_size=8, stride=4, smooth=False)
    raw, maps = signed.attribute(x, [0, 2]), signed(x, [0, 2])
    assert (raw < 0).any() and (raw > 0).any()  # occlusion both lowers and raises the class probability here
    for b in range(2):
        r = raw[b].flatten()
        torch.testing.assert_close(maps[b].flatten(), (r - r.min()) / (r.max() - r.min()), rtol=0, atol=1e-5)
    clipped = OcclusionSensitivity(model, mask_size=8, stride=4, smooth=False, positive_only=True)(x, [0, 2])
    assert ((clipped == 0) == (raw <= 0)).all() and clipped.amax((1, 2, 3)).eq(1).all()


def test_occlusion_grid_and_interpolation():
    model, x = tiny_ctnet(), _inputs(2, 33)
    assert OcclusionSensitivity(model).grid((224, 224)) == (14, list(range(0, 211, 21)), list(range(0, 211, 21)))
    blocks = OcclusionSensitivity(model, smooth=False)
    assert blocks.grid((64, 48)) == (3, list(range(0, 62, 3)) + [61], list(range(0, 46, 3)))
    with pytest.raises(ValueError, match="stride <= mask_size"):
        OcclusionSensitivity(model, mask_size=4, stride=6, smooth=False)
    # patches of 3 every 3 px: the interpolated map equals each patch's drop at the patch centres
    smooth = OcclusionSensitivity(model, mask_size=3, stride=3).attribute(x, [0, 1])
    blocks = OcclusionSensitivity(model, mask_size=3, stride=3, smooth=False).attribute(x, [0, 1])
    centres = torch.arange(1, 33, 3)
    torch.testing.assert_close(smooth[..., centres, :][..., centres], blocks[..., centres, :][..., centres])
    assert not torch.equal(smooth, blocks)
