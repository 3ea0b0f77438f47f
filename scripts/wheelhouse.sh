#!/usr/bin/env bash
# Wheels for scripts/gpu-check.sh, made where a package index is, for a machine that has a CUDA build of torch
# but maybe no index: the project and the plugins the CUDA tests use, built here, and the closure of what those
# tests import, at the versions installed in .venv (the tested ones). Left out: torch and torchvision (the GPU
# machine brings its own CUDA builds), numpy (every CUDA torch installation we know has it; gpu-check.sh checks),
# what only the registry or the server needs (sqlmodel, alembic, httpx; hf-xet, which huggingface_hub loads
# only to download), and scikit-learn with scipy, joblib and threadpoolctl (45 MB: only the linear probe's fit and
# `zoo rank` import them, and the CUDA tests use neither). `make wheelhouse` runs it.
#   scripts/wheelhouse.sh [DIR]   (default dist/wheelhouse)
# WHEELHOUSE_LEAVE_OUT: packages the GPU machine already has or the check does not need (default: numpy and the
# scikit-learn family; set it to "numpy" to carry them, 76 MB in all instead of 33 MB).
# WHEELHOUSE_PYTHON (default 3.11) and WHEELHOUSE_PLATFORMS (default: manylinux_2_28 and manylinux2014, x86_64:
# glibc 2.28 or later) describe the GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-dist/wheelhouse}
py=${PYTHON:-.venv/bin/python}
rm -rf "$out" && mkdir -p "$out"
"$py" -m pip wheel --quiet --no-deps -w "$out" . plugins/zoo-torchvision plugins/zoo-transformers \
  tests/plugins/zoo-tinynet
pins=$(mktemp)
"$py" -m pip freeze --exclude-editable | grep -v '^-e' > "$pins"
mapfile -t deps < <("$py" - <<'PY'
import tomllib
skip = ("torch", "torchvision", "numpy", "sqlmodel", "alembic", "httpx")
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
for dep in [*deps, "transformers", "pytest"]:
    if not dep.startswith(skip):
        print(dep)
PY
)
platforms=()
for platform in ${WHEELHOUSE_PLATFORMS:-manylinux_2_28_x86_64 manylinux2014_x86_64}; do
  platforms+=(--platform "$platform")
done
"$py" -m pip download --quiet -d "$out" --only-binary=:all: --python-version "${WHEELHOUSE_PYTHON:-3.11}" \
  "${platforms[@]}" -c "$pins" "${deps[@]}" 2>&1 | grep -v "is ignored" || true
for name in ${WHEELHOUSE_LEAVE_OUT:-numpy scikit-learn scipy joblib threadpoolctl}; do rm -f "$out/${name//-/_}"-*.whl; done
rm -f "$pins" "$out"/hf_xet-*.whl "$out"/torch-*.whl "$out"/nvidia_*.whl "$out"/triton-*.whl
ls "$out"/*.whl | wc -l | xargs echo "wheels:"
du -sh "$out"
