"""Quality measures of saliency maps: localisation, stability, randomisation sanity, faithfulness, attention.

Conventions shared by every function here:

- an *explainer* is a plain callable ``explain(x (B,C,H,W), class_idx (B,) | None) -> (B,1,H,W)`` returning
  heat maps in [0, 1] (1 = most relevant); a *model* is an ``nn.Module`` returning logits ``(B,K)``;
- a *map* is ``(H,W)`` (or ``(N,H,W)`` / ``(N,1,H,W)`` for many), a *mask* a bool/uint8 ``(H,W)`` array;
  numpy arrays and torch tensors are both accepted, NaN relevance is read as 0;
- every measure is reported per image (a list of flat dicts) and summarised with :func:`summarise`;
  NaN marks "undefined for this image" (empty mask, fewer than 2 images, ...) and is ignored by the summary;
- the model's training flags are restored after use, the model's weights are never changed.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from itertools import combinations
from typing import Any

import numpy as np
import torch
from monai.metrics import SSIMMetric
from scipy import ndimage, stats
from sklearn.metrics import average_precision_score
from torch import nn

__all__ = [
    "pointing_game",
    "relevance_mass_accuracy",
    "relevance_rank_accuracy",
    "saliency_auprc",
    "localisation_scores",
    "random_baseline_localisation",
    "stability",
    "cascading_randomisation",
    "deletion_insertion",
    "attention_statistics",
    "summarise",
]

Explainer = Callable[[torch.Tensor, Any], torch.Tensor]
LOCALISATION_KEYS = ("pointing_game", "relevance_mass_accuracy", "relevance_rank_accuracy", "auprc")
SIMILARITY_KEYS = ("ssim", "pearson", "spearman")


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def _np(x: Any, dtype: Any = np.float64) -> np.ndarray:
    """``x`` (tensor or array-like) as a numpy array of ``dtype``; NaN/inf read as 0 for float output."""
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    a = np.asarray(x)
    if dtype is bool:
        return a.astype(bool)
    return np.nan_to_num(a.astype(dtype), nan=0.0, posinf=0.0, neginf=0.0)


def _map_mask(saliency: Any, mask: Any) -> tuple[np.ndarray, np.ndarray]:
    """One map and one mask as 2D float / bool arrays of the same shape (a leading 1 is squeezed)."""
    s, m = _np(saliency), _np(mask, bool)
    s = s.reshape(s.shape[-2:]) if s.ndim > 2 and math.prod(s.shape[:-2]) == 1 else s
    m = m.reshape(m.shape[-2:]) if m.ndim > 2 and math.prod(m.shape[:-2]) == 1 else m
    if s.ndim != 2 or s.shape != m.shape:
        raise ValueError(f"expected one (H,W) map and an (H,W) mask of the same shape, got {s.shape} and {m.shape}.")
    return s, m


def _stack_maps(maps: Any) -> np.ndarray:
    """``(N,H,W)`` or ``(N,1,H,W)`` maps as a float ``(N,H,W)`` array."""
    a = _np(maps)
    if a.ndim == 4 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 3:
        raise ValueError(f"expected maps of shape (N,H,W) or (N,1,H,W), got {a.shape}.")
    return a


@contextmanager
def _eval(model: nn.Module) -> Iterator[nn.Module]:
    """Put every module of ``model`` in eval mode and restore each one's own flag afterwards (no ``no_grad``)."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, flag in flags:
            m.train(flag)


def _device(model: nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def _predict(model: nn.Module, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Softmax probabilities ``(N,K)`` (float32, CPU) of ``model`` on ``images``, in chunks of ``batch_size``."""
    dev, out = _device(model), []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            out.append(torch.softmax(model(images[i : i + batch_size].to(dev)).float(), dim=1).cpu())
    return torch.cat(out)


def _explain(
    explain: Explainer, images: torch.Tensor, class_idx: torch.Tensor, batch_size: int, device: torch.device
) -> np.ndarray:
    """Maps ``(N,H,W)`` of ``explain`` on ``images`` for ``class_idx`` ``(N,)``, in chunks, on ``device``."""
    images, class_idx = images.to(device), torch.as_tensor(class_idx).to(device)
    out = [
        _stack_maps(explain(images[i : i + batch_size], class_idx[i : i + batch_size]))
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(out) if out else np.zeros((0, *images.shape[-2:]))


def _corr(a: np.ndarray, b: np.ndarray, kind: str) -> float:
    """Pearson or Spearman correlation of two maps, with the convention for constant (blank) maps.

    Undefined correlations are set so that similarity curves never turn NaN: 1.0 for identical maps or two constant
    maps (same, empty ranking), 0.0 when exactly one map is constant (no shared structure).
    """
    a, b = a.ravel(), b.ravel()
    const_a, const_b = np.ptp(a) == 0, np.ptp(b) == 0
    if np.array_equal(a, b) or (const_a and const_b):
        return 1.0
    if const_a or const_b:
        return 0.0
    r = stats.pearsonr(a, b) if kind == "pearson" else stats.spearmanr(a, b)
    return float(r.statistic)


def _ssim_win(shape: Sequence[int], win_size: int) -> int:
    """``win_size`` reduced to the largest odd size fitting in ``shape``."""
    w = min(int(win_size), *shape)
    return w if w % 2 else w - 1


def _similarity(a: np.ndarray, b: np.ndarray, win_size: int) -> dict[str, np.ndarray]:
    """Per-pair SSIM (data range 1), Pearson and Spearman of maps ``a`` and ``b`` ``(N,H,W)``."""
    n = len(a)
    if n == 0:
        return {k: np.zeros(0) for k in SIMILARITY_KEYS}
    metric = SSIMMetric(spatial_dims=2, data_range=1.0, win_size=win_size)
    ssim = metric(torch.as_tensor(a, dtype=torch.float32)[:, None], torch.as_tensor(b, dtype=torch.float32)[:, None])
    return {
        "ssim": ssim.reshape(n).double().numpy(),
        "pearson": np.array([_corr(a[i], b[i], "pearson") for i in range(n)]),
        "spearman": np.array([_corr(a[i], b[i], "spearman") for i in range(n)]),
    }


def _nanmean(x: Any) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.nanmean(x)) if np.isfinite(x).any() else float("nan")


def _pair_baseline(maps: np.ndarray, win_size: int, seed: int, max_pairs: int) -> dict[str, Any]:
    """Mean similarity between maps of different images: all pairs ``i < j``, or ``max_pairs`` random ones."""
    pairs = list(combinations(range(len(maps)), 2))
    if len(pairs) > max_pairs:
        rng = np.random.default_rng(seed)
        pairs = [pairs[i] for i in rng.choice(len(pairs), size=max_pairs, replace=False)]
    if not pairs:
        return {**{k: float("nan") for k in SIMILARITY_KEYS}, "n_pairs": 0}
    i, j = (np.array(p) for p in zip(*pairs))
    sim = _similarity(maps[i], maps[j], win_size)
    return {**{k: _nanmean(v) for k, v in sim.items()}, "n_pairs": len(pairs)}


# ------------------------------------------------------------------------------------------------
# localisation against ground-truth masks
# ------------------------------------------------------------------------------------------------


def pointing_game(saliency: Any, mask: Any, tolerance: float = 0) -> float:
    """Pointing game (Zhang et al. 2018): does the map's maximum fall on the object?

    ``hit = 1[ exists p in argmax(S) : dist(p, M) <= tolerance ]``, i.e. a hit if ANY of the (tied) maximal
    pixels lies in the mask dilated by a Euclidean disk of radius ``tolerance`` pixels.

    Args:
        saliency: map ``(H,W)`` (higher = more relevant).
        mask: ground-truth mask ``(H,W)``.
        tolerance: dilation radius of the mask in pixels (0 = the mask itself).

    Returns:
        1.0 for a hit, 0.0 for a miss; a constant map (all-zero included) points nowhere and is a miss (0.0);
        NaN for an empty mask.
    """
    s, m = _map_mask(saliency, mask)
    if not m.any():
        return float("nan")
    if np.ptp(s) == 0:
        return 0.0
    if tolerance > 0:
        m = ndimage.distance_transform_edt(~m) <= tolerance
    return float(m[s == s.max()].any())


def relevance_mass_accuracy(saliency: Any, mask: Any) -> float:
    """Relevance mass accuracy (Arras et al. 2022): the share of the total relevance that falls in the mask.

    ``RMA = sum_{p in M} R_p / sum_p R_p`` with ``R = max(S, 0)`` (negative relevance is clipped).

    Args:
        saliency: map ``(H,W)``.
        mask: ground-truth mask ``(H,W)``.

    Returns:
        RMA in [0, 1]; 0.0 for an all-zero map; NaN for an empty mask.
    """
    s, m = _map_mask(saliency, mask)
    if not m.any():
        return float("nan")
    r = np.clip(s, 0, None)
    total = r.sum()
    return float(r[m].sum() / total) if total > 0 else 0.0


def relevance_rank_accuracy(saliency: Any, mask: Any) -> float:
    """Relevance rank accuracy (Arras et al. 2022): the share of the ``K = |M|`` top-ranked pixels inside the mask.

    ``RRA = |P_top-K ∩ M| / K``. Ties at the K-th value are resolved by their expectation under random
    tie-breaking: ``RRA = (|{S > t} ∩ M| + (K - |{S > t}|) * |{S = t} ∩ M| / |{S = t}|) / K`` with ``t`` the
    K-th largest value, so a constant (or all-zero) map scores the chance level ``K / (H W)``.

    Args:
        saliency: map ``(H,W)``.
        mask: ground-truth mask ``(H,W)``.

    Returns:
        RRA in [0, 1]; NaN for an empty mask.
    """
    s, m = _map_mask(saliency, mask)
    s, m = s.ravel(), m.ravel()
    k = int(m.sum())
    if k == 0:
        return float("nan")
    t = np.partition(s, s.size - k)[s.size - k]
    above, tied = s > t, s == t
    hits = (above & m).sum() + (k - above.sum()) * (tied & m).sum() / tied.sum()
    return float(hits / k)


def saliency_auprc(saliency: Any, mask: Any) -> float:
    """Area under the precision-recall curve of the map used as a pixel-wise detector of the mask.

    ``AP = sum_n (R_n - R_{n-1}) P_n`` over the thresholds of the map (``sklearn.metrics.average_precision_score``);
    a random map scores about the mask fraction ``|M| / (H W)``, as does a constant map.

    Args:
        saliency: map ``(H,W)``.
        mask: ground-truth mask ``(H,W)``.

    Returns:
        AP in [0, 1]; NaN for an empty mask and for a full mask (where every map scores 1 trivially).
    """
    s, m = _map_mask(saliency, mask)
    if not m.any() or m.all():
        return float("nan")
    return float(average_precision_score(m.ravel(), s.ravel()))


def localisation_scores(maps: Any, masks: Any, tolerance: float = 0) -> list[dict[str, float]]:
    """All localisation measures per image.

    Args:
        maps: maps ``(N,H,W)`` or ``(N,1,H,W)``.
        masks: masks ``(N,H,W)`` (or ``(N,1,H,W)``) of the same spatial size.
        tolerance: pointing-game tolerance in pixels.

    Returns:
        one dict per image: ``index``, ``mask_fraction`` (``|M| / (H W)``, the chance level of RMA/RRA/AUPRC),
        ``pointing_game``, ``relevance_mass_accuracy``, ``relevance_rank_accuracy``, ``auprc``.
    """
    s, m = _stack_maps(maps), _stack_maps(_np(masks, bool)).astype(bool)
    if len(s) != len(m):
        raise ValueError(f"got {len(s)} maps but {len(m)} masks.")
    return [
        {
            "index": i,
            "mask_fraction": float(m[i].mean()),
            "pointing_game": pointing_game(s[i], m[i], tolerance),
            "relevance_mass_accuracy": relevance_mass_accuracy(s[i], m[i]),
            "relevance_rank_accuracy": relevance_rank_accuracy(s[i], m[i]),
            "auprc": saliency_auprc(s[i], m[i]),
        }
        for i in range(len(s))
    ]


def random_baseline_localisation(
    masks: Any, n_maps: int = 20, seed: int = 0, sigma: float | None = None, tolerance: float = 0
) -> dict[str, Any]:
    """The localisation measures of random maps: the level that "far better than random" is judged against.

    Each random map is ``normalise(G_sigma * U)``: uniform noise ``U ~ U(0,1)^(H W)`` smoothed with a Gaussian of
    standard deviation ``sigma`` (default ``min(H,W) / 16`` pixels, the cell size of a CAM from a stride-16
    feature map, i.e. blobs at a spatial scale comparable to the explainers') and min-max rescaled to [0, 1].

    Args:
        masks: masks ``(N,H,W)``.
        n_maps: random maps drawn per mask.
        seed: seed of the numpy generator.
        sigma: Gaussian smoothing in pixels (None: ``min(H,W) / 16``; 0: white noise).
        tolerance: pointing-game tolerance in pixels.

    Returns:
        ``{"records": per-image dicts as :func:`localisation_scores` (each measure averaged over the n_maps
        maps), "summary": summarise(records), "n_maps": int, "sigma": float, "seed": int}``.
    """
    m = _stack_maps(_np(masks, bool)).astype(bool)
    h, w = m.shape[-2:]
    sigma = float(min(h, w) / 16 if sigma is None else sigma)
    rng = np.random.default_rng(seed)
    records = []
    for i in range(len(m)):
        noise = rng.random((n_maps, h, w))
        if sigma > 0:
            noise = ndimage.gaussian_filter(noise, sigma=(0, sigma, sigma), mode="reflect")
        lo, hi = noise.min(axis=(1, 2), keepdims=True), noise.max(axis=(1, 2), keepdims=True)
        noise = (noise - lo) / np.where(hi > lo, hi - lo, 1.0)
        recs = localisation_scores(noise, np.broadcast_to(m[i], noise.shape), tolerance)
        records.append({"index": i, "mask_fraction": float(m[i].mean())})
        records[-1].update({k: _nanmean([r[k] for r in recs]) for k in LOCALISATION_KEYS})
    return {"records": records, "summary": summarise(records), "n_maps": n_maps, "sigma": sigma, "seed": seed}


# ------------------------------------------------------------------------------------------------
# stability under input noise
# ------------------------------------------------------------------------------------------------


def stability(
    explain: Explainer,
    model: nn.Module,
    images: torch.Tensor,
    noise_levels: Sequence[float] = (0.01, 0.02, 0.05, 0.1),
    n_copies: int = 4,
    seed: int = 0,
    data_range: float = 1.0,
    win_size: int = 7,
    batch_size: int = 16,
    max_pairs: int = 200,
) -> dict[str, Any]:
    """Similarity of each image's map with the maps of noisy copies of the image, against a random-pair baseline.

    For each level ``l`` and copy ``k``: ``x' = x + eps``, ``eps ~ N(0, (l * data_range)^2)`` (not clipped);
    copies whose predicted class differs from the clean prediction are skipped and counted; the kept copies
    are explained for the clean prediction's class and compared with the clean map ``S``:
    ``SSIM(S, S')`` (``monai.metrics.SSIMMetric``, data range 1.0 since maps are in [0, 1], Gaussian window
    ``win_size``), Pearson ``r = cov(S, S') / (sd(S) sd(S'))`` and Spearman ``rho`` = Pearson of the ranks
    (for a constant map: 0 against a structured map, 1 against another constant map).
    ``pair_baseline`` holds the same measures between the clean maps of different images (all pairs, or
    ``max_pairs`` random ones): a stable explainer should sit well above it.

    Args:
        explain: the explainer, called on ``model``'s inputs (it is expected to use ``model``).
        model: the classifier (put in eval mode for the call, flags restored afterwards).
        images: ``(N,C,H,W)``.
        noise_levels: noise standard deviations as fractions of ``data_range``.
        n_copies: noisy copies per image and level.
        seed: seed of the noise (a CPU torch generator) and of the pair sampling.
        data_range: intensity range of ``images`` (the noise scale).
        win_size: SSIM window (reduced to the largest odd size that fits the map).
        batch_size: images per model/explainer call.
        max_pairs: most image pairs in the baseline.

    Returns:
        ``{"noise_levels", "n_copies", "data_range", "ssim_data_range": 1.0, "ssim_win_size",
        "levels": [{"noise_level", "noise_std", "n_kept", "n_skipped", "ssim", "pearson", "spearman"}]`` (means
        over kept copies), ``"per_image": [{"index", "noise_level", "n_kept", "n_skipped", "ssim", "pearson",
        "spearman"}]`` (means over the image's kept copies, NaN if none), ``"pair_baseline": {"ssim", "pearson",
        "spearman", "n_pairs"}}``.
    """
    images = torch.as_tensor(images).float()
    n, win = len(images), _ssim_win(images.shape[-2:], win_size)
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, Any] = {
        "noise_levels": [float(v) for v in noise_levels], "n_copies": n_copies, "data_range": float(data_range),
        "ssim_data_range": 1.0, "ssim_win_size": win, "levels": [], "per_image": [],
    }
    with _eval(model):
        pred = _predict(model, images, batch_size).argmax(1)
        clean = _explain(explain, images, pred, batch_size, _device(model))
        for level in noise_levels:
            std = float(level) * data_range
            noisy = images.unsqueeze(0) + std * torch.randn((n_copies, *images.shape), generator=gen).to(images)
            noisy, src = noisy.flatten(0, 1), torch.arange(n).repeat(n_copies)  # copy k of image i at k * n + i
            keep = (_predict(model, noisy, batch_size).argmax(1) == pred[src]).numpy()
            kept_src = src.numpy()[keep]
            maps = _explain(explain, noisy[torch.as_tensor(keep)], pred[kept_src], batch_size, _device(model))
            sim = _similarity(clean[kept_src], maps, win)
            out["levels"].append({
                "noise_level": float(level), "noise_std": std, "n_kept": int(keep.sum()),
                "n_skipped": int((~keep).sum()), **{k: _nanmean(v) for k, v in sim.items()},
            })
            for i in range(n):
                sel = kept_src == i
                out["per_image"].append({
                    "index": i, "noise_level": float(level), "n_kept": int(sel.sum()),
                    "n_skipped": n_copies - int(sel.sum()), **{k: _nanmean(v[sel]) for k, v in sim.items()},
                })
    out["pair_baseline"] = _pair_baseline(clean, win, seed, max_pairs)
    return out


# ------------------------------------------------------------------------------------------------
# randomisation sanity check
# ------------------------------------------------------------------------------------------------


def _execution_order(model: nn.Module, sample: torch.Tensor) -> list[str]:
    """Names of the modules holding parameters of their own, in the order a forward pass first calls them."""
    cands = {name: m for name, m in model.named_modules() if next(m.parameters(recurse=False), None) is not None}
    order: list[str] = []

    def hook(name: str) -> Callable:
        return lambda *_: None if name in order else order.append(name)

    handles = [m.register_forward_hook(hook(name)) for name, m in cands.items()]
    try:
        with torch.no_grad():
            model(sample.to(_device(model)))
    finally:
        for h in handles:
            h.remove()
    return order or list(cands)


def _reinit(module: nn.Module, seed: int) -> None:
    """Re-initialise ``module``'s own parameters under a fixed seed, leaving the global RNG state as it was.

    ``module.reset_parameters()`` when it exists (conv, linear, norm layers: the layer's default init, running
    statistics included); otherwise each parameter is redrawn from ``N(0, sd(p)^2)``.
    """
    devices = sorted({p.device.index or 0 for p in module.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        if callable(getattr(module, "reset_parameters", None)):
            module.reset_parameters()
        else:
            with torch.no_grad():
                for p in module.parameters(recurse=False):
                    p.normal_(0.0, float(p.std()) if p.numel() > 1 else 1.0)


def cascading_randomisation(
    explain_factory: Callable[[nn.Module], Explainer],
    model: nn.Module,
    images: torch.Tensor,
    seed: int = 0,
    layers: Sequence[str] | None = None,
    class_idx: Any = None,
    win_size: int = 7,
    batch_size: int = 16,
    max_pairs: int = 200,
) -> dict[str, Any]:
    """Cascading model-parameter randomisation (Adebayo et al. 2018): maps must change when the weights do.

    A deep copy of ``model`` has its parameterised layers re-initialised one at a time from the output backwards,
    cumulatively (step ``s`` = layers ``1..s`` from the top randomised). After each step the explainer is rebuilt
    with ``explain_factory`` on a snapshot of the copy and the maps ``S_s`` of the target classes compared with the
    original maps ``S_0`` (the explainer on an untouched copy): Spearman ``rho(|S_0|, |S_s|)``, SSIM (data range 1,
    window ``win_size``) and Pearson ``r`` of ``|S_0|, |S_s|`` (a map turned constant correlates 0). A faithful
    explainer's similarity falls towards the random-pair baseline (original maps of different images); ``model``
    itself is never modified. Note that ``reset_parameters`` of a norm layer restores its deterministic default
    (weight 1, bias 0, running statistics 0/1), so that step changes nothing in an untrained network.

    Args:
        explain_factory: ``explain_factory(model) -> explain`` building an explainer bound to ``model``.
        model: the trained classifier (left untouched; the copies are in eval mode).
        images: ``(N,C,H,W)``.
        seed: step ``s`` re-initialises under ``torch.manual_seed(seed + s)`` (global RNG state preserved).
        layers: names (as in ``named_modules``) to randomise, in this order; None = every module with parameters
            of its own, in reverse order of execution in a forward pass.
        class_idx: target classes ``(N,)``; None = the original model's predictions (kept for every step).
        win_size: SSIM window (reduced to fit the map).
        batch_size: images per explainer call.
        max_pairs: most image pairs in the baseline.

    Returns:
        ``{"layers": [names in order of randomisation], "ssim": [...], "pearson": [...], "spearman": [...]``
        (mean similarity after each step), ``"per_image": [{"index", "step", "layer", "ssim", "pearson",
        "spearman"}]``, ``"pair_baseline": {"ssim", "pearson", "spearman", "n_pairs"}, "ssim_win_size", "seed"}``.
    """
    images = torch.as_tensor(images).float()
    work = copy.deepcopy(model).eval()  # never handed to the factory, so it stays free of explainer hooks
    if layers is None:
        layers = _execution_order(work, images[:1])[::-1]
    modules = dict(work.named_modules())
    missing = [name for name in layers if name not in modules]
    if missing:
        raise ValueError(f"unknown layers {missing}.")
    if class_idx is None:
        class_idx = _predict(work, images, batch_size).argmax(1)
    class_idx = torch.as_tensor(class_idx).reshape(-1)
    win = _ssim_win(images.shape[-2:], win_size)

    def maps_of(net: nn.Module) -> np.ndarray:
        return np.abs(_explain(explain_factory(copy.deepcopy(net).eval()), images, class_idx, batch_size, _device(net)))

    original = maps_of(work)
    out: dict[str, Any] = {"layers": list(layers), **{k: [] for k in SIMILARITY_KEYS}, "per_image": []}
    for step, name in enumerate(layers, start=1):
        _reinit(modules[name], seed + step)
        sim = _similarity(original, maps_of(work), win)
        for k, v in sim.items():
            out[k].append(_nanmean(v))
        out["per_image"] += [
            {"index": i, "step": step, "layer": name, **{k: float(v[i]) for k, v in sim.items()}}
            for i in range(len(images))
        ]
    out.update(pair_baseline=_pair_baseline(original, win, seed, max_pairs), ssim_win_size=win, seed=seed)
    return out


# ------------------------------------------------------------------------------------------------
# faithfulness: deletion / insertion
# ------------------------------------------------------------------------------------------------


def deletion_insertion(
    model: nn.Module,
    images: torch.Tensor,
    maps: Any,
    class_idx: Any = None,
    steps: int = 20,
    baseline: str | float = "blur",
    blur_sigma: float | None = None,
) -> dict[str, Any]:
    """Deletion and insertion curves (Petsiuk et al. 2018): does removing the relevant pixels first hurt most?

    Pixels are ranked by decreasing relevance (stable sort: ties in raster order). With ``f_j = j / steps`` and
    ``n_j = round(f_j H W)``: deletion image ``j`` replaces the ``n_j`` top pixels of ``x`` by the baseline ``b``,
    insertion image ``j`` starts from ``b`` and puts back the ``n_j`` top pixels of ``x`` (all channels). The curve
    is the target-class softmax probability ``p_c`` over ``f``; ``AUC = trapezoid(p_c, f)`` over [0, 1].
    Low deletion AUC and high insertion AUC = faithful. All ``2 (steps + 1)`` images of one input are evaluated
    in a single batch.

    Args:
        model: the classifier (eval mode during the call, flags restored).
        images: ``(N,C,H,W)``.
        maps: ``(N,1,H,W)`` or ``(N,H,W)``; resized bilinearly to the image size if needed.
        class_idx: target classes ``(N,)``; None = the model's predictions on ``images``.
        steps: number of equal fractions (curves have ``steps + 1`` points).
        baseline: ``"blur"`` (default: a Gaussian-blurred copy of the image, sigma ``blur_sigma``; removes
            the fine structure without creating the out-of-distribution edges of a constant) or a constant value.
        blur_sigma: blur in pixels; None = ``max(1, 0.05 * max(H, W))``.

    Returns:
        ``{"fractions": [...], "baseline": "blur" | float, "blur_sigma": float | None, "deletion_auc",
        "insertion_auc"`` (means), ``"deletion_curve", "insertion_curve"`` (mean curves),
        ``"per_image": [{"index", "class_idx", "deletion_auc", "insertion_auc", "deletion_curve",
        "insertion_curve"}]}``.
    """
    images = torch.as_tensor(images).float()
    n, c, h, w = images.shape
    sal = torch.as_tensor(_stack_maps(maps), dtype=torch.float32)
    if sal.shape[-2:] != (h, w):
        sal = nn.functional.interpolate(sal[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0]
    if len(sal) != n:
        raise ValueError(f"got {n} images but {len(sal)} maps.")
    if isinstance(baseline, str):
        if baseline != "blur":
            raise ValueError(f"baseline must be 'blur' or a number, got {baseline!r}.")
        blur_sigma = float(max(1.0, 0.05 * max(h, w)) if blur_sigma is None else blur_sigma)
        base = torch.as_tensor(ndimage.gaussian_filter(images.numpy(), (0, 0, blur_sigma, blur_sigma)))
    else:
        blur_sigma, base = None, torch.full_like(images, float(baseline))
    fractions = np.linspace(0.0, 1.0, steps + 1)
    counts = torch.as_tensor(np.round(fractions * h * w).astype(np.int64))
    dev, records = _device(model), []
    with _eval(model), torch.no_grad():
        if class_idx is None:
            class_idx = model(images.to(dev)).argmax(1).cpu()
        class_idx = torch.as_tensor(class_idx).reshape(-1)
        for i in range(n):
            rank = torch.empty(h * w, dtype=torch.long)
            rank[torch.argsort(-sal[i].flatten(), stable=True)] = torch.arange(h * w)
            removed = (rank[None] < counts[:, None]).reshape(-1, 1, h, w)  # (steps+1, 1, H, W)
            batch = torch.cat([torch.where(removed, base[i], images[i]), torch.where(removed, images[i], base[i])])
            p = torch.softmax(model(batch.to(dev)).float(), dim=1)[:, int(class_idx[i])].cpu().double().numpy()
            dele, ins = p[: steps + 1], p[steps + 1 :]
            records.append({
                "index": i, "class_idx": int(class_idx[i]),
                "deletion_auc": float(np.trapezoid(dele, fractions)),
                "insertion_auc": float(np.trapezoid(ins, fractions)),
                "deletion_curve": dele.tolist(), "insertion_curve": ins.tolist(),
            })
    return {
        "fractions": fractions.tolist(), "baseline": baseline if isinstance(baseline, str) else float(baseline),
        "blur_sigma": blur_sigma,
        "deletion_auc": _nanmean([r["deletion_auc"] for r in records]),
        "insertion_auc": _nanmean([r["insertion_auc"] for r in records]),
        "deletion_curve": np.mean([r["deletion_curve"] for r in records], axis=0).tolist() if records else [],
        "insertion_curve": np.mean([r["insertion_curve"] for r in records], axis=0).tolist() if records else [],
        "per_image": records,
    }


# ------------------------------------------------------------------------------------------------
# attention statistics
# ------------------------------------------------------------------------------------------------


def attention_statistics(maps: Any, labels: Any) -> dict[str, Any]:
    """Where the maps look: centre of mass and spread per image, mean map and agreement per class.

    With weights ``w = max(S, 0)`` and pixel-centre coordinates in image fractions ``u = r / (H-1)``,
    ``v = c / (W-1)`` (0 = first row/column, 1 = last): centre of mass ``(E_w[u], E_w[v])``, spread
    ``sqrt(Var_w[u] + Var_w[v])`` (RMS distance from the centre of mass; ``spread_row`` / ``spread_col`` are the
    per-axis ``sqrt(Var_w)``). Per class: mean map ``mean_i S_i`` and agreement = mean Pearson correlation over
    all pairs of the class's maps (NaN for fewer than 2 maps; a constant map correlates 0 with a structured one
    and 1 with another constant one).

    Args:
        maps: ``(N,H,W)`` or ``(N,1,H,W)``.
        labels: class of each map ``(N,)`` (the true or the predicted class, as the caller intends).

    Returns:
        ``{"per_image": [{"index", "label", "com_row", "com_col", "spread", "spread_row", "spread_col"}]`` (NaN for
        an all-zero map), ``"per_class": {label: {"n", "agreement", "com_row", "com_col", "spread"}}`` (means of
        the per-image values), ``"mean_maps": {label: np.ndarray (H,W)}}``; everything is JSON-ready except
        ``mean_maps`` (drop it or ``.tolist()`` it before dumping).
    """
    s = np.clip(_stack_maps(maps), 0, None)
    labels = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels).reshape(-1).tolist()
    if len(labels) != len(s):
        raise ValueError(f"got {len(s)} maps but {len(labels)} labels.")
    h, w = s.shape[-2:]
    u = np.arange(h)[:, None] / max(h - 1, 1)
    v = np.arange(w)[None, :] / max(w - 1, 1)
    per_image = []
    for i, m in enumerate(s):
        tot = m.sum()
        if tot > 0:
            cu, cv = (m * u).sum() / tot, (m * v).sum() / tot
            vu, vv = (m * (u - cu) ** 2).sum() / tot, (m * (v - cv) ** 2).sum() / tot
            vals = [cu, cv, math.sqrt(vu + vv), math.sqrt(vu), math.sqrt(vv)]
        else:
            vals = [float("nan")] * 5
        keys = ("com_row", "com_col", "spread", "spread_row", "spread_col")
        per_image.append({"index": i, "label": labels[i], **{k: float(x) for k, x in zip(keys, vals)}})
    per_class, mean_maps = {}, {}
    for lab in sorted(set(labels), key=str):
        idx = [i for i, x in enumerate(labels) if x == lab]
        corr = [_corr(s[i], s[j], "pearson") for i, j in combinations(idx, 2)]
        per_class[lab] = {
            "n": len(idx), "agreement": _nanmean(corr) if corr else float("nan"),
            **{k: _nanmean([per_image[i][k] for i in idx]) for k in ("com_row", "com_col", "spread")},
        }
        mean_maps[lab] = s[idx].mean(axis=0)
    return {"per_image": per_image, "per_class": per_class, "mean_maps": mean_maps}


# ------------------------------------------------------------------------------------------------
# summary
# ------------------------------------------------------------------------------------------------


def summarise(records: Sequence[dict[str, Any]], exclude: Sequence[str] = ("index",)) -> dict[str, dict[str, float]]:
    """Mean, standard deviation, median and count of every numeric key of ``records``, ignoring NaN.

    For each key whose values are all real numbers or None (= NaN); bools, strings, lists and ``exclude`` are skipped:
    ``mean = sum x / n``, ``std = sqrt(sum (x - mean)^2 / n)`` (population, ddof=0), the median, and ``n`` = the
    number of non-NaN values (mean/std/median are NaN when ``n == 0``).

    Args:
        records: per-image dicts (as returned by the measures above).
        exclude: keys not to summarise (identifiers).

    Returns:
        ``{key: {"mean", "std", "median", "n"}}``.
    """
    values: dict[str, list[float]] = {}
    skip = set(exclude)
    for rec in records:
        for k, x in rec.items():
            if k in skip:
                continue
            x = float("nan") if x is None else x
            if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)):
                skip.add(k)
                values.pop(k, None)
                continue
            values.setdefault(k, []).append(float(x))
    out = {}
    for k, xs in values.items():
        a = np.asarray(xs, dtype=np.float64)
        a = a[~np.isnan(a)]
        nan = float("nan")
        out[k] = {
            "mean": float(a.mean()) if a.size else nan, "std": float(a.std()) if a.size else nan,
            "median": float(np.median(a)) if a.size else nan, "n": int(a.size),
        }
    return out
