"""medbundle.transforms.noise: RandSpeckleNoise(d) is x * (1 + n), n ~ N(mean, std) drawn as MONAI's
RandGaussianNoise draws it; zeros stay zero, the noise grows with the intensity, prob 0 is the identity, seeded
draws repeat, ndarray / tensor / MetaTensor inputs agree, the dictionary form shares one draw between its keys."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, RandGaussianNoise

from medbundle.transforms import RandSpeckleNoise, RandSpeckleNoised


def _two_levels(h: int = 128, w: int = 128) -> np.ndarray:
    """A (1, H, W) float32 image: left half 0.2, right half 0.8."""
    img = np.full((1, h, w), 0.2, np.float32)
    img[..., w // 2:] = 0.8
    return img


def _expected(img: np.ndarray, seed: int, std: float, mean: float = 0.0, sample_std: bool = True) -> np.ndarray:
    """x * (1 + n) with the draws in MONAI's order: the prob coin, the std (when sampled), then the noise."""
    r = np.random.RandomState(seed)
    r.rand()
    s = r.uniform(0, std) if sample_std else std
    n = r.normal(mean, s, size=img.shape).astype(np.float32)
    return img * (1 + n)


@pytest.mark.parametrize("sample_std", [True, False])
def test_is_x_times_one_plus_monai_gaussian_draw(sample_std):
    img = _two_levels(32, 48)
    out = RandSpeckleNoise(prob=1.0, std=0.3, mean=0.05, sample_std=sample_std).set_random_state(7)(img)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == img.shape
    np.testing.assert_allclose(out.numpy(), _expected(img, 7, 0.3, 0.05, sample_std), rtol=1e-6)
    # the same draw as MONAI's additive RandGaussianNoise, multiplied instead of added
    additive = RandGaussianNoise(prob=1.0, std=0.3, mean=0.05, sample_std=sample_std).set_random_state(7)
    n = additive(np.zeros_like(img)).numpy()
    np.testing.assert_allclose(out.numpy(), img * (1 + n), rtol=1e-6)


def test_zero_pixels_stay_zero():
    img = _two_levels(64, 64)
    img[:, :32] = 0.0
    out = RandSpeckleNoise(prob=1.0, std=0.5).set_random_state(0)(img).numpy()
    assert np.all(out[:, :32] == 0)
    assert np.all(out[:, 32:] != img[:, 32:])  # every other pixel moved
    # an additive noise of the same size would have moved the zeros
    assert np.any(RandGaussianNoise(prob=1.0, std=0.5).set_random_state(0)(img).numpy()[:, :32] != 0)


def test_noise_std_scales_with_intensity():
    img = _two_levels(256, 256)
    out = RandSpeckleNoise(prob=1.0, std=0.1, sample_std=False).set_random_state(1)(img).numpy()
    dark, bright = out[..., :128], out[..., 128:]
    assert dark.std() == pytest.approx(0.2 * 0.1, rel=0.03)
    assert bright.std() == pytest.approx(0.8 * 0.1, rel=0.03)
    assert bright.std() / dark.std() == pytest.approx(4.0, rel=0.05)
    assert dark.mean() == pytest.approx(0.2, abs=1e-3) and bright.mean() == pytest.approx(0.8, abs=2e-3)  # mean 0
    shifted = RandSpeckleNoise(prob=1.0, std=0.1, mean=0.5, sample_std=False).set_random_state(1)(img).numpy()
    np.testing.assert_allclose((shifted / img).mean(), 1.5, atol=2e-3)  # E[x (1 + n)] = x (1 + mean)


def test_sampled_std_stays_below_std():
    img = _two_levels(64, 64)
    t = RandSpeckleNoise(prob=1.0, std=0.2).set_random_state(3)
    spreads = [float((t(img).numpy() / img - 1).std()) for _ in range(20)]
    assert max(spreads) < 0.2 * 1.05 and min(spreads) < 0.1 and np.std(spreads) > 0.02  # uniform in [0, std]


def test_prob_zero_is_identity_and_keeps_metadata():
    img = _two_levels(16, 16)
    meta = MetaTensor(torch.as_tensor(img), meta={"filename_or_obj": "x.png"})
    out = RandSpeckleNoise(prob=0.0, std=1.0)(meta)
    assert isinstance(out, MetaTensor) and out.meta["filename_or_obj"] == "x.png"
    np.testing.assert_array_equal(out.numpy(), img)
    np.testing.assert_array_equal(RandSpeckleNoise(prob=0.0, std=1.0)(img).numpy(), img)
    d = RandSpeckleNoised("image", prob=0.0, std=1.0)({"image": img, "label": 3})
    assert isinstance(d["image"], torch.Tensor) and d["label"] == 3
    np.testing.assert_array_equal(d["image"].numpy(), img)


def test_prob_applies_that_often():
    img = _two_levels(8, 8)
    t = RandSpeckleNoise(prob=0.3, std=0.5).set_random_state(0)
    noisy = sum(not np.array_equal(t(img).numpy(), img) for _ in range(400))
    assert 90 <= noisy <= 150  # 120 expected


def test_seeded_draws_repeat():
    img = _two_levels(32, 32)
    a = RandSpeckleNoise(prob=1.0, std=0.3).set_random_state(5)
    b = RandSpeckleNoise(prob=1.0, std=0.3).set_random_state(5)
    first = [a(img).numpy() for _ in range(3)]
    for x in first:
        np.testing.assert_array_equal(b(img).numpy(), x)
    assert not np.array_equal(first[0], first[1])  # a new draw per call
    assert not np.array_equal(RandSpeckleNoise(prob=1.0, std=0.3).set_random_state(6)(img).numpy(), first[0])
    # Compose seeds its random transforms (as set_determinism / the bundles' seeds do)
    runs = [Compose([RandSpeckleNoised("image", prob=1.0, std=0.3)]).set_random_state(11)({"image": img})["image"]
            for _ in range(2)]
    np.testing.assert_array_equal(runs[0].numpy(), runs[1].numpy())


def test_numpy_torch_and_metatensor_agree():
    img = _two_levels(32, 40)
    ref = RandSpeckleNoise(prob=1.0, std=0.3).set_random_state(2)(img)
    tensor = RandSpeckleNoise(prob=1.0, std=0.3).set_random_state(2)(torch.as_tensor(img))
    meta = RandSpeckleNoise(prob=1.0, std=0.3).set_random_state(2)(
        MetaTensor(torch.as_tensor(img), meta={"filename_or_obj": "y.png"}))
    assert isinstance(ref, torch.Tensor) and isinstance(tensor, torch.Tensor)
    assert isinstance(meta, MetaTensor) and meta.meta["filename_or_obj"] == "y.png"
    torch.testing.assert_close(tensor, ref)
    torch.testing.assert_close(meta.as_tensor(), ref)


def test_dtype():
    img = _two_levels(8, 8)
    assert RandSpeckleNoise(prob=1.0)(img.astype(np.float64)).dtype == torch.float32  # the default, as MONAI
    assert RandSpeckleNoise(prob=1.0, dtype=None)(img.astype(np.float64)).dtype == torch.float64
    assert RandSpeckleNoise(prob=1.0, dtype=np.float64)(img).dtype == torch.float64
    out = RandSpeckleNoise(prob=1.0, std=0.2)(np.full((1, 8, 8), 100, np.uint8))  # integers cast to float32 first
    assert out.dtype == torch.float32 and 0 < float(out.min()) and float(out.max()) < 200


def test_clip_to_the_input_range_only_when_asked():
    img = _two_levels(64, 64)
    free = RandSpeckleNoise(prob=1.0, std=0.5, sample_std=False).set_random_state(0)(img).numpy()
    clipped = RandSpeckleNoise(prob=1.0, std=0.5, sample_std=False, clip=True).set_random_state(0)(img).numpy()
    assert free.min() < 0.2 * 0.5 and free.max() > 0.8 * 1.5  # not clipped by default
    assert clipped.min() == pytest.approx(0.2) and clipped.max() == pytest.approx(0.8)
    inside = (free >= 0.2) & (free <= 0.8)
    np.testing.assert_array_equal(clipped[inside], free[inside])


def test_dictionary_form_shares_one_draw():
    img = _two_levels(32, 32)
    data = {"image": img, "copy": torch.as_tensor(img), "mask": np.ones_like(img), "label": 1}
    out = RandSpeckleNoised(["image", "copy"], prob=1.0, std=0.3).set_random_state(4)(data)
    array = RandSpeckleNoise(prob=1.0, std=0.3).set_random_state(4)(img)
    torch.testing.assert_close(out["image"], array)  # the same draw as the array transform, same seed
    torch.testing.assert_close(out["copy"], array)  # and the same noise for every key
    assert out["mask"] is data["mask"] and out["label"] == 1
    missing = RandSpeckleNoised(["image", "absent"], prob=1.0, allow_missing_keys=True)(data)
    assert "absent" not in missing and missing["image"].shape == img.shape
    with pytest.raises(KeyError):
        RandSpeckleNoised(["image", "absent"], prob=1.0)(data)
    clone = pickle.loads(pickle.dumps(RandSpeckleNoised("image", prob=1.0, std=0.3).set_random_state(4)))
    torch.testing.assert_close(clone(data)["image"], array)  # into DataLoader workers


def test_bad_input_names_the_fix():
    with pytest.raises(ValueError, match=r"std must be a finite number >= 0.*Use e\.g\. std=0\.1"):
        RandSpeckleNoise(std=-0.1)
    with pytest.raises(ValueError, match=r"std must be"):
        RandSpeckleNoised("image", std=float("nan"))
    with pytest.raises(ValueError, match=r"would be torch\.uint8.*dtype=float32.*ScaleIntensity") as info:
        RandSpeckleNoise(prob=1.0, dtype=None)(np.ones((1, 4, 4), np.uint8))
    assert "\n" not in str(info.value)
    data = {"image": np.ones((1, 8, 8), np.float32), "mask": np.ones((1, 4, 4), np.float32)}
    with pytest.raises(ValueError, match=r"key 'mask': RandSpeckleNoise: the noise was drawn for shape \(1, 8, 8\)"):
        RandSpeckleNoised(["image", "mask"], prob=1.0)(data)
    with pytest.raises(RuntimeError, match="call randomize"):
        RandSpeckleNoise(prob=1.0)(np.ones((1, 4, 4), np.float32), randomize=False)
