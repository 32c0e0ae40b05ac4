# Stoa. "make run" starts a development server, "make test" runs every check.

GO ?= go
# Go files, without web/node_modules (some npm packages ship Go code).
GOFILES = $(shell find . -name '*.go' -not -path './.git/*' -not -path './web/node_modules/*')

.PHONY: all build web run test test-deps test-element-call fmt fmt-check lint clean

all: build

build: web
	$(GO) build -o bin/stoa ./cmd/stoa

# The web client is built by web/Makefile once it exists.
web:
	@if [ -f web/Makefile ]; then $(MAKE) -C web; fi

run: build
	./bin/stoa serve --dev

# web first: the browser tests (and later the embedded client) need its bundle.
# -p 1: one package at a time. The browser packages each drive several
# Chromium instances and real media; run side by side on a 2-core machine
# they starve each other's encoders and time out.
test: test-deps web
	$(GO) vet ./...
	$(GO) test -race -p 1 -timeout 30m ./...

# Element Call 0.26.1 (the widget build, test-only, from web/node_modules)
# holding a call through Stoa with a real Dendrite; make test runs it too.
test-element-call: test-deps
	$(GO) test -race -count=1 -v -timeout 10m ./web/elementcall/

# Dendrite: the real homeserver that auth/authtest starts for tests.
DENDRITE_VERSION = v0.13.8
DENDRITE_PKGS = github.com/matrix-org/dendrite/cmd/dendrite@$(DENDRITE_VERSION) \
	github.com/matrix-org/dendrite/cmd/generate-keys@$(DENDRITE_VERSION)

# Install what the tests need, only when missing or out of date. npm ci
# rewrites web/node_modules/.package-lock.json, so it serves as a stamp.
NPM_STAMP = web/node_modules/.package-lock.json
test-deps:
	@if [ -f web/package-lock.json ] && { [ ! -f $(NPM_STAMP) ] || \
	    [ web/package-lock.json -nt $(NPM_STAMP) ] || [ web/package.json -nt $(NPM_STAMP) ]; }; then \
		echo "cd web && npm ci"; \
		(cd web && npm ci --no-audit --no-fund --ignore-scripts) && touch $(NPM_STAMP); \
	fi
	@bin=$$(command -v dendrite || true); \
	if [ -z "$$bin" ]; then gobin=$$($(GO) env GOBIN); \
		[ -n "$$gobin" ] || gobin=$$($(GO) env GOPATH | cut -d: -f1)/bin; bin=$$gobin/dendrite; fi; \
	if ! $(GO) version -m "$$bin" 2>/dev/null | grep -q "dendrite[[:space:]]*$(DENDRITE_VERSION)" || \
	    ! { command -v generate-keys || [ -x "$$(dirname "$$bin")/generate-keys" ]; } >/dev/null 2>&1; then \
		echo "go install dendrite and generate-keys $(DENDRITE_VERSION) (cgo, about 2 minutes)"; \
		CGO_ENABLED=1 $(GO) install $(DENDRITE_PKGS); \
	fi

fmt:
	gofmt -w $(GOFILES)

fmt-check:
	@out=$$(gofmt -l $(GOFILES)); \
	if [ -n "$$out" ]; then echo "gofmt needed (run make fmt):"; echo "$$out"; exit 1; fi

lint: fmt-check
	$(GO) vet ./...
	@if command -v staticcheck >/dev/null 2>&1; then echo staticcheck ./...; staticcheck ./...; \
	else echo "staticcheck not installed; skipped"; fi

clean:
	rm -rf bin

# Load test against livekit-server, not part of "make test" (minutes, needs
# both cores): deploy/bench/README.md. BENCH_OUT=FILE also writes JSON.
.PHONY: bench
bench:
	GO="$(GO)" BENCH_OUT="$(BENCH_OUT)" BENCH_ARGS="$(BENCH_ARGS)" deploy/bench/bench.sh
