#!/usr/bin/env bash
# One command for a person with an NVIDIA GPU and a CUDA build of torch, maybe without a package index: installs
# the project from a wheelhouse carried along (`make wheelhouse` where an index is; `pip install --no-index`) into
# a virtual environment that sees the system's torch, runs the tests that need CUDA (tests/test_cuda.py: device
# placement, bf16/fp16 autocast, nccl with one rank, tiny ResNet and BERT fine-tunes) and prints a table.
#   scripts/gpu-check.sh [WHEELHOUSE]      (default dist/wheelhouse; run from a checkout of this repository)
# PYTHON: the interpreter whose torch to use (default python3). GPU_CHECK_VENV: where the environment goes.
set -euo pipefail
cd "$(dirname "$0")/.."
wheels=${1:-dist/wheelhouse}
py=${PYTHON:-python3}
[ -d "$wheels" ] || { echo "no wheelhouse at $wheels: run 'make wheelhouse' on a machine with a package index" >&2; exit 2; }
"$py" - <<'PY'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit(f"torch {torch.__version__} sees no CUDA device (a CPU build, or no driver): nothing to check")
try:
    import numpy  # noqa: F401  (the wheelhouse leaves numpy to the torch installation)
except ImportError:
    sys.exit("this python has torch but no numpy: pip install numpy (or add its wheel to the wheelhouse)")
PY
venv=${GPU_CHECK_VENV:-.gpu-check-venv}
"$py" -m venv --system-site-packages "$venv"
# --system-site-packages reaches the base interpreter's packages only: where torch lives in a virtual environment
# itself (common on GPU machines: /opt/torch/.venv, conda), a .pth file adds that environment's site-packages, after
# the new one's, so the wheelhouse's versions win and the system's torch is still found
"$py" -c 'import site; print("\n".join(site.getsitepackages()))' \
  > "$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/zoo-gpu-check-system.pth"
"$venv/bin/python" -c "import torch" || { echo "the new environment does not see $py's torch" >&2; exit 2; }
# every wheel of the wheelhouse, as it is (the closure was resolved when it was made); the ResNet test needs the
# system's torchvision, which must match its torch: without it, zoo-torchvision stays out and that test skips
wheels_to_install=()
for wheel in "$wheels"/*.whl; do
  case $(basename "$wheel") in
    zoo_torchvision-*) "$venv/bin/python" -c "import torchvision" 2>/dev/null || continue ;;
  esac
  wheels_to_install+=("$wheel")
done
"$venv/bin/python" -m pip install --quiet --no-index --no-deps "${wheels_to_install[@]}"
"$venv/bin/python" -c "import zoo_core.train, zoo_core.probe, zoo_transformers, zoo_tinynet" || {
  echo "a module is missing (above): the wheelhouse left out something this machine lacks" >&2; exit 2; }
report=$(mktemp -d)
start=$(date +%s)
"$venv/bin/python" -m pytest tests/test_cuda.py -q -p no:cacheprovider --junitxml="$report/cuda.xml" || true
"$venv/bin/python" - "$report/cuda.xml" "$start" <<'PY'
import sys
import time
import xml.etree.ElementTree as ET

import torch

cases = ET.parse(sys.argv[1]).getroot().iter("testcase")
print(f"\nGPU check: {torch.cuda.get_device_name(0)}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
      f"{time.time() - int(sys.argv[2]):.0f} s in all")
print(f"{'test':<62} {'result':<8} {'s':>6}")
failed = 0
for case in cases:
    outcome = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")
    failed += outcome in ("failure", "error")
    print(f"{case.get('name'):<62} {outcome:<8} {float(case.get('time', 0)):>6.1f}")
sys.exit(1 if failed else 0)
PY
