#!/usr/bin/env bash
# make bench-discovery: what recording allowed DNS answers (issue 16) costs,
# with the real `netward run`.
#
# 1. Chunk volume of a browsing day: discobench replays a generated day
#    (3,000 names with Zipf popularity, 40,000 lookups, A and AAAA each,
#    85 % between 08:00 and 18:00) 600 times faster than real time, once
#    with deduplication off (dedupWindow 0s) and once with it on (the 60 s
#    window, scaled: 100 ms; chunkInterval 1 h scaled: 6 s). Reported:
#    records and gzip bytes per hour of the day (totals / 24).
# 2. Cost: `netward run` with telemetry.dnsAnswers false and true, three
#    interleaved rounds (off, on, off, on, off, on), dnsperf at saturation
#    on the allowed workload (every name new: upstream path) and the cached
#    one (1,000 names: the fast path); medians and the on/off ratio.
#
# Everything runs in a private network namespace (loopback only), so the
# agent's conntrack source and nftables table stay out of the host's.
# Hold the bench lock: flock /work/notes/bench.lock scripts/bench-discovery.sh
# Needs: root, go, dnsperf. Env: BENCH_SECONDS (per dnsperf run, default 8),
# PARTS ("volume cost" by default; part 1 is not timed and needs no lock).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${BENCH_SECONDS:-8}
PARTS=${PARTS:-volume cost}
for t in dnsperf go ip; do
	command -v "$t" >/dev/null || { echo "bench-discovery: $t not found" >&2; exit 1; }
done
NS=i16bench-$$
WORK=$(mktemp -d)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	ip netns delete "$NS" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT
trap "exit 1" INT TERM
ip netns add "$NS"
X() { ip netns exec "$NS" "$@"; }
X ip link set lo up

go build -o "$WORK/netward" ./cmd/netward
go build -o "$WORK/dnsbench" ./scripts/dnsbench
go build -o "$WORK/discobench" ./scripts/discobench
# Background processes are started with ip netns exec itself (not through
# the X function, which would put a subshell's pid in $!).
ip netns exec "$NS" "$WORK/dnsbench" upstream -listen 127.0.0.1:25400 >"$WORK/up.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do grep -q READY "$WORK/up.log" && break; sleep 0.1; done

# agent NAME TELEMETRY-JSON: start netward run with a fresh data dir.
agent() {
	local d=$WORK/$1
	rm -rf "$d"; mkdir -p "$d"
	cat >"$d/netward.json" <<JSON
{"version": 1, "dataDir": "$d/data", "indicators": {"source": "builtin:demo"},
 "dns": {"listen": ["127.0.0.1:25411"], "upstreams": ["127.0.0.1:25400"]},
 "control": {"socket": "$d/ctl.sock"}, "telemetry": {$2}}
JSON
	ip netns exec "$NS" "$WORK/netward" run --config "$d/netward.json" >"$d/log" 2>&1 &
	AGENT=$! AGENT_LOG=$d/log
	for _ in $(seq 1 100); do
		kill -0 "$AGENT" 2>/dev/null || { echo "bench-discovery: agent exited:" >&2; cat "$d/log" >&2; exit 1; }
		X dig +short +tries=1 +time=1 @127.0.0.1 -p 25411 ready.bench.example >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "bench-discovery: agent did not start:" >&2; cat "$d/log" >&2; exit 1
}
stop_agent() {
	if ! kill "$AGENT" 2>/dev/null; then
		echo "bench-discovery: the agent exited early:" >&2; tail -30 "$AGENT_LOG" >&2; exit 1
	fi
	wait "$AGENT" 2>/dev/null || true
}

# volume NAME: records and gzip bytes of the spool, plus the journal left open.
volume() {
	local d=$WORK/$1/data/telemetry recs=0 bytes=0 f n
	for f in "$d"/spool/*.ndjson.gz; do
		[ -e "$f" ] || continue
		n=$(basename "$f"); n=${n#*.}; n=${n%%.*}
		recs=$((recs + n)); bytes=$((bytes + $(stat -c %s "$f")))
	done
	for f in "$d"/journal/*.ndjson; do
		[ -e "$f" ] || continue
		recs=$((recs + $(wc -l <"$f"))); bytes=$((bytes + $(gzip -1 -c "$f" | wc -c)))
	done
	echo "$recs $bytes"
}

if [[ " $PARTS " == *" volume "* ]]; then
echo "bench-discovery: $(nproc) cores; part 1: a browsing day replayed 600x faster"
declare -A V
for mode in nodedup dedup; do
	win=0s; [ $mode = dedup ] && win=100ms
	agent "day-$mode" "\"dedupWindow\": \"$win\", \"chunkInterval\": \"6s\""
	X "$WORK/discobench" day -server 127.0.0.1:25411 -scale 600 | tee "$WORK/day-$mode.out"
	sleep 8 # the last chunk closes
	stop_agent
	V[$mode]=$(volume "day-$mode")
done
read -r r0 b0 <<<"${V[nodedup]}"
read -r r1 b1 <<<"${V[dedup]}"
printf '%-22s %14s %22s\n' "" records/hour "compressed bytes/hour"
printf '%-22s %14d %22d\n' "without deduplication" $((r0 / 24)) $((b0 / 24))
printf '%-22s %14d %22d\n' "with deduplication" $((r1 / 24)) $((b1 / 24))
awk -v a="$r0" -v b="$r1" -v c="$b0" -v d="$b1" 'BEGIN { printf "deduplication: %.1fx fewer records, %.1fx fewer bytes\n", a / b, c / d }'
fi
[[ " $PARTS " == *" cost "* ]] || exit 0

echo
echo "part 2: recording off vs on, 3 interleaved rounds, dnsperf ${SECS}s per run"
X "$WORK/discobench" queries -n 2000000 -prefix a -out "$WORK/allowed.txt"
X "$WORK/discobench" queries -n 1000 -prefix c -out "$WORK/cached.txt"
perf() { # FILE: q/s
	X dnsperf -s 127.0.0.1 -p 25411 -d "$1" -l "$SECS" -q 500 -t 2 -b 4096 2>/dev/null | awk '/Queries per second/ {print int($4)}'
}
declare -A Q
for round in 1 2 3; do
	for mode in off on; do
		rec=false; [ $mode = on ] && rec=true
		agent "cost-$mode" "\"dnsAnswers\": $rec"
		a=$(perf "$WORK/allowed.txt")
		X dnsperf -s 127.0.0.1 -p 25411 -d "$WORK/cached.txt" -l 1 -q 100 >/dev/null 2>&1 || true # warm the cache
		c=$(perf "$WORK/cached.txt")
		stop_agent
		Q[$mode,allowed]+="$a "; Q[$mode,cached]+="$c "
		echo "round $round recording $mode: allowed $a q/s, cached $c q/s"
	done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for w in allowed cached; do
	off=$(median <<<"${Q[off,$w]}"); on=$(median <<<"${Q[on,$w]}")
	awk -v w="$w" -v a="$off" -v b="$on" 'BEGIN { printf "%-8s median off %7d q/s, on %7d q/s, on/off %.2f\n", w, a, b, b / a }'
done
