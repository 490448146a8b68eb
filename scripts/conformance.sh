#!/usr/bin/env bash
# scripts/conformance.sh: the official MCP conformance suite, run against an upstream
# directly and through Sluice in the same run; fails when Sluice makes any scenario worse.
#
# The upstream is the Go MCP SDK's conformance server (everything-server), the suite is
# @modelcontextprotocol/conformance; both are pinned and installed into .cache/testenv by
# scripts/testenv (the same installer go test uses). Legs:
#
#   1 legacy-client/legacy-upstream  requirements 2025-11-25, upstream with sessions,
#                                    sluice --upstream-era legacy
#   2 legacy-client/modern-upstream  requirements 2025-11-25, stateless upstream,
#                                    sluice --upstream-era modern
#   3 modern-client/legacy-upstream  requirements 2026-07-28, upstream with sessions,
#                                    sluice --upstream-era legacy
#   4 modern-client/modern-upstream  requirements 2026-07-28, stateless upstream,
#                                    sluice --upstream-era modern
#   5 stdio-upstream                 both requirement sets, sluice launches the upstream
#                                    over stdio; the direct baseline is the upstream over
#                                    HTTP with sessions (a stdio server is not reachable
#                                    by the suite directly, and stdio servers keep a
#                                    session like a legacy HTTP one)
#
# The direct baseline of a leg is the same upstream mode with the same requirements. A
# scenario that passes directly must pass through Sluice, and a check that succeeds
# directly must not fail through Sluice (scripts/confcompare decides).
#
# Environment:
#   LEGS="1 3"                 run a subset of the legs (default: all)
#   SLUICE_BIN=path            use a prebuilt sluice instead of building ./cmd/sluice
#   SLUICE_BUILD_FLAGS=-race   flags for that build; a data race in Sluice's log fails the leg
#   SLUICE_EXTRA_ARGS="..."    extra arguments after `sluice serve` (word-split)
#   CONFORMANCE_WORK=dir       work dir for logs and results, emptied first (default: a new
#                              .cache/conformance/<time>-<pid>, .cache/conformance/latest
#                              links to it, the 5 newest are kept)
#   CONFORMANCE_SCENARIO_TIMEOUT_MS  per-scenario timeout of the suite (default 15000)
#   CONFORMANCE_RUN_TIMEOUT    seconds one run of the suite may take (default 300)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

LEGS=${LEGS:-1 2 3 4 5}
RUNS=$ROOT/.cache/conformance
WORK=${CONFORMANCE_WORK:-$RUNS/$(date +%Y%m%d-%H%M%S)-$$}
SCENARIO_TIMEOUT_MS=${CONFORMANCE_SCENARIO_TIMEOUT_MS:-15000}
RUN_TIMEOUT=${CONFORMANCE_RUN_TIMEOUT:-300}
START_TIMEOUT=30 # seconds for a server to listen

LEGACY_REQ=2025-11-25
MODERN_REQ=2026-07-28

log() { printf '%s\n' "$*"; }
die() { printf 'conformance: %s\n' "$*" >&2; exit 1; }

for leg in $LEGS; do
	case $leg in 1 | 2 | 3 | 4 | 5) ;; *) die "unknown leg '$leg' in LEGS (legs are 1 to 5)" ;; esac
done

# --- processes -------------------------------------------------------------------------

# Every server runs in a session of its own (setsid), so that stopping it also stops what
# it launched (Sluice's stdio upstream).
PIDS=()
SETSID=()
if command -v setsid >/dev/null 2>&1; then SETSID=(setsid); fi

# start LOG CMD...: starts CMD in the background with output to LOG; sets STARTED_PID.
start() {
	local logfile=$1
	shift
	"${SETSID[@]}" "$@" >"$logfile" 2>&1 </dev/null &
	STARTED_PID=$!
	PIDS+=("$STARTED_PID")
}

# stop PID: SIGTERM to its process group, SIGKILL after 5 s. The pid leaves PIDS, so
# that cleanup never signals a pid the system may have handed to another process.
stop() {
	local pid=$1 i p rest=()
	[[ -n $pid ]] || return 0
	for p in "${PIDS[@]}"; do
		[[ $p == "$pid" ]] || rest+=("$p")
	done
	PIDS=("${rest[@]}")
	kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		stop "$pid"
	done
	return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_port PORT PID: waits until 127.0.0.1:PORT accepts connections; fails early if PID
# exits.
wait_port() {
	local port=$1 pid=$2 i
	for ((i = 0; i < START_TIMEOUT * 10; i++)); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# --- set-up ----------------------------------------------------------------------------

rm -rf "$WORK"
mkdir -p "$WORK/bin"
if [[ -z ${CONFORMANCE_WORK:-} ]]; then
	ln -sfn "$WORK" "$RUNS/latest"
	# Keep the 5 newest runs; names start with their time, so they sort by age.
	find "$RUNS" -mindepth 1 -maxdepth 1 -type d -name '[0-9]*' -printf '%f\n' | sort -r |
		tail -n +6 | while IFS= read -r old; do rm -rf "${RUNS:?}/$old"; done
fi
log "conformance: work dir $WORK"

go build -o "$WORK/bin/testenv" ./scripts/testenv
go build -o "$WORK/bin/confcompare" ./scripts/confcompare
TESTENV=$WORK/bin/testenv
CONFCOMPARE=$WORK/bin/confcompare

NODE='' CONFORMANCE='' EVERYTHING_SERVER=''
eval "$("$TESTENV" env)"
[[ -x $NODE && -f $CONFORMANCE && -x $EVERYTHING_SERVER ]] || die "testenv env gave no node, conformance suite or everything-server"
log "conformance: node $("$NODE" --version), suite $("$NODE" "$CONFORMANCE" --version), upstream $EVERYTHING_SERVER"

SLUICE=''
SLUICE_PROBLEM=''
if [[ -n ${SLUICE_BIN:-} ]]; then
	[[ -x $SLUICE_BIN ]] || die "SLUICE_BIN=$SLUICE_BIN is not an executable"
	SLUICE=$(cd "$(dirname "$SLUICE_BIN")" && pwd)/$(basename "$SLUICE_BIN")
else
	# shellcheck disable=SC2086 # SLUICE_BUILD_FLAGS is a list of flags
	if go build ${SLUICE_BUILD_FLAGS:-} -o "$WORK/bin/sluice" ./cmd/sluice >"$WORK/sluice-build.log" 2>&1; then
		SLUICE=$WORK/bin/sluice
	else
		SLUICE_PROBLEM="go build ./cmd/sluice failed"
		log "conformance: $SLUICE_PROBLEM; the through-sluice halves fail:"
		tail -n 20 "$WORK/sluice-build.log"
	fi
fi
SLUICE_EXTRA=()
# shellcheck disable=SC2206 # word-splitting is the documented behaviour
[[ -n ${SLUICE_EXTRA_ARGS:-} ]] && SLUICE_EXTRA=(${SLUICE_EXTRA_ARGS})

# --- runs ------------------------------------------------------------------------------

# suite URL REQUIREMENTS OUTDIR: one run of the suite in server mode. Its exit status is
# ignored: scored failures are expected directly in the cross-era legs; the comparison
# of the results decides.
suite() {
	local url=$1 req=$2 out=$3 rc=0
	rm -rf "$out"
	mkdir -p "$out"
	(cd "$WORK" && timeout -k 10 "$RUN_TIMEOUT" "$NODE" "$CONFORMANCE" server --url "$url" \
		--requirements "$req" --timeout "$SCENARIO_TIMEOUT_MS" -o "$out") >"$out.log" 2>&1 || rc=$?
	if ((rc == 124 || rc == 137)); then
		log "    suite run timed out after ${RUN_TIMEOUT}s (see $out.log)"
	fi
	local total
	total=$(grep -E '^Total: ' "$out.log" | tail -n 1 || true)
	log "    $(basename "$out"): ${total:-no summary (see $out.log)}"
}

# start_upstream MODE LOG: starts everything-server over HTTP, MODE stateful or
# stateless; sets UP_PID and UP_URL.
start_upstream() {
	local mode=$1 logfile=$2 port flags=()
	port=$("$TESTENV" freeport)
	[[ $mode == stateful ]] && flags=(-stateless=false)
	start "$logfile" "$EVERYTHING_SERVER" -http="127.0.0.1:$port" "${flags[@]}"
	UP_PID=$STARTED_PID
	UP_URL="http://127.0.0.1:$port/mcp"
	wait_port "$port" "$UP_PID" || {
		tail -n 20 "$logfile"
		die "upstream everything-server ($mode) did not listen on $port"
	}
}

# start_sluice LOG ARGS...: starts `sluice serve --listen ADDR ARGS...`; sets SL_PID and
# SL_URL, or returns 1 (with SLUICE_PROBLEM set) when it does not come up.
start_sluice() {
	local logfile=$1 port
	shift
	SL_PID='' SL_URL=''
	if [[ -z $SLUICE ]]; then
		printf '%s\n' "$SLUICE_PROBLEM" >"$logfile"
		return 1
	fi
	port=$("$TESTENV" freeport)
	# Each Sluice keeps its audit log in a data directory of its own.
	start "$logfile" env SLUICE_DATA_DIR="$WORK/sluice-data-$port" "$SLUICE" serve "${SLUICE_EXTRA[@]}" --listen "127.0.0.1:$port" "$@"
	SL_PID=$STARTED_PID
	SL_URL="http://127.0.0.1:$port/mcp"
	if ! wait_port "$port" "$SL_PID"; then
		log "    sluice did not listen on 127.0.0.1:$port within ${START_TIMEOUT}s"
		return 1
	fi
}

SUMMARY=$WORK/summary.tsv
: >"$SUMMARY"
FAILED_LEGS=()

# run_leg NUMBER NAME UPSTREAM_MODE SLUICE_ARGS_KIND REQUIREMENTS...
#   UPSTREAM_MODE: stateful | stateless (the upstream of the direct baseline, and the one
#   Sluice talks to over HTTP); SLUICE_ARGS_KIND: legacy | modern (HTTP upstream with
#   that --upstream-era) or stdio (Sluice launches everything-server).
run_leg() {
	local n=$1 name=$2 mode=$3 kind=$4
	shift 4
	local reqs=("$@") dir=$WORK/leg$n req ok=1 note=''
	mkdir -p "$dir"
	log ""
	local how="sluice --upstream-era $kind"
	[[ $kind == stdio ]] && how="sluice -- everything-server (stdio)"
	log "=== leg $n: $name (requirements ${reqs[*]}; through $how; direct baseline: $mode HTTP upstream)"

	start_upstream "$mode" "$dir/upstream.log"
	for req in "${reqs[@]}"; do
		suite "$UP_URL" "$req" "$dir/direct-$req"
	done

	local sluice_args
	if [[ $kind == stdio ]]; then
		sluice_args=(-- "$EVERYTHING_SERVER")
	else
		sluice_args=(--upstream "$UP_URL" --upstream-era "$kind")
	fi
	if start_sluice "$dir/sluice.log" "${sluice_args[@]}"; then
		for req in "${reqs[@]}"; do
			suite "$SL_URL" "$req" "$dir/sluice-$req"
		done
		if ! kill -0 "$SL_PID" 2>/dev/null; then
			ok=0 note='sluice exited during the run'
		fi
		stop "$SL_PID"
	else
		ok=0 note='sluice did not start'
		for req in "${reqs[@]}"; do mkdir -p "$dir/sluice-$req"; done
	fi
	stop "$UP_PID"
	if grep -q 'WARNING: DATA RACE' "$dir/sluice.log" 2>/dev/null; then
		ok=0 note="${note:+$note; }data race in sluice"
	fi

	for req in "${reqs[@]}"; do
		if ! "$CONFCOMPARE" -label "leg$n $name [$req]" -summary "$SUMMARY" \
			"$dir/direct-$req" "$dir/sluice-$req" | tee "$dir/compare-$req.txt"; then
			ok=0
		fi
	done
	if ((!ok)); then
		FAILED_LEGS+=("$n")
		log "leg $n FAILED${note:+ ($note)}; last lines of $dir/sluice.log:"
		tail -n 40 "$dir/sluice.log" 2>/dev/null | sed 's/^/    | /' || true
	fi
}

for leg in $LEGS; do
	case $leg in
	1) run_leg 1 legacy-client/legacy-upstream stateful legacy "$LEGACY_REQ" ;;
	2) run_leg 2 legacy-client/modern-upstream stateless modern "$LEGACY_REQ" ;;
	3) run_leg 3 modern-client/legacy-upstream stateful legacy "$MODERN_REQ" ;;
	4) run_leg 4 modern-client/modern-upstream stateless modern "$MODERN_REQ" ;;
	5) run_leg 5 stdio-upstream stateful stdio "$LEGACY_REQ" "$MODERN_REQ" ;;
	esac
done

# --- summary ---------------------------------------------------------------------------

log ""
log "=== conformance summary (scenarios passed/failed; work dir $WORK)"
printf '%-50s  %-9s  %-14s  %s\n' "leg [requirements]" "direct" "through sluice" "regressions"
while IFS=$'\t' read -r label dp df sp sf reg; do
	printf '%-50s  %-9s  %-14s  %s\n' "$label" "$dp/$df" "$sp/$sf" "$reg"
done <"$SUMMARY"
if ((${#FAILED_LEGS[@]} > 0)); then
	log "conformance: FAILED legs: ${FAILED_LEGS[*]}"
	exit 1
fi
log "conformance: all legs ok ($LEGS)"
