"""The demo's parts without a browser: DICOM header facts, uploads on disk, the model card text, the referral line,
the command line's one-line refusals and Streamlit's offline settings."""

from __future__ import annotations

import io

import socket

import numpy as np
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from medbundle.data.errors import DataError
from medbundle.demo import DemoSettings, dicom_facts, parse_settings
from medbundle.demo.card import card_figures, card_markdown, docs_card_section
from medbundle.demo.launch import port_free, streamlit_options
from medbundle.demo.predictors import demo_images, trained_bundles
from medbundle.demo.uploads import safe_suffix, save_upload
from medbundle.demo.views import as_uint8, figure_png, heatmap_rgb, probability_table, referral_text
from medbundle.serving import Prediction
from conftest import BUNDLES


def test_dicom_facts_of_a_chest_radiograph_and_a_ct():
    assert dicom_facts(get_testdata_file("RG1_UNCR.dcm")) == {
        "modality": "CR", "photometric interpretation": "MONOCHROME1", "view position": "PA", "body part": "CHEST",
        "rows x columns": "1955 x 1841"}
    ct = dicom_facts(get_testdata_file("CT_small.dcm"))
    assert ct["modality"] == "CT" and ct["photometric interpretation"] == "MONOCHROME2"
    assert ct["rows x columns"] == "128 x 128" and ct["view position"] == "-"


def test_dicom_facts_is_none_for_other_files(tmp_path):
    png = tmp_path / "film.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(png)
    fake = tmp_path / "fake.dcm"
    fake.write_text("not DICOM at all")
    assert dicom_facts(png) is None and dicom_facts(fake) is None


def test_save_upload_keeps_only_a_plain_suffix_and_enforces_the_limit(tmp_path):
    saved = save_upload(b"\x89PNG...", "../../etc/evil name.PNG", tmp_path, max_bytes=100)
    assert saved == tmp_path / "upload.png" and saved.read_bytes() == b"\x89PNG..."
    assert [p.name for p in tmp_path.iterdir()] == ["upload.png"]  # no temporary file left
    assert safe_suffix("scan.nii.gz") == ".nii.gz" and safe_suffix("film") == "" and safe_suffix("a.p n g") == ""
    with pytest.raises(DataError, match=r"big\.png: 0\.0 MB is above the upload limit.*--max_upload_mb"):
        save_upload(b"x" * 101, "big.png", tmp_path, max_bytes=100)
    with pytest.raises(DataError, match="empty"):
        save_upload(b"", "empty.png", tmp_path, max_bytes=100)


def test_model_card_text_has_data_intervals_intended_use_and_disclaimer():
    card, text, figures = card_markdown(BUNDLES / "pneumonia_xray")
    assert card["bundle"] == "pneumonia_xray"
    for shown in ("Kermany", "Intended use", "auc", "0.957-0.981 (Wilson)", "95 %",
                  "Research and education only, not for clinical use."):
        assert shown in text, shown
    assert docs_card_section(None) is None
    # the card's plots are shown by the page, not left as links the web server cannot answer
    assert "![" not in text
    assert [(p.name, c) for p, c in figures][:2] == [("roc.png", "ROC with the operating point"),
                                                     ("precision_recall.png",
                                                      "precision-recall with the operating point")]
    assert all(p.is_file() for p, _ in figures)


def test_figure_png_is_small_rgb_on_white(tmp_path):
    rgba = np.zeros((300, 1000, 4), np.uint8)
    rgba[:, :500] = (255, 0, 0, 255)  # the left half red and opaque, the right half transparent
    Image.fromarray(rgba).save(tmp_path / "plot.png")
    out = Image.open(io.BytesIO(figure_png(str(tmp_path / "plot.png"), max_width=400)))
    assert out.mode == "RGB" and out.size == (400, 120)
    assert out.getpixel((50, 60)) == (255, 0, 0) and out.getpixel((350, 60)) == (255, 255, 255)
    Image.new("L", (200, 100), 7).save(tmp_path / "small.png")
    assert Image.open(io.BytesIO(figure_png(str(tmp_path / "small.png")))).size == (200, 100)  # never enlarged


def test_card_figures_takes_out_the_docs_images_and_leaves_a_caption_for_the_rest(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "roc.png").write_bytes(b"png")
    (tmp_path / "secret.png").write_bytes(b"png")
    section = ("Figures:\n\n![the ROC](roc.png) ![gone](missing.png)\n\n\n\n![outside](../secret.png) "
               "![web](https://example.org/a.png)\nend")
    text, figures = card_figures(section, docs)
    assert figures == [((docs / "roc.png").resolve(), "the ROC")]
    assert text == "Figures:\n\n *(gone)*\n\n*(outside)* *(web)*\nend"
    # a Markdown title after the file name, and a link that loops
    (docs / "loop.png").symlink_to(docs / "loop.png")
    text, figures = card_figures('![with title](roc.png "ROC curve") ![looping](loop.png)', docs)
    assert figures == [((docs / "roc.png").resolve(), "with title")] and text == "*(looping)*"


def _answer(prediction_set, refer, calibrated=(0.8, 0.2)):
    return Prediction(["NORMAL", "PNEUMONIA"], np.array([0.7, 0.3]), None if calibrated is None else
                      np.array(calibrated), "NORMAL", 0.8, prediction_set, refer)


def test_referral_line_says_when_to_refer():
    assert referral_text(_answer([], True), 0.9) == (True, "Refer to a radiologist: the 90% prediction set {} is "
                                                     "empty, so the model cannot settle on one class for this image.")
    refer, line = referral_text(_answer(["NORMAL", "PNEUMONIA"], True))
    assert refer and "more than one class" in line
    assert referral_text(_answer(["NORMAL"], False))[0] is False
    assert referral_text(_answer(None, None, calibrated=None))[0] is None


def test_probability_table_and_images():
    table = probability_table(_answer(["NORMAL"], False))
    assert list(table.columns) == ["calibrated", "raw"] and list(table.index) == ["NORMAL", "PNEUMONIA"]
    assert list(probability_table(_answer(None, None, calibrated=None)).columns) == ["raw"]
    grey = as_uint8(np.array([[0.0, 0.5], [1.0, 0.25]]))
    assert grey.dtype == np.uint8 and grey.min() == 0 and grey.max() == 255
    assert as_uint8(np.ones((2, 2))).max() == 0
    assert heatmap_rgb(np.array([[0.0, 1.0]])).shape == (1, 2, 3)


def test_bundles_on_offer_and_demo_images():
    assert "pneumonia_xray" in trained_bundles() and "ct_infection" not in trained_bundles()
    images = demo_images(BUNDLES / "pneumonia_xray")
    assert any(p.name == "RG1_UNCR.dcm" and p.is_file() for p in images.values())


def test_settings_round_trip_and_streamlit_stays_offline():
    settings = DemoSettings(bundle="pneumonia_xray", run_dir="runs/x", host="127.0.0.1", port=9000, max_upload_mb=7,
                           threads=2)
    assert parse_settings(settings.as_args()) == settings
    options = streamlit_options(settings)
    assert options["browser.gatherUsageStats"] is False and options["server.headless"] is True
    assert options["server.maxUploadSize"] == 7 and options["server.address"] == "127.0.0.1"
    assert options["client.showErrorDetails"] == "none"


def test_command_line_refusals_are_one_line(capsys):
    import importlib.util
    import os

    if importlib.util.find_spec("streamlit") is None:
        if os.environ.get("MEDBUNDLE_REQUIRE_SERVICES"):
            pytest.fail("MEDBUNDLE_REQUIRE_SERVICES is set but Streamlit is not installed: "
                        "pip install -c constraints.txt -e '.[demo]'", pytrace=False)
        pytest.skip("the demo extra is not installed: pip install -c constraints.txt -e '.[demo]'")
    from medbundle.demo.__main__ import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert not port_free("127.0.0.1", port)
        assert main(["--port", str(port)]) == 2
    assert main(["--bundle", "no_such_bundle", "--port", str(port)]) == 2
    assert main(["--bundle", "ct_infection", "--port", str(port)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3, lines
    assert "in use" in lines[0] and "--port" in lines[0]
    assert "no_such_bundle: no such folder" in lines[1] and "pneumonia_xray" in lines[1]
    assert "ct_infection: no trained model" in lines[2]
    with pytest.raises(SystemExit):
        parse_settings(["--port", "70000"])


def test_page_refuses_too_many_pixels_without_naming_bundle_keys():
    import io

    from medbundle.demo.app import predict
    from medbundle.demo.predictors import get_predictor

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((6000, 8000), np.uint8)).save(buffer, format="PNG")  # 48 M pixels > max_pixels 40 M
    out = predict(get_predictor(BUNDLES / "pneumonia_xray"), buffer.getvalue(), "huge.png", "gradcam", 20)
    assert out == {"error": "huge.png: 6000 x 8000 = 48,000,000 pixels, more than the limit of 40,000,000. Downscale "
                            "the image and upload it again."}
