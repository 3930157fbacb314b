#!/usr/bin/env bash
# make bench-dns: netward's DNS proxy vs dnsmasq, side by side, with dnsperf.
#
# Both forward to the same local upstream (scripts/dnsbench upstream, a miekg
# server answering every name), both block the same StevenBlack list
# (netward: Block indicators; dnsmasq: address=/name/ → NXDOMAIN, the same
# domain-and-subdomains semantics), first without a cache, then with one.
# Query files: allowed-only, blocked-only, 30 % blocked. Reported: q/s at
# saturation, lost queries at 80 % of that rate, median added latency over
# querying the upstream directly, netward's CPU seconds per 100k queries,
# and RSS with 1M indicators. Loopback only; every process started here is
# stopped on exit.
#
# dnsperf gets a 4 MiB socket buffer (-b): with 500 queries outstanding,
# the default 208 KiB buffer of its own socket overflows at these rates and
# its "lost" would count the load generator's drops, not the servers'. The
# servers' own drops are read from /proc/net/udp and reported separately.
# net.core.rmem_max is raised to 4 MiB for the run if it is lower, and put
# back on exit.
#
# Needs: go, dnsperf, dnsmasq (apt-get install dnsperf dnsmasq-base).
# Env: BENCH_SECONDS (per run, default 8), BLOCKLIST.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${BENCH_SECONDS:-8}
BLOCKLIST=${BLOCKLIST:-../shared/data/blocklist-stevenblack.txt}
[ -f "$BLOCKLIST" ] || BLOCKLIST=/work/shared/data/blocklist-stevenblack.txt
for t in dnsperf dnsmasq go; do
	command -v "$t" >/dev/null || { echo "bench-dns: $t not found (apt-get install dnsperf dnsmasq-base)" >&2; exit 1; }
done
[ -f "$BLOCKLIST" ] || { echo "bench-dns: blocklist $BLOCKLIST not found; set BLOCKLIST" >&2; exit 1; }

UP=127.0.0.1:25400
NW_PORT=25401
DM_PORT=25402
WORK=$(mktemp -d)
PIDS=()
RMEM_WAS=$(sysctl -n net.core.rmem_max)
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$WORK"
	[ "$(sysctl -n net.core.rmem_max)" = "$RMEM_WAS" ] || sysctl -qw net.core.rmem_max="$RMEM_WAS"
}
trap cleanup EXIT INT TERM
if [ "$RMEM_WAS" -lt 4194304 ]; then
	sysctl -qw net.core.rmem_max=4194304 || echo "bench-dns: cannot raise net.core.rmem_max (not root?); dnsperf may drop replies itself" >&2
fi

# drops PORT: datagrams the kernel dropped on the UDP socket bound to
# 127.0.0.1:PORT (the last column of /proc/net/udp).
drops() {
	awk -v p="$(printf '0100007F:%04X' "$1")" '$2 == p { d += $NF } END { print d + 0 }' /proc/net/udp
}
go build -o "$WORK/dnsbench" ./scripts/dnsbench

# waitready FILE: wait for a READY line.
waitready() {
	for _ in $(seq 1 300); do grep -q READY "$1" 2>/dev/null && return 0; sleep 0.1; done
	echo "bench-dns: $1 never became ready:" >&2; cat "$1" >&2; exit 1
}
stop() { # stop PID: TERM and wait
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

"$WORK/dnsbench" upstream -listen "$UP" >"$WORK/up.log" 2>&1 &
PIDS+=($!)
waitready "$WORK/up.log"

"$WORK/dnsbench" queries -blocklist "$BLOCKLIST" -blocked 0 -n 100000 -out "$WORK/allowed.txt"
"$WORK/dnsbench" queries -blocklist "$BLOCKLIST" -blocked 1 -n 100000 -out "$WORK/blocked.txt"
"$WORK/dnsbench" queries -blocklist "$BLOCKLIST" -blocked 0.3 -n 100000 -out "$WORK/mix.txt"
sed 's|^|address=/|; s|$|/|' "$BLOCKLIST" | grep -v '^address=/#' >"$WORK/dnsmasq-block.conf"

start_netward() { # cache entries (-1: none)
	"$WORK/dnsbench" proxy -listen 127.0.0.1:$NW_PORT -upstream "$UP" -blocklist "$BLOCKLIST" -cache "$1" -inflight 1024 >"$WORK/nw.log" 2>&1 &
	NW_PID=$!
	PIDS+=($NW_PID)
	waitready "$WORK/nw.log"
}
start_dnsmasq() { # cache size (0: none)
	dnsmasq -k --port=$DM_PORT --listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts \
		--server="${UP%:*}#${UP#*:}" --cache-size="$1" --dns-forward-max=1024 \
		--conf-file="$WORK/dnsmasq-block.conf" --log-facility=/dev/null --pid-file= --user="$(id -un)" >"$WORK/dm.log" 2>&1 &
	DM_PID=$!
	PIDS+=($DM_PID)
	for _ in $(seq 1 100); do
		dig +short +tries=1 +time=1 @127.0.0.1 -p $DM_PORT ready.allowed-bench.test >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "bench-dns: dnsmasq did not start:" >&2; cat "$WORK/dm.log" >&2; exit 1
}

# perf PORT FILE [QPS]: prints "qps lost"
perf() {
	local extra=()
	[ -n "${3:-}" ] && extra=(-Q "$3")
	dnsperf -s 127.0.0.1 -p "$1" -d "$2" -l "$SECS" -q 500 -t 2 -b 4096 "${extra[@]}" 2>/dev/null |
		awk '/Queries per second/ {q=$4} /Queries lost/ {l=$3} END {printf "%d %d\n", q, l}'
}

declare -A R
run_set() { # label netward-cache dnsmasq-cache
	local label=$1
	start_netward "$2"
	start_dnsmasq "$3"
	for f in allowed blocked mix; do
		for s in netward:$NW_PORT dnsmasq:$DM_PORT; do
			local name=${s%%:*} port=${s#*:}
			read -r q l < <(perf "$port" "$WORK/$f.txt")
			local q80=$((q * 8 / 10))
			local d0 d1
			d0=$(drops "$port")
			read -r _ l80 < <(perf "$port" "$WORK/$f.txt" "$q80")
			d1=$(drops "$port")
			R[$label,$f,$name]="$q $l $q80 $l80 $((d1 - d0))"
		done
	done
	if [ "$label" = nocache ]; then
		local base nw dm
		base=$("$WORK/dnsbench" latency -server "$UP" -prefix base)
		nw=$("$WORK/dnsbench" latency -server 127.0.0.1:$NW_PORT -prefix nw)
		dm=$("$WORK/dnsbench" latency -server 127.0.0.1:$DM_PORT -prefix dm)
		LAT="upstream direct ${base} µs; netward +$((nw - base)) µs; dnsmasq +$((dm - base)) µs (median, sequential, no cache)"
	fi
	stop "$NW_PID"
	STATS[$label]=$(grep STATS "$WORK/nw.log" || true)
	stop "$DM_PID"
}
declare -A STATS

echo "bench-dns: $(nproc) cores, $(wc -l <"$BLOCKLIST") blocked domains, ${SECS}s per run (dnsperf -q 500 on the same machine)"
run_set nocache -1 0
run_set cache 100000 100000

printf '\n%-8s %-8s %12s %12s %7s %18s %18s\n' cache queries netward_qps dnsmasq_qps ratio "netward_lost@80%" "dnsmasq_lost@80%"
for c in nocache cache; do
	for f in allowed blocked mix; do
		read -r nq nl nq80 nl80 nd <<<"${R[$c,$f,netward]}"
		read -r dq dl dq80 dl80 dd <<<"${R[$c,$f,dnsmasq]}"
		ratio=$(awk -v a="$nq" -v b="$dq" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
		printf '%-8s %-8s %12s %12s %7s %18s %18s\n' "$c" "$f" "$nq" "$dq" "${ratio}x" "$nl80/$nq80 d$nd" "$dl80/$dq80 d$dd"
	done
done
echo "(lost@80%: queries without an answer / the rate sent, 80 % of the peak, for ${SECS}s; dN: datagrams the server's own socket dropped)"
echo
echo "latency: $LAT"
for c in nocache cache; do
	s=${STATS[$c]}
	q=$(sed -n 's/.*queries=\([0-9]*\).*/\1/p' <<<"$s")
	cpu=$(sed -n 's/.*cpu=\([^ ]*\).*/\1/p' <<<"$s")
	rss=$(sed -n 's/.*maxrss_kb=\([0-9]*\).*/\1/p' <<<"$s")
	echo "netward ($c): $q queries, CPU $cpu total, peak RSS $((rss / 1024)) MiB with $(wc -l <"$BLOCKLIST") indicators"
	cpus=$(awk -v c="$cpu" 'BEGIN { if (c ~ /ms$/) { sub(/ms$/, "", c); c /= 1000 } else if (c ~ /m/) { split(c, a, "m"); sub(/s$/, "", a[2]); c = a[1] * 60 + a[2] } else sub(/s$/, "", c); print c }')
	[ -n "$q" ] && [ "$q" -gt 0 ] && awk -v c="$cpus" -v q="$q" 'BEGIN { printf "  CPU seconds per 100k queries: %.2f\n", c / q * 100000 }'
done
echo "memory: $("$WORK/dnsbench" rss -n 1000000)"
