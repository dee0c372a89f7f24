#!/usr/bin/env bash
# Distributed Mandelbrot (cluster tutorial, Part 10).
#
# Starts a coordinator on :9100 and 4 workers on :9000-9003, waits until all four
# are registered and ready, deploys the group "mandelbrot-distributed" (pipelines
# row0..row3 from mandelbrot_worker_{0..3}.vpl, each pinned to worker-<row>, routes
# ComputeTile<row>* -> row<row>), injects the 16 ComputeTile<row><col> events in
# parallel and prints the topology. Pixels go to MQTT topic mandelbrot/pixels on
# localhost:1883 (start a broker first: `varpulis broker` or mosquitto); render
# them with ../render.py. The cluster keeps running until Ctrl-C (KEEP_RUNNING=0:
# stop right after the topology).
#
# Environment: VARPULIS (command, default "varpulis"), API_KEY (coordinator key,
# default admin), WORKER_KEY (default test), COORDINATOR_PORT (9100),
# BASE_PORT (9000), HTTP_TIMEOUT (coordinator → worker calls, 60 s), LOG_DIR
# (default: a new temporary directory).
# Needs bash, curl and python3 (to build the JSON request); jq is optional.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
read -r -a VARPULIS_CMD <<<"${VARPULIS:-varpulis}"
API_KEY="${API_KEY:-admin}"
WORKER_KEY="${WORKER_KEY:-test}"
COORDINATOR_PORT="${COORDINATOR_PORT:-9100}"
BASE_PORT="${BASE_PORT:-9000}"
KEEP_RUNNING="${KEEP_RUNNING:-1}"
LOG_DIR="${LOG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/mandelbrot-cluster.XXXXXX")}"
COORDINATOR="http://localhost:${COORDINATOR_PORT}"
CLUSTER="${COORDINATOR}/api/v1/cluster"
WORKERS=4
mkdir -p "${LOG_DIR}"

pids=()
cleanup() {
    if ((${#pids[@]})); then
        echo "Stopping the cluster..."
        kill "${pids[@]}" 2>/dev/null || true
        wait "${pids[@]}" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() {
    echo "error: $*" >&2
    echo "logs: ${LOG_DIR}" >&2
    exit 1
}

api() { # api METHOD PATH [curl args...]
    local method=$1 path=$2
    shift 2
    curl -sS --max-time 30 -X "${method}" "${CLUSTER}${path}" -H "x-api-key: ${API_KEY}" "$@"
}

pretty() {
    if command -v jq >/dev/null 2>&1; then jq .; else cat; echo; fi
}

# poll SECONDS DESCRIPTION COMMAND...: run COMMAND every 0.2 s until it succeeds.
poll() {
    local seconds=$1 what=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@"; do
        ((SECONDS < deadline)) || die "timed out after ${seconds} s waiting for ${what}"
        sleep 0.2
    done
}

# A child that exited (port in use, bad flag) ends the wait at once, with its log.
check_alive() {
    local pid name
    for pid in "${pids[@]}"; do
        if ! kill -0 "${pid}" 2>/dev/null; then
            for name in "${LOG_DIR}"/*.log; do
                echo "--- ${name}" >&2
                tail -n 5 "${name}" >&2
            done
            die "a cluster process (pid ${pid}) exited"
        fi
    done
}
coordinator_up() { check_alive && curl -sf --max-time 2 "${COORDINATOR}/health" >/dev/null; }
ready_workers() { api GET /workers | grep -o '"status": *"ready"' | wc -l; }
all_ready() { check_alive && (($(ready_workers) >= WORKERS)); }

echo "=== Distributed Mandelbrot: 1 coordinator + ${WORKERS} workers (logs: ${LOG_DIR}) ==="

echo "Starting coordinator on :${COORDINATOR_PORT}"
# A worker starts 4 context processes per deploy: allow more than the default 10 s
# for a deploy on a small, busy machine.
"${VARPULIS_CMD[@]}" coordinator --port "${COORDINATOR_PORT}" --api-key "${API_KEY}" \
    --http-timeout "${HTTP_TIMEOUT:-60}" >"${LOG_DIR}/coordinator.log" 2>&1 &
pids+=($!)
poll 30 "the coordinator at ${COORDINATOR}" coordinator_up

for ((i = 0; i < WORKERS; i++)); do
    port=$((BASE_PORT + i))
    echo "Starting worker-${i} on :${port}"
    "${VARPULIS_CMD[@]}" server --port "${port}" --api-key "${WORKER_KEY}" \
        --coordinator "${COORDINATOR}" --worker-id "worker-${i}" \
        >"${LOG_DIR}/worker-${i}.log" 2>&1 &
    pids+=($!)
done

echo "Waiting for ${WORKERS} workers to register..."
poll 60 "${WORKERS} ready workers" all_ready
api GET /workers | pretty

echo "Deploying pipeline group 'mandelbrot-distributed'"
spec="$(python3 - "${HERE}" "${WORKERS}" <<'PY'
import json, sys
from pathlib import Path

here, n = Path(sys.argv[1]), int(sys.argv[2])
print(json.dumps({
    "name": "mandelbrot-distributed",
    "pipelines": [
        {"name": f"row{r}", "source": (here / f"mandelbrot_worker_{r}.vpl").read_text(),
         "worker_affinity": f"worker-{r}"}
        for r in range(n)
    ],
    "routes": [
        {"from_pipeline": "_external", "to_pipeline": f"row{r}",
         "event_types": [f"ComputeTile{r}*"]}
        for r in range(n)
    ],
}))
PY
)"
deployed="$(api POST /pipeline-groups -H "Content-Type: application/json" -d "${spec}")"
echo "${deployed}" | pretty
# The group's own "id" (placements carry "pipeline_id"/"worker_id", never a bare "id").
group_id="$(echo "${deployed}" | grep -o '"id": *"[^"]*"' | head -n 1 | cut -d'"' -f4 || true)"
[[ -n "${group_id}" ]] || die "deployment failed: ${deployed}"
echo "${deployed}" | grep -q '"status": *"running"' || die "not every pipeline is running"
echo "Group id: ${group_id}"

echo "Injecting 16 ComputeTile events in parallel"
start_ns=$(date +%s%N)
injects=()
for ((row = 0; row < WORKERS; row++)); do
    for ((col = 0; col < 4; col++)); do
        api POST "/pipeline-groups/${group_id}/inject" --fail-with-body \
            -H "Content-Type: application/json" \
            -d "{\"event_type\": \"ComputeTile${row}${col}\", \"fields\": {}}" \
            -o "${LOG_DIR}/inject-${row}${col}.json" &
        injects+=($!)
    done
done
failed=0
for pid in "${injects[@]}"; do
    wait "${pid}" || failed=$((failed + 1))
done
elapsed_ms=$((($(date +%s%N) - start_ns) / 1000000))
((failed == 0)) || die "${failed} inject request(s) failed"
echo "All 16 events injected in ${elapsed_ms} ms (tiles are computed in the workers' contexts;"
echo "pixels stream to MQTT topic mandelbrot/pixels)"

echo "Topology:"
api GET /topology | pretty

if [[ "${KEEP_RUNNING}" == "1" ]]; then
    echo "Cluster running (coordinator ${COORDINATOR}); press Ctrl-C to stop it."
    wait "${pids[@]}"
fi
