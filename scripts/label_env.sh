#!/usr/bin/env bash
# Build the MONAI Label server's own environment: a virtual environment with medbundle (the project's own pins:
# torch 2.13.0, MONAI 1.6.1, pydicom 3, numpy 2) and MONAI Label 0.8.5 beside it.
#
#   bash scripts/label_env.sh            # builds (or checks) the env, prints its python
#   MEDBUNDLE_LABEL_ENV=/path bash scripts/label_env.sh
#
# Why a separate environment: `pip install monailabel==0.8.5` pulls pydicom-seg, which pins numpy<2 and does not
# import on pydicom 3, plus sam2, torchvision, ITK and OpenSlide that a classification server never uses. medbundle
# reads DICOM with pydicom 3 (pydicom.pixels), so installing MONAI Label's full set beside the project would
# change the very code that answers. Here MONAI Label is installed without its dependency list, and only the
# packages its server, local and DICOMweb datastores and infer endpoint import are added; the project's packages
# keep their versions, so the server answers with exactly the code and libraries the tests check.
# pydicom-seg (imported by MONAI Label's /infer endpoint for segmentation results, never called for a
# classification) gets the one name it lost in pydicom 3 from medbundle/serving/label_app/pydicom3_compat.py.
#
# Idempotent: a second run with nothing changed checks the env and returns in about a second.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV_DIR="${MEDBUNDLE_LABEL_ENV:-$HOME/.cache/medbundle/label-venv}"
PY="${PYTHON:-python3}"
STAMP="$ENV_DIR/.medbundle-label-stamp"
COMPAT="$REPO/medbundle/serving/label_app/pydicom3_compat.py"

# what the environment is built from: a change to any of these rebuilds it
want="$(cat "$0" "$REPO/pyproject.toml" "$REPO/constraints.txt" "$COMPAT" | sha256sum | cut -d' ' -f1) $REPO"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]] \
   && "$ENV_DIR/bin/python" -c "import importlib.util as u, sys; sys.exit(not all(map(u.find_spec, ('monailabel', 'medbundle'))))" 2>/dev/null; then
  echo "label env ready: $ENV_DIR/bin/python"
  exit 0
fi

echo "building the label env in $ENV_DIR (a few minutes)" >&2
start=$(date +%s)
rm -f "$STAMP"
[[ -x "$ENV_DIR/bin/python" ]] || "$PY" -m venv "$ENV_DIR"
PIP=("$ENV_DIR/bin/python" -m pip install -q --disable-pip-version-check)

# 1. the project, with its own pins (torch 2.13.0 CPU from constraints.txt, MONAI 1.6.1, pydicom 3, numpy 2)
"${PIP[@]}" -c "$REPO/constraints.txt" -e "$REPO"

# 2. what MONAI Label's server, datastores and endpoints import, then MONAI Label itself without its dependency list
#    (last, so that pip does not list the packages left out: sam2, numpymaxflow, ninja, pydicom-seg's numpy<2)
"${PIP[@]}" -c "$REPO/constraints.txt" \
  "fastapi>=0.110.2" "uvicorn>=0.29.0" "pydantic>=2.7.0" "pydantic-settings>=2.2.1" "python-dotenv>=1.0.1" \
  "python-multipart>=0.0.9" "httpx>=0.27.0" "schedule>=1.2.1" "dicomweb-client[gcp]>=0.59.1" "timeloop>=1.0.2" \
  "expiringdict>=1.2.2" "expiring_dict>=1.1.0" "cachetools>=5.3.3" "watchdog>=4.0.0" "pynetdicom>=2.0.2" \
  "pynrrd>=1.0.0" "einops>=0.7.0" "pyyaml>=6.0.1" "filelock>=3.11.0" "passlib>=1.7.4" "pyjwt>=2.8.0" \
  "bcrypt>=4.1.2" "shapely>=2.0.4" "requests>=2.31.0" "requests-toolbelt>=1.0.0" "urllib3>=2.2.1" "psutil" \
  "SimpleITK>1.2.4" "jsonschema>=3.2,<4" "itk-core>=5.3" "girder-client>=3.2.3"
"${PIP[@]}" --no-deps "monailabel==0.8.5" "pydicom-seg==0.4.1"

# 3. pydicom-seg's one lost name (pydicom._storage_sopclass_uids), registered at start-up by a .pth file
SITE="$("$ENV_DIR/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
cp "$COMPAT" "$SITE/_medbundle_pydicom3_compat.py"
echo "import _medbundle_pydicom3_compat" > "$SITE/_medbundle_pydicom3_compat.pth"

"$ENV_DIR/bin/python" -c "import monailabel.app, medbundle.serving, pydicom_seg" >/dev/null
echo "$want" > "$STAMP"
echo "label env built in $(( $(date +%s) - start )) s ($(du -sh "$ENV_DIR" | cut -f1)): $ENV_DIR/bin/python"
