#!/usr/bin/env bash
# Everything the driver work needs from the GPU machine, in one go (device time is scarce):
# record NVML and nvidia-smi idle and under a bf16 matmul load (torch, if present), run the
# real-GPU checks and pytest, and measure the sampler. Usage: tests/gpu/run_on_h200.sh OUTDIR
set -u
OUT=${1:?usage: run_on_h200.sh OUTDIR}
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1
python3 - <<'PY' &
import time
try:
    import torch
except ImportError:
    raise SystemExit("no torch: no load")
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
b = torch.randn_like(a)
t = time.time()
while time.time() - t < 22:
    for _ in range(40):
        c = a @ b
    torch.cuda.synchronize()
PY
LOAD=$!
sleep 9
python3 tests/gpu/record_h200.py /tmp/load
for f in nvml.json nvidia-smi.txt nvidia-smi-q.xml nvidia-smi-loop.txt; do
  cp "/tmp/load/$f" "$OUT/load_$f" 2>/dev/null
done
echo "== under load"
python3 tests/gpu/check_gpu.py 2>&1 | tee "$OUT/check_load.txt"
wait $LOAD
echo "== idle again: pytest tests/gpu"
python3 -m pytest --noconftest -p no:cacheprovider -q tests/gpu 2>&1 | tee "$OUT/pytest_gpu.txt"
echo "== sampler cost"
python3 benchmarks/sampler_cost.py --samples 5000
python3 benchmarks/sampler_cost.py --json --samples 5000 | tee "$OUT/sampler_cost.json"
