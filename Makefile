# netward — see README.md. `make run` and `make test` are all a newcomer needs.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X github.com/netward/netward/internal/version.Version=$(VERSION) -X github.com/netward/netward/internal/version.Commit=$(COMMIT)
BIN      := bin
# The race detector needs cgo; go test -race builds it in.
TESTFLAGS ?= -race -timeout 15m
BENCHTIME ?= 1s

.PHONY: all build run test unit lint cross bench bench-dns clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

# The agent on its embedded default config: DNS proxy on 127.0.0.1:15353, no host
# interception, the built-in demo indicators. Try: dig @127.0.0.1 -p 15353 example.com
run: build
	./$(BIN)/netward run

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
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./filter/... ./telemetry/...

# DNS proxy throughput and latency vs dnsmasq with dnsperf (docs/dns.md).
bench-dns:
	./scripts/bench-dns.sh

clean:
	rm -rf $(BIN)
	$(GO) clean -testcache
