#!/bin/sh
# bench-inspect.sh — inline inspection performance, side by side (issue 8).
#
# Runs as root (network namespaces, nftables, NFQUEUE; nothing is changed in
# the root namespace). Prints:
#   - ClientHello / QUIC Initial / HTTP parse cost (ns/op, allocs/op) and the
#     engine's userspace work per TLS connection;
#   - connection setup (connect + ClientHello + first server byte) in a
#     namespace pair without and with the inspector: the median latency added
#     (target <= 200 us) and the setup rate with 8 concurrent clients as a
#     ratio queued/direct (target >= 0.7x).
# Usage: scripts/bench-inspect.sh [COUNT]   (COUNT runs of each, default 3;
# the medians over the runs are reported).
set -eu
cd "$(dirname "$0")/.."
COUNT=${1:-3}
GO=${GO:-go}

echo "== parsers and engine (filter/inspect)"
$GO test -run '^$' -bench 'ParseClientHello|QUICInitial|ParseHTTPRequest|HelloLength' -benchmem ./filter/inspect/ | grep '^Benchmark'
$GO test -run '^$' -bench 'EngineFlow' -benchmem ./filter/inspect/ | grep '^Benchmark'

if [ "$(id -u)" != 0 ]; then
	echo "connection benchmark skipped: needs root (network namespaces, nftables)" >&2
	exit 0
fi
echo "== connection setup through the queue vs without ($COUNT runs)"
out=$($GO test -run '^$' -bench 'BenchmarkInspectConnect' -benchtime 1s -count "$COUNT" ./internal/e2e/inspecte2e/ | grep '^BenchmarkInspectConnect')
echo "$out"
echo "$out" | awk '
function median(a, n,   i, j, t) {
	for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j+1] = a[j]; a[j+1] = t }
	return (n % 2) ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
}
{
	split($1, part, "/"); mode = part[2]
	for (i = 3; i < NF; i++) {
		if ($(i+1) == "p50-µs") { n = ++nlat[mode]; lat[mode, n] = $i }
		if ($(i+1) == "conn/s") { n = ++nrate[mode]; rate[mode, n] = $i }
	}
}
END {
	if (!nlat["direct"] || !nrate["direct"]) { print "no results"; exit 1 }
	for (i = 1; i <= nlat["direct"]; i++) a[i] = lat["direct", i]; d50 = median(a, nlat["direct"])
	for (i = 1; i <= nrate["direct"]; i++) a[i] = rate["direct", i]; drt = median(a, nrate["direct"])
	printf "direct: median connect %.0f us, setup rate (8 clients) %.0f/s\n", d50, drt
	split("queued iprules names", modes, " ")
	desc["queued"] = "IP rule covering the server (SYN + hello queued)"
	desc["iprules"] = "IP rule elsewhere (hello queued)"
	desc["names"] = "names only (hello queued)"
	for (m = 1; m <= 3; m++) {
		md = modes[m]
		if (!nlat[md] || !nrate[md]) continue
		for (i = 1; i <= nlat[md]; i++) a[i] = lat[md, i]; q50 = median(a, nlat[md])
		for (i = 1; i <= nrate[md]; i++) a[i] = rate[md, i]; qrt = median(a, nrate[md])
		printf "%s, %s: median connect %.0f us (added %.0f us, target <= 200), rate %.0f/s = %.2fx direct (target >= 0.7x)\n", md, desc[md], q50, q50 - d50, qrt, qrt / drt
	}
}'
echo "load average during the run: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
