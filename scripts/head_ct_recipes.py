"""Head CT recipes on subject-clean splits: train and evaluate each recipe on five seeded grouped splits, print a table.

    python scripts/head_ct_recipes.py --dataset_dir ../shared/data/head_ct --output_dir runs/head_ct_recipes

Each recipe is trained with ``ct_infection``'s train.json (plus an overlay) on the Kaggle head CT set (NORMAL vs
HEMORRHAGE) for every seed, each seed its own split grouped by near-duplicate cluster (the default), then evaluated
with evaluate.json once per number of test-time views. Prints one markdown row per recipe and views: test AUC per seed,
their mean, and accuracy (Wilson) and AUC (DeLong) pooled over every seed's test predictions, with 95 % intervals.
A run folder that already holds a trained model is evaluated again, not retrained (delete it to retrain). About 25 min
on 2 cores for the whole grid.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from medbundle.metrics.intervals import delong_auc, proportion_with_ci  # noqa: E402

CONFIGS = REPO / "bundles" / "ct_infection" / "configs"
LITE = [str(CONFIGS / "efficientnet_lite0.json")]
# name -> (overlays, command-line options of train.json, test-time views evaluated)
RECIPES = {
    "five-block CNN (the default), 64 px, 8 epochs": ([], ["--epochs", "8"], (1, 10)),
    "EfficientNet-Lite0 (ImageNet), 128 px, 8 epochs": (LITE, ["--epochs", "8", "--spatial_size", "[128,128]"], (1, 10)),
    "EfficientNet-Lite0, 224 px, 8 epochs": (LITE, ["--epochs", "8", "--spatial_size", "[224,224]"], (1,)),
    "EfficientNet-Lite0, 128 px, 15 epochs": (LITE, ["--epochs", "15", "--spatial_size", "[128,128]"], (1, 10)),
}
CLASSES = "['NORMAL','HEMORRHAGE']"


def _bundle(configs: list[str], *args: str, log: Path) -> None:
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(configs), *args]
    with open(log, "w") as out:
        if subprocess.run(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
            raise SystemExit(f"error: {' '.join(cmd)} failed; see {log}")


def run_grid(dataset_dir: Path, output_dir: Path, seeds: list[int]) -> dict[tuple[str, int], list[Path]]:
    """Train and evaluate every recipe and seed; the eval folders per (recipe, views), one per seed."""
    out: dict[tuple[str, int], list[Path]] = {}
    jobs = [(name, seed) for name in RECIPES for seed in seeds]
    for name, seed in tqdm(jobs, desc="head CT recipes", unit="run"):
        overlays, options, views = RECIPES[name]
        run = output_dir / f"{list(RECIPES).index(name)}_seed{seed}"
        common = ["--dataset_dir", str(dataset_dir), "--output_dir", str(run), "--class_names", CLASSES,
                  "--seed", str(seed)]
        size = options[options.index("--spatial_size") + 1] if "--spatial_size" in options else None
        sized = ["--spatial_size", size] if size else []
        train = [str(CONFIGS / "train.json"), *overlays]
        if not (run / "models" / "model.pt").is_file():
            run.mkdir(parents=True, exist_ok=True)
            _bundle(train, *common, *options, "--batch_size", "16", log=run / "train.log")
        for v in views:
            eval_dir = run / f"eval_tta{v}"
            _bundle([*train, str(CONFIGS / "evaluate.json")], *common, *sized, "--tta_views", str(v), "--eval_dir",
                    str(eval_dir), log=run / f"eval_tta{v}.log")
            out.setdefault((name, v), []).append(eval_dir)
    return out


def table_row(name: str, eval_dirs: list[Path]) -> str:
    """One markdown row: AUC per seed, mean, pooled accuracy and AUC with intervals."""
    aucs, positive, score, correct = [], [], [], []
    for d in eval_dirs:
        aucs.append(json.loads((d / "metrics.json").read_text())["auc_macro_ovr"])
        with open(d / "predictions.csv", newline="") as f:
            for r in csv.DictReader(f):
                positive.append(r["label_name"] == "HEMORRHAGE")
                score.append(float(r["prob_HEMORRHAGE"]))
                correct.append(r["label"] == r["pred"])
    auc = delong_auc(np.array(positive), np.array(score))
    acc = proportion_with_ci(int(sum(correct)), len(correct))
    return (f"| {name} | " + " | ".join(f"{a:.3f}" for a in aucs) + f" | {np.mean(aucs):.3f} | {acc['value']:.3f} "
            f"[{acc['lo']:.3f}, {acc['hi']:.3f}] | {auc['value']:.3f} [{auc['lo']:.3f}, {auc['hi']:.3f}] |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset_dir", default=str(REPO.parent / "shared" / "data" / "head_ct"))
    p.add_argument("--output_dir", default="runs/head_ct_recipes")
    p.add_argument("--seeds", default="0,1,2,3,4")
    args = p.parse_args(argv)
    dataset_dir = Path(args.dataset_dir).expanduser().resolve()
    if not dataset_dir.is_dir():
        print(f"error: --dataset_dir {dataset_dir}: no such folder. Pass the Kaggle head CT folder (NORMAL/, "
              "HEMORRHAGE/).", file=sys.stderr)
        return 2
    seeds = [int(s) for s in args.seeds.split(",")]
    grid = run_grid(dataset_dir, Path(args.output_dir).expanduser().resolve(), seeds)
    print("| recipe | " + " | ".join(f"AUC seed {s}" for s in seeds) + " | mean AUC | pooled accuracy | pooled AUC |")
    print("|---|" + "---|" * (len(seeds) + 3))
    for (name, views), dirs in grid.items():
        print(table_row(name if views == 1 else f"{name}, {views} test-time views", dirs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
