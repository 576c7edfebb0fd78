#!/usr/bin/env bash
# Installs everything ser_pipeline needs on a fresh Debian machine: espeak-ng and sox from
# apt (the demo corpus is synthesised with them), then a virtual environment in .venv with
# torch 2.9.1 + torchaudio 2.9 and the package. `--test` adds what the tests need.
# Idempotent: a stamp keyed on pyproject.toml and this script skips work already done.
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=0
[ "${1:-}" = "--test" ] && want_test=1
PY=${PYTHON:-python3}
VENV=${SER_VENV:-.venv}

need_apt=()
for cmd in espeak-ng sox; do command -v "$cmd" >/dev/null 2>&1 || need_apt+=("$cmd"); done
[ -e /usr/lib/x86_64-linux-gnu/libsndfile.so.1 ] || [ -e /usr/lib/aarch64-linux-gnu/libsndfile.so.1 ] || need_apt+=(libsndfile1)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "install: apt packages ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

stamp_key=$(cat pyproject.toml scripts/install.sh | sha256sum | cut -c1-16)
stamp="$VENV/.ser-installed-$stamp_key"
if [ ! -e "$stamp" ]; then
  echo "install: python environment in $VENV"
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip wheel setuptools
  # torch first and pinned: a bare `torch` would pull a newer multi-GB build.
  "$VENV/bin/pip" install -q --no-cache-dir torch==2.9.1 'torchaudio==2.9.*'
  "$VENV/bin/pip" install -q --no-cache-dir -e '.[test]'
  touch "$stamp"
fi

if [ $want_test = 1 ]; then
  fstamp="$VENV/.ser-fairseq-0.12.3.1"
  if [ ! -e "$fstamp" ]; then
    # Only the wav2vec parity test needs fairseq (the pipeline reads checkpoints itself).
    # fairseq 0.12.2 does not import on Python 3.11; the fork does, built against our torch.
    echo "install: fairseq-fixed (for the wav2vec parity test; several minutes)"
    "$VENV/bin/pip" install -q wheel cython
    "$VENV/bin/pip" install -q --no-cache-dir --no-build-isolation fairseq-fixed==0.12.3.1
    "$VENV/bin/python" -c "import torch; assert torch.__version__.startswith('2.9.1'), torch.__version__"
    touch "$fstamp"
  fi
fi
echo "install: done ($VENV)"
