#!/usr/bin/env python
"""Training throughput of each network of the pneumonia bundle, fp32 against channels-last + bf16 autocast.

What is measured
----------------
One training step (forward, cross-entropy, backward, Adam step, ``loss.item()``) on a fixed random batch of
``--batch-size`` one-channel images of ``--size`` px, for each of ``--networks``:

* ``attention_cnn``: :class:`medbundle.networks.AttentionCNN` (the seed's custom CNN);
* ``lite0``: :class:`medbundle.networks.EfficientNetLite0` (random init: the weights do not change the cost);
* ``resnet50``, ``densenet121``, ``efficientnet_b0``: :func:`medbundle.networks.resnet50`, ``densenet121``,
  ``efficientnet_b0``.

Two copies of each network (same initial weights) are stepped, alternating one step at a time so that both see the
same machine load (this matters on a shared machine):

* ``fp32``: contiguous (NCHW) parameters and inputs, no autocast;
* ``bf16_cl``: what a bundle does with ``channels_last`` and ``amp``: the network through
  :func:`medbundle.runtime.prepare_network` (channels-last parameters) and the forward pass through
  :class:`medbundle.inferers.AutocastInferer` (channels-last inputs, bf16 autocast, float32 logits).

After ``--warmup`` untimed steps of each, ``--steps`` timed steps of each (fewer, at least one, once the timed
steps of a network have taken ``--budget`` seconds); reported per network: the median seconds per step and images
per second of each mode, and their ratio (``speedup`` > 1: channels-last + bf16 is faster); also the ratio of
median process CPU times per step (``cpu_speedup``, less sensitive to other processes competing for the cores).
Few steps: the figures are for choosing a network and a mode, not to the last percent.
Whether this CPU has bf16 instructions (AVX512-BF16 / AMX, :func:`medbundle.inferers.bf16_supported`) is reported:
without them bf16 autocast runs but is emulated and slow. ``--threads`` sets torch's intra-op threads: on a 2-core
machine shared with other jobs two threads spin-wait on each other (steps 3-40x slower and erratic, see
``tests/conftest.py``); one thread gives steady figures there.

Output
------
A Markdown table on stdout and the figures as JSON in ``--out`` (default
``<system temp dir>/medbundle_benchmark_networks.json``, never inside the repository).

Example::

    python scripts/benchmark_networks.py                              # about 2 min on 2 quiet cores
    python scripts/benchmark_networks.py --threads 1                  # a busy machine: 74 s of steps measured
    python scripts/benchmark_networks.py --networks attention_cnn lite0 --steps 5
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = Path(tempfile.gettempdir()) / "medbundle_benchmark_networks.json"
if str(REPO) not in sys.path[:1]:
    sys.path.insert(0, str(REPO))

NETWORKS = ("attention_cnn", "lite0", "resnet50", "densenet121", "efficientnet_b0")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--networks", nargs="+", choices=NETWORKS, default=list(NETWORKS), help="networks to time")
    p.add_argument("--batch-size", type=int, default=16, help="images per training step")
    p.add_argument("--size", type=int, default=224, help="square image side")
    p.add_argument("--num-classes", type=int, default=2, help="outputs of each network")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps of each mode")
    p.add_argument("--steps", type=int, default=2, help="timed steps of each mode (at most)")
    p.add_argument("--budget", type=float, default=15.0,
                   help="seconds of timed steps per network after which no new pair of steps starts (at least one)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file of the figures")
    args = p.parse_args(argv)
    args.out = args.out.expanduser().resolve()
    if args.out == REPO or REPO in args.out.parents:
        p.error(f"--out must be outside the repository ({REPO})")
    if args.steps < 1 or args.warmup < 0:
        p.error("--steps must be at least 1 and --warmup at least 0")
    return args


def build(name: str, num_classes: int):
    from medbundle import networks

    return {
        "attention_cnn": lambda: networks.AttentionCNN(num_classes=num_classes),
        "lite0": lambda: networks.EfficientNetLite0(num_classes=num_classes, pretrained=False),
        "resnet50": lambda: networks.resnet50(num_classes=num_classes),
        "densenet121": lambda: networks.densenet121(num_classes=num_classes),
        "efficientnet_b0": lambda: networks.efficientnet_b0(num_classes=num_classes),
    }[name]()


def time_network(name: str, args: argparse.Namespace) -> dict:
    import torch

    from medbundle.inferers import AutocastInferer
    from medbundle.runtime import prepare_network

    torch.manual_seed(0)
    base = build(name, args.num_classes)
    modes = {
        "fp32": (prepare_network(copy.deepcopy(base), "cpu", channels_last=False),
                 AutocastInferer(amp=False, channels_last=False)),
        "bf16_cl": (prepare_network(copy.deepcopy(base), "cpu", channels_last=True),
                    AutocastInferer(amp=True, channels_last=True)),
    }
    steps = {}
    for mode, (net, inferer) in modes.items():
        net.train()
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
        steps[mode] = (net, inferer, optimizer)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch_size, 1, args.size, args.size, generator=gen)
    y = torch.randint(0, args.num_classes, (args.batch_size,), generator=gen)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step(mode: str) -> tuple[float, float]:
        net, inferer, optimizer = steps[mode]
        start, cpu = time.perf_counter(), time.process_time()
        loss = loss_fn(inferer(x, net), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()
        return time.perf_counter() - start, time.process_time() - cpu

    times: dict[str, list[float]] = {mode: [] for mode in modes}
    cpu_times: dict[str, list[float]] = {mode: [] for mode in modes}
    order = list(modes)
    for i in range(args.warmup + args.steps):
        if i > args.warmup and sum(map(sum, times.values())) > args.budget:
            break  # a slow network on a loaded machine: keep the whole run short
        for mode in order if i % 2 == 0 else order[::-1]:  # alternate which mode goes first
            seconds, cpu = step(mode)
            if i >= args.warmup:
                times[mode].append(seconds)
                cpu_times[mode].append(cpu)
    res = {"parameters": sum(p.numel() for p in base.parameters())}
    for mode, values in times.items():
        median = statistics.median(values)
        res[mode] = {"median_step_s": median, "images_per_s": args.batch_size / median, "steps_s": values,
                     "median_cpu_s": statistics.median(cpu_times[mode])}
    res["speedup"] = res["fp32"]["median_step_s"] / res["bf16_cl"]["median_step_s"]
    res["cpu_speedup"] = res["fp32"]["median_cpu_s"] / res["bf16_cl"]["median_cpu_s"]
    return res


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    import torch

    from medbundle.inferers import bf16_supported
    from medbundle.utils import atomic_write_json

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    figures = {
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(), "bf16_instructions": bf16_supported("cpu")},
        "networks": {},
    }
    print(f"batch {args.batch_size} x 1 x {args.size} x {args.size}, {args.threads} threads, "
          f"bf16 instructions: {bf16_supported('cpu')}; {args.warmup} warm-up + up to {args.steps} timed steps "
          "per mode")
    print("| network | parameters | fp32 images/s | channels-last + bf16 images/s | speedup | CPU-time speedup |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in args.networks:
        res = figures["networks"][name] = time_network(name, args)
        print(f"| {name} | {res['parameters'] / 1e6:.2f} M | {res['fp32']['images_per_s']:.1f} | "
              f"{res['bf16_cl']['images_per_s']:.1f} | {res['speedup']:.2f}x ({len(res['fp32']['steps_s'])} steps) | "
              f"{res['cpu_speedup']:.2f}x |",
              flush=True)
    figures["total_s"] = time.perf_counter() - started
    atomic_write_json(args.out, figures)
    print(f"{figures['total_s']:.0f} s in all; figures in {args.out}")
    return figures


if __name__ == "__main__":
    main()
