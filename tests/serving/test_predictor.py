"""The serving predictor answers exactly as the bundle's own inference.json, loads once, and refuses bad input in one line."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import nibabel
import numpy as np
import pytest
from PIL import Image

from medbundle.data.errors import DataError
from medbundle.serving import BundlePredictor, PredictorError, model_card, resolve_bundle
from conftest import BUNDLES, bundle_config, export_pngs, run_bundle

SHIPPED = BUNDLES / "pneumonia_xray" / "models" / "model.pt"


@pytest.fixture(scope="module")
def shipped() -> BundlePredictor:
    return BundlePredictor("pneumonia_xray")


@pytest.fixture(scope="module")
def films(tmp_path_factory) -> Path:
    """Six synthetic chest films (JPEG) and the real MONOCHROME1 radiograph of pydicom-data, in one folder."""
    from pydicom.data import get_testdata_file

    from medbundle.data.demo_xray import make_xray_demo

    demo = make_xray_demo(tmp_path_factory.mktemp("xray_demo"), n_patients=5, size=96, seed=3)
    folder = tmp_path_factory.mktemp("films")
    for i, film in enumerate(sorted(Path(demo).rglob("*.jpeg"))[:6]):
        shutil.copy(film, folder / f"film{i}.jpeg")
    shutil.copy(get_testdata_file("RG1_UNCR.dcm"), folder / "RG1_UNCR.dcm")
    return folder


def _rows(csv_path: Path) -> dict[str, dict[str, str]]:
    return {Path(r["id"]).name: r for r in csv.DictReader(open(csv_path))}


def _assert_same_as_inference(predictor: BundlePredictor, rows: dict[str, dict[str, str]], folder: Path) -> None:
    assert rows, "inference.json wrote no predictions"
    for name, row in rows.items():
        answer = predictor.predict(folder / name)
        for k, c in enumerate(predictor.class_names):
            assert answer.probs[k] == pytest.approx(float(row[f"prob_{c}"]), abs=1e-5), (name, c)
            if f"cal_prob_{c}" in row:
                assert answer.calibrated[k] == pytest.approx(float(row[f"cal_prob_{c}"]), abs=1e-5), (name, c)
        if "prediction_set" in row:
            assert "|".join(answer.prediction_set) == row["prediction_set"]
            assert int(answer.refer) == int(row["refer"])
        assert answer.label in predictor.class_names


@pytest.mark.slow
def test_shipped_model_answers_as_inference_json(shipped, films, tmp_path):
    """Probabilities (raw and calibrated), prediction sets and refer flags of the predictor equal predictions.csv of
    ``inference.json`` on the same files (synthetic JPEG films and the real MONOCHROME1 DICOM) to 1e-5."""
    run_bundle(bundle_config("pneumonia_xray", "inference"), "--input_path", str(films), "--output_dir",
               str(tmp_path), cwd=tmp_path)
    rows = _rows(tmp_path / "inference" / "predictions.csv")
    assert set(rows) == {p.name for p in films.iterdir()}
    assert "cal_prob_PNEUMONIA" in next(iter(rows.values()))  # the shipped calibration applies to both paths
    _assert_same_as_inference(shipped, rows, films)


@pytest.mark.slow
def test_run_folder_is_rebuilt_from_its_record(trained, ct_demo_dir, tmp_path):
    """A run trained at 32 px with a small network is served at 32 px with that network, as inference.json serves it."""
    folder, _ = export_pngs(ct_demo_dir / "Test.mat", tmp_path / "pngs", 5)
    run_bundle(bundle_config("ct_infection", "inference"), "--input_path", str(folder), "--output_dir", str(trained),
               "--predictions_dir", str(tmp_path / "pred"), cwd=tmp_path)
    predictor = BundlePredictor("ct_infection", run_dir=trained)
    assert predictor.spatial_size == [32, 32] and predictor.model_path == trained / "models" / "model.pt"
    answer = predictor.predict(folder / "slice0.png", explain="gradcam")
    assert answer.heatmap.shape == (32, 32) and answer.image.shape == (32, 32)
    _assert_same_as_inference(predictor, _rows(tmp_path / "pred" / "predictions.csv"), folder)


def test_answer_with_heat_map_and_calibration(shipped, films):
    answer = shipped.predict(films / "RG1_UNCR.dcm", explain="gradcam")
    assert answer.heatmap.shape == tuple(shipped.spatial_size) == answer.image.shape
    assert 0.0 <= answer.heatmap.min() and answer.heatmap.max() <= 1.0 and answer.heatmap.max() > 0
    rgb = answer.overlay()
    assert rgb.dtype == np.uint8 and rgb.shape == (*shipped.spatial_size, 3)
    body = answer.to_dict()
    assert set(body["probabilities"]) == {"NORMAL", "PNEUMONIA"}
    assert sum(body["calibrated_probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert body["label"] == max(body["calibrated_probabilities"], key=body["calibrated_probabilities"].get)
    assert body["refer"] == (len(body["prediction_set"]) != 1)
    assert body["decision"] in ("PNEUMONIA", "not PNEUMONIA") and body["explanation"] == "gradcam"
    again = shipped.predict(films / "RG1_UNCR.dcm")  # no state left behind by the explanation
    assert np.allclose(again.probs, answer.probs, atol=1e-6) and again.heatmap is None


@pytest.mark.parametrize("method", ["gradcampp", "occlusion"])
def test_other_explanations(shipped, films, method):
    answer = shipped.predict(films / "film0.jpeg", explain=method)
    assert answer.method == method and answer.heatmap.shape == tuple(shipped.spatial_size)


def test_bad_inputs_are_one_line_data_errors(shipped, tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    volume = tmp_path / "volume.nii.gz"
    nibabel.save(nibabel.Nifti1Image(np.random.rand(32, 32, 12).astype(np.float32), np.eye(4)), volume)
    for bad, words in [(text, "notes.png"), (volume, "2D"), (tmp_path / "missing.png", "no such file")]:
        with pytest.raises(DataError) as info:
            shipped.predict(bad)
        message = str(info.value)
        assert words in message and "\n" not in message, message
    with pytest.raises(ValueError, match="unknown explanation"):
        shipped.predict(text, explain="lime")


def test_pixel_limit_applies(tmp_path):
    predictor = BundlePredictor("pneumonia_xray", overrides={"max_pixels": 10_000})
    big = tmp_path / "big.png"
    Image.fromarray(np.zeros((200, 200), np.uint8)).save(big)
    with pytest.raises(DataError, match="max_pixels"):
        predictor.predict(big)


def test_unknown_bundle_and_missing_model(tmp_path):
    with pytest.raises(PredictorError, match="pneumonia_xray"):  # the message lists the bundles that exist
        resolve_bundle(tmp_path / "nowhere")
    with pytest.raises(PredictorError, match="no trained model"):
        BundlePredictor("pneumonia_xray", run_dir=tmp_path)  # an empty run folder never serves the shipped model
    with pytest.raises(PredictorError, match="no such run folder"):
        BundlePredictor("pneumonia_xray", run_dir=tmp_path / "missing")


def test_model_of_another_bundle_is_refused(tmp_path):
    (tmp_path / "models").mkdir()
    shutil.copy(SHIPPED, tmp_path / "models" / "model.pt")
    with pytest.raises(PredictorError, match="does not fit"):
        BundlePredictor("chest_xray", run_dir=tmp_path)  # 2 classes into a 3-class network


def test_model_card_reads_metadata():
    card = model_card(resolve_bundle("pneumonia_xray"))
    assert card["classes"] == ["NORMAL", "PNEUMONIA"] and card["figures"]["test_images"] == 745
    assert "Research" in card["intended_use"] and card["disclaimer"].startswith("Research")
    assert card["docs"].endswith("README.md") and "_desc_" not in card["figures"]
