#!/usr/bin/env bash
# The lead's session on the GPU machine, in one call: status, plan, doctor, sampler cost, the
# app's first frame and bytes per second with the live GPU panel, and SVGs of the real panel.
# Wheels for what the machine lacks travel in .whl/ (see the device README).
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl >/dev/null 2>&1 || { echo "wheel install failed"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
echo "== uname: $(uname -r); python $(python3 -V 2>&1)"
echo "== gpuwizard status";             python3 -m gpuwizard status 2>&1 | tee "$OUT/status.txt"
python3 -m gpuwizard status --json > "$OUT/status.json" 2>&1
echo "== status --json wall time (5 runs)"
for i in 1 2 3 4 5; do /usr/bin/time -f "%e s" python3 -m gpuwizard status --json >/dev/null; done 2>&1 | tr '\n' ' '; echo
echo "== gpuwizard doctor";             python3 -m gpuwizard doctor 2>&1 | tee "$OUT/doctor.txt"
echo "== sampler cost";                 python3 benchmarks/sampler_cost.py --samples 5000 2>&1
echo "== the app on this GPU";          python3 tests/gpu/lead_h200.py "$OUT" "${WINDOW:-60}" 2>&1
