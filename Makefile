# crosswire — see README.md. Privileged targets (test, e2e, demo) need root.
SHELL   := /bin/bash
GO      ?= go
BIN     := bin
# Tools are built once per machine into a directory keyed by version.
TOOLS   ?= /var/cache/crosswire/tools
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(TOOLS)/staticcheck-$(STATICCHECK_VERSION)/staticcheck
export PATH := $(PATH):/usr/local/go/bin

.PHONY: all build tools test unit e2e bench lint clean demo demo-down

all: build

build:
	$(GO) build -o $(BIN)/crosswire ./cmd/crosswire

# Everything CI runs: the real kube-apiserver/etcd/kubectl (built once per
# machine), lint, unit, privileged and API-server tests with -race, then the
# network-namespace end-to-end tests.
test: tools lint unit e2e

# kube-apiserver, etcd and kubectl from source, cached per version under
# $(TOOLS) (first time ~12 min on 2 cores, then instant).
tools:
	CROSSWIRE_TOOLS=$(TOOLS) test/tools/build.sh

unit:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /test/e2e)

e2e:
	$(GO) test -count=1 -timeout 20m -v ./test/e2e/

# Benchmarks (root): ratios and latencies, never asserted in tests. Results
# are written to results/ with the machine's load at the time.
bench: tools
	@mkdir -p results
	@echo "bench: node event -> datapath latency against a real kube-apiserver (~20 s)"
	$(GO) test -run '^$$' -bench NodeEventToDatapath -benchtime 100x ./test/e2e/ | tee results/bench-control-plane.txt
	@uptime | tee -a results/bench-control-plane.txt

lint: $(STATICCHECK)
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	$(STATICCHECK) ./...

$(STATICCHECK):
	@echo "building staticcheck $(STATICCHECK_VERSION) into $(dir $@) (once per machine, ~20 s)"
	GOBIN=$(dir $@) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# The main job: a 3-node cluster on this machine with crosswire on every node.
demo: build
	$(GO) run ./test/demo -bin $(BIN)/crosswire up

demo-down:
	$(GO) run ./test/demo down

clean:
	rm -rf $(BIN) results
