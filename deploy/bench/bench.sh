#!/bin/sh
# make bench: build Stoa and stoa-bench, install livekit-server as the
# comparison peer, run the same shapes against both on loopback and write
# deploy/bench/RESULTS.md (plus JSON when BENCH_OUT is set) and perf
# profiles of the webinar shape in deploy/bench/profiles/.
#
#   make bench                        the default shapes (see SHAPES below)
#   make bench BENCH_OUT=out.json     also the results as JSON
#   make bench BENCH_ARGS='--shapes webinar:1x50 --duration 10s'
#
# Servers are started and stopped by stoa-bench itself, by PID, with every
# socket on 127.0.0.1. Server configs and logs go to bin/bench/run/.
set -eu

GO=${GO:-go}
LIVEKIT_VERSION=v1.9.11
# Sized for a 2-core machine, where the generator needs about as much CPU
# per packet as the server: see deploy/bench/README.md.
SHAPES=${BENCH_SHAPES:-meeting:4x20,webinar:1x100,audio:20x20}

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
mkdir -p bin/bench deploy/bench/profiles
"$GO" build -o bin/bench/stoa ./cmd/stoa
"$GO" build -o bin/bench/stoa-bench ./cmd/stoa-bench

# livekit-server from the Go module proxy, cached per version outside the
# repository (the build takes about three minutes).
cache=${STOA_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/stoa-bench}
lkdir=$cache/livekit-server-$LIVEKIT_VERSION
lk=$lkdir/server
if ! "$GO" version -m "$lk" 2>/dev/null | grep -q "livekit-server[[:space:]]*$LIVEKIT_VERSION"; then
	echo "go install github.com/livekit/livekit-server/cmd/server@$LIVEKIT_VERSION (about 3 minutes)"
	mkdir -p "$lkdir"
	GOBIN=$lkdir "$GO" install "github.com/livekit/livekit-server/cmd/server@$LIVEKIT_VERSION"
fi

label="make bench"
if [ -n "${BENCH_ARGS:-}" ]; then
	label="make bench BENCH_ARGS='$BENCH_ARGS'"
fi
set -- --stoa bin/bench/stoa --livekit "$lk" --shapes "$SHAPES" \
	--markdown deploy/bench/RESULTS.md \
	--profile webinar --profile-dir deploy/bench/profiles \
	--work bin/bench/run --command "$label"
if [ -n "${BENCH_OUT:-}" ]; then
	set -- "$@" --json "$BENCH_OUT"
fi
# BENCH_ARGS is split on spaces on purpose: it holds flags.
# shellcheck disable=SC2086
exec bin/bench/stoa-bench compare "$@" ${BENCH_ARGS:-}
