#!/usr/bin/env bash
# First frame of the app on the GPU machine, byte-compiled as an installed copy would be.
set -u
python3 -m pip install -q --no-index --no-deps --no-cache-dir --upgrade --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
unset PYTHONDONTWRITEBYTECODE
python3 -m compileall -q /tmp/site gpuwizard benchmarks >/dev/null 2>&1
echo "PYTHONDONTWRITEBYTECODE was: ${PYTHONDONTWRITEBYTECODE-unset}"
echo "== python -c pass: $( { /usr/bin/time -f %e python3 -c pass; } 2>&1 )"
echo "== import textual.app: $( { /usr/bin/time -f %e python3 -c 'import textual.app'; } 2>&1 )"
echo "== status --json x5:"; for i in 1 2 3 4 5; do { /usr/bin/time -f "%e" python3 -m gpuwizard status --json >/dev/null; } 2>&1; done | tr '\n' ' '; echo
python3 - <<'PY'
import statistics, sys
sys.path.insert(0, ".")
from benchmarks.pty_app import PtyApp
frames = []
for _ in range(8):
    app = PtyApp([sys.executable, "-m", "gpuwizard", "--no-mouse"])
    app.start()
    try:
        t = app.wait_for(b"Quit", 20)
        frames.append(t)
    finally:
        app.stop()
print("first frame (s):", [round(f, 3) for f in frames], "median of the last 7:",
      round(statistics.median(frames[1:]), 3))
PY
python3 -X importtime -c "import gpuwizard.tui.app" 2>&1 | sort -t'|' -k2 -n | tail -8
