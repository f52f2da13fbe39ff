#!/usr/bin/env bash
# The wheels benchmarks/gpu_check.py needs on a GPU host that has Python 3.12 with JAX, NumPy and
# pyarrow but no TensorFlow and no internet: Keras and the two packages of Keras that such a host
# lacks (namex, optree), at the versions of uv.lock, into .gpu-wheels/ (about 3 MiB). Carry that
# folder with the repository, then on the host:
#   python3 -m pip install --no-deps --target /tmp/keras .gpu-wheels/*.whl
#   PYTHONPATH=/tmp/keras:. python3 benchmarks/gpu_check.py --events 60000
# Keras' other dependencies (absl-py, h5py, ml-dtypes, rich, packaging) come with JAX images.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON_VERSION="${GPU_PYTHON_VERSION:-3.12}"
version() { grep -A1 "^name = \"$1\"$" uv.lock | sed -n 's/^version = "\(.*\)"/\1/p'; }
rm -rf .gpu-wheels
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest .gpu-wheels \
  --python-version "$PYTHON_VERSION" --implementation cp --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_34_x86_64 \
  "keras==$(version keras)" "namex==$(version namex)" "optree==$(version optree)"
du -sh .gpu-wheels
ls .gpu-wheels
