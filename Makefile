# parapheur — build and test.
#
#   make test   install the Debian packages the tests need (when root), then
#               go vet and go test -race over every package
#   make fuzz   run every go fuzz target briefly (FUZZTIME each)
#   make bench  run the benchmarks

# Debian packages the tests use: real servers (redis, Dovecot, Postfix) and
# independent PDF validators. Keep in sync with deploy/scripts/debian-deps.
FUZZTIME ?= 10s
GO ?= go

.PHONY: test deps vet fuzz bench build

test: deps vet
	$(GO) test -race -count=1 -timeout 25m ./...

deps:
	@deploy/scripts/debian-deps

vet:
	$(GO) vet ./...

fuzz:
	@deploy/scripts/fuzz-all $(FUZZTIME)

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

build:
	$(GO) build -o bin/ ./cmd/...
