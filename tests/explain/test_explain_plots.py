"""medbundle.explain.plots: heat-map overlays and figures (fast, CPU only)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from medbundle.data.demo import CT_CLASSES, ct_phantom
from medbundle.explain.anatomy import anatomy_mask
from medbundle.explain.plots import overlay, save_class_grid, save_mean_maps, save_triplet


def _ramp(h: int = 16, w: int = 20) -> np.ndarray:
    return np.linspace(-3.0, 5.0, h * w).reshape(h, w)


def _is_png(path, min_w: int = 200, min_h: int = 100) -> bool:
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        return im.format == "PNG" and im.size[0] >= min_w and im.size[1] >= min_h


def test_overlay_shape_range_and_plain_image_for_zero_heat():
    img = _ramp()
    out = overlay(img, np.zeros_like(img))
    assert out.shape == (16, 20, 3) and out.dtype == np.float64
    assert out.min() >= 0.0 and out.max() <= 1.0
    grey = (img - img.min()) / (img.max() - img.min())
    for ch in range(3):
        np.testing.assert_allclose(out[..., ch], grey, atol=1e-12)
    rnd = overlay(img, np.random.default_rng(0).uniform(-0.5, 1.5, img.shape))  # clipped, still in range
    assert rnd.shape == (16, 20, 3) and rnd.min() >= 0.0 and rnd.max() <= 1.0


def test_overlay_hottest_pixel_is_top_of_colormap():
    from matplotlib import colormaps

    img = np.zeros((9, 9))
    heat = np.zeros((9, 9))
    heat[2, 6] = 1.0
    out = overlay(img, heat, alpha=1.0, cmap="jet")
    np.testing.assert_allclose(out[2, 6], colormaps["jet"](1.0)[:3])  # jet's top: dark red
    assert out[2, 6, 0] > 0.4 and out[2, 6, 2] < 0.1  # red, not the blue bottom (not inverted)
    np.testing.assert_allclose(np.delete(out.reshape(-1, 3), 2 * 9 + 6, axis=0), 0.0)  # rest: plain image
    blended = overlay(img, heat)  # default alpha: still red at that pixel, plain elsewhere
    assert blended[2, 6, 0] > blended[2, 6, 2] and blended[0, 0].max() == 0.0


def test_overlay_mask_zeroes_heat_outside():
    img = _ramp(8, 8)
    heat = np.full((8, 8), 0.9)
    mask = np.zeros((8, 8), bool)
    mask[2:5, 3:7] = True
    out = overlay(img, heat, mask=mask)
    np.testing.assert_allclose(out[~mask], overlay(img, np.zeros_like(heat))[~mask])
    np.testing.assert_allclose(out, overlay(img, heat * mask))
    assert not np.allclose(out[mask], overlay(img, np.zeros_like(heat))[mask])


def _grid_inputs(n: int = 7, size: int = 32):
    rng = np.random.default_rng(3)
    images = rng.uniform(size=(n, size, size)).astype(np.float32)
    maps = rng.uniform(size=(n, size, size)).astype(np.float32)
    labels = np.array([0, 0, 0, 2, 2, 0, 2])[:n]  # class 1 has no images
    preds = np.array([0, 1, 0, 2, 0, 0, 2])[:n]
    return images, maps, labels, preds


def _write_all(tmp_path) -> dict:
    rng = np.random.default_rng(0)
    img, mask = ct_phantom(rng, 2, 64)
    heat = ndimage.gaussian_filter(mask.astype(float), 2)
    heat /= heat.max()
    images, maps, labels, preds = _grid_inputs()
    paths = {k: tmp_path / f"{k}.png" for k in ("triplet", "grid", "mean")}
    save_triplet(paths["triplet"], img, heat, title="case 0: severe", mask=anatomy_mask(img), gt_mask=mask)
    save_class_grid(paths["grid"], images, maps, labels, preds, CT_CLASSES, max_per_class=3)
    save_mean_maps(paths["mean"], {c: maps[labels == k].mean(0) if (labels == k).any() else np.zeros((32, 32))
                                   for k, c in enumerate(CT_CLASSES)})
    return paths


def test_savers_write_valid_pngs(tmp_path):
    paths = _write_all(tmp_path)
    for path in paths.values():
        assert _is_png(path), path
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths.values())  # no temp files


def test_class_grid_edge_cases(tmp_path):
    images, maps, labels, preds = _grid_inputs()
    # no image at all for any class, (N, 1, H, W) inputs, a single class
    save_class_grid(tmp_path / "empty.png", images[:0], maps[:0], labels[:0], preds[:0], CT_CLASSES)
    save_class_grid(tmp_path / "chan.png", images[:, None], maps[:, None], labels, preds, CT_CLASSES, max_per_class=1)
    save_class_grid(tmp_path / "one.png", images[:2], maps[:2], [0, 0], [0, 0], ["only"])
    for name in ("empty.png", "chan.png", "one.png"):
        assert _is_png(tmp_path / name, 100, 100)
    with pytest.raises(ValueError, match="class indices"):
        save_class_grid(tmp_path / "bad.png", images, maps, labels + 1, preds, CT_CLASSES)
    with pytest.raises(ValueError):
        save_triplet(tmp_path / "bad.png", images[0], maps[0][:5])
    assert not (tmp_path / "bad.png").exists()


def test_failed_savefig_leaves_no_file(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    def broken_savefig(self, fname, *args, **kwargs):
        fname.write(b"\x89PNG\r\n\x1a\n partial")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    previous = tmp_path / "grid.png"
    previous.write_bytes(b"previous content")
    images, maps, labels, preds = _grid_inputs()
    with pytest.raises(RuntimeError, match="disk on fire"):
        save_triplet(tmp_path / "triplet.png", images[0], maps[0], gt_mask=maps[0] > 0.5)
    with pytest.raises(RuntimeError, match="disk on fire"):
        save_class_grid(previous, images, maps, labels, preds, CT_CLASSES)
    with pytest.raises(RuntimeError, match="disk on fire"):
        save_mean_maps(tmp_path / "mean.png", {"a": maps[0]})
    assert previous.read_bytes() == b"previous content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.png"]
