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
  epoch has the demo's 28 iterations of 32 images, the incomplete last batch being dropped;
  ``--n-val``/``--n-test`` tiny);
* validation is switched off with ``val_interval = 10**9`` (the ``ValidationHandler`` stays attached
  but never fires, and neither does the batch-norm re-estimation that precedes each validation), so
  that the comparison is about training only;
* ``epochs`` (the trainer's ``max_epochs`` and the cosine schedule's length) is set a little above the
  number of epochs benchmarked, so the run never completes; it does not change the cost of a step.

*Hand*: a plain PyTorch loop on a deep copy of the bundle's network taken before either side trains
(same architecture, same initial weights, same channels-last parameters), the bundle's own loss
object, a fresh ``torch.optim.Adam`` built with the bundle optimizer's parameter groups and
hyper-parameters (lr, betas, eps, weight decay per group), and exactly what the bundle's
``AutocastInferer`` does: inputs made channels-last, the forward pass under
``torch.autocast(device_type, dtype=torch.bfloat16, enabled=...)`` (``enabled`` decided once, from
the inferer's ``amp`` setting and :func:`medbundle.inferers.bf16_supported`), logits cast back with
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
an epoch boundary also runs the bundle's epoch-level handlers (checkpoint save, CSV log, TensorBoard
Grad-CAM overlays, LR step; at the epoch's end the checkpoint's tensors are copied into buffers kept from
the previous save, and a background thread serialises and writes the file, which the end of the next
iteration waits for, so any write time left over, and the cores the writer takes, are timed too);
their cost is measured as that step's time minus the median step, and spread over the epoch's
iterations. The bundle writes its full checkpoint at most every ``checkpoint_seconds`` (60 s: every
epoch where epochs last a minute or more, once in about 40 of the demo's short epochs), which a few
timed epochs would never reach: every other timed epoch boundary writes one (the saver's interval set to
0 there, to infinity at the others), so that both kinds are timed. After ``--warmup`` untimed epochs,
``--epochs`` epochs are timed; with ``B`` the median bundle step, ``E0`` the median epoch-level cost
without a checkpoint, ``C`` the median extra cost of a boundary with one, ``f = 1 / ceil(checkpoint_seconds
/ (n B + E0))`` the checkpoints per epoch at the bundle's interval (1 for 0), ``n`` the iterations per
epoch and ``H`` the median hand step (full batches only):

* ``bundle/hand ratio`` (the headline) = ``(B + (E0 + f C) / n) / H``;
* ``ratio with a checkpoint every epoch`` = ``(B + (E0 + C) / n) / H`` (``checkpoint_seconds`` 0);
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
# benchmark this checkout's medbundle, whichever copy happens to be pip-installed
if str(REPO) not in sys.path[:1]:
    sys.path.insert(0, str(REPO))
# the timing machinery lives next to this script (found also when run from another folder, or imported)
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.append(str(Path(__file__).resolve().parent))

from training_timing import BUNDLE_NAME, benchmark  # noqa: E402

TRAIN_JSON = f"bundles/{BUNDLE_NAME}/configs/train.json"
EVAL_JSON = f"bundles/{BUNDLE_NAME}/configs/evaluate.json"
DEFAULT_OUT = Path(tempfile.gettempdir()) / "medbundle_benchmark_training.json"


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
    p.add_argument("--epochs", type=int, default=6,
                   help="timed epochs; each side runs one training step in turn, the order alternating")
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads for both sides (None: torch's default, usually the core count)")
    p.add_argument("--processes", type=int, default=3,
                   help="run the benchmark in this many fresh processes, one after the other, and quote the median "
                        "ratio (one process's ratio moves by up to +-5 %% with where its tensors land in memory)")
    p.add_argument("--max-ratio", type=float, default=1.10, help="acceptance bound on the bundle/hand ratio")
    p.add_argument("--strict", action="store_true", help="exit with status 1 when the ratio exceeds --max-ratio")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="after timing, run one more bundle epoch under cProfile and print the top N functions "
                        "(with --processes 1)")
    demo = p.add_mutually_exclusive_group()
    demo.add_argument("--demo-run", dest="demo_run", action="store_true", default=True,
                      help="run the default demo train + evaluate commands end to end and time them (default)")
    demo.add_argument("--skip-demo-run", dest="demo_run", action="store_false", help="skip the demo run")
    p.add_argument("--demo-timeout", type=int, default=3600, help="seconds allowed to each demo command")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file of the figures (written atomically)")
    p.add_argument("--keep-temp", action="store_true", help="keep the temporary data/output folders")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.warmup < 0 or args.n_train < 1 or args.processes < 1:
        p.error("--epochs must be >= 1, --warmup >= 0, --n-train >= 1, --processes >= 1")
    if args.profile and args.processes > 1:
        p.error(f"--profile {args.profile} profiles one process: add --processes 1")
    out = args.out.expanduser().resolve()
    if out == REPO or REPO in out.parents:
        p.error(f"--out must be outside the repository ({REPO})")
    args.out = out
    return args


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
            ("epoch handlers (ms): without checkpoint + checkpoint x checkpoints per epoch",
             f"{bb['epoch_level_without_checkpoint_ms']:.0f} + {bb['checkpoint_ms']:.0f} x "
             f"{bb['checkpoints_per_epoch']:.3f} (checkpoint_seconds {bb['checkpoint_seconds']:g})"),
            ("hand ms/step (median)", _fmt(hh["median_step_ms"], ".1f")),
            ("**bundle/hand ratio**" + (" (median of the processes)" if "processes" in bench else ""),
             f"**{bench['ratio']:.3f}** (bound {bench['max_ratio']:.2f}: {'PASS' if bench['passed'] else 'FAIL'})"),
            ("ratio with a checkpoint every epoch (checkpoint_seconds 0)", _fmt(bench["ratio_checkpoint_every_epoch"])),
            ("step-only ratio (no epoch handlers)", _fmt(bench["ratio_step_only"])),
            ("median of paired per-step ratios", _fmt(bench["ratio_paired_median"])),
            ("process CPU-time ratio", _fmt(bench["ratio_cpu_time"])),
            ("per-epoch ratios", ", ".join(f"{e['ratio']:.3f}" for e in bench["per_epoch"])),
        ]
        if "processes" in bench:
            rows += [
                ("ratio per process (checkpoint every epoch; step only; epoch handlers ms)",
                 ", ".join(f"{r['ratio']:.3f} ({r['ratio_checkpoint_every_epoch']:.3f}; {r['ratio_step_only']:.3f}; "
                           f"{r['epoch_level_handlers_ms']:.0f})" for r in bench["processes"])),
                ("(other rows: the process of median ratio)", ""),
            ]
        rows += [
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


def in_processes(args: argparse.Namespace) -> dict:
    """The benchmark run ``args.processes`` times, each in a fresh process: the run of median ratio, with every
    process's ratios beside it."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="medbundle_bench_runs_") as tmp:
        for i in range(args.processes):
            out = Path(tmp) / f"process{i}.json"
            cmd = [sys.executable, str(Path(__file__).resolve()), "--processes", "1", "--skip-demo-run",
                   "--out", str(out), "--n-train", str(args.n_train), "--n-val", str(args.n_val),
                   "--n-test", str(args.n_test), "--data", args.data, "--warmup", str(args.warmup),
                   "--epochs", str(args.epochs), "--max-ratio", str(args.max_ratio)]
            cmd += ["--threads", str(args.threads)] if args.threads is not None else []
            cmd += ["--batch-size", str(args.batch_size)] if args.batch_size is not None else []
            print(f"--- process {i + 1}/{args.processes}", flush=True)
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL if i else None)
            runs.append(json.loads(out.read_text())["benchmark"])
    ratio = statistics.median(r["ratio"] for r in runs)
    median = sorted(runs, key=lambda r: r["ratio"])[(len(runs) - 1) // 2]
    return {**median, "ratio": ratio, "passed": ratio <= args.max_ratio,
            "processes": [{k: r[k] for k in ("ratio", "ratio_checkpoint_every_epoch", "ratio_step_only",
                                             "ratio_paired_median", "ratio_cpu_time")}
                          | {"epoch_level_handlers_ms": r["bundle"]["epoch_level_handlers_ms"]} for r in runs]}


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
        res["benchmark"] = benchmark(args, workdir / "bench") if args.processes == 1 else in_processes(args)
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
