# netward — see README.md. `make run` and `make test` are all a newcomer needs.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X github.com/netward/netward/internal/version.Version=$(VERSION) -X github.com/netward/netward/internal/version.Commit=$(COMMIT)
BIN      := bin
# The race detector needs cgo; go test -race builds it in.
TESTFLAGS ?= -race -timeout 15m
BENCHTIME ?= 1s

.PHONY: all build run console test unit lint cross bench clean package bench-dns bench-discovery loadtest loadtest-fanout loadtest-quick

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

# The agent on its embedded default config: DNS proxy on 127.0.0.1:15353, no host
# interception, the built-in demo indicators. Try: dig @127.0.0.1 -p 15353 example.com
run: build
	./$(BIN)/netward run

# The console on its embedded default: SQLite store and data under
# ./netward-console-data, HTTPS on 127.0.0.1:8443 with a self-signed
# certificate (its fingerprint and the first admin password are printed).
console: build
	./$(BIN)/netward-console serve

# Everything: formatting, vet, unit + end-to-end tests (e2e tests need root and
# skip without it unless NETWARD_E2E=require), and the cross builds.
test: lint unit cross

# Tests that need root or a missing tool skip (internal/e2e.Skip) and note
# their suite in $$NETWARD_SKIP_LOG; the last line says which did not run.
unit:
	@skiplog=$$(mktemp); \
	NETWARD_SKIP_LOG=$$skiplog $(GO) test $(TESTFLAGS) ./...; rc=$$?; \
	if [ -s $$skiplog ]; then \
		echo "skipped end-to-end suites: $$(awk '{ i = index($$0, ": "); s = substr($$0, 1, i - 1); r = substr($$0, i + 2); sub(/ \(.*/, "", r); if (!seen[s]++) { printf "%s%s (%s)", sep, s, r; sep = "; " } }' $$skiplog) — run as root with NETWARD_E2E=require to run them all"; \
	else \
		echo "skipped end-to-end suites: none"; \
	fi; \
	rm -f $$skiplog; exit $$rc

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	GOOS=windows GOARCH=amd64 $(GO) vet ./...

cross:
	GOOS=linux   GOARCH=amd64 $(GO) build -o /dev/null ./...
	GOOS=linux   GOARCH=arm64 $(GO) build -o /dev/null ./...
	GOOS=windows GOARCH=amd64 $(GO) build -o /dev/null ./...

# Benchmarks, side by side with their baselines; README "Performance" quotes them.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./filter/... ./indicators/... ./telemetry/...

# .deb and .rpm (nFPM, its own module in deploy/package so its dependencies stay out of
# go.mod) for PKG_ARCH, into $(BIN)/. The unit is the one `netward install` writes.
PKG_ARCH ?= $(shell $(GO) env GOARCH)
package:
	@mkdir -p $(BIN)/pkg
	GOOS=linux GOARCH=$(PKG_ARCH) CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/pkg/netward ./cmd/netward
	$(GO) run ./cmd/netward install --print-unit --executable /usr/bin/netward > $(BIN)/pkg/netward.service
	cd deploy/package && $(GO) run . -binary $(abspath $(BIN))/pkg/netward -unit $(abspath $(BIN))/pkg/netward.service \
		-version $(VERSION) -arch $(PKG_ARCH) -assets . -out $(abspath $(BIN))

# DNS proxy throughput and latency vs dnsmasq with dnsperf (docs/dns.md).
bench-dns:
	./scripts/bench-dns.sh

# Fleet scale (docs/scale.md): the console (PostgreSQL, durable settings) against a
# simulated fleet on loopback, timed under the shared bench lock. Not part of `make test`
# (its short correctness run, console/loadtest TestFleetShort, is).
BENCH_LOCK ?= /work/notes/bench.lock
LOCK       := $(shell command -v flock >/dev/null && test -d $(dir $(BENCH_LOCK)) && echo flock $(BENCH_LOCK))
SHARED     ?= ../shared/data
# 10 minutes at 105,000 records/s offered: 64 uploading devices (1 in 4 uploads a full
# 4,000-record chunk), 2,000 held long polls, three tag changes measured.
loadtest: build
	$(LOCK) ./$(BIN)/netward-console loadtest --store postgres --devices 2000 --polls 2000 --uploaders 64 \
		--rate 105000 --duration 10m --feed-changes 3 --data $(SHARED) --json $(BIN)/loadtest.json
# Feed fan-out: time until 95 % / 100 % of N held polls have a new sequence, and bytes sent.
# One console up to 19,000 (a process holds one descriptor per poll, and the hard
# open-file limit of the sandbox the figures were made in is 20,000); 20,000 on two
# replicas sharing one PostgreSQL, the tag made on the first. The simulator spreads
# its polls over one child process per 10,000 (--procs).
loadtest-fanout: build
	for n in 1000 10000 19000; do $(LOCK) ./$(BIN)/netward-console loadtest --store postgres --devices $$n --polls $$n \
		--uploaders 1 --duration 40s --feed-changes 2 --data $(SHARED) --json $(BIN)/fanout-$$n.json || exit 1; done
	$(LOCK) ./$(BIN)/netward-console loadtest --store postgres --replicas 2 --devices 20000 --polls 20000 \
		--uploaders 1 --duration 40s --feed-changes 2 --data $(SHARED) --json $(BIN)/fanout-20000-replicas.json
# A 30 s run to try changes with.
loadtest-quick: build
	./$(BIN)/netward-console loadtest --store postgres --devices 200 --polls 200 --uploaders 40 --duration 30s --data $(SHARED)

# Discovery telemetry: chunk volume of a browsing day with and without
# deduplication, and netward run with DNS answer recording off vs on
# (docs/telemetry.md). Root; hold flock /work/notes/bench.lock.
bench-discovery:
	./scripts/bench-discovery.sh

clean:
	rm -rf $(BIN)
	$(GO) clean -testcache
