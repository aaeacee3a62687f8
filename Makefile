# Spate — a Kafka-protocol event-streaming broker. `make` lists the targets.
GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
# A count such as 500x (rather than a duration) avoids go#75804, a fuzz coordinator flake.
FUZZTIME    ?= 10s
PKGS        := ./...

.PHONY: help run deps test test-short lint fuzz fuzz-smoke bench chaos cluster cluster-stop

help:
	@echo "make run         single-node broker on 127.0.0.1:9092, data in ./data"
	@echo "make cluster     three nodes (controller+broker each) on 127.0.0.1:19092,29092,39092 in the background; make cluster-stop"
	@echo "make test        everything CI runs: lint, race tests, fuzz and crash smokes"
	@echo "make lint        gofmt, go vet, staticcheck"
	@echo "make bench       storage benchmarks with -benchmem (see README)"
	@echo "make fuzz        each fuzz target for FUZZTIME (default 10s; try FUZZTIME=5m)"
	@echo "make chaos       long crash/kill suites, and 10 minutes of cluster faults (SPATE_CHAOS_DURATION, SPATE_CHAOS_SEED)"
	@echo "make perf        S1-S4 against Spate and kfake, 3 alternating runs each, ratio table (perf/README.md)"
	@echo "make perf-quick  the same at tiny sizes, one run: a smoke test of the harness"
	@echo "make perf-cluster S1 on a local three-node cluster, replication factor 1 vs 3 (RUNS=3)"

run: bin/spate
	./bin/spate -data-dir data

bin/spate: $(shell find . -name '*.go' -not -path './bin/*') go.mod go.sum
	CGO_ENABLED=0 $(GO) build -o bin/spate ./cmd/spate

# A three-node cluster on this machine for trying it out: node N listens for Kafka clients on
# 127.0.0.1:N9092, for Raft on 127.0.0.1:N9093, serves /metrics on 127.0.0.1:N9644, keeps its
# data in data-cluster/N and logs to data-cluster/N.log.
CLUSTER_VOTERS := 1@127.0.0.1:19093,2@127.0.0.1:29093,3@127.0.0.1:39093
cluster: bin/spate
	@for i in 1 2 3; do \
	  mkdir -p data-cluster/$$i; \
	  ./bin/spate -node-id $$i -listen 127.0.0.1:$${i}9092 -admin 127.0.0.1:$${i}9644 -data-dir data-cluster/$$i \
	    -controller-quorum-voters $(CLUSTER_VOTERS) -default-replication-factor 3 >data-cluster/$$i.log 2>&1 & \
	  echo $$! >data-cluster/$$i.pid; \
	done
	@echo "cluster started: bootstrap servers 127.0.0.1:19092,127.0.0.1:29092,127.0.0.1:39092 (logs: data-cluster/N.log; stop: make cluster-stop)"

cluster-stop:
	@for i in 1 2 3; do [ -f data-cluster/$$i.pid ] && kill $$(cat data-cluster/$$i.pid) 2>/dev/null; rm -f data-cluster/$$i.pid; done; true

# Tools the tests drive besides Go clients: kcat (librdkafka's CLI) from Debian's packages.
deps:
	@command -v kcat >/dev/null || { (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat; }

lint:
	@fmt=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$fmt" ]; then echo "gofmt needed: $$fmt"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)

test: deps lint
	$(GO) test -race -count=1 -timeout 20m $(PKGS)
	$(GO) test -count=1 -run 'AllocationBudget' $(PKGS)
	$(MAKE) fuzz-smoke FUZZTIME=500x

fuzz-smoke fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f for $(FUZZTIME)"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 3 ./logstore ./index

chaos:
	SPATE_CHAOS=long $(GO) test -count=1 -timeout 60m -run 'Crash|Chaos|Torn|Corrupt' -v ./logstore
	SPATE_CHAOS=long $(GO) test -count=1 -timeout 60m -run 'TestGroupSoak' -v ./cmd/spate
	$(GO) test -tags chaos -count=1 -timeout 30m -run 'TestClusterChaosLong' -v ./cmd/spate

# perf/ (issue 4): Spate vs kfake, results in perf/results/<time>/. PERFFLAGS: e.g. -runs 5, -scenarios s1,s3.
PERFFLAGS ?= -profile
.PHONY: perf perf-quick perf-cluster
RUNS ?= 3
perf:
	$(GO) run ./perf/cmd/spate-perf $(PERFFLAGS)

perf-quick:
	$(GO) run ./perf/cmd/spate-perf -quick $(PERFFLAGS)

# Replication cost: S1 on a local three-node cluster with replication factor 1 and 3.
perf-cluster:
	perf/scripts/cluster-rf.sh $(RUNS)
