#!/bin/sh
# The console's analytics views on a generated fleet, on SQLite and on
# PostgreSQL (a private cluster; run as root, PostgreSQL from Debian's
# postgresql package). Every view is timed over HTTPS against a real
# `netward-console serve` (p50/p95 of 20 rounds) while holding the shared
# bench lock; the database size is printed per 1,000 device-days.
#   scripts/bench-console-views.sh [DEVICES] [DAYS]
set -eu
devices=${1:-1000}
days=${2:-30}
go build -o bin/netward-console ./cmd/netward-console
for store in sqlite postgres; do
	echo "== $store: $devices devices × $days days"
	go run ./scripts/fleetbench -store "$store" -devices "$devices" -days "$days" -console bin/netward-console -lock "${BENCH_LOCK:-/tmp/netward-bench.lock}"
done
