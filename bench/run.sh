#!/usr/bin/env bash
# Benchmark Sluice against the same upstream reached directly, in the same run.
#
# For each scenario (upstream over HTTP or stdio, small or 64 KiB results,
# 1 or 16 clients) the load tool calls the echo tool once directly and once
# through `sluice serve`, one right after the other, so that the ratio holds
# on a noisy machine. Sluice's CPU time comes from /proc/PID/stat around each
# run through it; its memory from VmRSS, idle and holding idle legacy sessions.
# See docs/benchmarks.md for the method and the floors.
#
# Usage: bench/run.sh [-o FILE]
#
# Environment (all optional):
#   BENCH_DURATION       measured time per run, a Go duration (default 5s)
#   BENCH_WARMUP         unmeasured calls before each run (default 1s)
#   BENCH_OUT            also write the markdown report here (same as -o)
#   BENCH_DIRECT_ONLY=1  measure the upstream alone; do not build or start Sluice
#   BENCH_ERA            legacy (default) or modern: the era the load tool speaks;
#                        modern runs the HTTP upstream stateless
#   BENCH_TRANSPORTS     upstream transports to run (default "http stdio")
#   BENCH_SIZES          result sizes in bytes (default "0 65536"; 0 is a small echo)
#   BENCH_CLIENTS        client counts (default "1 16")
#   BENCH_IDLE_SESSIONS  idle legacy sessions for the memory figure (default 1000; 0 skips)
#   BENCH_SLUICE_ARGS    extra arguments for `sluice serve`, before the upstream
#   BENCH_SLUICE_BIN     a sluice binary to measure instead of building ./cmd/sluice
#   BENCH_STRICT=1       exit 1 when a floor is missed (a run that fails always does)
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

out="${BENCH_OUT:-}"
while [ $# -gt 0 ]; do
	case "$1" in
	-o)
		[ $# -ge 2 ] || { echo "run.sh: -o needs a file" >&2; exit 2; }
		out="$2"
		shift 2
		;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		echo "run.sh: unknown argument $1 (see -h)" >&2
		exit 2
		;;
	esac
done

duration="${BENCH_DURATION:-5s}"
warmup="${BENCH_WARMUP:-1s}"
direct_only="${BENCH_DIRECT_ONLY:-0}"
era="${BENCH_ERA:-legacy}"
transports="${BENCH_TRANSPORTS:-http stdio}"
sizes="${BENCH_SIZES:-0 65536}"
clients_list="${BENCH_CLIENTS:-1 16}"
idle_sessions="${BENCH_IDLE_SESSIONS:-1000}"
strict="${BENCH_STRICT:-0}"
read -r -a sluice_args <<<"${BENCH_SLUICE_ARGS:-}"

case "$era" in legacy | modern) ;; *)
	echo "run.sh: BENCH_ERA must be legacy or modern" >&2
	exit 2
	;;
esac

# Floors from the performance issue; see docs/benchmarks.md.
floor_cpu_small_us=200
floor_cpu_64k_us=1000
floor_ratio_16=0.75

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench.XXXXXX")"
echo_pid=""
sluice_pid=""
idle_pid=""

log() { echo "bench: $*" >&2; }

# stop ends one process that this script started: SIGTERM, then SIGKILL after 5 s.
stop() {
	local pid="$1"
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# cleanup stops what is still running, newest first, and removes the build.
cleanup() {
	local pid
	for pid in "$idle_pid" "$sluice_pid" "$echo_pid"; do
		if [ -n "$pid" ]; then
			stop "$pid"
		fi
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# port_open PORT succeeds when something accepts connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
	local p
	for _ in $(seq 100); do
		p=$((20000 + RANDOM % 40000))
		if ! port_open "$p"; then
			echo "$p"
			return 0
		fi
	done
	echo "run.sh: no free port found" >&2
	return 1
}

# wait_port PID PORT LOG waits until PID accepts connections on PORT.
wait_port() {
	local pid="$1" port="$2" logfile="$3"
	for _ in $(seq 150); do
		if ! kill -0 "$pid" 2>/dev/null; then
			log "process $pid exited before listening on port $port; its log:"
			cat "$logfile" >&2
			return 1
		fi
		port_open "$port" && return 0
		sleep 0.1
	done
	log "nothing listens on port $port after 15 s; log:"
	cat "$logfile" >&2
	return 1
}

# cpu_ticks PID prints utime+stime of PID in clock ticks (fields 14 and 15 of
# /proc/PID/stat; the command name in field 2 may hold spaces, so split after it).
cpu_ticks() {
	local stat rest
	stat="$(<"/proc/$1/stat")"
	rest="${stat##*) }"
	local -a f
	read -r -a f <<<"$rest"
	echo $((f[11] + f[12]))
}

# rss_kib PID prints the resident set size of PID in KiB.
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# jget FILE KEY prints a number or string field of the flat JSON object in FILE.
jget() { sed -n "s/.*\"$2\":\"\{0,1\}\([^\",}]*\).*/\1/p" "$1"; }

# calc EXPR prints the value of an awk expression (comparisons print 1 or 0).
calc() { awk "BEGIN { print ($1) }"; }

# run_load NAME ARGS... runs the load tool; its JSON report goes to $tmp/NAME.json.
run_load() {
	local name="$1"
	shift
	if ! timeout -k 5 600 "$tmp/load" -era "$era" -duration "$duration" -warmup "$warmup" "$@" >"$tmp/$name.json"; then
		log "load $* failed"
		if [ -f "$tmp/sluice.log" ]; then
			log "sluice log (last lines):"
			tail -n 20 "$tmp/sluice.log" >&2
		fi
		return 1
	fi
	local errors
	errors="$(jget "$tmp/$name.json" errors)"
	if [ "$errors" != 0 ]; then
		log "$name: $errors call(s) failed, first: $(jget "$tmp/$name.json" first_error)"
	fi
}

up_url=""
start_echo_http() {
	local -a flags=(-http 127.0.0.1:0)
	if [ "$era" = modern ]; then
		flags+=(-stateless)
	fi
	"$tmp/echo" "${flags[@]}" 2>"$tmp/echo.log" &
	echo_pid=$!
	for _ in $(seq 100); do
		up_url="$(sed -n 's/^listening on //p' "$tmp/echo.log")"
		[ -n "$up_url" ] && return 0
		kill -0 "$echo_pid" 2>/dev/null || break
		sleep 0.05
	done
	log "echo did not start:"
	cat "$tmp/echo.log" >&2
	return 1
}

sluice_url=""
# start_sluice UPSTREAM-ARGS... starts `sluice serve` on a free port.
start_sluice() {
	local port
	port="$(free_port)"
	mkdir -p "$tmp/sluice-home"
	(
		cd "$tmp/sluice-home"
		XDG_DATA_HOME="$tmp/sluice-home" XDG_STATE_HOME="$tmp/sluice-home" XDG_CONFIG_HOME="$tmp/sluice-home" \
			exec "$tmp/sluice" serve --listen "127.0.0.1:$port" "${sluice_args[@]}" "$@"
	) >"$tmp/sluice.log" 2>&1 &
	sluice_pid=$!
	wait_port "$sluice_pid" "$port" "$tmp/sluice.log"
	sluice_url="http://127.0.0.1:$port/mcp"
}

stop_sluice() {
	if [ -n "$sluice_pid" ]; then
		stop "$sluice_pid"
	fi
	sluice_pid=""
}

stop_echo() {
	if [ -n "$echo_pid" ]; then
		stop "$echo_pid"
	fi
	echo_pid=""
}

log "building into $tmp"
(
	cd "$root"
	go build -o "$tmp/echo" ./bench/echo
	go build -o "$tmp/load" ./bench/load
	if [ "$direct_only" != 1 ] && [ -z "${BENCH_SLUICE_BIN:-}" ]; then
		go build -o "$tmp/sluice" ./cmd/sluice
	fi
)
if [ "$direct_only" != 1 ] && [ -n "${BENCH_SLUICE_BIN:-}" ]; then
	cp "$BENCH_SLUICE_BIN" "$tmp/sluice"
fi
clk_tck="$(getconf CLK_TCK)"
# 1,000 idle sessions through a gateway to a stateful upstream hold a few
# thousand descriptors at most; raise the soft limit as far as allowed.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

rows=()
failures=() # floors missed
broken=()   # runs that did not complete

for transport in $transports; do
	case "$transport" in
	http)
		start_echo_http
		direct=(-url "$up_url")
		upstream=(--upstream "$up_url")
		;;
	stdio)
		direct=(-cmd "$tmp/echo")
		upstream=(-- "$tmp/echo")
		;;
	*)
		echo "run.sh: unknown transport $transport" >&2
		exit 2
		;;
	esac
	if [ "$direct_only" != 1 ]; then
		start_sluice "${upstream[@]}"
		log "sluice $transport upstream at $sluice_url (pid $sluice_pid)"
	fi

	for size in $sizes; do
		for clients in $clients_list; do
			name="$transport-$size-$clients"
			log "$name: direct"
			case "$size" in
			0) label="small" ;;
			65536) label="64 KiB" ;;
			*) label="$size B" ;;
			esac
			if ! run_load "$name-direct" "${direct[@]}" -clients "$clients" -size "$size"; then
				rows+=("| $transport | $label | $clients | - | - | - | - | - | - | - | FAIL: direct run failed |")
				broken+=("$name: direct run failed")
				continue
			fi
			d="$tmp/$name-direct.json"
			d_cps="$(jget "$d" calls_per_s)"
			d_err="$(jget "$d" errors)"
			s_cps="-" ratio="-" add50="-" add99="-" cpu="-" s_err="-" verdict="-"
			if [ "$direct_only" != 1 ]; then
				log "$name: through Sluice"
				t0="$(cpu_ticks "$sluice_pid")"
				if ! run_load "$name-sluice" -url "$sluice_url" -clients "$clients" -size "$size"; then
					rows+=("| $transport | $label | $clients | $(printf '%.0f' "$d_cps") | - | - | - | - | - | $d_err / - | FAIL: run through Sluice failed |")
					broken+=("$name: run through Sluice failed")
					if ! kill -0 "$sluice_pid" 2>/dev/null; then
						log "sluice exited; restarting it"
						sluice_pid=""
						start_sluice "${upstream[@]}"
					fi
					continue
				fi
				t1="$(cpu_ticks "$sluice_pid")"
				s="$tmp/$name-sluice.json"
				s_cps="$(jget "$s" calls_per_s)"
				s_err="$(jget "$s" errors)"
				total="$(jget "$s" total_calls)"
				ratio="$(calc "$s_cps / $d_cps")"
				add50="$(calc "($(jget "$s" p50_us) - $(jget "$d" p50_us)) / 1000")"
				add99="$(calc "($(jget "$s" p99_us) - $(jget "$d" p99_us)) / 1000")"
				# Every call sent through Sluice counts, warm-up included, since
				# the CPU time covers the whole run (session setup too).
				cpu="$(calc "($t1 - $t0) * 1000000 / $clk_tck / ($total > 0 ? $total : 1)")"
				problems=()
				floor=""
				case "$size" in
				0) floor="$floor_cpu_small_us" ;;
				65536) floor="$floor_cpu_64k_us" ;;
				esac
				if [ -n "$floor" ] && [ "$(calc "$cpu > $floor")" = 1 ]; then
					problems+=("CPU above $floor µs")
				fi
				if [ "$clients" -ge 16 ] && [ "$(calc "$ratio < $floor_ratio_16")" = 1 ]; then
					problems+=("ratio below $floor_ratio_16")
				fi
				if [ "$s_err" != 0 ] || [ "$d_err" != 0 ]; then
					problems+=("errors")
				fi
				verdict="ok"
				if [ ${#problems[@]} -gt 0 ]; then
					joined="$(IFS=,; echo "${problems[*]}")"
					verdict="FAIL: ${joined//,/, }"
					failures+=("$name: ${verdict#FAIL: }")
				fi
				ratio="$(printf '%.2f' "$ratio")"
				add50="$(printf '%.3f' "$add50")"
				add99="$(printf '%.3f' "$add99")"
				cpu="$(printf '%.0f' "$cpu")"
				s_cps="$(printf '%.0f' "$s_cps")"
			fi
			d_cps="$(printf '%.0f' "$d_cps")"
			rows+=("| $transport | $label | $clients | $d_cps | $s_cps | $ratio | $add50 | $add99 | $cpu | $d_err / $s_err | $verdict |")
		done
	done

	stop_sluice
	stop_echo
done

# Memory: a fresh Sluice in front of an HTTP upstream, idle, then holding idle
# legacy sessions opened by the load tool.
memory="Sluice RSS: not measured."
if [ "$direct_only" != 1 ] && [ "$idle_sessions" -gt 0 ]; then
	start_echo_http
	start_sluice --upstream "$up_url"
	sleep 1
	rss_idle="$(rss_kib "$sluice_pid")"
	log "opening $idle_sessions idle legacy sessions through Sluice"
	"$tmp/load" -url "$sluice_url" -idle-sessions "$idle_sessions" -hold 300s >"$tmp/idle.json" 2>"$tmp/idle.log" &
	idle_pid=$!
	for _ in $(seq 1200); do
		if [ -s "$tmp/idle.json" ] || ! kill -0 "$idle_pid" 2>/dev/null; then
			break
		fi
		sleep 0.1
	done
	if [ -s "$tmp/idle.json" ] && [ "$(jget "$tmp/idle.json" errors)" = 0 ]; then
		sleep 1
		rss_sessions="$(rss_kib "$sluice_pid")"
		memory="$(printf 'Sluice RSS (HTTP upstream): idle %.1f MiB; with %d idle legacy sessions %.1f MiB (%.1f KiB per session).' \
			"$(calc "$rss_idle / 1024")" "$idle_sessions" "$(calc "$rss_sessions / 1024")" "$(calc "($rss_sessions - $rss_idle) / $idle_sessions")")"
	else
		log "idle sessions did not open:"
		cat "$tmp/idle.log" "$tmp/idle.json" >&2 || true
		memory="$(printf 'Sluice RSS (HTTP upstream): idle %.1f MiB; %d idle sessions could not be opened.' "$(calc "$rss_idle / 1024")" "$idle_sessions")"
		broken+=("idle sessions: could not open $idle_sessions")
	fi
	stop "$idle_pid"
	idle_pid=""
	stop_sluice
	stop_echo
fi

report() {
	local commit
	commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
	echo "## Results"
	echo
	echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); commit: $commit"
	echo "- machine: $(nproc) CPU(s), $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || echo unknown CPU); $(go version | awk '{ print $3 }')"
	echo "- each run: $duration measured after $warmup of warm-up; protocol era: $era; Sluice CPU: utime+stime per call sent (warm-up included)"
	echo
	echo "| upstream | result | clients | direct calls/s | via Sluice calls/s | ratio | added p50 (ms) | added p99 (ms) | Sluice CPU µs/call | errors (direct / Sluice) | floors |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|"
	printf '%s\n' "${rows[@]}"
	echo
	echo "$memory"
	if [ ${#failures[@]} -gt 0 ]; then
		echo
		echo "Floors missed:"
		printf -- '- %s\n' "${failures[@]}"
	fi
	if [ ${#broken[@]} -gt 0 ]; then
		echo
		echo "Runs that failed:"
		printf -- '- %s\n' "${broken[@]}"
	fi
}

report >"$tmp/report.md"
cat "$tmp/report.md"
if [ -n "$out" ]; then
	cp "$tmp/report.md" "$out"
	log "report written to $out"
fi
if [ ${#broken[@]} -gt 0 ]; then
	exit 1
fi
if [ "$strict" = 1 ] && [ ${#failures[@]} -gt 0 ]; then
	exit 1
fi
