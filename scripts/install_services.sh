#!/usr/bin/env bash
# Install what the serving tests start for real: Orthanc with its DICOMweb plugin (a PACS, started by the tests on
# loopback with their own configuration), headless Chromium with its driver (the web demo's browser test), and the
# MONAI Label server's own environment (scripts/label_env.sh). Debian/Ubuntu packages, as root or through sudo;
# packages already installed are skipped, and the label env is only rebuilt when its inputs change.
#
#   bash scripts/install_services.sh
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v Orthanc >/dev/null 2>&1 || [[ -x /usr/sbin/Orthanc ]] || need+=(orthanc)
[[ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ]] || need+=(orthanc-dicomweb)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
if ((${#need[@]})); then
  sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  echo "installing ${need[*]} (apt)" >&2
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
bash scripts/label_env.sh
