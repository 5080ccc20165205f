"""Bundle commands as a user types them: a wrong option or input ends the output with one line naming the key or file
(the traceback in a log file), and boolean words on the command line mean what they say."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import BUNDLES, SMOKE, bundle_config, run_bundle

TASK = "ct_infection"


def last_line(proc) -> str:
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    return lines[-1] if lines else ""


def log_named(proc) -> Path:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    return Path(lines[-2].split("full traceback in ")[1].rsplit(")", 1)[0])


BAD_OPTIONS = [
    (("--epohcs", "3"), "OptionError: unknown key 'epohcs' (--epohcs 3): did you mean 'epochs'?"),
    (("--resume", "maybe"), "OptionError: --resume 'maybe': not a boolean; pass true or false"),
    (("--network_def#batch_norm", "nope"), "OptionError: --network_def#batch_norm 'nope': not a boolean"),
    (("--epochs", "0"), "OptionError: --epochs 0: the number of training epochs must be a whole number >= 1"),
    (("--batch_size", "0"), "OptionError: --batch_size 0: the batch size must be a whole number >= 1"),
    (("--spatial_size", "[0,0]"), "OptionError: --spatial_size [0, 0]: the image size must be two whole numbers > 0"),
    (("--device", "cuda"), "OptionError: --device cuda: CUDA is not available on this machine"),
]


@pytest.mark.slow
@pytest.mark.parametrize("args,message", BAD_OPTIONS, ids=[a[0].strip("-") for a, _ in BAD_OPTIONS])
def test_bad_option_ends_with_one_line(tmp_path, args, message):
    if args[0] == "--device" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    out = tmp_path / "run"
    proc = run_bundle(bundle_config(TASK, "train"), "--output_dir", str(out), *args, check=False)
    assert proc.returncode != 0
    assert last_line(proc).startswith(message), proc.stderr[-3000:]
    assert log_named(proc) == out / "error.log" and "Traceback" in (out / "error.log").read_text()
    assert not (out / "models").exists()


@pytest.mark.slow
def test_output_dir_that_is_a_file(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    proc = run_bundle(bundle_config(TASK, "train"), "--output_dir", str(afile), check=False)
    assert proc.returncode != 0
    assert last_line(proc) == (f"OptionError: --output_dir {afile}: this is a file, not a folder; pass a folder "
                               "(it is created when missing)")
    log = log_named(proc)
    assert log.is_file() and log.parent != afile  # no usable run folder: a temporary file
    log.unlink()


@pytest.mark.slow
def test_bad_dataset_path_ends_with_one_line(tmp_path):
    missing = tmp_path / "no_such_data"
    out = tmp_path / "run"
    proc = run_bundle(bundle_config(TASK, "train"), "--dataset_dir", str(missing), "--output_dir", str(out), check=False)
    assert proc.returncode != 0
    assert last_line(proc).startswith(f"DataError: {missing}") and "--dataset_dir" in last_line(proc)
    assert (out / "error.log").is_file()


@pytest.mark.slow
def test_inference_without_a_model_ends_with_one_line(ct_demo_dir, tmp_path):
    out = tmp_path / "run"
    proc = run_bundle(bundle_config(TASK, "inference"), "--input_path", str(ct_demo_dir / "Test.mat"),
                      "--output_dir", str(out), check=False)
    assert proc.returncode != 0
    assert last_line(proc).startswith(f"FileNotFoundError: no trained model at {out}/models/model.pt")


@pytest.mark.slow
def test_a_bug_keeps_its_traceback(ct_demo_dir, tmp_path):
    proc = run_bundle(bundle_config(TASK, "train"), "--dataset_dir", str(ct_demo_dir), "--output_dir",
                      str(tmp_path / "run"), "--network_def#dense", "$1//0", check=False)
    assert proc.returncode != 0
    assert "ZeroDivisionError" in proc.stderr and "Traceback" in proc.stderr
    assert "The command stopped on a problem" not in proc.stderr


@pytest.mark.slow
def test_false_words_mean_false(ct_demo_dir, tmp_path):
    """``--network_def#batch_norm false`` builds no batch norm; ``--resume false`` starts afresh (not resumes)."""
    out = tmp_path / "run"
    args = ("--dataset_dir", str(ct_demo_dir), "--output_dir", str(out), *SMOKE[2:], "--network_def#batch_norm", "false")
    run_bundle(bundle_config(TASK, "train"), *args, "--epochs", "1")
    state = torch.load(out / "models" / "model.pt", map_location="cpu", weights_only=True)
    state = state.get("model", state)
    assert state and not any("running_mean" in k for k in state), sorted(state)

    again = run_bundle(bundle_config(TASK, "train"), *args, "--epochs", "2", "--resume", "false")
    text = again.stdout + again.stderr
    assert "Epoch[1] Complete" in text and "continuing from" not in text


@pytest.mark.slow
def test_inference_with_a_model_of_another_bundle(trained, ct_demo_dir, tmp_path):
    """A 3-class ct_infection model in the 4-class alzheimer_mri bundle: one line naming the checkpoint and classes."""
    ckpt = trained / "models" / "model.pt"
    proc = run_bundle(str(BUNDLES / "alzheimer_mri" / "configs" / "inference.json"), "--input_path",
                      str(ct_demo_dir / "Test.mat"), "--ckpt_path", str(ckpt), "--output_dir", str(tmp_path / "run"),
                      "--spatial_size", "[32, 32]", "--network_def#features", "[8, 16, 16, 32, 32]", check=False)
    assert proc.returncode != 0
    line = last_line(proc)
    assert line.startswith(f"CheckpointError: {ckpt}: the checkpoint's model has 3 classes but this bundle expects 4 ("), line
    assert "--ckpt_path" in line
