"""Timing machinery of ``scripts/benchmark_training.py``: the ct_infection bundle's trainer against a hand loop.

Builds the bundle from its config (:func:`build_bundle`), the hand-written PyTorch loop (:class:`HandLoop`,
:func:`hand_optimizer`), steps the bundle's ignite trainer one iteration at a time (:class:`BundleSteps`),
checks that both forward paths agree (:func:`check_equivalence`), interleaves the two sides and summarises
the per-step times (:func:`benchmark`, :func:`summarise`). The method is documented in the docstring of
``scripts/benchmark_training.py``, which parses the command line and calls :func:`benchmark`.
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BUNDLE_NAME = "ct_infection"
BUNDLE = REPO / "bundles" / BUNDLE_NAME
# benchmark this checkout's medbundle, whichever copy happens to be pip-installed
if str(REPO) not in sys.path[:1]:
    sys.path.insert(0, str(REPO))


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
    from medbundle.handlers import CheckpointSaver

    savers = [w for w in parser.get_parsed_content("train#writers") if isinstance(w, CheckpointSaver)]
    if len(savers) != 1:
        raise RuntimeError(f"{BUNDLE_NAME} train.json: train#writers holds {len(savers)} CheckpointSavers, not 1")
    return {
        "parser": parser,
        "network": network,
        "hand_network": hand_network,
        "loss": parser.get_parsed_content("loss"),
        "optimizer": parser.get_parsed_content("optimizer"),
        "inferer": parser.get_parsed_content("train#inferer"),
        "dataloader": parser.get_parsed_content("train#dataloader"),
        "trainer": trainer,
        "saver": savers[0],
        "checkpoint_seconds": savers[0].interval_seconds,  # as the bundle sets it
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
        from medbundle.inferers import bf16_supported

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


def summarise(steps: list[dict], n_iter: int, batch_size: int, checkpoint_seconds: float = 0.0) -> dict:
    """Per-step medians, the epoch-level cost of the bundle and the ratios, from the timed steps.

    The epoch-boundary steps are split by whether they wrote a checkpoint: the headline amortises the checkpoint's
    cost over the epochs between two checkpoints at ``checkpoint_seconds`` (see :func:`checkpoints_per_epoch`).
    """
    full = [s for s in steps if s["images"] == batch_size and s["hand_images"] == batch_size]
    regular = [s for s in full if not s["new_epoch"]]
    b_step = _med(s["bundle_s"] for s in regular)
    h_step = _med(s["hand_s"] for s in regular)
    # the epoch-boundary step runs the epoch-level handlers on top of a normal step
    boundary = [s for s in full if s["new_epoch"]]
    plain = _med(s["bundle_s"] - b_step for s in boundary if not s.get("checkpoint"))
    with_checkpoint = _med(s["bundle_s"] - b_step for s in boundary if s.get("checkpoint"))
    plain = 0.0 if plain != plain else plain  # no full-batch boundary step of that kind timed
    checkpoint = max(0.0, with_checkpoint - plain) if with_checkpoint == with_checkpoint else 0.0
    per_epoch = checkpoints_per_epoch(checkpoint_seconds, n_iter * b_step + plain)
    epoch_cost = plain + checkpoint * per_epoch
    every_epoch_cost = plain + checkpoint
    b_cost = b_step + epoch_cost / n_iter
    return {
        "timed_steps": len(steps),
        "regular_full_batch_pairs": len(regular),
        "bundle": {
            "median_step_ms": 1e3 * b_step,
            "epoch_level_handlers_ms": 1e3 * epoch_cost,
            "epoch_level_without_checkpoint_ms": 1e3 * plain,
            "checkpoint_ms": 1e3 * checkpoint,
            "checkpoint_seconds": checkpoint_seconds,
            "checkpoints_per_epoch": per_epoch,
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
        "ratio_checkpoint_every_epoch": (b_step + every_epoch_cost / n_iter) / h_step,
        "ratio_step_only": b_step / h_step,
        "ratio_paired_median": _med(s["bundle_s"] / s["hand_s"] for s in regular),
        "ratio_cpu_time": _med(s["bundle_cpu_s"] for s in regular) / _med(s["hand_cpu_s"] for s in regular),
    }


def checkpoints_per_epoch(checkpoint_seconds: float, epoch_seconds: float) -> float:
    """Checkpoints per epoch of the saver's ``interval_seconds`` rule: one at the first epoch end at least
    ``checkpoint_seconds`` after the previous one, i.e. one every ``ceil(checkpoint_seconds / epoch_seconds)``
    epochs (every epoch for 0, or for epochs longer than the interval)."""
    if checkpoint_seconds <= 0 or not epoch_seconds > 0:
        return 1.0
    return 1.0 / max(1, math.ceil(checkpoint_seconds / epoch_seconds))


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

    # the saver's own interval would write no checkpoint in a few timed epochs: every other epoch boundary writes
    # one (interval 0) and the others none (an interval not yet due), to time both; summarise() amortises the
    # checkpoint's cost at the bundle's interval
    saver, checkpoint_seconds = b["saver"], b["checkpoint_seconds"]
    steps: list[dict] = []
    per_epoch: list[dict] = []
    t_start = time.perf_counter()
    for e in range(args.warmup + args.epochs):
        timed = e >= args.warmup
        epoch_steps = []
        saver.interval_seconds = 0.0 if e % 2 == 1 else math.inf
        for i in range(n_iter):
            k = e * n_iter + i
            rec: dict[str, Any] = {"epoch": e + 1, "iteration": i + 1, "bundle_first": k % 2 == 0}
            saved_before = saver._interval_checkpoint.last_checkpoint
            for side in (("bundle", "hand") if rec["bundle_first"] else ("hand", "bundle")):
                if side == "bundle":
                    rec["bundle_s"], rec["bundle_cpu_s"], rec["images"], rec["new_epoch"] = bundle_step()
                else:
                    rec["hand_s"], rec["hand_cpu_s"], rec["hand_images"] = hand_step()
            rec["checkpoint"] = saver._interval_checkpoint.last_checkpoint != saved_before
            epoch_steps.append(rec)
        tag = "timed" if timed else "warm-up"
        summary = summarise(epoch_steps, n_iter, batch_size)
        wrote = " with a checkpoint" if any(r["checkpoint"] for r in epoch_steps) else ""
        print(f"epoch {e + 1}/{args.warmup + args.epochs} ({tag}): bundle {summary['bundle']['median_step_ms']:.1f} "
              f"ms/step (+{summary['bundle']['epoch_level_handlers_ms']:.0f} ms epoch handlers{wrote}), hand "
              f"{summary['hand']['median_step_ms']:.1f} ms/step, ratio {summary['ratio']:.3f} "
              f"[{time.perf_counter() - t_start:.0f} s]", flush=True)
        if timed:
            steps += epoch_steps
            per_epoch.append({"epoch": e + 1, "ratio": summary["ratio"], "ratio_step_only": summary["ratio_step_only"],
                              "bundle_median_step_ms": summary["bundle"]["median_step_ms"],
                              "hand_median_step_ms": summary["hand"]["median_step_ms"]})

    saver.interval_seconds = checkpoint_seconds
    result = summarise(steps, n_iter, batch_size, checkpoint_seconds)
    result.update({
        "settings": {
            "data": args.data, "threads": threads, "batch_size": batch_size, "iterations_per_epoch": n_iter,
            "images_per_epoch": sum(len(x["image"]) for x in batches), "n_train": args.n_train,
            "warmup_epochs": args.warmup, "timed_epochs": args.epochs, "device": str(device),
            "bf16_autocast": hand.amp, "channels_last": hand.channels_last, "validation": "off (val_interval=10**9)",
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
          f"{bb['median_step_ms']:.1f} median step + {bb['epoch_level_handlers_ms']:.0f} ms epoch handlers / {n_iter}; "
          f"those are {bb['epoch_level_without_checkpoint_ms']:.0f} ms + a {bb['checkpoint_ms']:.0f} ms checkpoint x "
          f"{bb['checkpoints_per_epoch']:.3f} per epoch at checkpoint_seconds={checkpoint_seconds:g})")
    print(f"hand:   {hh['images_per_second']:.1f} images/s ({hh['median_step_ms']:.1f} ms/step)")
    print(f"bundle/hand ratio: {result['ratio']:.2f}")
    print(f"  (exact {result['ratio']:.3f}; with a checkpoint every epoch "
          f"{result['ratio_checkpoint_every_epoch']:.3f}; step only {result['ratio_step_only']:.3f}, paired median "
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
