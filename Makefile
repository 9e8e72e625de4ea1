# The two commands of the README:
#   make demo   builds transcribe, installs a model, and transcribes the sample file
#   make test   installs what the tests need and runs them (CI runs this through .ci/run)
GO       ?= go
BIN      := bin/transcribe
SAMPLE   := testdata/jfk.wav
MODEL    := bin/models/tiny-synth.bin

.PHONY: build demo test deps bench fuzz

VERSION  := $(shell git describe --always --dirty 2>/dev/null || echo dev)

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/transcribe

$(MODEL): build
	@mkdir -p $(dir $(MODEL))
	$(BIN) models synth --arch tiny --dtype f16 --seed 1 --format ggml -o $(MODEL)

demo: build $(MODEL)
	@mkdir -p bin/demo && cp $(SAMPLE) bin/demo/
	# Random weights fail every quality check, so fallback is off to keep the demo quick.
	$(BIN) --model $(MODEL) --language en --no-fallback --force bin/demo/jfk.wav
	@echo "--- bin/demo/jfk.srt"; head -n 12 bin/demo/jfk.srt
	@echo "--- bin/demo/jfk.md"; head -n 24 bin/demo/jfk.md

deps:
	./scripts/deps.sh

test: deps
	$(GO) vet ./...
	GOOS=darwin GOARCH=arm64 CGO_ENABLED=0 $(GO) build ./...
	$(GO) test -race -shuffle=on -timeout 30m ./...

bench: build
	$(BIN) bench
