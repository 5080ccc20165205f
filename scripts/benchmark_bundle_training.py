#!/usr/bin/env python
"""Train and evaluate a bundle on real data as a user types it, and report wall time, memory and the test figures.

Runs, from the repository root, in subprocesses::

    python -m monai.bundle run --config_file bundles/<bundle>/configs/train.json \\
        --dataset_dir DATA --output_dir OUT [OVERRIDES]
    python -m monai.bundle run --config_file "['.../train.json','.../evaluate.json']" \\
        --dataset_dir DATA --output_dir OUT --tta_views V [--external_dir ...] [OVERRIDES]

and reports the training's wall time against ``--max-minutes`` (the CPU default's budget: 20 min on 2 cores), its
epochs (``train_log.csv``), the peak resident memory of each command, and from ``eval/metrics.json`` the accuracy,
macro one-vs-rest AUC and every class's sensitivity and specificity with their 95 % intervals (Wilson, DeLong), checked
against ``--target-auc`` and ``--target-sensitivity CLASS=VALUE`` where given. Example (issue 12's bar)::

    python scripts/benchmark_bundle_training.py --bundle chest_xray --dataset_dir ../shared/data/covid_xray \\
        --target-auc 0.97 --target-sensitivity COVID-19=0.95 \\
        --external_dir "[{'path': '../shared/data/covid_xray_external', 'name': 'figure1', \\
                          'image_column': 'patientid', 'label_column': 'finding'}]"

Every figure is what the machine gives at the time: check its load (printed) before quoting one.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--bundle", default="chest_xray", help="a folder of bundles/")
    p.add_argument("--dataset_dir", required=True, help="the data, as train.json's --dataset_dir")
    p.add_argument("--output_dir", type=Path, default=None, help="the run folder (default: a temporary one, removed)")
    p.add_argument("--tta_views", type=int, default=1, help="evaluate.json's --tta_views")
    p.add_argument("--external_dir", default=None, help="evaluate.json's --external_dir (a list, as the CLI takes it)")
    p.add_argument("--max-minutes", type=float, default=20.0, help="the training's wall-time budget")
    p.add_argument("--target-auc", type=float, default=None, help="the macro AUC the test split must reach")
    p.add_argument("--target-sensitivity", action="append", default=[], metavar="CLASS=VALUE",
                   help="a class's sensitivity the test split must reach (repeatable)")
    p.add_argument("--skip-train", action="store_true", help="evaluate the model already in --output_dir")
    p.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "medbundle_benchmark_bundle.json",
                   help="JSON file of the figures")
    p.add_argument("overrides", nargs=argparse.REMAINDER,
                   help="after --: more bundle overrides for both commands, e.g. -- --epochs 8")
    args = p.parse_args(argv)
    if not (REPO / "bundles" / args.bundle / "configs" / "train.json").is_file():
        p.error(f"--bundle {args.bundle}: no bundles/{args.bundle}/configs/train.json; choose a folder of bundles/")
    if args.skip_train and args.output_dir is None:
        p.error("--skip-train needs --output_dir (the run folder whose model is evaluated)")
    try:
        args.targets = {k: float(v) for k, v in (t.split("=", 1) for t in args.target_sensitivity)}
    except ValueError:
        p.error(f"--target-sensitivity {args.target_sensitivity}: write CLASS=VALUE, e.g. COVID-19=0.95")
    args.overrides = [a for a in args.overrides if a != "--"]
    return args


def _run(cmd: list[str], log: Path) -> dict:
    """Run ``cmd`` from the repository root with its output in ``log``: its wall seconds and peak RSS (MB); a failed
    command ends the benchmark with the end of its log."""
    start = time.monotonic()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # this command's own resource use, not every child's so far
    wall = time.monotonic() - start
    code = proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
    if code != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{' '.join(cmd[:6])} ... failed (exit {code}); the end of {log}:\n{tail}")
    return {"wall_seconds": round(wall, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024)}  # ru_maxrss: KiB


def _check_classes(targets: dict, names: list[str], where: str) -> None:
    """End with one line when a ``--target-sensitivity`` class is not one of ``names``."""
    for name in targets:
        if name not in names:
            raise SystemExit(f"--target-sensitivity {name}: not a class of {where} ({', '.join(names)}); "
                             f"use one of those names")


def _interval(figure: dict) -> str:
    return f"{figure['value']:.3f} [{figure['lo']:.3f}, {figure['hi']:.3f}]"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO))
    from medbundle.utils import atomic_write_json  # after the arguments: a wrong one is answered at once

    configs = REPO / "bundles" / args.bundle / "configs"
    if "--class_names" not in args.overrides:  # checked again on the test split; here before minutes of training
        from medbundle.runs import class_names

        _check_classes(args.targets, class_names(json.loads((configs / "metadata.json").read_text())),
                       f"bundles/{args.bundle}")
    temporary = None
    if args.output_dir is None:
        temporary = tempfile.TemporaryDirectory(prefix=f"benchmark_{args.bundle}_")
        args.output_dir = Path(temporary.name)
    out = args.output_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    common = ["--dataset_dir", str(Path(args.dataset_dir).resolve()), "--output_dir", str(out), *args.overrides]
    bundle_run = [sys.executable, "-m", "monai.bundle", "run", "--config_file"]
    res: dict = {"bundle": args.bundle, "dataset_dir": args.dataset_dir, "overrides": args.overrides,
                 "cpus": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2)}
    print(f"{args.bundle}: {os.cpu_count()} CPUs, 1-min load {res['load_average_1min']}; run folder {out}", flush=True)
    if not args.skip_train:
        res["train"] = _run(bundle_run + [str(configs / "train.json"), *common], out / "benchmark_train.log")
        with open(out / "train_log.csv", newline="") as f:
            epochs = [float(r["epoch_seconds"]) for r in csv.DictReader(f)]
        res["train"] |= {"epochs": len(epochs), "median_epoch_seconds": round(statistics.median(epochs), 1),
                         "within_budget": res["train"]["wall_seconds"] <= args.max_minutes * 60}
        print(f"trained in {res['train']['wall_seconds'] / 60:.1f} min ({len(epochs)} epochs)", flush=True)
    evaluate = ["--tta_views", str(args.tta_views)]
    evaluate += ["--external_dir", args.external_dir] if args.external_dir else []
    files = f"['{configs / 'train.json'}','{configs / 'evaluate.json'}']"
    res["evaluate"] = _run(bundle_run + [files, *common, *evaluate], out / "benchmark_evaluate.log")
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    clinical = metrics["clinical"]
    res["test"] = {"n": metrics["n"], "test_time_views": metrics.get("test_time_views", 1),
                   "accuracy": clinical["accuracy"], "auc_macro_ovr": clinical["auc_macro_ovr"],
                   "per_class": {c: {k: v[k] for k in ("sensitivity", "specificity", "auc") if k in v}
                                 for c, v in clinical["per_class"].items()}}
    checks = {}
    if args.target_auc is not None:
        checks["macro AUC"] = (clinical["auc_macro_ovr"]["value"], args.target_auc)
    _check_classes(args.targets, list(clinical["per_class"]), "the test split")
    for name, target in args.targets.items():
        checks[f"{name} sensitivity"] = (clinical["per_class"][name]["sensitivity"]["value"], target)
    res["targets"] = {k: {"value": v, "target": t, "met": v >= t} for k, (v, t) in checks.items()}

    rows = []
    if "train" in res:
        t = res["train"]
        rows += [("training wall time", f"{t['wall_seconds'] / 60:.1f} min (budget {args.max_minutes:g} min: "
                                        f"{'within' if t['within_budget'] else 'OVER'}), {t['epochs']} epochs, "
                                        f"median epoch {t['median_epoch_seconds']:.0f} s"),
                 ("training peak memory", f"{t['peak_rss_mb']} MB")]
    rows += [("evaluation wall time", f"{res['evaluate']['wall_seconds'] / 60:.1f} min ({args.tta_views} view(s)), "
                                      f"peak memory {res['evaluate']['peak_rss_mb']} MB"),
             (f"test accuracy (n = {metrics['n']})", _interval(clinical["accuracy"])),
             ("test macro one-vs-rest AUC", _interval(clinical["auc_macro_ovr"]))]
    for name, v in clinical["per_class"].items():
        rows.append((f"{name}: sensitivity / specificity", f"{_interval(v['sensitivity'])} / "
                                                            f"{_interval(v['specificity'])}"))
    for k, r in res["targets"].items():
        rows.append((f"target: {k} >= {r['target']}", f"{r['value']:.3f}: {'met' if r['met'] else 'NOT met'}"))
    external = out / "eval" / "external.json"
    if external.is_file():
        res["external"] = json.loads(external.read_text())
    width = max(len(k) for k, _ in rows)
    print("\n".join([f"| {'figure'.ljust(width)} | value |", f"|{'-' * (width + 2)}|---|"]
                    + [f"| {k.ljust(width)} | {v} |" for k, v in rows]))
    atomic_write_json(args.out, res)
    print(f"figures written to {args.out}" + (f"; reports in {out}/eval" if temporary is None else ""))
    if temporary is not None:
        temporary.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
