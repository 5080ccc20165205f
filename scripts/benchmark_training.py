#!/usr/bin/env python
"""Time the ct_infection bundle's training step against a hand-written PyTorch loop, and the demo run.

What is compared
----------------
*Bundle*: the real ``SupervisedTrainer`` of ``bundles/ct_infection/configs/train.json``, parsed with
``monai.bundle.ConfigParser`` (``train.json`` + ``metadata.json``), with every train handler and
writer of the bundle attached (LR scheduler, ``StatsHandler``, per-epoch full checkpoint, TensorBoard
per-iteration loss, the epoch CSV log, ...). Overrides:

* ``dataset_dir`` / ``output_dir`` point at a temporary folder holding synthetic demo data made by
  :func:`medbundle.data.make_ct_demo` (``--n-train`` images, 900 by default as in the demo, so an
  epoch has the demo's 29 iterations; ``--n-val``/``--n-test`` tiny);
* validation is switched off with ``val_interval = 10**9`` (the ``ValidationHandler`` stays attached
  but never fires), so that the comparison is about training only;
* ``epochs`` (the trainer's ``max_epochs`` and the cosine schedule's length) is set a little above the
  number of epochs benchmarked, so the run never completes; it does not change the cost of a step.

*Hand*: a plain PyTorch loop on a deep copy of the bundle's network taken before either side trains
(same architecture, same initial weights, same channels-last parameters), the bundle's own loss
object, a fresh ``torch.optim.Adam`` built with the bundle optimizer's parameter groups and
hyper-parameters (lr, betas, eps, weight decay per group), and exactly what the bundle's
``AutocastInferer`` does: inputs made channels-last, the forward pass under
``torch.autocast(device_type, dtype=torch.bfloat16, enabled=...)`` (``enabled`` decided once, from
the inferer's ``amp`` setting and :func:`medbundle.engine.bf16_supported`), logits cast back with
``.float()``; then ``loss.mean()``, ``zero_grad()``, ``backward()``, ``step()`` and a
``loss.item()`` per step (a hand loop logs its loss too). Before timing, the two forward paths are
checked to give identical logits and loss on the first batch (eval mode, no grad).

Data
----
By default (``--data batches``) one epoch of batches is drawn once from the bundle's own
``train#dataloader`` (its caching, augmentation and collation) and kept in a list; the trainer's
data loader is replaced by that list and the hand loop steps through the same list in the same
order, so the two sides train on identical batches and no augmentation is timed. With
``--data loader`` both sides iterate the bundle's ``train#dataloader`` itself (random augmentation
and collation are then timed on both sides).

Timing
------
The two sides are interleaved one training step at a time, the order alternating: bundle, hand,
hand, bundle, bundle, hand, ... so that both see the same machine load (this matters on a shared
2-core machine, where other processes make whole-epoch timings vary by 2x or more). The bundle is
stepped by its real ignite loop: a handler attached after all of the bundle's
``ITERATION_COMPLETED`` handlers calls ``engine.interrupt()`` and the next ``trainer.run()``
resumes it, so one timed bundle step covers ignite's loop, fetching the batch, ``prepare_batch``,
the inferer, loss, backward, optimizer step and every per-iteration handler. The step that crosses
an epoch boundary also runs the bundle's epoch-level handlers (checkpoint save, CSV log, LR step);
their cost is measured as that step's time minus the median step, and spread over the epoch's
iterations. After ``--warmup`` untimed epochs, ``--epochs`` epochs are timed; with ``B`` the median
bundle step, ``E`` the median epoch-level cost, ``n`` the iterations per epoch and ``H`` the median
hand step (full batches only):

* ``bundle/hand ratio`` (the headline) = ``(B + E / n) / H``;
* also reported: ``B / H`` (step only), the median of the paired per-step ratios, and the ratio of
  median process CPU times per step (less sensitive to other processes competing for the cores).

images/s = batch size / per-step time. ``torch.set_num_threads(--threads)`` is set once for both.

Demo run
--------
Unless ``--skip-demo-run``, the default demo is then run end to end as a user types it, in a
subprocess from the repository root with a fresh temporary ``MEDBUNDLE_HOME``::

    python -m monai.bundle run --config_file bundles/ct_infection/configs/train.json
    python -m monai.bundle run --config_file \\
        "['bundles/ct_infection/configs/train.json','bundles/ct_infection/configs/evaluate.json']"

Each command's wall time is measured (the training one includes making the demo data), and the
test accuracy and macro one-vs-rest AUC are read from
``<MEDBUNDLE_HOME>/runs/ct_infection/eval/metrics.json``. These wall times are whatever the machine
gives at the time: on a shared machine, check the load (``uptime``) before quoting them.

Output
------
A Markdown table of all figures on stdout, and the same figures (with every per-step time) as JSON
written atomically to ``--out`` (default: ``<system temp dir>/medbundle_benchmark_training.json``,
never inside the repository).

Examples::

    python scripts/benchmark_training.py                       # defaults, with the demo run
    python scripts/benchmark_training.py --n-train 96 --epochs 2 --skip-demo-run   # quick check
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BUNDLE_NAME = "ct_infection"
BUNDLE = REPO / "bundles" / BUNDLE_NAME
TRAIN_JSON = f"bundles/{BUNDLE_NAME}/configs/train.json"
EVAL_JSON = f"bundles/{BUNDLE_NAME}/configs/evaluate.json"
DEFAULT_OUT = Path(tempfile.gettempdir()) / "medbundle_benchmark_training.json"
# benchmark this checkout's medbundle, whichever copy happens to be pip-installed
if str(REPO) not in sys.path[:1]:
    sys.path.insert(0, str(REPO))


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show defaults, except for on/off flags (their help says it)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            return action.help
        return super()._get_help_string(action)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=(
            "Time the ct_infection bundle's SupervisedTrainer (all train handlers, validation off) against a "
            "hand-written PyTorch loop on the same network, batches and data, print images/s and the "
            "bundle/hand ratio, then time the default demo train + evaluate commands and report test accuracy/AUC. "
            "See the module docstring for the method."
        ),
        formatter_class=_HelpFormatter,
    )
    p.add_argument("--n-train", type=int, default=900,
                   help="training images of the synthetic data; 900 = the demo's, i.e. the demo's epoch length")
    p.add_argument("--n-val", type=int, default=9, help="validation images (validation is off; kept tiny)")
    p.add_argument("--n-test", type=int, default=9, help="test images (unused by the benchmark; kept tiny)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="override the bundle's batch_size (None: the bundle's own)")
    p.add_argument("--data", choices=("batches", "loader"), default="batches",
                   help="'batches': both sides iterate one epoch of batches pre-collated from train#dataloader; "
                        "'loader': both iterate train#dataloader itself (augmentation timed on both sides)")
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up epochs (of interleaved steps)")
    p.add_argument("--epochs", type=int, default=4,
                   help="timed epochs; each side runs one training step in turn, the order alternating")
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads for both sides (None: torch's default, usually the core count)")
    p.add_argument("--max-ratio", type=float, default=1.10, help="acceptance bound on the bundle/hand ratio")
    p.add_argument("--strict", action="store_true", help="exit with status 1 when the ratio exceeds --max-ratio")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="after timing, run one more bundle epoch under cProfile and print the top N functions")
    demo = p.add_mutually_exclusive_group()
    demo.add_argument("--demo-run", dest="demo_run", action="store_true", default=True,
                      help="run the default demo train + evaluate commands end to end and time them (default)")
    demo.add_argument("--skip-demo-run", dest="demo_run", action="store_false", help="skip the demo run")
    p.add_argument("--demo-timeout", type=int, default=3600, help="seconds allowed to each demo command")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file of the figures (written atomically)")
    p.add_argument("--keep-temp", action="store_true", help="keep the temporary data/output folders")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.warmup < 0 or args.n_train < 1:
        p.error("--epochs must be >= 1, --warmup >= 0, --n-train >= 1")
    out = args.out.expanduser().resolve()
    if out == REPO or REPO in out.parents:
        p.error(f"--out must be outside the repository ({REPO})")
    args.out = out
    return args


# ---------------------------------------------------------------------------------------------------------------
# the two sides
# ---------------------------------------------------------------------------------------------------------------


def build_bundle(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Make the demo data and parse the bundle; return its network, loss, optimizer, inferer, loader, trainer."""
    from monai.bundle import ConfigParser

    from medbundle.data import make_ct_demo

    data_dir, out_dir = workdir / "data", workdir / "outputs"
    t0 = time.perf_counter()
    make_ct_demo(data_dir, n_train=args.n_train, n_val=args.n_val, n_test=args.n_test, seed=0)
    data_s = time.perf_counter() - t0

    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "train.json"))
    parser.read_meta(str(BUNDLE / "configs" / "metadata.json"))
    overrides: dict[str, Any] = {
        "bundle_root": str(BUNDLE),
        "dataset_dir": str(data_dir),
        "output_dir": str(out_dir),
        "val_interval": 10**9,  # ValidationHandler attached but never fires: training only
        "epochs": args.warmup + args.epochs + (1 if args.profile else 0) + 2,  # never completes
    }
    if args.batch_size is not None:
        overrides["batch_size"] = args.batch_size
    parser.update(overrides)

    t0 = time.perf_counter()
    parser.get_parsed_content("initialize")  # set_determinism(seed), log_run (as `monai.bundle run` does)
    network = parser.get_parsed_content("network")
    # the hand loop's network: same architecture and initial weights, taken before anything trains
    hand_network = copy.deepcopy(network)
    trainer = parser.get_parsed_content("train#trainer")  # instantiates loss, optimizer, handlers, datasets
    parse_s = time.perf_counter() - t0
    return {
        "parser": parser,
        "network": network,
        "hand_network": hand_network,
        "loss": parser.get_parsed_content("loss"),
        "optimizer": parser.get_parsed_content("optimizer"),
        "inferer": parser.get_parsed_content("train#inferer"),
        "dataloader": parser.get_parsed_content("train#dataloader"),
        "trainer": trainer,
        "device": parser.get_parsed_content("device"),
        "data_seconds": data_s,
        "parse_seconds": parse_s,
    }


def hand_optimizer(bundle_net, hand_net, bundle_opt):
    """A fresh Adam over ``hand_net`` with the bundle optimizer's parameter groups and hyper-parameters."""
    import torch

    index = {id(p): i for i, p in enumerate(bundle_net.parameters())}
    hand_params = list(hand_net.parameters())
    groups = []
    for g in bundle_opt.param_groups:
        hyper = {k: v for k, v in g.items() if k not in ("params", "initial_lr")}  # initial_lr: the scheduler's
        groups.append({**hyper, "params": [hand_params[index[id(p)]] for p in g["params"]]})
    return torch.optim.Adam(groups)


class HandLoop:
    """The hand-written training loop: what ``SupervisedTrainer`` + ``AutocastInferer`` compute, in plain PyTorch."""

    def __init__(self, network, loss_fn, optimizer, inferer, device) -> None:
        from medbundle.engine import bf16_supported

        self.network, self.loss_fn, self.optimizer, self.device = network, loss_fn, optimizer, device
        # AutocastInferer's settings, decided once
        self.amp = bf16_supported(device) if inferer.amp == "auto" else bool(inferer.amp)
        self.channels_last = inferer.channels_last
        self.dtype = inferer.dtype
        self.losses: list[float] = []

    def forward(self, x):
        import torch

        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=x.device.type, dtype=self.dtype, enabled=self.amp):
            out = self.network(x)
        return out.float()

    def step(self, batch) -> int:
        """One training step on ``batch``; returns the number of images."""
        x, y = batch["image"].to(self.device), batch["label"].to(self.device)
        self.network.train()
        self.optimizer.zero_grad()
        loss = self.loss_fn(self.forward(x), y).mean()
        loss.backward()
        self.optimizer.step()
        self.losses.append(loss.item())
        return len(x)


def _forever(data):
    """Iterate ``data`` epoch after epoch (a list, or a DataLoader re-iterated each epoch as in a training loop)."""
    while True:
        yield from data


class BundleSteps:
    """Step the bundle's trainer one iteration per call: ``interrupt()`` after the iteration, ``run()`` resumes.

    The interrupting handler is attached after all of the bundle's ``ITERATION_COMPLETED`` handlers,
    so a call covers everything the bundle does for one iteration (and, on the first iteration of an
    epoch, the previous epoch's ``EPOCH_COMPLETED`` handlers and the new epoch's ``EPOCH_STARTED``).
    """

    def __init__(self, trainer) -> None:
        from ignite.engine import Events

        self.trainer = trainer
        trainer.add_event_handler(Events.ITERATION_COMPLETED, self._interrupt)

    @staticmethod
    def _interrupt(engine) -> None:
        engine.interrupt()

    def close(self) -> None:
        """End the interrupted run cleanly (``terminate`` is honoured before the next batch is fetched)."""
        if self.trainer._internal_run_generator is not None:
            self.trainer.terminate(skip_completed=True)
            self.trainer.run()

    def step(self) -> tuple[int, bool]:
        """One iteration; returns its number of images and whether it started a new epoch."""
        state = self.trainer.state
        epoch, iteration = state.epoch, state.iteration
        self.trainer.run()
        if state.iteration != iteration + 1:
            raise RuntimeError(f"trainer ran iterations {iteration}->{state.iteration}, expected one")
        return len(state.batch["image"]), state.epoch != epoch


def _sync(device) -> None:
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        torch.cuda.synchronize(device)


def check_equivalence(b: dict, hand: HandLoop, batch) -> dict:
    """Logits and loss of both forward paths on one batch, before training (eval mode, no grad)."""
    import torch

    net, hnet = b["network"], b["hand_network"]
    x, y = batch["image"].to(b["device"]), batch["label"].to(b["device"])
    net.eval(), hnet.eval()
    with torch.no_grad():
        pb = b["inferer"](x, net)
        ph = hand.forward(x)
        lb, lh = b["loss"](pb, y).mean().item(), b["loss"](ph, y).mean().item()
    net.train(), hnet.train()
    same_weights = all(torch.equal(p, q) for p, q in zip(net.state_dict().values(), hnet.state_dict().values()))
    return {
        "same_initial_weights": same_weights,
        "max_abs_logit_diff": float((pb - ph).abs().max()),
        "loss_bundle": lb,
        "loss_hand": lh,
    }


def _med(values) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


def summarise(steps: list[dict], n_iter: int, batch_size: int) -> dict:
    """Per-step medians, the epoch-level cost of the bundle and the ratios, from the timed steps."""
    full = [s for s in steps if s["images"] == batch_size and s["hand_images"] == batch_size]
    regular = [s for s in full if not s["new_epoch"]]
    b_step = _med(s["bundle_s"] for s in regular)
    h_step = _med(s["hand_s"] for s in regular)
    # the epoch-boundary step runs the epoch-level handlers on top of a normal step
    epoch_cost = _med(s["bundle_s"] - b_step for s in full if s["new_epoch"])
    if epoch_cost != epoch_cost:  # no full-batch boundary step timed
        epoch_cost = 0.0
    b_cost = b_step + epoch_cost / n_iter
    return {
        "timed_steps": len(steps),
        "regular_full_batch_pairs": len(regular),
        "bundle": {
            "median_step_ms": 1e3 * b_step,
            "epoch_level_handlers_ms": 1e3 * epoch_cost,
            "amortised_step_ms": 1e3 * b_cost,
            "images_per_second": batch_size / b_cost,
            "step_only_images_per_second": batch_size / b_step,
            "median_step_cpu_ms": 1e3 * _med(s["bundle_cpu_s"] for s in regular),
            "p25_p75_step_ms": [1e3 * q for q in _quartiles([s["bundle_s"] for s in regular])],
        },
        "hand": {
            "median_step_ms": 1e3 * h_step,
            "images_per_second": batch_size / h_step,
            "median_step_cpu_ms": 1e3 * _med(s["hand_cpu_s"] for s in regular),
            "p25_p75_step_ms": [1e3 * q for q in _quartiles([s["hand_s"] for s in regular])],
        },
        "ratio": b_cost / h_step,
        "ratio_step_only": b_step / h_step,
        "ratio_paired_median": _med(s["bundle_s"] / s["hand_s"] for s in regular),
        "ratio_cpu_time": _med(s["bundle_cpu_s"] for s in regular) / _med(s["hand_cpu_s"] for s in regular),
    }


def _quartiles(values: list[float]) -> list[float]:
    if len(values) < 2:
        return [float("nan"), float("nan")]
    q = statistics.quantiles(values, n=4)
    return [q[0], q[2]]


def benchmark(args: argparse.Namespace, workdir: Path) -> dict:
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()

    b = build_bundle(args, workdir)
    trainer, device = b["trainer"], b["device"]
    hand = HandLoop(b["hand_network"], b["loss"], hand_optimizer(b["network"], b["hand_network"], b["optimizer"]),
                    b["inferer"], device)

    t0 = time.perf_counter()
    batches = list(b["dataloader"])  # one epoch: the bundle's caching, augmentation, collation
    epoch_of_batches_s = time.perf_counter() - t0
    n_iter = len(batches)
    if trainer.state.epoch_length != n_iter:
        raise RuntimeError(f"trainer epoch_length {trainer.state.epoch_length} != {n_iter} batches")
    batch_size = len(batches[0]["image"])
    if args.data == "batches":
        trainer.data_loader = batches  # Workflow.run() hands self.data_loader to ignite
        hand_batches = _forever(batches)
    else:
        hand_batches = _forever(b["dataloader"])

    equivalence = check_equivalence(b, hand, batches[0])
    print(f"equivalence check (first batch, eval mode): max |logit diff| {equivalence['max_abs_logit_diff']:.3g}, "
          f"loss bundle {equivalence['loss_bundle']:.6f} vs hand {equivalence['loss_hand']:.6f}, "
          f"same initial weights: {equivalence['same_initial_weights']}", flush=True)
    print(f"{n_iter} iterations of up to {batch_size} images per epoch, {threads} torch threads, data={args.data}, "
          f"bf16 autocast {'on' if hand.amp else 'off'}, device {device}", flush=True)

    runner = BundleSteps(trainer)

    def bundle_step() -> tuple[float, float, int, bool]:
        _sync(device)
        t, c = time.perf_counter(), time.process_time()
        images, new_epoch = runner.step()
        _sync(device)
        return time.perf_counter() - t, time.process_time() - c, images, new_epoch

    def hand_step() -> tuple[float, float, int]:
        _sync(device)
        t, c = time.perf_counter(), time.process_time()
        images = hand.step(next(hand_batches))
        _sync(device)
        return time.perf_counter() - t, time.process_time() - c, images

    steps: list[dict] = []
    per_epoch: list[dict] = []
    t_start = time.perf_counter()
    for e in range(args.warmup + args.epochs):
        timed = e >= args.warmup
        epoch_steps = []
        for i in range(n_iter):
            k = e * n_iter + i
            rec: dict[str, Any] = {"epoch": e + 1, "iteration": i + 1, "bundle_first": k % 2 == 0}
            for side in (("bundle", "hand") if rec["bundle_first"] else ("hand", "bundle")):
                if side == "bundle":
                    rec["bundle_s"], rec["bundle_cpu_s"], rec["images"], rec["new_epoch"] = bundle_step()
                else:
                    rec["hand_s"], rec["hand_cpu_s"], rec["hand_images"] = hand_step()
            epoch_steps.append(rec)
        tag = "timed" if timed else "warm-up"
        summary = summarise(epoch_steps, n_iter, batch_size)
        print(f"epoch {e + 1}/{args.warmup + args.epochs} ({tag}): bundle {summary['bundle']['median_step_ms']:.1f} "
              f"ms/step (+{summary['bundle']['epoch_level_handlers_ms']:.0f} ms epoch handlers), hand "
              f"{summary['hand']['median_step_ms']:.1f} ms/step, ratio {summary['ratio']:.3f} "
              f"[{time.perf_counter() - t_start:.0f} s]", flush=True)
        if timed:
            steps += epoch_steps
            per_epoch.append({"epoch": e + 1, "ratio": summary["ratio"], "ratio_step_only": summary["ratio_step_only"],
                              "bundle_median_step_ms": summary["bundle"]["median_step_ms"],
                              "hand_median_step_ms": summary["hand"]["median_step_ms"]})

    result = summarise(steps, n_iter, batch_size)
    result.update({
        "settings": {
            "data": args.data,
            "threads": threads,
            "batch_size": batch_size,
            "iterations_per_epoch": n_iter,
            "images_per_epoch": sum(len(x["image"]) for x in batches),
            "n_train": args.n_train,
            "warmup_epochs": args.warmup,
            "timed_epochs": args.epochs,
            "device": str(device),
            "bf16_autocast": hand.amp,
            "channels_last": hand.channels_last,
            "validation": "off (val_interval=10**9)",
        },
        "equivalence": equivalence,
        "setup_seconds": {"make_demo_data": b["data_seconds"], "parse_and_instantiate": b["parse_seconds"],
                          "one_epoch_of_batches_from_train_dataloader": epoch_of_batches_s},
        "per_epoch": per_epoch,
        "max_ratio": args.max_ratio,
        "steps": steps,
    })
    result["passed"] = result["ratio"] <= args.max_ratio
    bb, hh = result["bundle"], result["hand"]
    print(f"bundle: {bb['images_per_second']:.1f} images/s ({bb['amortised_step_ms']:.1f} ms/step = "
          f"{bb['median_step_ms']:.1f} median step + {bb['epoch_level_handlers_ms']:.0f} ms epoch handlers / {n_iter})")
    print(f"hand:   {hh['images_per_second']:.1f} images/s ({hh['median_step_ms']:.1f} ms/step)")
    print(f"bundle/hand ratio: {result['ratio']:.2f}")
    print(f"  (exact {result['ratio']:.3f}; step only {result['ratio_step_only']:.3f}, paired median "
          f"{result['ratio_paired_median']:.3f}, CPU time {result['ratio_cpu_time']:.3f}; "
          f"bound {args.max_ratio:.2f}: {'PASS' if result['passed'] else 'FAIL'})", flush=True)

    if args.profile:
        import cProfile
        import io
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        for _ in range(n_iter):
            runner.step()
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(args.profile)
        print(f"cProfile of one bundle epoch (top {args.profile} by cumulative time):\n{buf.getvalue()}", flush=True)

    runner.close()
    summary_writer = b["parser"].get_parsed_content("summary_writer")
    if summary_writer is not None:
        summary_writer.close()
    return result


# ---------------------------------------------------------------------------------------------------------------
# the default demo run
# ---------------------------------------------------------------------------------------------------------------


def _run_logged(cmd: list[str], env: dict, log: Path, timeout: int) -> float:
    print("$ " + " ".join(cmd if "[" not in cmd[-1] else cmd[:-1] + [f'"{cmd[-1]}"']), flush=True)
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=timeout)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"command failed with status {proc.returncode} after {wall:.1f} s:\n{tail}")
    print(f"  {wall:.1f} s (log: {log})", flush=True)
    return wall


def demo_run(args: argparse.Namespace, home: Path) -> dict:
    pythonpath = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "MEDBUNDLE_HOME": str(home), "PYTHONUNBUFFERED": "1", "PYTHONPATH": pythonpath}
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    base = [sys.executable, "-m", "monai.bundle", "run", "--config_file"]
    train_s = _run_logged(base + [TRAIN_JSON], env, logs / "train.log", args.demo_timeout)
    eval_s = _run_logged(base + [f"['{TRAIN_JSON}','{EVAL_JSON}']"], env, logs / "evaluate.log", args.demo_timeout)
    run_dir = home / "runs" / BUNDLE_NAME
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    epochs, epoch_seconds = None, None
    log_csv = run_dir / "train_log.csv"
    if log_csv.is_file():
        import csv

        with open(log_csv, newline="") as f:
            rows = list(csv.DictReader(f))
        epochs = len(rows)
        epoch_seconds = [float(r["epoch_seconds"]) for r in rows if r.get("epoch_seconds")]
    return {
        "train_command": f"python -m monai.bundle run --config_file {TRAIN_JSON}",
        "evaluate_command": f"python -m monai.bundle run --config_file \"['{TRAIN_JSON}','{EVAL_JSON}']\"",
        "train_wall_seconds": train_s,
        "evaluate_wall_seconds": eval_s,
        "epochs": epochs,
        "median_epoch_seconds": statistics.median(epoch_seconds) if epoch_seconds else None,
        "test_accuracy": metrics.get("accuracy"),
        "test_auc_macro_ovr": metrics.get("auc_macro_ovr"),
        "test_n": metrics.get("n"),
    }


# ---------------------------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------------------------


def _fmt(v: Any, spec: str = ".3f") -> str:
    return "n/a" if v is None else format(v, spec)


def markdown_table(res: dict) -> str:
    rows: list[tuple[str, str]] = []
    bench = res.get("benchmark")
    if bench:
        s, bb, hh = bench["settings"], bench["bundle"], bench["hand"]
        rows += [
            ("setting", f"{s['iterations_per_epoch']} it/epoch, batch {s['batch_size']}, data={s['data']}, "
                        f"{s['threads']} threads, {s['timed_epochs']} timed epochs ({bench['timed_steps']} steps "
                        f"each side, interleaved), bf16 {'on' if s['bf16_autocast'] else 'off'}, validation off"),
            ("bundle trainer images/s", _fmt(bb["images_per_second"], ".1f")),
            ("hand-written loop images/s", _fmt(hh["images_per_second"], ".1f")),
            ("bundle ms/step (median step + epoch handlers / it)",
             f"{bb['amortised_step_ms']:.1f} ({bb['median_step_ms']:.1f} + "
             f"{bb['epoch_level_handlers_ms']:.0f} / {s['iterations_per_epoch']})"),
            ("hand ms/step (median)", _fmt(hh["median_step_ms"], ".1f")),
            ("**bundle/hand ratio**", f"**{bench['ratio']:.3f}** (bound {bench['max_ratio']:.2f}: "
                                      f"{'PASS' if bench['passed'] else 'FAIL'})"),
            ("step-only ratio (no epoch handlers)", _fmt(bench["ratio_step_only"])),
            ("median of paired per-step ratios", _fmt(bench["ratio_paired_median"])),
            ("process CPU-time ratio", _fmt(bench["ratio_cpu_time"])),
            ("per-epoch ratios", ", ".join(f"{e['ratio']:.3f}" for e in bench["per_epoch"])),
            ("1-min load average before benchmark", _fmt(res.get("load_average", {}).get("benchmark"), ".2f")),
        ]
    demo = res.get("demo")
    if demo:
        rows += [
            ("demo train wall time (s)", _fmt(demo["train_wall_seconds"], ".1f")),
            ("demo evaluate wall time (s)", _fmt(demo["evaluate_wall_seconds"], ".1f")),
            ("demo epochs / median epoch s", f"{demo['epochs']} / {_fmt(demo['median_epoch_seconds'], '.1f')}"),
            ("test accuracy", _fmt(demo["test_accuracy"], ".4f")),
            ("test AUC (macro OvR)", _fmt(demo["test_auc_macro_ovr"], ".4f")),
            ("1-min load average before demo run", _fmt(res.get("load_average", {}).get("demo"), ".2f")),
        ]
    width = max(len(r[0]) for r in rows)
    lines = [f"| {'figure'.ljust(width)} | value |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {k.ljust(width)} | {v} |" for k, v in rows]
    return "\n".join(lines)


def _loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import ignite
    import monai
    import torch

    import medbundle
    from medbundle.utils import atomic_write_json

    res: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "monai": monai.__version__,
                     "ignite": ignite.__version__, "medbundle": str(Path(medbundle.__file__).parent)},
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
    }
    workdir = Path(tempfile.mkdtemp(prefix="medbundle_bench_"))
    res["load_average"] = {}
    try:
        res["load_average"]["benchmark"] = _loadavg()
        res["benchmark"] = benchmark(args, workdir / "bench")
        if args.demo_run:
            res["load_average"]["demo"] = _loadavg()
            res["demo"] = demo_run(args, workdir / "demo_home")
    finally:
        if args.keep_temp:
            print(f"temporary files kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    print()
    print(markdown_table(res))
    atomic_write_json(args.out, res)
    print(f"\nfigures written to {args.out}")
    return 1 if args.strict and not res["benchmark"]["passed"] else 0


if __name__ == "__main__":
    sys.exit(main())
