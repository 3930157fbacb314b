# netward — see README.md. `make run` and `make test` are all a newcomer needs.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X github.com/netward/netward/internal/version.Version=$(VERSION) -X github.com/netward/netward/internal/version.Commit=$(COMMIT)
BIN      := bin
# The race detector needs cgo; go test -race builds it in.
TESTFLAGS ?= -race -timeout 15m
BENCHTIME ?= 1s

.PHONY: all build run console test unit lint cross bench clean package bench-dns bench-discovery

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

unit:
	$(GO) test $(TESTFLAGS) ./...

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

# Discovery telemetry: chunk volume of a browsing day with and without
# deduplication, and netward run with DNS answer recording off vs on
# (docs/telemetry.md). Root; hold flock /work/notes/bench.lock.
bench-discovery:
	./scripts/bench-discovery.sh

clean:
	rm -rf $(BIN)
	$(GO) clean -testcache
