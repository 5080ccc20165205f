#!/usr/bin/env python
"""Time the ct_infection bundle's training step against a hand-written PyTorch loop, and the demo run.

What is compared
----------------
*Bundle*: the real ``SupervisedTrainer`` of ``bundles/ct_infection/configs/train.json``, parsed with
``monai.bundle.ConfigParser`` (``train.json`` + ``metadata.json``), with every train handler and
writer of the bundle attached (LR scheduler, ``StatsHandler``, per-epoch full checkpoint, TensorBoard
per-iteration loss, the epoch CSV log, ...). Only two things are overridden:

* ``dataset_dir`` / ``output_dir`` point at a temporary folder holding small synthetic demo data
  made by :func:`medbundle.data.make_ct_demo` (``--n-train`` images; ``--n-val``/``--n-test`` tiny);
* validation is switched off with the override ``val_interval = 10**9`` (the ``ValidationHandler``
  stays attached but never fires), so that the comparison is about training only.
  ``epochs`` is set to ``--warmup + --rounds`` (the trainer's ``max_epochs``; it only changes the
  cosine LR schedule's length, not the cost of a step).

*Hand*: a plain PyTorch loop on a deep copy of the bundle's network taken before either side trains
(same architecture, same initial weights, same channels-last parameters), the bundle's own loss
object, a fresh ``torch.optim.Adam`` built with the bundle optimizer's parameter groups and
hyper-parameters (lr, betas, eps, weight decay per group), and exactly what the bundle's
``AutocastInferer`` does: inputs made channels-last, the forward pass under
``torch.autocast(device_type, dtype=torch.bfloat16, enabled=...)`` (the ``enabled`` decision made
once, from the inferer's ``amp`` setting and :func:`medbundle.engine.bf16_supported`), logits cast
back with ``.float()``; then ``loss.mean()``, ``zero_grad()``, ``backward()``, ``step()`` and a
``loss.item()`` per step (a hand loop logs its loss too).

Data
----
By default (``--data batches``) one epoch of batches is drawn once from the bundle's own
``train#dataloader`` (its caching, augmentation and collation) and kept in a list; the trainer's
data loader is replaced by that list and the hand loop iterates the same list, so both sides train
on the identical batches and no augmentation cost is timed. With ``--data loader`` both sides
iterate the bundle's ``train#dataloader`` itself every epoch (random augmentation and collation
are then timed on both sides as well).

Timing
------
One timed unit is one epoch (all batches of the list / loader) of each side: for the bundle, one
``trainer.run()`` that is stopped with ``engine.terminate()`` by a handler attached after all of the
bundle's ``EPOCH_COMPLETED`` handlers and resumed at the next epoch by the next ``run()``; so a
bundle epoch includes every per-iteration and per-epoch handler (checkpoint save, CSV log, LR
step), amortised over the epoch's iterations exactly as in a real run with the same epoch length
(the default ``--n-train 900`` gives the demo's 29 iterations of up to 32 images). After
``--warmup`` untimed epochs of each side, ``--rounds`` rounds are run, alternating the order
(bundle, hand), (hand, bundle), ... to spread drift and neighbours' load on a shared machine; the
figure of each side is the median over the rounds of its per-iteration time (epoch wall time /
iterations). The headline ``bundle/hand ratio`` is the ratio of these medians; the median of the
per-round paired ratios and a "step-only" ratio (bundle epochs without their epoch-level handlers,
i.e. from the trainer's ``EPOCH_STARTED`` to its last ``ITERATION_COMPLETED``) and the ratio of the
median process CPU times per epoch (less sensitive to other processes competing for the cores)
are reported too.
``torch.set_num_threads(--threads)`` is set once for both sides. Before timing, the two forward
paths are checked to give identical logits on the first batch (eval mode, no grad).

Demo run
--------
Unless ``--skip-demo-run``, the default demo is then run end to end as a user types it, in a
subprocess from the repository root with a fresh temporary ``MEDBUNDLE_HOME``::

    python -m monai.bundle run --config_file bundles/ct_infection/configs/train.json
    python -m monai.bundle run --config_file "['bundles/ct_infection/configs/train.json','bundles/ct_infection/configs/evaluate.json']"

Each command's wall time is measured (the training one includes making the demo data), and the
test accuracy and macro one-vs-rest AUC are read from
``<MEDBUNDLE_HOME>/runs/ct_infection/eval/metrics.json``.

Output
------
A Markdown table of all figures on stdout, and the same figures as JSON written atomically to
``--out`` (default: ``<system temp dir>/medbundle_benchmark_training.json``, never inside the
repository).

Examples::

    python scripts/benchmark_training.py                       # defaults, with the demo run (~10 min on 2 cores)
    python scripts/benchmark_training.py --n-train 96 --rounds 2 --skip-demo-run   # quick check
"""

from __future__ import annotations

import argparse
import copy
import gc
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=(
            "Time the ct_infection bundle's SupervisedTrainer (all train handlers, validation off) against a "
            "hand-written PyTorch loop on the same network, batches and data, print images/s and the "
            "bundle/hand ratio, then time the default demo train + evaluate commands and report test accuracy/AUC. "
            "See the module docstring for the method."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--n-train", type=int, default=900,
                   help="training images of the synthetic data; 900 = the demo's, i.e. the demo's epoch length")
    p.add_argument("--n-val", type=int, default=9, help="validation images (validation is off; kept tiny)")
    p.add_argument("--n-test", type=int, default=9, help="test images (unused by the benchmark; kept tiny)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="override the bundle's batch_size (default: the bundle's)")
    p.add_argument("--data", choices=("batches", "loader"), default="batches",
                   help="'batches': both sides iterate one epoch of batches pre-collated from train#dataloader; "
                        "'loader': both iterate train#dataloader itself (augmentation timed on both sides)")
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up epochs of each side")
    p.add_argument("--rounds", type=int, default=5,
                   help="timed rounds; each runs one epoch of each side, order alternating")
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads for both sides (default: torch's default, usually the core count)")
    p.add_argument("--max-ratio", type=float, default=1.10, help="acceptance bound on the bundle/hand ratio")
    p.add_argument("--strict", action="store_true", help="exit with status 1 when the ratio exceeds --max-ratio")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="after timing, run one more bundle epoch under cProfile and print the top N functions")
    demo = p.add_mutually_exclusive_group()
    demo.add_argument("--demo-run", dest="demo_run", action="store_true", default=True,
                      help="run the default demo train + evaluate commands end to end and time them")
    demo.add_argument("--skip-demo-run", dest="demo_run", action="store_false", help="skip the demo run")
    p.add_argument("--demo-timeout", type=int, default=3600, help="seconds allowed to each demo command")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file of the figures (written atomically)")
    p.add_argument("--keep-temp", action="store_true", help="keep the temporary data/output folders")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.warmup < 0 or args.n_train < 1:
        p.error("--rounds must be >= 1, --warmup >= 0, --n-train >= 1")
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
        "epochs": args.warmup + args.rounds + (1 if args.profile else 0),
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

    def epoch(self, data) -> None:
        net, opt, loss_fn, device = self.network, self.optimizer, self.loss_fn, self.device
        net.train()
        for batch in data:
            x, y = batch["image"].to(device), batch["label"].to(device)
            opt.zero_grad()
            loss = loss_fn(self.forward(x), y).mean()
            loss.backward()
            opt.step()
            self.losses.append(loss.item())


class BundleEpochs:
    """Run the bundle's trainer one epoch per call (terminate at the end of the epoch, resume on the next call).

    The stopping handler and two time stamps are attached *after* all of the bundle's handlers, so a
    call covers everything the bundle does in an epoch; ``iteration_seconds`` is the part from the
    trainer's ``EPOCH_STARTED`` to its last ``ITERATION_COMPLETED`` (no epoch-level handlers).
    """

    def __init__(self, trainer) -> None:
        from ignite.engine import Events

        self.trainer = trainer
        self._t_epoch_start = self._t_last_iter = 0.0
        trainer.add_event_handler(Events.EPOCH_STARTED, self._epoch_started)
        trainer.add_event_handler(Events.ITERATION_COMPLETED, self._iteration_completed)
        trainer.add_event_handler(Events.EPOCH_COMPLETED, self._epoch_completed)

    def _epoch_started(self, engine) -> None:
        self._t_epoch_start = time.perf_counter()

    def _iteration_completed(self, engine) -> None:
        self._t_last_iter = time.perf_counter()

    def _epoch_completed(self, engine) -> None:
        engine.terminate(skip_completed=True)

    def epoch(self) -> float:
        """Run one epoch; return its iteration-phase seconds."""
        epoch = self.trainer.state.epoch
        self.trainer.run()
        if self.trainer.state.epoch != epoch + 1:
            raise RuntimeError(f"trainer ran epochs {epoch}->{self.trainer.state.epoch}, expected one")
        return self._t_last_iter - self._t_epoch_start


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
        "logits_dtype": str(pb.dtype),
    }


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
    collate_s = time.perf_counter() - t0
    if args.data == "batches":
        if trainer.state.epoch_length != len(batches):
            raise RuntimeError(f"trainer epoch_length {trainer.state.epoch_length} != {len(batches)} batches")
        trainer.data_loader = batches  # Workflow.run() passes self.data_loader to ignite
        hand_data = batches
    else:
        hand_data = b["dataloader"]
    n_iter = len(batches)
    n_images = sum(len(batch["image"]) for batch in batches)

    equivalence = check_equivalence(b, hand, batches[0])
    print(f"equivalence check (first batch, eval mode): max |logit diff| {equivalence['max_abs_logit_diff']:.3g}, "
          f"loss bundle {equivalence['loss_bundle']:.6f} vs hand {equivalence['loss_hand']:.6f}, "
          f"same initial weights: {equivalence['same_initial_weights']}", flush=True)

    runner = BundleEpochs(trainer)

    def run_bundle() -> tuple[float, float, float]:
        gc.collect()
        _sync(device)
        t, c = time.perf_counter(), time.process_time()
        iter_s = runner.epoch()
        _sync(device)
        return time.perf_counter() - t, iter_s, time.process_time() - c

    def run_hand() -> tuple[float, float]:
        gc.collect()
        _sync(device)
        t, c = time.perf_counter(), time.process_time()
        hand.epoch(hand_data)
        _sync(device)
        return time.perf_counter() - t, time.process_time() - c

    print(f"{n_iter} iterations ({n_images} images) per epoch, {threads} torch threads, data={args.data}, "
          f"bf16 autocast {'on' if hand.amp else 'off'}", flush=True)
    for w in range(args.warmup):
        tb = run_bundle()[0]
        th = run_hand()[0]
        print(f"warm-up {w + 1}/{args.warmup}: bundle {tb:.2f} s, hand {th:.2f} s", flush=True)

    bundle_s, bundle_iter_s, bundle_cpu, hand_s, hand_cpu = [], [], [], [], []
    for r in range(args.rounds):
        order = ("bundle", "hand") if r % 2 == 0 else ("hand", "bundle")
        for side in order:
            if side == "bundle":
                tb, ti, cb = run_bundle()
                bundle_s.append(tb)
                bundle_iter_s.append(ti)
                bundle_cpu.append(cb)
            else:
                th, ch = run_hand()
                hand_s.append(th)
                hand_cpu.append(ch)
        print(f"round {r + 1}/{args.rounds} ({order[0]} first): bundle {bundle_s[-1]:.3f} s "
              f"(epoch handlers {bundle_s[-1] - bundle_iter_s[-1]:.3f} s), hand {hand_s[-1]:.3f} s, "
              f"ratio {bundle_s[-1] / hand_s[-1]:.3f}", flush=True)

    med_b, med_h = statistics.median(bundle_s), statistics.median(hand_s)
    med_bi = statistics.median(bundle_iter_s)
    result = {
        "settings": {
            "data": args.data,
            "threads": threads,
            "batch_size": len(batches[0]["image"]),
            "iterations_per_epoch": n_iter,
            "images_per_epoch": n_images,
            "n_train": args.n_train,
            "warmup_epochs": args.warmup,
            "rounds": args.rounds,
            "device": str(device),
            "bf16_autocast": hand.amp,
            "channels_last": hand.channels_last,
            "validation": "off (val_interval=10**9)",
        },
        "equivalence": equivalence,
        "setup_seconds": {"make_demo_data": b["data_seconds"], "parse_and_instantiate": b["parse_seconds"],
                          "first_epoch_of_batches": collate_s},
        "bundle": {
            "epoch_seconds": bundle_s,
            "iteration_phase_seconds": bundle_iter_s,
            "epoch_handler_seconds": [t - i for t, i in zip(bundle_s, bundle_iter_s)],
            "epoch_cpu_seconds": bundle_cpu,
            "median_ms_per_iteration": 1e3 * med_b / n_iter,
            "images_per_second": n_images / med_b,
        },
        "hand": {
            "epoch_seconds": hand_s,
            "epoch_cpu_seconds": hand_cpu,
            "median_ms_per_iteration": 1e3 * med_h / n_iter,
            "images_per_second": n_images / med_h,
        },
        "ratio": med_b / med_h,
        "ratio_paired_median": statistics.median(tb / th for tb, th in zip(bundle_s, hand_s)),
        "ratio_step_only": med_bi / med_h,
        "ratio_cpu_time": statistics.median(bundle_cpu) / statistics.median(hand_cpu),
        "max_ratio": args.max_ratio,
        "passed": med_b / med_h <= args.max_ratio,
    }
    print(f"bundle: {result['bundle']['images_per_second']:.1f} images/s "
          f"({result['bundle']['median_ms_per_iteration']:.1f} ms/iteration)")
    print(f"hand:   {result['hand']['images_per_second']:.1f} images/s "
          f"({result['hand']['median_ms_per_iteration']:.1f} ms/iteration)")
    print(f"bundle/hand ratio: {result['ratio']:.2f}", flush=True)
    print(f"  (exact {result['ratio']:.3f}; paired median {result['ratio_paired_median']:.3f}, "
          f"step only {result['ratio_step_only']:.3f}, CPU time {result['ratio_cpu_time']:.3f}; "
          f"bound {args.max_ratio:.2f}: {'PASS' if result['passed'] else 'FAIL'})", flush=True)

    if args.profile:
        import cProfile
        import io
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        runner.epoch()
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(args.profile)
        print(f"cProfile of one bundle epoch (top {args.profile} by cumulative time):\n{buf.getvalue()}", flush=True)

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
    env = {**os.environ, "MEDBUNDLE_HOME": str(home), "PYTHONUNBUFFERED": "1"}
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
        s = bench["settings"]
        rows += [
            ("setting", f"{s['iterations_per_epoch']} it/epoch x batch {s['batch_size']} "
                        f"({s['images_per_epoch']} images), data={s['data']}, {s['threads']} threads, {s['rounds']} rounds, "
                        f"bf16 {'on' if s['bf16_autocast'] else 'off'}, validation off"),
            ("bundle trainer images/s", _fmt(bench["bundle"]["images_per_second"], ".1f")),
            ("hand-written loop images/s", _fmt(bench["hand"]["images_per_second"], ".1f")),
            ("bundle ms/iteration (median)", _fmt(bench["bundle"]["median_ms_per_iteration"], ".1f")),
            ("hand ms/iteration (median)", _fmt(bench["hand"]["median_ms_per_iteration"], ".1f")),
            ("**bundle/hand ratio**", f"**{bench['ratio']:.3f}** (bound {bench['max_ratio']:.2f}: "
                                      f"{'PASS' if bench['passed'] else 'FAIL'})"),
            ("paired-median ratio", _fmt(bench["ratio_paired_median"])),
            ("step-only ratio (no epoch handlers)", _fmt(bench["ratio_step_only"])),
            ("process CPU-time ratio", _fmt(bench["ratio_cpu_time"])),
            ("bundle epoch-handler s/epoch (median)",
             _fmt(statistics.median(bench["bundle"]["epoch_handler_seconds"]))),
        ]
    demo = res.get("demo")
    if demo:
        rows += [
            ("demo train wall time (s)", _fmt(demo["train_wall_seconds"], ".1f")),
            ("demo evaluate wall time (s)", _fmt(demo["evaluate_wall_seconds"], ".1f")),
            ("demo epochs / median epoch s", f"{demo['epochs']} / {_fmt(demo['median_epoch_seconds'], '.1f')}"),
            ("test accuracy", _fmt(demo["test_accuracy"], ".4f")),
            ("test AUC (macro OvR)", _fmt(demo["test_auc_macro_ovr"], ".4f")),
        ]
    width = max(len(r[0]) for r in rows)
    lines = [f"| {'figure'.ljust(width)} | value |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {k.ljust(width)} | {v} |" for k, v in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import monai
    import torch

    from medbundle.utils import atomic_write_json

    res: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "monai": monai.__version__},
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
    }
    workdir = Path(tempfile.mkdtemp(prefix="medbundle_bench_"))
    try:
        res["benchmark"] = benchmark(args, workdir / "bench")
        if args.demo_run:
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
