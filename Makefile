# parapheur — build and test.
#
#   make test   install the Debian packages the tests need (when root), then
#               go vet and go test -race over every package
#   make fuzz   run every go fuzz target briefly (FUZZTIME each)
#   make bench  run the benchmarks
#   make bench-mail  the whole gateway against private Postfix and Dovecot (as root):
#               mail -> invitation latency, and peak memory under a flood of large mails
#   make bench-sign  the signing door over HTTP on loopback, on bbolt then on a private
#               redis-server: signing-page views/s and sign latency on a 1 MB PDF, beside
#               the raw pades signature time
#   make bench-completion  the completion (seal, certificate, final mails to a private
#               Postfix, as root) on bbolt then redis: last signature -> last final mail
#   make bench-load  the whole gateway under load against private Postfix and Dovecot (as
#               root): submissions by mail, signers reading their mailboxes and signing
#               over the JSON API; throughput, latencies, peak RSS beside the raw Postfix
#               and Dovecot floors of the same run; on bbolt, on redis, and on redis with
#               three replicas

# Debian packages the tests use: real servers (redis, Dovecot, Postfix) and
# independent PDF validators. Keep in sync with deploy/scripts/debian-deps.
FUZZTIME ?= 10s
GO ?= go

.PHONY: test deps vet fuzz bench bench-mail bench-sign bench-completion bench-load build

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

bench-mail: build
	bin/parapheur-bench latency -parapheur bin/parapheur
	bin/parapheur-bench flood -parapheur bin/parapheur

bench-sign: build
	bin/parapheur-bench signers -store bolt
	bin/parapheur-bench signers -store redis

bench-completion: build
	bin/parapheur-bench completion -store bolt
	bin/parapheur-bench completion -store redis

bench-load: build
	bin/parapheur-bench load -store bolt
	bin/parapheur-bench load -store redis
	bin/parapheur-bench load -store redis -replicas 3

build:
	$(GO) build -o bin/ ./cmd/...
