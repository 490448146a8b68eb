#!/usr/bin/env bash
# Benchmark Sluice against the same upstream reached directly, in the same run.
#
# For each scenario (upstream over HTTP or stdio, small or 64 KiB results,
# 1 or 16 clients) the load tool calls the echo tool once directly and once
# through `sluice serve`, one right after the other, so that the ratio holds
# on a noisy machine. Sluice's CPU time comes from /proc/PID/stat around each
# run through it; its memory from VmRSS, idle and holding idle legacy sessions.
#
# For small results, one more comparison follows each run through Sluice: the
# same calls through a second Sluice with the "guarded" configuration that the
# driver writes (authentication by API key, and by a JWT from bench/issuer, a
# 100-rule policy, argument validation, a rate limit), against the core
# configuration measured just before and once more just after. The floor is
# the CPU per call it adds. A third Sluice, the core configuration with the
# audit log on, is compared with the core one in the same way.
#
# For 64 KiB results, a fourth Sluice, the core configuration with a DLP
# guard that masks phone numbers and redacts payment cards in results, is
# compared with the core one on results of order records holding personal
# data (echo's records argument, the input of the DLP Go benchmarks).
#
# The core, guarded and DLP configurations run with auditing off
# (--no-audit, audit.enabled: false), so that their figures stay those of
# the gateway, of authentication and policy, and of DLP; the audited
# comparison measures what the audit log adds.
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
#   BENCH_GUARDED=0      skip the comparison of the core configuration with the
#                        guarded one (default 1: run it; never with BENCH_DIRECT_ONLY)
#   BENCH_GUARDED_ROUNDS rounds of the core/guarded, core/audited and core/DLP comparisons
#                        per scenario (default 3)
#   BENCH_AUDITED=0      skip the comparison of the core configuration with the
#                        audited one (default 1: run it; never with BENCH_DIRECT_ONLY)
#   BENCH_DLP=0          skip the comparison of the core configuration with the
#                        DLP one on 64 KiB results (default 1: run it; never with
#                        BENCH_DIRECT_ONLY)
#   BENCH_GUARDED_AUTH   how the load tool authenticates to the guarded Sluice, one
#                        run each: "api-key", "jwt" or both (default "api-key jwt")
#   BENCH_PROFILE_DIR    write CPU profiles of every Sluice started there, named
#                        core-TRANSPORT.pprof and guarded-TRANSPORT.pprof (serve's
#                        hidden --cpu-profile; `go tool pprof -top sluice FILE`)
#   BENCH_BASELINE=0     skip the calibration: small calls over HTTP through a bare
#                        reverse proxy (bench/proxy) and through Sluice, alternately
#   BENCH_KEEP_LOGS      a directory to copy the logs of every process and the load
#                        tool's reports into before the build is removed
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
guarded="${BENCH_GUARDED:-1}"
guarded_auth="${BENCH_GUARDED_AUTH:-api-key jwt}"
guarded_rounds="${BENCH_GUARDED_ROUNDS:-3}"
audited="${BENCH_AUDITED:-1}"
dlp="${BENCH_DLP:-1}"
baseline="${BENCH_BASELINE:-1}"
profile_dir="${BENCH_PROFILE_DIR:-}"
read -r -a sluice_args <<<"${BENCH_SLUICE_ARGS:-}"

case "$era" in legacy | modern) ;; *)
	echo "run.sh: BENCH_ERA must be legacy or modern" >&2
	exit 2
	;;
esac

# check01 NAME VALUE exits unless VALUE, the setting NAME, is 0 or 1.
check01() {
	case "$2" in 0 | 1) ;; *)
		echo "run.sh: $1 must be 0 or 1" >&2
		exit 2
		;;
	esac
}

check01 BENCH_GUARDED "$guarded"
case "$guarded_rounds" in '' | *[!0-9]* | 0)
	echo "run.sh: BENCH_GUARDED_ROUNDS must be a positive number" >&2
	exit 2
	;;
esac
guarded_jwt=0
for a in $guarded_auth; do
	case "$a" in
	api-key) ;;
	jwt) guarded_jwt=1 ;;
	*)
		echo "run.sh: BENCH_GUARDED_AUTH: unknown method $a (want api-key or jwt)" >&2
		exit 2
		;;
	esac
done
if [ "$direct_only" = 1 ] || [ -z "${guarded_auth// /}" ]; then
	guarded=0
fi
check01 BENCH_AUDITED "$audited"
check01 BENCH_DLP "$dlp"
if [ "$direct_only" = 1 ]; then
	audited=0
	dlp=0
fi

# Floors from the performance issues; see docs/benchmarks.md.
floor_cpu_small_us=200
floor_cpu_64k_us=1000
floor_ratio_16=0.75
floor_guarded_added_us=30 # CPU per call that authentication and policy add
floor_audited_added_us=20 # CPU per call that the audit log adds
floor_dlp_added_us=300    # CPU per 64 KiB call that DLP adds, scanned and redacted

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench.XXXXXX")"
echo_pid=""
sluice_pid=""
idle_pid=""
guarded_pid=""
proxy_pid=""
issuer_pid=""

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
	for pid in "$idle_pid" "$proxy_pid" "$guarded_pid" "$audited_pid" "$dlp_pid" "$issuer_pid" "$sluice_pid" "$echo_pid"; do
		if [ -n "$pid" ]; then
			stop "$pid"
		fi
	done
	if [ -n "${BENCH_KEEP_LOGS:-}" ]; then
		# Logs and reports only: never the API key or the JWT.
		mkdir -p "$BENCH_KEEP_LOGS" && cp "$tmp"/*.log "$tmp"/*.json "$BENCH_KEEP_LOGS"/ 2>/dev/null || true
	fi
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
		local target_log="${load_target_log:-$tmp/sluice.log}"
		if [ -f "$target_log" ]; then
			log "sluice log (last lines):"
			tail -n 20 "$target_log" >&2
		fi
		return 1
	fi
	local errors
	errors="$(jget "$tmp/$name.json" errors)"
	if [ "$errors" != 0 ]; then
		log "$name: $errors call(s) failed, first: $(jget "$tmp/$name.json" first_error)"
		local target_log="${load_target_log:-$tmp/sluice.log}"
		if [ -f "$target_log" ]; then
			log "sluice log (last lines):"
			tail -n 40 "$target_log" >&2
		fi
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

# profile_flag NAME prints serve's --cpu-profile flag for a Sluice named NAME
# in front of the current transport, or nothing without BENCH_PROFILE_DIR.
profile_flag() {
	if [ -n "$profile_dir" ]; then
		echo "--cpu-profile=$profile_dir/$1-$profile_transport.pprof"
	fi
}
profile_transport=memory

sluice_url=""
# start_sluice UPSTREAM-ARGS... starts `sluice serve` on a free port.
start_sluice() {
	local port
	port="$(free_port)"
	mkdir -p "$tmp/sluice-home"
	(
		cd "$tmp/sluice-home"
		XDG_DATA_HOME="$tmp/sluice-home" XDG_STATE_HOME="$tmp/sluice-home" XDG_CONFIG_HOME="$tmp/sluice-home" \
			exec "$tmp/sluice" serve --no-audit --listen "127.0.0.1:$port" $(profile_flag core) "${sluice_args[@]}" "$@"
	) >"$tmp/sluice.log" 2>&1 &
	sluice_pid=$!
	wait_port "$sluice_pid" "$port" "$tmp/sluice.log"
	sluice_url="http://127.0.0.1:$port/mcp"
}

audited_pid=""
audited_url=""
# start_audited UPSTREAM-ARGS... starts the core configuration with the audit
# log on (SQLite and its journal in a data directory of its own).
start_audited() {
	local port
	port="$(free_port)"
	mkdir -p "$tmp/audited-home"
	(
		cd "$tmp/audited-home"
		exec "$tmp/sluice" serve --data-dir "$tmp/audited-home/data" --listen "127.0.0.1:$port" $(profile_flag audited) "${sluice_args[@]}" "$@"
	) >"$tmp/audited.log" 2>&1 &
	audited_pid=$!
	wait_port "$audited_pid" "$port" "$tmp/audited.log" || return 1
	audited_url="http://127.0.0.1:$port/mcp"
}

# stop_variant NAME stops the NAME Sluice (audited or dlp), if it runs.
stop_variant() {
	local -n v_pid="${1}_pid" v_url="${1}_url"
	if [ -n "$v_pid" ]; then
		stop "$v_pid"
	fi
	v_pid=""
	v_url=""
}

dlp_pid=""
dlp_url=""
# start_dlp SERVER starts the core configuration with a DLP guard that
# redacts payment cards and masks phone numbers in results (SERVER is the
# upstream's entry in servers).
start_dlp() {
	local server="$1" port
	port="$(free_port)"
	cat >"$tmp/dlp.yaml" <<-EOF
		# The DLP configuration of bench/run.sh (generated).
		listen: 127.0.0.1:$port
		audit: {enabled: false}
		servers:
		  upstream: $server
		dlp:
		  rules:
		    - {id: cards, types: [payment-card], direction: results, action: redact}
		    - {id: phones, types: [phone-number], direction: results, action: mask}
	EOF
	serve_config dlp "$port"
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

# The guarded configuration: authentication and policy in front of the same
# upstream as the core configuration.
# The load tool authenticates with an API key or a JWT (both sent as
# "Authorization: Bearer", read from a file); a policy of 100 rules
# (bench/guarded-rules.yaml) decides each call; argument validation stays on
# (the default, as in the core configuration); a rate limit counts every
# call and never refuses one.

# write_guarded_config FILE PORT ISSUER-URL SERVER-YAML writes the guarded
# configuration; ISSUER-URL is empty when no JWT run is asked for.
write_guarded_config() {
	local file="$1" port="$2" issuer="$3" server="$4"
	{
		echo "# The guarded configuration of bench/run.sh (generated)."
		echo "listen: 127.0.0.1:$port"
		echo "audit: {enabled: false}"
		echo "servers:"
		echo "  upstream: $server"
		echo "auth:"
		echo "  resource: http://127.0.0.1:$port/mcp"
		echo "  api_keys:"
		echo "    - id: bench-load"
		echo "      hash: \"$api_key_hash\""
		echo "      principal: {subject: bench-agent, name: \"Benchmark agent\", groups: [agents, bench-agents]}"
		if [ -n "$issuer" ]; then
			echo "  oauth:"
			echo "    - issuer: $issuer"
			echo "      jwks_url: $issuer/jwks.json"
			echo "      scopes: [mcp:tools]"
		fi
		echo "rate_limits:"
		echo "  - {id: per-caller, per: principal, rate: 100000/s, burst: 100000}"
		echo "policy:"
		echo "  mode: enforce"
		echo "  rules:"
		sed 's/^/    /' "$root/bench/guarded-rules.yaml"
	} >"$file"
}

# check_guarded_policy FILE proves, with `sluice policy test`, that the load
# tool's call is allowed by the last rule and that the rules before it are
# live (a call they match is denied).
check_guarded_policy() {
	cat >"$tmp/guarded-cases.yaml" <<'CASES'
principals:
  load: {api_key: bench-load}
  team03: {subject: someone, groups: [team03], client_id: agent-3}
cases:
  - name: the load tool's call is allowed by the last rule
    principal: load
    call: {server: upstream, tool: echo, args: {text: hello}, annotations: {readOnlyHint: true}}
    expect: {effect: allow, rule: bench-agents-echo}
  - name: another team's rule allows its own group
    principal: team03
    call: {server: upstream, tool: echo, args: {size: 10}, annotations: {readOnlyHint: true}}
    expect: {effect: allow, rule: team03-echo}
  - name: a rule on every tool denies
    principal: load
    call: {server: upstream, tool: echo, args: {text: "-----BEGIN PRIVATE KEY-----"}, annotations: {readOnlyHint: true}}
    expect: {effect: deny, rule: no-private-keys}
CASES
	"$tmp/sluice" policy test --config "$1" "$tmp/guarded-cases.yaml" >"$tmp/guarded-cases.log" 2>&1 || {
		log "the guarded policy does not decide as intended:"
		cat "$tmp/guarded-cases.log" >&2
		return 1
	}
}

guarded_url=""
# start_guarded SERVER-YAML starts the issuer (for JWT runs) and a Sluice with
# the guarded configuration in front of the server.
start_guarded() {
	local server="$1" port issuer=""
	port="$(free_port)"
	if [ "$guarded_jwt" = 1 ]; then
		rm -f "$tmp/jwt"
		"$tmp/issuer" -audience "http://127.0.0.1:$port/mcp" -token-file "$tmp/jwt" 2>"$tmp/issuer.log" &
		issuer_pid=$!
		for _ in $(seq 100); do
			issuer="$(sed -n 's/^listening on //p' "$tmp/issuer.log")"
			[ -n "$issuer" ] && break
			kill -0 "$issuer_pid" 2>/dev/null || break
			sleep 0.05
		done
		if [ -z "$issuer" ]; then
			log "issuer did not start:"
			cat "$tmp/issuer.log" >&2
			return 1
		fi
	fi
	write_guarded_config "$tmp/guarded.yaml" "$port" "$issuer" "$server"
	check_guarded_policy "$tmp/guarded.yaml" || return 1
	serve_config guarded "$port"
}

# serve_config NAME PORT starts `sluice serve` with $tmp/NAME.yaml on PORT,
# in a home of its own, and sets NAME_pid and NAME_url.
serve_config() {
	local name="$1" port="$2"
	local -n s_pid="${name}_pid" s_url="${name}_url"
	mkdir -p "$tmp/$name-home"
	(
		cd "$tmp/$name-home"
		XDG_DATA_HOME="$tmp/$name-home" XDG_STATE_HOME="$tmp/$name-home" XDG_CONFIG_HOME="$tmp/$name-home" \
			exec "$tmp/sluice" serve --config "$tmp/$name.yaml" --listen "127.0.0.1:$port" $(profile_flag "$name") "${sluice_args[@]}"
	) >"$tmp/$name.log" 2>&1 &
	s_pid=$!
	wait_port "$s_pid" "$port" "$tmp/$name.log" || return 1
	s_url="http://127.0.0.1:$port/mcp"
}

stop_guarded() {
	local pid
	for pid in "$guarded_pid" "$issuer_pid"; do
		if [ -n "$pid" ]; then
			stop "$pid"
		fi
	done
	guarded_pid=""
	issuer_pid=""
	guarded_url=""
}

# guarded_runs NAME TRANSPORT LABEL CLIENTS CORE-CPS CORE-TICKS CORE-CALLS
# CORE-ERRORS compares the core and the guarded Sluice on the scenario, in
# $guarded_rounds rounds: each round runs the scenario through the guarded
# Sluice once per authentication method, then through the core Sluice once
# more. Each side's CPU per call is its total CPU over its total calls, all
# rounds (and, for the core, the run just made) together, so that a machine
# getting faster or slower during the runs moves both sides alike and
# run-to-run noise averages out. The core figures are those of the run just
# made ("-" when it failed).
guarded_runs() {
	local name="$1" transport="$2" label="$3" clients="$4" c_cps="$5" c_ticks="$6" c_calls="$7" c_err="$8"
	local auth file t0 t1 g total g_cpu c_cpu added verdict round i
	local -a problems
	local -A g_ticks=() g_calls=() g_cps_sum=() g_runs=() g_each=() g_errs=()
	local c_runs=0 c_cps_sum=0 c_each=""
	if [ "$c_ticks" != "-" ]; then
		c_runs=1
		c_cps_sum="$c_cps"
		c_each="$(printf '%.0f' "$(calc "$c_ticks * 1000000 / $clk_tck / $c_calls")")"
	else
		c_ticks=0 c_calls=0 c_err=0
	fi
	for round in $(seq 1 "$guarded_rounds"); do
		for auth in $guarded_auth; do
			case "$auth" in
			api-key) file="$tmp/api-key" ;;
			jwt) file="$tmp/jwt" ;;
			esac
			if [ -z "$guarded_pid" ]; then
				broken+=("$name ($auth): the guarded Sluice is not running")
				continue
			fi
			log "$name: through guarded Sluice ($auth), round $round of $guarded_rounds"
			t0="$(cpu_ticks "$guarded_pid")"
			if ! load_target_log="$tmp/guarded.log" run_load "$name-guarded-$auth-$round" -url "$guarded_url" -bearer-file "$file" -clients "$clients" -size 0; then
				broken+=("$name ($auth): run $round through the guarded Sluice failed")
				g_errs[$auth]=failed
				if ! kill -0 "$guarded_pid" 2>/dev/null; then
					log "guarded sluice exited; restarting it"
					guarded_pid=""
					stop_guarded
					start_guarded "$guarded_server" || log "the guarded Sluice did not restart"
				fi
				continue
			fi
			t1="$(cpu_ticks "$guarded_pid")"
			g="$tmp/$name-guarded-$auth-$round.json"
			total="$(jget "$g" total_calls)"
			g_ticks[$auth]=$((${g_ticks[$auth]:-0} + t1 - t0))
			g_calls[$auth]=$((${g_calls[$auth]:-0} + total))
			g_runs[$auth]=$((${g_runs[$auth]:-0} + 1))
			g_cps_sum[$auth]="$(calc "${g_cps_sum[$auth]:-0} + $(jget "$g" calls_per_s)")"
			g_each[$auth]+="${g_each[$auth]:+, }$(printf '%.0f' "$(calc "($t1 - $t0) * 1000000 / $clk_tck / ($total > 0 ? $total : 1)")")"
			if [ "${g_errs[$auth]:-0}" != failed ]; then
				g_errs[$auth]=$((${g_errs[$auth]:-0} + $(jget "$g" errors)))
			fi
		done
		log "$name: through Sluice again, round $round of $guarded_rounds"
		t0="$(cpu_ticks "$sluice_pid")"
		if run_load "$name-sluice-after-$round" -url "$sluice_url" -clients "$clients" -size 0; then
			t1="$(cpu_ticks "$sluice_pid")"
			g="$tmp/$name-sluice-after-$round.json"
			total="$(jget "$g" total_calls)"
			c_ticks=$((c_ticks + t1 - t0))
			c_calls=$((c_calls + total))
			c_runs=$((c_runs + 1))
			c_cps_sum="$(calc "$c_cps_sum + $(jget "$g" calls_per_s)")"
			c_each+="${c_each:+, }$(printf '%.0f' "$(calc "($t1 - $t0) * 1000000 / $clk_tck / ($total > 0 ? $total : 1)")")"
			c_err=$((c_err + $(jget "$g" errors)))
		else
			broken+=("$name: run $round of the core Sluice after the guarded one failed")
		fi
	done

	c_cpu="-"
	if [ "$c_runs" -gt 0 ]; then
		c_cpu="$(printf '%.0f' "$(calc "$c_ticks * 1000000 / $clk_tck / $c_calls")")"
		c_cps="$(printf '%.0f' "$(calc "$c_cps_sum / $c_runs")")"
	else
		c_cps="-" c_err="-"
	fi
	for auth in $guarded_auth; do
		if [ "${g_runs[$auth]:-0}" = 0 ]; then
			guarded_rows+=("| $transport | $label | $clients | $auth | $c_cps | - | $c_cpu (${c_each:--}) | - | - | - | FAIL: no run through the guarded Sluice |")
			failures+=("$name, guarded ($auth): no run through the guarded Sluice")
			continue
		fi
		g_cpu="$(printf '%.0f' "$(calc "${g_ticks[$auth]} * 1000000 / $clk_tck / ${g_calls[$auth]}")")"
		problems=()
		added="-"
		if [ "$c_cpu" = "-" ]; then
			problems+=("no core figure")
		else
			# Both figures are rounded first, so that the row adds up.
			added=$((g_cpu - c_cpu))
			if [ "$added" -gt "$floor_guarded_added_us" ]; then
				problems+=("added CPU above $floor_guarded_added_us µs")
			fi
		fi
		if [ "${g_errs[$auth]}" != 0 ] || { [ "$c_err" != 0 ] && [ "$c_err" != "-" ]; }; then
			problems+=("errors")
		fi
		verdict="ok"
		if [ ${#problems[@]} -gt 0 ]; then
			verdict="FAIL: $(IFS=,; echo "${problems[*]}")"
			verdict="${verdict//,/, }"
			failures+=("$name, guarded ($auth): ${verdict#FAIL: }")
		fi
		guarded_rows+=("| $transport | $label | $clients | $auth | $c_cps | $(printf '%.0f' "$(calc "${g_cps_sum[$auth]} / ${g_runs[$auth]}")") | $c_cpu ($c_each) | $g_cpu (${g_each[$auth]}) | $added | $c_err / ${g_errs[$auth]} | $verdict |")
	done
}

# compare_runs VARIANT NAME TRANSPORT LABEL CLIENTS FLOOR LOAD-ARGS... compares
# the core Sluice with the VARIANT one (audited or dlp: $VARIANT_pid,
# $VARIANT_url) on the scenario, with LOAD-ARGS for the load tool, in
# $guarded_rounds rounds of one run each, the variant first; each side's CPU
# per call is its total CPU over its total calls, and the variant may add at
# most FLOOR µs. The row goes to VARIANT_rows.
compare_runs() {
	local variant="$1" name="$2" transport="$3" label="$4" clients="$5" floor="$6"
	shift 6
	local -n v_pid="${variant}_pid" v_url="${variant}_url" v_rows="${variant}_rows"
	local round t0 t1 f total side v_cpu c_cpu added verdict
	local -A ticks=() calls=() cps_sum=() runs=() each=() errs=()
	local -a problems
	for round in $(seq 1 "$guarded_rounds"); do
		for side in "$variant" core; do
			local pid="$sluice_pid" url="$sluice_url" tlog="$tmp/sluice.log"
			if [ "$side" = "$variant" ]; then
				pid="$v_pid" url="$v_url" tlog="$tmp/$variant.log"
			fi
			if [ -z "$pid" ]; then
				broken+=("$name: the $side Sluice is not running")
				continue
			fi
			log "$name: through $side Sluice ($variant comparison), round $round of $guarded_rounds"
			t0="$(cpu_ticks "$pid")"
			if ! load_target_log="$tlog" run_load "$name-$side-$variant-$round" -url "$url" -clients "$clients" "$@"; then
				broken+=("$name: run $round through the $side Sluice ($variant comparison) failed")
				continue
			fi
			t1="$(cpu_ticks "$pid")"
			f="$tmp/$name-$side-$variant-$round.json"
			total="$(jget "$f" total_calls)"
			ticks[$side]=$((${ticks[$side]:-0} + t1 - t0))
			calls[$side]=$((${calls[$side]:-0} + total))
			runs[$side]=$((${runs[$side]:-0} + 1))
			cps_sum[$side]="$(calc "${cps_sum[$side]:-0} + $(jget "$f" calls_per_s)")"
			each[$side]+="${each[$side]:+, }$(printf '%.0f' "$(calc "($t1 - $t0) * 1000000 / $clk_tck / ($total > 0 ? $total : 1)")")"
			errs[$side]=$((${errs[$side]:-0} + $(jget "$f" errors)))
		done
	done
	if [ "${runs[$variant]:-0}" = 0 ] || [ "${runs[core]:-0}" = 0 ]; then
		v_rows+=("| $transport | $label | $clients | - | - | - | - | - | - | FAIL: runs failed |")
		failures+=("$name, $variant: runs failed")
		return
	fi
	v_cpu="$(printf '%.0f' "$(calc "${ticks[$variant]} * 1000000 / $clk_tck / ${calls[$variant]}")")"
	c_cpu="$(printf '%.0f' "$(calc "${ticks[core]} * 1000000 / $clk_tck / ${calls[core]}")")"
	added=$((v_cpu - c_cpu))
	problems=()
	if [ "$added" -gt "$floor" ]; then
		problems+=("added CPU above $floor µs")
	fi
	if [ "${errs[$variant]}" != 0 ] || [ "${errs[core]}" != 0 ]; then
		problems+=("errors")
	fi
	verdict="ok"
	if [ ${#problems[@]} -gt 0 ]; then
		verdict="FAIL: $(IFS=,; echo "${problems[*]}")"
		verdict="${verdict//,/, }"
		failures+=("$name, $variant: ${verdict#FAIL: }")
	fi
	v_rows+=("| $transport | $label | $clients | $(printf '%.0f' "$(calc "${cps_sum[core]} / ${runs[core]}")") | $(printf '%.0f' "$(calc "${cps_sum[$variant]} / ${runs[$variant]}")") | $c_cpu (${each[core]}) | $v_cpu (${each[$variant]}) | $added | ${errs[core]} / ${errs[$variant]} | $verdict |")
}

log "building into $tmp"
(
	cd "$root"
	go build -o "$tmp/echo" ./bench/echo
	go build -o "$tmp/load" ./bench/load
	if [ "$direct_only" != 1 ] && [ -z "${BENCH_SLUICE_BIN:-}" ]; then
		go build -o "$tmp/sluice" ./cmd/sluice
	fi
	if [ "$guarded" = 1 ] && [ "$guarded_jwt" = 1 ]; then
		go build -o "$tmp/issuer" ./bench/issuer
	fi
	if [ "$baseline" = 1 ]; then
		go build -o "$tmp/proxy" ./bench/proxy
	fi
)
if [ "$direct_only" != 1 ] && [ -n "${BENCH_SLUICE_BIN:-}" ]; then
	cp "$BENCH_SLUICE_BIN" "$tmp/sluice"
fi
api_key_hash=""
if [ "$guarded" = 1 ]; then
	# A fresh API key for this run; the configuration holds only its hash,
	# and the load tool reads it from a file only this user can read.
	(umask 077 && head -c 32 /dev/urandom | base64 | tr -d '\n' >"$tmp/api-key")
	api_key_hash="$("$tmp/sluice" auth hash-key <"$tmp/api-key")"
fi
clk_tck="$(getconf CLK_TCK)"
# 1,000 idle sessions through a gateway to a stateful upstream hold a few
# thousand descriptors at most; raise the soft limit as far as allowed.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

rows=()
guarded_rows=()
audited_rows=()
dlp_rows=()
failures=() # floors missed
broken=()   # runs that did not complete
load_start="$(cut -d' ' -f1-3 /proc/loadavg)"

if [ -n "$profile_dir" ]; then
	mkdir -p "$profile_dir"
	profile_dir="$(cd "$profile_dir" && pwd)"
	case "$profile_dir" in *[[:space:]]*)
		echo "run.sh: BENCH_PROFILE_DIR must not contain white space" >&2
		exit 2
		;;
	esac
fi

for transport in $transports; do
	profile_transport="$transport"
	case "$transport" in
	http)
		start_echo_http
		direct=(-url "$up_url")
		upstream=(--upstream "$up_url")
		guarded_server="{url: \"$up_url\"}"
		;;
	stdio)
		direct=(-cmd "$tmp/echo")
		upstream=(-- "$tmp/echo")
		guarded_server="{command: [\"$tmp/echo\"]}"
		;;
	*)
		echo "run.sh: unknown transport $transport" >&2
		exit 2
		;;
	esac
	if [ "$direct_only" != 1 ]; then
		start_sluice "${upstream[@]}"
		log "sluice $transport upstream at $sluice_url (pid $sluice_pid)"
		if [ "$audited" = 1 ] && [[ " $sizes " == *" 0 "* ]]; then
			if start_audited "${upstream[@]}"; then
				log "audited sluice $transport upstream at $audited_url (pid $audited_pid)"
			else
				log "the audited Sluice did not start"
				stop_variant audited
			fi
		fi
		if [ "$dlp" = 1 ] && [[ " $sizes " == *" 65536 "* ]]; then
			if start_dlp "$guarded_server"; then
				log "DLP sluice $transport upstream at $dlp_url (pid $dlp_pid)"
			else
				log "the DLP Sluice did not start"
				stop_variant dlp
			fi
		fi
		if [ "$guarded" = 1 ] && [[ " $sizes " == *" 0 "* ]]; then
			if start_guarded "$guarded_server"; then
				log "guarded sluice $transport upstream at $guarded_url (pid $guarded_pid)"
			else
				log "the guarded Sluice did not start"
				stop_guarded
			fi
		fi
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
					if [ "$guarded" = 1 ] && [ "$size" = 0 ]; then
						guarded_runs "$name" "$transport" "$label" "$clients" - - - -
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
				if [ "$guarded" = 1 ] && [ "$size" = 0 ]; then
					guarded_runs "$name" "$transport" "$label" "$clients" "$s_cps" "$((t1 - t0))" "$total" "$s_err"
				fi
				if [ "$audited" = 1 ] && [ "$size" = 0 ]; then
					compare_runs audited "$name" "$transport" "$label" "$clients" "$floor_audited_added_us" -size 0
				fi
				if [ "$dlp" = 1 ] && [ "$size" = 65536 ]; then
					compare_runs dlp "$name" "$transport" "$label" "$clients" "$floor_dlp_added_us" -size 65536 -records
				fi
			fi
			d_cps="$(printf '%.0f' "$d_cps")"
			rows+=("| $transport | $label | $clients | $d_cps | $s_cps | $ratio | $add50 | $add99 | $cpu | $d_err / $s_err | $verdict |")
		done
	done

	stop_guarded
	stop_variant audited
	stop_variant dlp
	stop_sluice
	stop_echo
done

# Memory: a fresh Sluice in front of an HTTP upstream, idle, then holding idle
# legacy sessions opened by the load tool.
memory="Sluice RSS: not measured."
profile_transport=memory
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

# The calibration: what this machine charges for HTTP in and HTTP out alone.
# A bare reverse proxy and Sluice, each in front of the HTTP echo, take the
# same small calls alternately, twice each per client count.
baseline_rows=()
if [ "$baseline" = 1 ] && [ "$direct_only" != 1 ] && [[ " $transports " == *" http "* ]]; then
	profile_transport=baseline
	if start_echo_http && start_sluice --upstream "$up_url"; then
		"$tmp/proxy" -upstream "${up_url%/mcp}" 2>"$tmp/proxy.log" &
		proxy_pid=$!
		proxy_url=""
		for _ in $(seq 100); do
			proxy_url="$(sed -n 's/^listening on //p' "$tmp/proxy.log")"
			[ -n "$proxy_url" ] && break
			sleep 0.05
		done
		if [ -z "$proxy_url" ]; then
			broken+=("baseline: the reverse proxy did not start")
		else
			proxy_url+="/mcp"
			for clients in $clients_list; do
				p_ticks=0 p_calls=0 s_ticks=0 s_calls=0 b_ok=1
				for round in 1 2; do
					log "baseline-$clients: through the bare reverse proxy, round $round"
					t0="$(cpu_ticks "$proxy_pid")"
					if ! load_target_log="$tmp/proxy.log" run_load "baseline-proxy-$clients-$round" -url "$proxy_url" -clients "$clients" -size 0; then
						b_ok=0
						break
					fi
					t1="$(cpu_ticks "$proxy_pid")"
					p_ticks=$((p_ticks + t1 - t0))
					p_calls=$((p_calls + $(jget "$tmp/baseline-proxy-$clients-$round.json" total_calls)))
					log "baseline-$clients: through Sluice, round $round"
					t0="$(cpu_ticks "$sluice_pid")"
					if ! run_load "baseline-sluice-$clients-$round" -url "$sluice_url" -clients "$clients" -size 0; then
						b_ok=0
						break
					fi
					t1="$(cpu_ticks "$sluice_pid")"
					s_ticks=$((s_ticks + t1 - t0))
					s_calls=$((s_calls + $(jget "$tmp/baseline-sluice-$clients-$round.json" total_calls)))
				done
				if [ "$b_ok" = 0 ]; then
					broken+=("baseline-$clients: a run failed")
					continue
				fi
				p_cpu="$(calc "$p_ticks * 1000000 / $clk_tck / $p_calls")"
				s_cpu="$(calc "$s_ticks * 1000000 / $clk_tck / $s_calls")"
				baseline_rows+=("$(printf '| http | small | %d | %.0f | %.0f | %.2f |' "$clients" "$p_cpu" "$s_cpu" "$(calc "$s_cpu / $p_cpu")")")
			done
		fi
		stop "$proxy_pid"
		proxy_pid=""
	else
		broken+=("baseline: echo or Sluice did not start")
	fi
	stop_sluice
	stop_echo
fi

load_end="$(cut -d' ' -f1-3 /proc/loadavg)"

report() {
	local commit
	commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
	if [ -n "$(git -C "$root" status --porcelain 2>/dev/null)" ]; then
		commit+=" (with uncommitted changes)"
	fi
	echo "## Results"
	echo
	echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); commit: $commit"
	echo "- load average (1, 5, 15 min): $load_start at the start, $load_end at the end"
	echo "- machine: $(nproc) CPU(s), $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || echo unknown CPU); $(go version | awk '{ print $3 }')"
	echo "- each run: $duration measured after $warmup of warm-up; protocol era: $era; Sluice CPU: utime+stime per call sent (warm-up included)"
	echo
	echo "| upstream | result | clients | direct calls/s | via Sluice calls/s | ratio | added p50 (ms) | added p99 (ms) | Sluice CPU µs/call | errors (direct / Sluice) | floors |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|"
	printf '%s\n' "${rows[@]}"
	echo
	echo "$memory"
	if [ ${#guarded_rows[@]} -gt 0 ]; then
		echo
		echo "Authentication and policy: Sluice with the core configuration against Sluice with the guarded one (authentication, 100 policy rules, argument validation, a rate limit), small results. In each of $guarded_rounds rounds the guarded Sluice runs once per authentication method, then the core Sluice once more; each side's CPU per call is its total CPU over its total calls (the core's with the run above), and each run's own figure follows in parentheses; floor: at most $floor_guarded_added_us µs of CPU added per call."
		echo
		echo "| upstream | result | clients | auth | core calls/s | guarded calls/s | core CPU µs/call (each run) | guarded CPU µs/call (each run) | added CPU µs/call | errors (core / guarded) | floors |"
		echo "|---|---|---:|---|---:|---:|---:|---:|---:|---|---|"
		printf '%s\n' "${guarded_rows[@]}"
	fi
	if [ ${#audited_rows[@]} -gt 0 ]; then
		echo
		echo "Audit log: Sluice with the core configuration against the same with the audit log on (SQLite and its journal in the data directory, arguments recorded redacted), small results. In each of $guarded_rounds rounds the audited Sluice runs once, then the core Sluice; each side's CPU per call is its total CPU over its total calls, and each run's own figure follows in parentheses; floor: at most $floor_audited_added_us µs of CPU added per call."
		echo
		echo "| upstream | result | clients | core calls/s | audited calls/s | core CPU µs/call (each run) | audited CPU µs/call (each run) | added CPU µs/call | errors (core / audited) | floors |"
		echo "|---|---|---:|---:|---:|---:|---:|---:|---|---|"
		printf '%s\n' "${audited_rows[@]}"
	fi
	if [ ${#dlp_rows[@]} -gt 0 ]; then
		echo
		echo "DLP: Sluice with the core configuration against the same with a DLP guard that redacts payment cards and masks phone numbers in results, on 64 KiB results of order records holding e-mail addresses and phone numbers (echo's records argument). In each of $guarded_rounds rounds the DLP Sluice runs once, then the core Sluice; each side's CPU per call is its total CPU over its total calls, and each run's own figure follows in parentheses; floor: at most $floor_dlp_added_us µs of CPU added per call."
		echo
		echo "| upstream | result | clients | core calls/s | DLP calls/s | core CPU µs/call (each run) | DLP CPU µs/call (each run) | added CPU µs/call | errors (core / DLP) | floors |"
		echo "|---|---|---:|---:|---:|---:|---:|---:|---|---|"
		printf '%s\n' "${dlp_rows[@]}"
	fi
	if [ ${#baseline_rows[@]} -gt 0 ]; then
		echo
		echo "Calibration: a bare reverse proxy (bench/proxy, net/http/httputil, no MCP awareness) and Sluice (core configuration), each in front of the same HTTP echo, alternately, two runs each; CPU per call over both runs. The floors were set where such a proxy costs about 400 µs per small call."
		echo
		echo "| upstream | result | clients | bare reverse proxy CPU µs/call | Sluice CPU µs/call | Sluice / proxy |"
		echo "|---|---|---:|---:|---:|---:|"
		printf '%s\n' "${baseline_rows[@]}"
	fi
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
