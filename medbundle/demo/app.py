"""The demo page: a Streamlit script, started by ``python -m medbundle.demo`` (never imported by the package).

A user picks a bundle (every bundle that ships a trained model, or a run folder by path) and an explanation method,
uploads a PNG, JPEG or DICOM image or picks a demo image, and sees the class probabilities (bar chart), the calibrated
confidence, the conformal prediction set with a plain "refer to a radiologist" flag, the heat-map triplet (image,
map, overlay), the DICOM header facts, and the model card. Every answer comes from
:meth:`medbundle.serving.BundlePredictor.predict`: there is no second inference path. A file the predictor refuses is
one line on the page; anything unexpected is one line too (its traceback goes to the server log), and the page keeps
serving.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import streamlit as st

from medbundle.data.errors import DataError
from medbundle.data.limits import PixelLimitError
from medbundle.demo.card import card_markdown
from medbundle.demo.dicom_facts import dicom_facts
from medbundle.demo.predictors import demo_images, get_predictor, trained_bundles
from medbundle.demo.settings import parse_settings
from medbundle.demo.uploads import safe_suffix, save_upload
from medbundle.demo.views import as_uint8, figure_png, heatmap_rgb, probability_table, referral_text
from medbundle.serving import EXPLAIN_METHODS, RESEARCH_ONLY, BundlePredictor, PredictorError
from medbundle.serving.predictor import resolve_bundle

logger = logging.getLogger("medbundle.demo")

METHOD_NAMES = {"gradcam": "Grad-CAM", "gradcampp": "Grad-CAM++", "occlusion": "Occlusion (slow)",
                "integrated_gradients": "Integrated gradients"}
NO_EXAMPLE = "(none: upload a file)"


@st.cache_resource(show_spinner=False)
def _card_figure(path: str, mtime: float) -> bytes:
    """A model-card figure made small once per file version (``mtime``), not on every rerun."""
    return figure_png(path)


def _bundle_choices(first: str) -> dict[str, str]:
    """``{name: folder}``: the bundle given on the command line first, then every bundle with a trained model."""
    choices = {}
    try:
        root = resolve_bundle(first)
        choices[root.name] = str(root)
    except PredictorError:
        pass
    for name in trained_bundles():
        choices.setdefault(name, name)
    return choices


def sidebar(settings) -> tuple[BundlePredictor | None, str]:
    """The model and explanation controls; the predictor (None, with the reason shown, where it cannot load)."""
    st.sidebar.header("Model")
    choices = _bundle_choices(settings.bundle)
    name = st.sidebar.selectbox("Bundle", list(choices), key="bundle",
                                help="Every bundle that ships a trained model (models/model.pt).")
    run_dir = st.sidebar.text_input("Run folder (optional)", value=settings.run_dir or "", key="run_dir",
                                    help="The --output_dir of a finished train.json run of this bundle: its "
                                         "models/model.pt is served instead of the shipped model.").strip()
    method = st.sidebar.selectbox("Explanation", list(EXPLAIN_METHODS), format_func=METHOD_NAMES.get, key="method")
    st.sidebar.caption(f"Upload limit: {settings.max_upload_mb} MB (--max_upload_mb).")
    try:
        with st.spinner(f"Loading {name}..."):
            predictor = get_predictor(choices[name], run_dir or None)
    except PredictorError as e:
        st.error(str(e))
        return None, method
    st.sidebar.caption(f"Model: `{predictor.model_path}`; classes: {', '.join(predictor.class_names)}; "
                       f"calibrated: {'yes' if predictor.calibration else 'no'}.")
    return predictor, method


def predict(predictor: BundlePredictor, data: bytes, name: str, method: str, max_mb: int) -> dict[str, Any]:
    """The prediction for one file, or the one-line reason it has none: ``{"answer", "facts", "ms"}`` or ``{"error"}``."""
    with tempfile.TemporaryDirectory(prefix="medbundle_demo_") as tmp:
        try:
            path = save_upload(data, name, tmp, max_mb * 2**20)
            facts = dicom_facts(path)
            start = time.perf_counter()
            answer = predictor.predict(path, explain=method)
            return {"answer": answer, "facts": facts, "ms": (time.perf_counter() - start) * 1000}
        except PixelLimitError as e:  # the bundle keys that raise the limit are not the page user's to change
            return {"error": f"{name}: {e.what}. Downscale the image and upload it again."}
        except (DataError, PredictorError) as e:  # the message names the saved copy: name the user's file instead
            saved = Path(tmp) / f"upload{safe_suffix(name)}"
            return {"error": str(e).replace(str(saved), name).replace(saved.name, name)}
        except Exception as e:  # a bug, not the user's file: one line on the page, the traceback in the server log
            logger.exception("%s: prediction failed", name)
            return {"error": f"{name}: could not be analysed ({type(e).__name__}). Try another PNG, JPEG or DICOM "
                             f"image; the server log has the details."}


def show_result(result: dict[str, Any], name: str, predictor: BundlePredictor) -> None:
    """Prediction, confidence, prediction set and referral, probabilities, heat maps, DICOM facts."""
    if "error" in result:
        st.error(result["error"])
        return
    answer = result["answer"]
    st.header(f"Prediction: {answer.label}", anchor="prediction")
    st.caption(f"{name} · {METHOD_NAMES[answer.method]} · answered in {result['ms']:.0f} ms")
    left, mid, right = st.columns(3)
    calibrated = answer.calibrated is not None
    left.metric("Calibrated confidence" if calibrated else "Confidence (uncalibrated)", f"{answer.confidence:.1%}")
    if answer.decision is not None:
        mid.metric("Decision at the operating threshold", answer.decision)
    conformal = (predictor.calibration or {}).get("conformal") or {}
    refer, line = referral_text(answer, 1 - conformal["alpha"] if "alpha" in conformal else None)
    if refer:
        right.metric("Refer to a radiologist", "YES")
        st.warning(line)
    elif refer is False:
        right.metric("Refer to a radiologist", "no")
        st.success(line)
    else:
        st.info(line)
    st.subheader("Class probabilities")
    st.bar_chart(probability_table(answer), stack=False, horizontal=True, height=160)
    st.subheader(f"{METHOD_NAMES[answer.method]} for {answer.label}")
    cols = st.columns(3)
    cols[0].image(as_uint8(answer.image), caption="image (as the model saw it)", width=300)
    cols[1].image(heatmap_rgb(answer.heatmap), caption="heat map", width=300)
    cols[2].image(answer.overlay(), caption="overlay", width=300)
    if result["facts"]:
        st.subheader("DICOM header")
        st.table({"": list(result["facts"]), "value": list(result["facts"].values())})


def main() -> None:
    started = time.perf_counter()
    settings = parse_settings(sys.argv[1:])
    st.set_page_config(page_title="medbundle demo", layout="wide")
    st.title("medbundle: image classification demo")
    st.warning(RESEARCH_ONLY)
    predictor, method = sidebar(settings)
    if predictor is None:
        return
    uploaded = st.file_uploader("Upload an image: PNG, JPEG or DICOM", key="upload")
    examples = demo_images(predictor.bundle_root)
    example = st.selectbox("... or pick a demo image", [NO_EXAMPLE, *examples], key="example")
    if uploaded is not None:
        source, name, read = f"upload:{uploaded.file_id}", uploaded.name, uploaded.getvalue
    elif example != NO_EXAMPLE:
        source, name, read = f"example:{examples[example]}", examples[example].name, examples[example].read_bytes
    else:
        source = None
    if source is not None:
        key = (source, str(predictor.model_path), method)
        fresh = st.session_state.get("result_key") != key
        if fresh:  # a new file, model or method: predict; else show the answer again
            with st.spinner(f"Analysing {name}..."):
                st.session_state["result"] = predict(predictor, read(), name, method, settings.max_upload_mb)
            st.session_state["result_key"] = key
        show_result(st.session_state["result"], name, predictor)
        if fresh:  # the server's share of upload-to-result (scripts/benchmark_demo.py reads it from the log)
            logger.info("page: %s answered and drawn in %.0f ms (prediction %.0f ms)", name,
                        (time.perf_counter() - started) * 1000, st.session_state["result"].get("ms", float("nan")))
    # open until the first answer; not re-opened while the next upload replaces the last (the page does not jump)
    with st.expander("Model card", expanded="result_key" not in st.session_state):
        _, text, figures = card_markdown(predictor.bundle_root)
        st.markdown(text)
        for column, (path, caption) in zip(st.columns(max(1, len(figures))), figures):
            column.image(_card_figure(str(path), path.stat().st_mtime), caption=caption)


if __name__ == "__main__":
    main()
