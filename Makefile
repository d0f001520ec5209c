# hookline — build, run and test. `make help` lists the targets.
GO        ?= go
BIN       ?= bin/hookline
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
# An execution count, not a duration: with a duration, Go 1.26's fuzz
# coordinator can report "context deadline exceeded" as a failure when the
# time runs out mid-execution (golang/go#75804, fixed in Go 1.27). 500,000
# executions take 15-25 s per target here; a duration (FUZZTIME=30s) still
# works but can hit that race.
FUZZTIME  ?= 500000x
# Secret of the default source for `make run`; change it for anything real.
HOOKLINE_SECRET ?= dev-secret
RUN_ARGS  ?=

# Fuzz targets: package:FuzzName, each run for FUZZTIME by `make fuzz`.
# Minimising a new input may take up to a minute by default, which would eat
# most of a run (no executions while minimising): cap it.
FUZZ_TARGETS := ./internal/extract:FuzzExtract ./internal/extract:FuzzCanonical ./internal/verify:FuzzVerifyHMAC ./internal/headers:FuzzParseTime \
                ./internal/config:FuzzParse ./consumer:FuzzSignatureToForward

.PHONY: help build run test unit integration bench fuzz kafka-up kafka-down fmt vet tidy clean

help:
	@echo "make build        build $(BIN)"
	@echo "make run          run receiver (+ consumer with RUN_ARGS=--handler-url=URL) on the embedded broker"
	@echo "make test         vet + unit and integration tests with -race (KAFKA_BROKERS selects a real broker)"
	@echo "make unit         the unit tests alone (-race, no broker needed)"
	@echo "make integration  the integration tests alone (-race)"
	@echo "make bench        benchmarks that print ratios measured in one run"
	@echo "make fuzz         each fuzz target for FUZZTIME ($(FUZZTIME))"
	@echo "make kafka-up     start Apache Kafka (assembled from Maven Central) on 127.0.0.1:19092"
	@echo "make kafka-down   stop it"
	@echo "make fmt          gofmt -w every Go file"
	@echo "make vet          go vet, and fail on files gofmt would change"
	@echo "make tidy         go mod tidy"
	@echo "make clean        remove bin/"

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/hookline

run: build
	HOOKLINE_SECRET=$(HOOKLINE_SECRET) $(if $(filter /%,$(BIN)),$(BIN),./$(BIN)) run $(RUN_ARGS)

# Unit tests first, then the integration tests verbosely so the log shows
# which broker they ran against (KAFKA_BROKERS, testcontainers or kfake).
test: vet unit integration

unit:
	$(GO) test -race -count=1 -timeout 10m $$($(GO) list ./... | grep -v /integration)

integration:
	$(GO) test -race -count=1 -timeout 20m -v ./integration/...

bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 10m ./bench/...

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$name in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s -timeout 10m $$pkg; \
	done

kafka-up:
	bash integration/kafka/kafka.sh up

kafka-down:
	bash integration/kafka/kafka.sh down

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...

tidy:
	$(GO) mod tidy

clean:
	rm -rf bin
