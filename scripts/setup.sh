#!/usr/bin/env bash
# Installs every Debian package zoft needs to build and test, on a fresh Debian 12 machine.
# Idempotent: does nothing when everything is already there.
set -euo pipefail

packages=(
  build-essential cmake pkg-config ccache git xz-utils python3 python3-pip
  libopenblas-dev libdnnl-dev
  nlohmann-json3-dev libyaml-cpp-dev libcli11-dev libfmt-dev liblzma-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libopenmpi-dev openmpi-bin
  clang libclang-rt-14-dev llvm-14  # scripts/fuzz.sh: libFuzzer, ASan/UBSan runtimes, symbolizer
  clang-format                      # the repository's .clang-format (contributors)
  python3-dev pybind11-dev ninja-build python3-numpy python3-pytest  # the Python package
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Test-only Python package: TensorBoard's own reader checks our event files. Debian 12 has no
# package for it, and its pip refuses the system interpreter (PEP 668) without
# --break-system-packages. Optional: without it (no PyPI) that one test skips itself.
if ! python3 -c "import tensorboard" 2>/dev/null; then
  echo "setup: installing the python package tensorboard (tests read our event files with it)"
  python3 -m pip install --quiet tensorboard 2>/dev/null ||
    python3 -m pip install --quiet --break-system-packages tensorboard ||
    echo "setup: WARNING: pip could not install tensorboard; the event-file test will skip"
fi

# The Python package (python/, docs/python.md): built with scikit-build-core (pip; Debian 12 has
# no package of it) against Debian's pybind11, and installed into this python3. Debian's own
# interpreter refuses pip without --break-system-packages (PEP 668, EXTERNALLY-MANAGED); another
# python3 first on PATH (pyenv, a venv) gets numpy and pytest from pip if it lacks them.
# ZOFT_SKIP_PYTHON=1 leaves it out.
if [ "${ZOFT_SKIP_PYTHON:-0}" != "1" ]; then
  pip_flags=(--quiet --disable-pip-version-check --root-user-action=ignore)
  if python3 -c 'import os, sys, sysconfig
sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["stdlib"], "EXTERNALLY-MANAGED")) else 1)'; then
    pip_flags+=(--break-system-packages)
  fi
  for module in scikit_build_core:scikit-build-core numpy:numpy pytest:pytest; do
    if ! python3 -c "import ${module%%:*}" 2>/dev/null; then
      echo "setup: installing the python package ${module#*:} (builds / tests python/)"
      python3 -m pip install "${pip_flags[@]}" "${module#*:}"
    fi
  done
  echo "setup: building and installing the python package zoft (python/; minutes the first time)"
  python3 -m pip install "${pip_flags[@]}" --no-build-isolation "$(dirname "$0")/../python"
fi
