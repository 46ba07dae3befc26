#!/usr/bin/env bash
# The CPU speed gate: every benchmark times our hot path against a fixed reference
# implementation of the same computation, in alternating rounds of the same run, and fails
# when the median ratio ours / reference exceeds its limit (benchmarks/conftest.py).
#
#   bash benchmarks/gate.sh                      run the gate (exit 0: passed)
#   GATE_SLOWDOWN=1.5 bash benchmarks/gate.sh    self-test: our side 1.5x slower; must fail
#
# Nothing is compared with timings from another run or machine, so there is no stored
# baseline to refresh. The results, with each ratio and limit in extra_info, go to
# $GATE_JSON (default .benchmarks/gate.json). PYTHON picks the interpreter; extra
# arguments are passed to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python=${PYTHON:-python}
json=${GATE_JSON:-.benchmarks/gate.json}
mkdir -p "$(dirname "$json")"

status=0
"$python" -m pytest benchmarks -q --benchmark-only --benchmark-json="$json" \
    --benchmark-timer=time.process_time --benchmark-columns=min,median,max,rounds "$@" || status=$?

if [[ -f "$json" ]]; then
    "$python" - "$json" <<'EOF' || true
import json, sys
for b in json.load(open(sys.argv[1]))["benchmarks"]:
    info = b["extra_info"]
    if "ratio" in info:
        verdict = "ok" if info["ratio"] <= info["max_ratio"] else "REGRESSED"
        print(f"gate: {b['name']:<32} ours/reference {info['ratio']:.3f}  limit {info['max_ratio']}  {verdict}")
EOF
fi
if [[ $status -ne 0 ]]; then
    echo "gate: FAILED (exit $status): a benchmark's check failed or its ratio exceeded its limit" >&2
else
    echo "gate: passed (every benchmark within its ratio limit)"
fi
exit $status
