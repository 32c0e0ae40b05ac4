// Command stoa-bench is a load generator for LiveKit-protocol SFUs: it
// measures how much one media node carries, and at what cost, for Stoa and
// livekit-server alike.
//
// Usage:
//
//	stoa-bench run --url ws://127.0.0.1:7880 --shape webinar [--subscribers 200] [--server-pid PID] [--json FILE]
//	stoa-bench compare --stoa bin/bench/stoa --livekit PATH [--shapes meeting:4x20,webinar:1x200,audio:20x20] [--markdown FILE] [--json FILE]
//	stoa-bench perf2pprof < perf-script.txt > profile.pb.gz
//
// run joins video publishers (three-layer VP8 simulcast plus Opus), audio
// publishers and subscribers to one room, lets media flow, and reports what
// the subscribers received: packets and bits per second, loss, one-way
// delay, join times and, when the server runs on this machine, its CPU time
// per forwarded packet and its memory. compare starts each server itself on
// loopback, runs the same shapes against both alternately and writes the
// comparison (make bench).
//
// The participants are a lean LiveKit client: a WebSocket speaking the
// protobuf signal protocol and pion PeerConnections (a publisher and a
// subscriber connection, as LiveKit's dual-PC clients), with no SDK in
// between, so that the generator costs less CPU than the server it loads.
//
// This package is the only one of the command; it imports no Stoa package,
// so it measures Stoa from the outside exactly as it measures LiveKit.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `Usage:
  stoa-bench run --url URL --shape meeting|webinar|audio [flags]
  stoa-bench compare --stoa BIN --livekit BIN [flags]
  stoa-bench perf2pprof < perf-script-output > profile.pb.gz

Run "stoa-bench COMMAND -h" for the flags of a command.
`

// usageError reports a command line that cannot be run; main exits with 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "stoa-bench: %v\n", err)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "stoa-bench: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usagef("no command given")
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "run":
		return runCommand(ctx, rest, stdout, stderr)
	case "compare":
		return compareCommand(ctx, rest, stdout, stderr)
	case "perf2pprof":
		return perfToPprof(stdin, stdout)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return usagef("unknown command %q", cmd)
	}
}

// parseFlags parses args with fs and rejects positional arguments.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{msg: fmt.Sprintf("%s: %v", fs.Name(), err)}
	}
	if fs.NArg() > 0 {
		return usagef("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}
