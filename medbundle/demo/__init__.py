"""The web demo: a Streamlit page on :class:`medbundle.serving.BundlePredictor` (the one inference path).

Start it with ``python -m medbundle.demo`` (``--bundle``, ``--run_dir``, ``--port``, ``--host``, ``--max_upload_mb``;
see :mod:`medbundle.demo.settings`). Streamlit is an optional dependency (``pip install -e ".[demo]"``): importing
this package does not need it, only starting the page does.
"""

from medbundle.demo.dicom_facts import dicom_facts
from medbundle.demo.settings import DemoSettings, parse_settings

__all__ = ["DemoSettings", "parse_settings", "dicom_facts"]
