"""The web demo for real: ``python -m medbundle.demo`` on a free loopback port, driven in headless Chromium.

Needs Streamlit (the ``demo`` extra), Selenium and Debian's ``chromium`` + ``chromium-driver``: without them the tests
are skipped, saying what is missing, unless ``MEDBUNDLE_REQUIRE_SERVICES`` is set (CI), where they fail instead.
"""

from __future__ import annotations

import os
import shutil

import nibabel
import numpy as np
import pytest
from PIL import Image

from medbundle.demo.browser import DemoPage, DemoServer, missing_requirements
from medbundle.serving.predictor import BUNDLES

BUNDLE = BUNDLES / "pneumonia_xray"

pytestmark = pytest.mark.slow


def require_browser() -> None:
    """Skip (or, with ``MEDBUNDLE_REQUIRE_SERVICES`` set, fail) when the demo cannot be driven here."""
    reason = missing_requirements()
    if reason is None:
        return
    if os.environ.get("MEDBUNDLE_REQUIRE_SERVICES"):
        pytest.fail(f"MEDBUNDLE_REQUIRE_SERVICES is set but the demo browser test cannot run: {reason}", pytrace=False)
    pytest.skip(f"demo browser test: {reason} (with MEDBUNDLE_REQUIRE_SERVICES set this fails)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_browser()
    demo = DemoServer("--bundle", "pneumonia_xray", "--max_upload_mb", "20",
                      log=tmp_path_factory.mktemp("demo") / "demo.log")
    yield demo
    demo.stop()


@pytest.fixture()
def page(server):
    browser = DemoPage(server.url)
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def film(tmp_path_factory):
    """The real MONOCHROME1 chest radiograph of pydicom-data, and the label the serving predictor gives it."""
    from pydicom.data import get_testdata_file

    from medbundle.serving import BundlePredictor

    path = tmp_path_factory.mktemp("film") / "RG1_UNCR.dcm"
    shutil.copy(get_testdata_file("RG1_UNCR.dcm"), path)
    return path, BundlePredictor("pneumonia_xray").predict(path).label


def test_dicom_upload_shows_the_predictors_answer_heatmap_and_header(server, page, film, tmp_path):
    path, label = film
    # the model card is open until the first answer, its plots shown by the page (not links it cannot answer)
    card = page.images(("ROC with the operating point", "accuracy against referral"))
    assert card.get("ROC with the operating point", 0) > 0 and card.get("accuracy against referral", 0) > 0, card
    shown_ms = page.upload_timed(path, ("image (as the model saw it)", "heat map", "overlay"))  # timed by the page
    assert 0 < shown_ms < 120_000
    assert page.result(path.name) == f"Prediction: {label}"
    images = page.images(("image (as the model saw it)", "heat map", "overlay"))
    assert images.get("heat map", 0) > 0 and images.get("overlay", 0) > 0, images
    assert images.get("image (as the model saw it)", 0) > 0, images
    text = page.text()
    for shown in ("Calibrated confidence", "Refer to a radiologist", "prediction set", "Class probabilities",
                  "DICOM header", "CR", "MONOCHROME1", "PA", "CHEST", "1955 x 1841",
                  "Research and education only, not for clinical use."):
        assert shown in text, f"{shown!r} not on the page"
    assert "Traceback" not in text
    shot = page.screenshot(tmp_path / "demo_dicom.png")
    assert shot.stat().st_size > 10_000
    assert server.proc.poll() is None


def test_bad_files_show_one_line_and_the_page_keeps_serving(server, page, film, tmp_path):
    text_file = tmp_path / "notes.png"
    text_file.write_text("this is a text file, not an image\n")
    huge = tmp_path / "huge.png"  # 48 million pixels, above the bundle's max_pixels (40 million), a small file
    Image.fromarray(np.zeros((6000, 8000), np.uint8)).save(huge)
    volume = tmp_path / "volume.nii.gz"
    nibabel.save(nibabel.Nifti1Image(np.zeros((32, 32, 8), np.float32), np.eye(4)), str(volume))
    for bad, why in ((text_file, "cannot be read as an image"), (huge, "48,000,000 pixels, more than the limit of "
                      "40,000,000. Downscale the image and upload it again."), (volume, "2D")):
        page.upload(bad)
        message = page.error(bad.name)
        assert why in message and "\n" not in message.strip() and "--max_pixels" not in message, message
        assert "Traceback" not in page.text()
    too_big = tmp_path / "too_big.dcm"  # above the server's --max_upload_mb 20: refused by the page, never sent
    too_big.write_bytes(bytes(21 * 2**20))
    page.upload(too_big)
    page.wait_text("File must be 20.0MB or smaller")
    page.screenshot(tmp_path / "demo_bad_upload.png")
    path, label = film
    page.upload(path)  # the same page answers the next good file
    assert page.result(path.name) == f"Prediction: {label}"
    assert server.proc.poll() is None and server.healthy()


def test_demo_image_explanation_methods_and_a_run_folder(server, page, film, tmp_path):
    path, label = film
    page.select("... or pick a demo image", "RG1_UNCR.dcm (chest radiograph, DICOM, pydicom-data)")
    assert page.result(path.name) == f"Prediction: {label}"
    for method in ("Grad-CAM++", "Occlusion (slow)"):
        page.select("Explanation", method)
        page.wait_text(f"{path.name} · {method} ·", timeout=180)
        images = page.images(("heat map", "overlay"))
        assert images.get("heat map", 0) > 0 and images.get("overlay", 0) > 0, (method, images)
    run = tmp_path / "run"  # a run folder: the shipped model and its calibration copied, served from there
    (run / "models").mkdir(parents=True)
    for name in ("model.pt", "calibration.json"):
        shutil.copy(BUNDLE / "models" / name, run / "models" / name)
    page.type_text("Run folder (optional)", str(run))
    page.wait_text(f"Model: {run / 'models' / 'model.pt'}", timeout=120)
    assert page.result(path.name) == f"Prediction: {label}"
    page.type_text("Run folder (optional)", "/no/such/run")
    assert "/no/such/run" in page.error("/no/such/run") and server.proc.poll() is None
