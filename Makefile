# The two commands of the README:
#   make demo   builds transcribe and transcribes the sample file with the built-in mini model
#   make test   installs what the tests need and runs them (CI runs this through .ci/run)
GO       ?= go
BIN      := bin/transcribe
SAMPLE   := testdata/mini-sample.wav

.PHONY: build demo test deps bench fuzz

VERSION  := $(shell git describe --always --dirty 2>/dev/null || echo dev)

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/transcribe

demo: build
	@mkdir -p bin/demo && cp $(SAMPLE) bin/demo/
	# mini is the project's own small model, built into the binary: installed into the models
	# folder on first use, no network. It is trained on espeak-ng speech; the sample is that.
	$(BIN) --model mini --language en --force bin/demo/mini-sample.wav
	@echo "--- bin/demo/mini-sample.srt"; cat bin/demo/mini-sample.srt
	@echo "--- bin/demo/mini-sample.md"; head -n 24 bin/demo/mini-sample.md

deps:
	./scripts/deps.sh

test: deps
	@# Fails, printing the diff, when go mod tidy would change go.mod or go.sum.
	$(GO) mod tidy -diff
	$(GO) vet ./...
	GOOS=darwin GOARCH=arm64 CGO_ENABLED=0 $(GO) build ./...
	GOOS=darwin GOARCH=arm64 CGO_ENABLED=0 $(GO) vet ./...
	$(GO) test -race -shuffle=on -timeout 30m ./...
	@# The CPU's caches and scratch mapped outside the Go heap, as users run them: a -race build
	@# keeps them in the heap, where its detector sees them (cpu/race.go).
	$(GO) test -shuffle=on ./cpu ./whisper -run 'TestAllocExplicit|TestWeightsOffHeap|TestDetectionWindows|TestTranscribeMicro|TestLongformMemory|TestQueueMatchesAlone'

bench: build
	$(BIN) bench
