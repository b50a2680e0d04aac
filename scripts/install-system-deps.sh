#!/usr/bin/env bash
# Installs the Debian packages the gateway and its tests use, only when one is missing.
set -euo pipefail
packages=(dcmtk orthanc dicom3tools tesseract-ocr prometheus fonts-dejavu-core fonts-liberation)
commands=(storescu Orthanc dciodvfy tesseract prometheus)
missing=0
for c in "${commands[@]}"; do command -v "$c" >/dev/null 2>&1 || { [ -x "/usr/sbin/$c" ] || missing=1; }; done
for p in fonts-dejavu-core fonts-liberation; do dpkg -s "$p" >/dev/null 2>&1 || missing=1; done
[ "$missing" = 0 ] && exit 0
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
# Debian starts services on install; the tests start their own Orthanc and Prometheus.
for s in orthanc prometheus; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$s" 2>/dev/null; then
    $sudo systemctl stop "$s" || true
  fi
done
