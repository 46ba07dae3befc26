#!/usr/bin/env bash
# The CPU speed gate: run the benchmarks and fail when one is slower than the stored baseline.
#
#   bash benchmarks/gate.sh               compare with benchmarks/baseline/baseline.json
#   bash benchmarks/gate.sh --refresh     record a new baseline on this machine (then commit it)
#
# A benchmark fails the gate when its median is more than 50% above the baseline's
# (GATE_FAIL=median:80% changes the rule). Extra arguments are passed to pytest.
# The baseline comes from one machine; on another one, pytest-benchmark warns that the
# machine info differs, and that warning alone never fails the gate.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

baseline=benchmarks/baseline/baseline.json
machine_warning="ignore:Benchmark machine_info is different:pytest_benchmark.logger.PytestBenchmarkWarning"

if [[ "${1:-}" == "--refresh" ]]; then
    shift
    exec python -m pytest benchmarks -q --benchmark-only --benchmark-json="$baseline" "$@"
fi

if [[ ! -f "$baseline" ]]; then
    echo "gate: no baseline at $baseline; record one with: bash benchmarks/gate.sh --refresh" >&2
    exit 2
fi

status=0
python -m pytest benchmarks -q --benchmark-only \
    --benchmark-storage="file://benchmarks/baseline" \
    --benchmark-compare="$baseline" \
    --benchmark-compare-fail="${GATE_FAIL:-median:50%}" \
    --benchmark-columns=min,median,max,rounds \
    -W "$machine_warning" \
    "$@" || status=$?
if [[ $status -ne 0 ]]; then
    echo "gate: FAILED (exit $status): a benchmark's check failed or its median regressed beyond" \
         "${GATE_FAIL:-median:50%} of $baseline (see 'Performance has regressed' above)" >&2
else
    echo "gate: passed (no benchmark regressed beyond ${GATE_FAIL:-median:50%} of $baseline)"
fi
exit $status
