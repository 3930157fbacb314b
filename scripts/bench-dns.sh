#!/usr/bin/env bash
# make bench-dns: the real `netward run` binary against dnsmasq and unbound,
# side by side in one run (scripts/benchdns is the harness; see its comment
# and README "Performance" for what is reported).
#
# Everything runs in a network namespace of its own, so that the agent can
# run exactly as the package ships it — dns.capture and SNI inspection on,
# which redirect and inspect the namespace's traffic, not the host's — with
# the list from a file:// source, telemetry kept locally (no endpoint), and a
# local upstream that answers every name. Needs root, go, dnsperf, dnsmasq
# and unbound (apt-get install dnsperf dnsmasq-base unbound).
#
# Env: BENCH_ROUNDS (default 3), BENCH_SECONDS (per dnsperf run, default 5),
# BENCH_BIG (indicators of the footprint run, default 1000000; 0 skips it),
# BLOCKLIST (default ../shared/data/blocklist-stevenblack.txt),
# BENCH_NETNS (default nwbench$$), BENCH_TAGS (build tags of netward: "pprof"
# with NETWARD_PPROF=127.0.0.1:6060 serves net/http/pprof in the namespace);
# arguments go to scripts/benchdns (-servers netward -workloads allowed: a
# profiling run; -ab "bin:/tmp/netward-main" runs another build as variant B,
# interleaved with this one, e.g. main's built with
# `go build -C ../main -trimpath -ldflags '-s -w' -o /tmp/netward-main ./cmd/netward`). Timing on a shared machine: hold a lock
# (flock) around it and compare ratios from the same run only.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "bench-dns: needs root (network namespace, nftables, NFQUEUE)" >&2; exit 1; }
for t in dnsperf dnsmasq unbound go ip; do
	command -v "$t" >/dev/null || { echo "bench-dns: $t not found (apt-get install dnsperf dnsmasq-base unbound)" >&2; exit 1; }
done
BLOCKLIST=${BLOCKLIST:-../shared/data/blocklist-stevenblack.txt}
[ -f "$BLOCKLIST" ] || BLOCKLIST=/work/shared/data/blocklist-stevenblack.txt
[ -f "$BLOCKLIST" ] || { echo "bench-dns: blocklist $BLOCKLIST not found; set BLOCKLIST" >&2; exit 1; }

NS=${BENCH_NETNS:-nwbench$$}
WORK=$(mktemp -d)
chmod 700 "$WORK"
RMEM_WAS=$(sysctl -n net.core.rmem_max)
cleanup() {
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$WORK"
	[ "$(sysctl -n net.core.rmem_max)" = "$RMEM_WAS" ] || sysctl -qw net.core.rmem_max="$RMEM_WAS"
}
trap cleanup EXIT INT TERM

# The product build (Makefile `build`), and the harness.
go build -trimpath -ldflags '-s -w' ${BENCH_TAGS:+-tags "$BENCH_TAGS"} -o "$WORK/netward" ./cmd/netward
go build -o "$WORK/benchdns" ./scripts/benchdns
# The agent refuses, as root, a list or config others can write.
install -m 600 "$BLOCKLIST" "$WORK/list.txt"

ip netns add "$NS"
ip -n "$NS" link set lo up
# dnsperf asks for a 4 MiB socket buffer (-b 4096): with 500 queries
# outstanding the default overflows and its "lost" would be its own drops.
# (netward forces its own with SO_RCVBUFFORCE.)
if [ "$RMEM_WAS" -lt 4194304 ]; then
	sysctl -qw net.core.rmem_max=4194304 || echo "bench-dns: cannot raise net.core.rmem_max; dnsperf may drop replies itself" >&2
fi

ip netns exec "$NS" "$WORK/benchdns" -netward "$WORK/netward" -list "$WORK/list.txt" -work "$WORK" \
	-rounds "${BENCH_ROUNDS:-3}" -secs "${BENCH_SECONDS:-5}" -big "${BENCH_BIG:-1000000}" "$@"
