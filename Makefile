# Ocelot — see README.md. The two commands a newcomer needs: `make demo` and `make test`.
SHELL := /bin/bash
GO ?= go
export PATH := $(PATH):/usr/local/go/bin

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
DATE    ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.buildDate=$(DATE)

OCELOT_BIN := $(CURDIR)/bin/ocelot
export OCELOT_BIN

.PHONY: all build deps test unit faults hostile lint bench bench-e2e bench-etcd demo clean

all: build

## build: a static bin/ocelot with version, commit and build date stamped in.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ocelot ./cmd/ocelot

## deps: install missing system packages (iproute2, iptables, ipset, conntrack, procps) with apt-get
## when root, and unpack Debian's etcd-server 3.4 into bin/ for its compatibility test.
deps:
	@scripts/install-deps.sh

## test: every test, unit and functional (the functional ones need root and network namespaces;
## without them they skip, or fail when OCELOT_REQUIRE_KERNEL=1, as .ci/run sets); then the fv
## scenarios again with the hosts in nftables mode.
test: deps build
	$(GO) test -count=1 -timeout 20m ./...
	OCELOT_FV_NFTABLES=1 $(GO) test -count=1 -timeout 10m -run '$(FV_SCENARIOS)' ./fv-tests/

# The fv scenarios that run a second time with the hosts in nftables mode.
FV_SCENARIOS := ^(TestGuideScenario|TestMembershipChanges|TestRegionNames|TestGlobalPolicyOrder|TestRestartUnderTraffic|TestStatusKeys|TestBadInput|TestConfigReload|TestQoSControls|TestHostEndpoints|TestObservability)$$

unit:
	$(GO) test -count=1 -short ./...

## faults: the fault suite alone (part of test), printing each scenario's measured times.
faults: deps build
	set -o pipefail; $(GO) test -count=1 -v -timeout 20m -run 'TestFault' ./fv-tests/ | grep -E 'fault:|^(--- |ok|FAIL|panic)'

## hostile: the hostile-input suite alone (part of test), with its summary of failures.
hostile: deps build
	set -o pipefail; $(GO) test -count=1 -v -timeout 20m -run 'TestHostileInput' ./fv-tests/ | grep -E 'hostile cases|  failed: |(CRASH|BYPASS|FROZEN|HOST DAMAGED|FAILED):|^(--- |ok|FAIL|panic)'

## lint: go vet, gofmt, and golangci-lint (staticcheck, errcheck, unused, ...; .golangci.yml).
GOLANGCI_VERSION := v2.15.0
GOLANGCI := $(CURDIR)/bin/tools/golangci-lint-$(GOLANGCI_VERSION)
lint: $(GOLANGCI)
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GOLANGCI) run ./...

# Built once from the module proxy into bin/tools (no system package has v2).
$(GOLANGCI):
	mkdir -p $(CURDIR)/bin/tools
	GOBIN=$(CURDIR)/bin/tools $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION)
	mv $(CURDIR)/bin/tools/golangci-lint $(GOLANGCI)

## bench: the benchmarks of every package.
bench: deps build
	$(GO) test -count=1 -run '^$$' -bench . -benchmem -timeout 60m ./...

## bench-e2e: datastore write -> rule enforced, measured against the real binary, for each backend
## and scale: make bench-e2e SCALES=10k,50k,100k BACKENDS=iptables,nftables (1k is a quick smoke run).
## FELIX=/path/to/calico-felix also runs Calico's Felix through the churn benchmark, side by side;
## CHURN_SCALE=50k (or 100k) runs that benchmark on a larger cloud.
SCALES ?= 10k
BACKENDS ?= iptables,nftables
FELIX ?=
CHURN_SCALE ?= 10k
bench-e2e: deps build
	OCELOT_BENCH_E2E=1 OCELOT_BENCH_SCALES=$(SCALES) OCELOT_BENCH_BACKENDS=$(BACKENDS) OCELOT_BENCH_FELIX=$(FELIX) \
		OCELOT_BENCH_CHURN_SCALE=$(CHURN_SCALE) \
		$(GO) test -count=1 -timeout 90m -run TestBenchE2E -v ./fv-tests/

## bench-etcd: what agents cost a three-member etcd, direct and via grpc-proxy (~11 min).
bench-etcd:
	OCELOT_BENCH_ETCD=1 $(GO) test -count=1 -timeout 60m -run TestBenchEtcd -v ./datastore/scalebench/

## demo: the Multiple Regions guide, live, in network namespaces.
demo: deps build
	$(GO) build -o bin/ocelot-demo ./fv-tests/demo
	bin/ocelot-demo

clean:
	rm -rf bin
