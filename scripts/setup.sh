#!/usr/bin/env bash
# Installs everything Clipper needs on a fresh Debian/Ubuntu machine: system packages when
# missing (ffmpeg, espeak-ng, rclone; with --test also chromium, redis-server, postgresql), a
# virtual environment in .venv and the Python packages. Safe to run again: it skips what is done.
set -euo pipefail
cd "$(dirname "$0")/.."
TEST=0
[ "${1:-}" = "--test" ] && TEST=1

need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v espeak-ng >/dev/null || need+=(espeak-ng)
command -v rclone >/dev/null || need+=(rclone)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
if [ "$TEST" = 1 ]; then
  command -v chromium >/dev/null || need+=(chromium)
  command -v redis-server >/dev/null || need+=(redis-server)
  command -v openssl >/dev/null || need+=(openssl)
  command -v pg_ctlcluster >/dev/null || need+=(postgresql)
fi
if [ "${#need[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "Installing system packages: ${need[*]}"
  $SUDO apt-get -o DPkg::Lock::Timeout=120 update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 install -y -q "${need[@]}"
fi

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "Clipper needs Python 3.11 or newer (found $(python3 --version))." >&2; exit 1; }
[ -x .venv/bin/python ] || python3 -m venv .venv
PIP=(.venv/bin/python -m pip install -q --disable-pip-version-check)

# Re-install only when pyproject.toml changed since the last successful run.
stamp=".venv/.clipper-installed-$TEST-$(sha1sum pyproject.toml | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  if [ "$TEST" = 1 ]; then
    "${PIP[@]}" -e '.[test]'
    # openai-whisper without its multi-GB CUDA torch: a CPU torch first, then the slim set.
    "${PIP[@]}" torch==2.13.0
    "${PIP[@]}" --no-deps openai-whisper
    "${PIP[@]}" numba tiktoken more-itertools
  else
    "${PIP[@]}" -e .
  fi
  touch "$stamp"
fi
echo "Clipper is installed in $(pwd)/.venv"
