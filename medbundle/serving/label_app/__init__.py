"""The medbundle MONAI Label app (``main.py`` + ``lib/``) and its launcher (``python -m medbundle.serving.label_app``).

Needs MONAI Label 0.8.5, installed in its own environment by ``scripts/label_env.sh`` (see
``medbundle/serving/README.md``). Importing this package imports nothing from MONAI Label.
"""
