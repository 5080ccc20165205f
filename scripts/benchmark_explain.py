#!/usr/bin/env python
"""Time the saliency methods of ``medbundle.explain`` against a forward pass and against ``monai.visualize``.

What is measured
----------------
*Grad-CAM cost* (``--cases``), on a batch of ``--batch-size`` synthetic head-CT slices
(:func:`medbundle.data.demo.ct_phantom`) for each case:

* ``ctnet64``: the ct_infection bundle's default CPU network (``CTNet``, features 32..512, ``pooled_size=1``,
  batch norm, 64 px), made channels-last by :func:`medbundle.runtime.prepare_network` as the bundle does;
* ``ctnet224``: the seed's full-size network (``configs/full_size.json``: features 64..1024, ``pooled_size=7``,
  no batch norm, 224 px), also channels-last.

Timed, interleaved one call at a time in a rotating order after ``--warmup`` untimed rounds (so that all
candidates see the same machine load): a no-grad fp32 forward pass of the batch (channels-last input, what the
bundle's ``AutocastInferer`` runs where bf16 does not pay); ``medbundle.explain.GradCAM`` and ``GradCAMpp``
(target found by ``find_target_layer``: the last block's conv, ``features.4.0``); ``monai.visualize.GradCAM``
on a deep copy of the network (its hooks are never removed, so it must not touch the network the other
candidates use). On the seed's network MONAI's full backward hook on ``features.4.0`` raises (its output is
modified by the in-place ReLU that follows), so MONAI targets ``features.4.2`` (the ReLU, whose ``inplace``
flag MONAI switches off on its copy). Reported: median wall time of each and its ratio to the forward pass,
plus the median of per-round ratios and the ratio of median process CPU times.

*Occlusion* (``--occlusion``, on by default): ``medbundle.explain.OcclusionSensitivity`` with its defaults
versus ``monai.visualize.OcclusionSensitivity(model)`` with MONAI's defaults, on one 224 x 224 slice. On a
randomly initialised network both maps are texture noise, so the network is first trained briefly at 224 px
(bundle CPU architecture, severity 0 vs 2 phantoms, ``--occ-train-images``, ``--occ-train-epochs``, best
held-out epoch kept); the weights are cached in the temp dir (``--retrain`` to redo it). The image is a
held-out severity-2 phantom. Reported: median wall time of ours (``--occ-repeats``) and of MONAI
(``--monai-occ-repeats``, alternating with ours), the speed-up in wall time, in process CPU time (less sensitive
to other processes on a shared machine) and in forward passes (1296 against our 121 + 1 unoccluded), and Pearson
correlations of the maps *the right way round*: MONAI returns the probability with the region occluded
(low = relevant), ours the drop ``p(x) - p(occluded)``, so ``raw`` correlates our raw map with ``-monai_map``
(same as with ``p(x) - monai_map``); ``normalised`` correlates our final map (the default: the signed drop,
min-max rescaled) with ``-monai_map``; ``positive_only`` correlates the map of ``positive_only=True`` (drop
clipped at 0, then rescaled) with MONAI's map turned into the same form (``p(x) - monai_map`` clipped at 0 and
min-max normalised). MONAI applies a sigmoid (not a
softmax) to one-channel inputs; ``--monai-softmax`` adds a MONAI run with a softmax for comparison.

Output
------
A Markdown table on stdout and the figures as JSON in ``--out`` (default
``<system temp dir>/medbundle_benchmark_explain.json``, never inside the repository).

Examples::

    python scripts/benchmark_explain.py --threads 2                       # everything (~5-10 min on 2 cores)
    python scripts/benchmark_explain.py --cases ctnet64 --no-occlusion    # quick check
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = Path(tempfile.gettempdir()) / "medbundle_benchmark_explain.json"
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "medbundle_benchmark_explain_ctnet224.pt"
if str(REPO) not in sys.path[:1]:
    sys.path.insert(0, str(REPO))

CASES = {
    "ctnet64": {"size": 64, "net": {"features": (32, 64, 128, 256, 512), "pooled_size": 1, "batch_norm": True,
                                    "dropout": 0.0}, "monai_layer": "features.4.0"},
    "ctnet224": {"size": 224, "net": {"features": (64, 128, 256, 512, 1024), "pooled_size": 7, "batch_norm": False,
                                      "dropout": 0.1}, "monai_layer": "features.4.2"},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES), help="Grad-CAM timing cases")
    p.add_argument("--batch-size", type=int, default=16, help="images per Grad-CAM batch")
    p.add_argument("--repeats", type=int, default=9, help="timed rounds per Grad-CAM case")
    p.add_argument("--warmup", type=int, default=2, help="untimed rounds per Grad-CAM case")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--occlusion", action=argparse.BooleanOptionalAction, default=True,
                   help="run the occlusion comparison")
    p.add_argument("--occ-repeats", type=int, default=3, help="timed runs of our occlusion")
    p.add_argument("--monai-occ-repeats", type=int, default=2, help="timed runs of MONAI's occlusion")
    p.add_argument("--monai-softmax", action="store_true", help="also run MONAI's occlusion with a softmax")
    p.add_argument("--occ-train-images", type=int, default=192, help="training images of the occlusion model")
    p.add_argument("--occ-train-epochs", type=int, default=10, help="training epochs of the occlusion model")
    p.add_argument("--occ-model", type=Path, default=DEFAULT_CACHE, help="cache of the trained occlusion model")
    p.add_argument("--retrain", action="store_true", help="train the occlusion model even if cached")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file of the figures")
    args = p.parse_args(argv)
    args.out = args.out.expanduser().resolve()
    if args.out == REPO or REPO in args.out.parents:
        p.error(f"--out must be outside the repository ({REPO})")
    return args


def _phantoms(n: int, size: int, seed: int, severities: tuple[int, ...] = (0, 1, 2)):
    import numpy as np
    import torch

    from medbundle.data.demo import ct_phantom

    rng = np.random.default_rng(seed)
    labels = [severities[i % len(severities)] for i in range(n)]
    images = np.stack([ct_phantom(rng, s, size)[0] for s in labels])[:, None]
    return torch.from_numpy(images), torch.tensor(labels)


def _network(net: dict, device: str = "cpu"):
    import torch

    from medbundle.runtime import prepare_network
    from medbundle.networks import CTNet

    torch.manual_seed(0)
    return prepare_network(CTNet(in_channels=1, num_classes=3, **net), device, channels_last=True).eval()


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int) -> dict[str, dict]:
    """Run every function once per round, the order rotating; median wall and CPU seconds of the timed rounds."""
    names = list(fns)
    wall: dict[str, list[float]] = {k: [] for k in names}
    cpu: dict[str, list[float]] = {k: [] for k in names}
    for r in range(warmup + repeats):
        order = names[r % len(names):] + names[: r % len(names)]
        for k in order:
            w0, c0 = time.perf_counter(), time.process_time()
            fns[k]()
            if r >= warmup:
                wall[k].append(time.perf_counter() - w0)
                cpu[k].append(time.process_time() - c0)
    return {k: {"wall_s": wall[k], "cpu_s": cpu[k], "median_wall_s": statistics.median(wall[k]),
                "median_cpu_s": statistics.median(cpu[k])} for k in names}


def gradcam_case(name: str, args: argparse.Namespace) -> dict:
    import monai.visualize as mv
    import torch

    from medbundle.explain import GradCAM, GradCAMpp

    case = CASES[name]
    model = _network(case["net"])
    x = _phantoms(args.batch_size, case["size"], seed=0)[0].contiguous(memory_format=torch.channels_last)
    ours, ourspp = GradCAM(model, channels_last=True), GradCAMpp(model, channels_last=True)
    monai_cam = mv.GradCAM(copy.deepcopy(model), target_layers=case["monai_layer"])

    def forward() -> None:
        with torch.no_grad():
            model(x)

    t = interleaved({"forward": forward, "gradcam": lambda: ours(x), "gradcampp": lambda: ourspp(x),
                     "monai_gradcam": lambda: monai_cam(x)}, args.repeats, args.warmup)
    fwd = t["forward"]
    rounds = len(fwd["wall_s"])
    out = {"size": case["size"], "network": {k: list(v) if isinstance(v, tuple) else v for k, v in case["net"].items()},
           "batch_size": args.batch_size, "target_layer": ours.layer_name(x), "monai_target_layer": case["monai_layer"],
           "timings": t}
    for k in ("gradcam", "gradcampp", "monai_gradcam"):
        out[f"{k}_ratio"] = t[k]["median_wall_s"] / fwd["median_wall_s"]
        out[f"{k}_ratio_paired_median"] = statistics.median(t[k]["wall_s"][i] / fwd["wall_s"][i] for i in range(rounds))
        out[f"{k}_ratio_cpu"] = t[k]["median_cpu_s"] / fwd["median_cpu_s"]
    return out


def _train_occlusion_model(args: argparse.Namespace):
    """The bundle's CPU CTNet trained at 224 px on severity 0 vs 2 phantoms (best held-out epoch kept)."""
    import torch
    import torch.nn.functional as F

    model = _network(CASES["ctnet64"]["net"])
    if args.occ_model.is_file() and not args.retrain:
        state = torch.load(args.occ_model, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        return model.eval(), {**state["info"], "cached": str(args.occ_model)}
    t0 = time.perf_counter()
    x, y = _phantoms(args.occ_train_images, 224, seed=10, severities=(0, 2))
    xv, yv = _phantoms(40, 224, seed=11, severities=(0, 2))
    x, xv = (t.contiguous(memory_format=torch.channels_last) for t in (x, xv))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.occ_train_epochs)
    gen = torch.Generator().manual_seed(0)
    best, best_state = -1.0, None
    for epoch in range(args.occ_train_epochs):
        model.train()
        for idx in torch.randperm(len(x), generator=gen).split(16):
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
        sched.step()
        with torch.no_grad():
            acc = (model.eval()(xv).argmax(1) == yv).float().mean().item()
        print(f"  occlusion model epoch {epoch + 1}/{args.occ_train_epochs}: held-out accuracy {acc:.3f}", flush=True)
        if acc > best:
            best, best_state = acc, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    info = {"train_images": args.occ_train_images, "epochs": args.occ_train_epochs, "held_out_accuracy": best,
            "train_seconds": time.perf_counter() - t0}
    args.occ_model.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "info": info}, args.occ_model)
    return model.eval(), info


def occlusion_case(args: argparse.Namespace) -> dict:
    import monai.visualize as mv
    import numpy as np
    import torch

    from medbundle.explain import OcclusionSensitivity, normalize_maps

    model, info = _train_occlusion_model(args)
    x = _phantoms(1, 224, seed=12, severities=(2,))[0]
    with torch.no_grad():
        logits = model(x)
    c = int(logits.argmax())
    ours = OcclusionSensitivity(model, channels_last=True)
    monai_occ = mv.OcclusionSensitivity(model, verbose=False)
    res: dict[str, Any] = {}
    t: dict[str, list[float]] = {"ours": [], "monai": [], "ours_cpu": [], "monai_cpu": []}
    for r in range(max(args.occ_repeats, args.monai_occ_repeats)):  # alternating: ours, MONAI, ours, ...
        if r < args.occ_repeats:
            w0, c0 = time.perf_counter(), time.process_time()
            exp = ours.explain(x, c)
            t["ours"].append(time.perf_counter() - w0)
            t["ours_cpu"].append(time.process_time() - c0)
        if r < args.monai_occ_repeats:
            w0, c0 = time.perf_counter(), time.process_time()
            monai_map = monai_occ(x)[0][0, c].as_tensor()
            t["monai"].append(time.perf_counter() - w0)
            t["monai_cpu"].append(time.process_time() - c0)

    raw = ours.attribute(x, c)
    positive = OcclusionSensitivity(model, positive_only=True, channels_last=True)(x, c)

    def corr(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(np.corrcoef(a.flatten().numpy(), b.flatten().numpy())[0, 1])

    def as_ours(p_unoccluded: torch.Tensor, occ_map: torch.Tensor) -> torch.Tensor:
        return normalize_maps((p_unoccluded - occ_map).clamp(min=0)[None, None])

    p_sig = logits.sigmoid()[0, c]  # what MONAI's default activation gives for a one-channel input
    res.update({
        "class": c, "probs": logits.softmax(1)[0].tolist(), "model": info,
        "our_settings": {"mask_size": ours.grid((224, 224))[0], "grid": [len(g) for g in ours.grid((224, 224))[1:]],
                         "forward_passes": len(ours.grid((224, 224))[1]) * len(ours.grid((224, 224))[2])},
        "monai_forward_passes": 36 * 36,
        "ours_s": t["ours"], "monai_s": t["monai"], "ours_cpu_s": t["ours_cpu"], "monai_cpu_s": t["monai_cpu"],
        "ours_median_s": statistics.median(t["ours"]), "monai_median_s": statistics.median(t["monai"]),
        "speedup_cpu": statistics.median(t["monai_cpu"]) / statistics.median(t["ours_cpu"]),
        "corr_raw": corr(raw[0, 0], -monai_map), "corr_normalised": corr(exp.maps[0, 0], -monai_map),
        "corr_positive_only": corr(positive[0, 0], as_ours(p_sig, monai_map)),
    })
    res["speedup"] = res["monai_median_s"] / res["ours_median_s"]
    if args.monai_softmax:
        soft = mv.OcclusionSensitivity(model, verbose=False, activate=lambda o: o.softmax(1))(x)[0][0, c].as_tensor()
        res["corr_raw_monai_softmax"] = corr(raw[0, 0], -soft)
        res["corr_normalised_monai_softmax"] = corr(exp.maps[0, 0], -soft)
    return res


def markdown_table(res: dict) -> str:
    rows = [("threads / batch / load average (1 min, before)",
             f"{res['threads']} / {res['batch_size']} / {res['load_average']}")]
    for name, r in res.get("gradcam", {}).items():
        t = r["timings"]
        rows += [
            (f"{name}: forward (no grad) ms", f"{1e3 * t['forward']['median_wall_s']:.1f}"),
            (f"{name}: Grad-CAM ms / **ratio to forward**",
             (f"{1e3 * t['gradcam']['median_wall_s']:.1f} / **{r['gradcam_ratio']:.2f}** "
              f"(paired {r['gradcam_ratio_paired_median']:.2f}, CPU {r['gradcam_ratio_cpu']:.2f})")),
            (f"{name}: Grad-CAM++ ms / ratio",
             f"{1e3 * t['gradcampp']['median_wall_s']:.1f} / {r['gradcampp_ratio']:.2f}"),
            (f"{name}: MONAI GradCAM ms / **ratio to forward**",
             (f"{1e3 * t['monai_gradcam']['median_wall_s']:.1f} / **{r['monai_gradcam_ratio']:.2f}** "
              f"(paired {r['monai_gradcam_ratio_paired_median']:.2f}, CPU {r['monai_gradcam_ratio_cpu']:.2f})")),
        ]
    o = res.get("occlusion")
    if o:
        rows += [
            ("occlusion model held-out accuracy", f"{o['model']['held_out_accuracy']:.3f}"),
            ("occlusion: ours s (forward passes)", f"{o['ours_median_s']:.2f} ({o['our_settings']['forward_passes']})"),
            ("occlusion: MONAI defaults s (forward passes)",
             f"{o['monai_median_s']:.2f} ({o['monai_forward_passes']})"),
            ("occlusion: **speed-up** wall (CPU time; forward passes)",
             (f"**{o['speedup']:.1f}x** ({o['speedup_cpu']:.1f}x; "
              f"{o['monai_forward_passes'] / (o['our_settings']['forward_passes'] + 1):.1f}x)")),
            ("occlusion: **Pearson raw** (ours vs -MONAI)", f"**{o['corr_raw']:.3f}**"),
            ("occlusion: **Pearson final map** (default, vs -MONAI)", f"**{o['corr_normalised']:.3f}**"),
            ("occlusion: Pearson positive_only maps (both clipped)", f"{o['corr_positive_only']:.3f}"),
        ]
        if "corr_raw_monai_softmax" in o:
            rows.append(("occlusion: Pearson raw / normalised vs MONAI+softmax",
                         f"{o['corr_raw_monai_softmax']:.3f} / {o['corr_normalised_monai_softmax']:.3f}"))
    width = max(len(k) for k, _ in rows)
    return "\n".join([f"| {'figure'.ljust(width)} | value |", f"|{'-' * (width + 2)}|-------|"]
                     + [f"| {k.ljust(width)} | {v} |" for k, v in rows])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import monai
    import torch

    from medbundle.inferers import bf16_supported
    from medbundle.utils import atomic_write_json

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning, module="monai")  # MONAI's indexing deprecation noise
    res: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "monai": monai.__version__},
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "bundle_would_autocast_bf16": bf16_supported("cpu")},
        "threads": torch.get_num_threads(), "batch_size": args.batch_size,
        "load_average": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "gradcam": {},
    }
    for name in args.cases:
        print(f"timing Grad-CAM on {name} ...", flush=True)
        res["gradcam"][name] = gradcam_case(name, args)
    if args.occlusion:
        print("occlusion comparison ...", flush=True)
        res["occlusion"] = occlusion_case(args)
    print()
    print(markdown_table(res))
    atomic_write_json(args.out, res)
    print(f"\nfigures written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
