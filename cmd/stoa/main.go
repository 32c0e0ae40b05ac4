// Command stoa runs the Stoa video-conferencing server and its helpers.
//
// Usage:
//
//	stoa serve [--dev] [--config stoa.yaml] [--bind ADDR]
//	stoa token --room R --identity I [--name N] [--ttl 1h] [--no-publish] [--no-subscribe] [--admin] [--key K] [--config stoa.yaml] [--dev]
//	stoa link create --room R [--ttl 24h] [--view-only] [--e2ee] [--server URL] [--key K] [--config stoa.yaml] [--dev]
//	stoa link list [--room R] [--server URL] ...
//	stoa link revoke SLUG_OR_URL [--server URL] ...
//	stoa version
//
// serve reads its settings in this order, each step overriding the previous
// one: built-in defaults, the --dev defaults, the YAML file given by
// --config, environment variables (STOA_PORT, STOA_RTC_UDP_PORT,
// STOA_RTC_TCP_PORT, STOA_NODE_IP, STOA_KEYS or LIVEKIT_KEYS), then flags.
// It stops gracefully on SIGINT or SIGTERM; a second signal kills it.
//
// This package turns flags, environment and file into a signalling.Config,
// builds the server by hand and runs it. It is the only package that calls
// os.Exit.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
)

// system is what a subcommand may use of the process around it. main fills
// it from package os; tests fill it by hand, so that no test touches the
// real environment or fixed ports.
type system struct {
	stdout io.Writer
	stderr io.Writer
	// getenv looks up an environment variable; "" means unset.
	getenv func(string) string
	// ready, if not nil, is called by serve once, from serve's goroutine,
	// when its HTTP listeners accept connections. addrs are the bound
	// addresses, in the order of the configured bind addresses.
	ready func(addrs []net.Addr)
}

// usageError reports a command line that cannot be run. main exits with
// status 2 for it, like package flag.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

const usage = `Usage:
  stoa serve [--dev] [--config FILE] [--bind ADDR]
  stoa token --room ROOM --identity ID [flags]
  stoa link create --room ROOM [--ttl 24h] [--view-only] [--e2ee] [flags]
  stoa link list [--room ROOM] [flags]
  stoa link revoke SLUG_OR_URL [flags]
  stoa version

Run "stoa COMMAND -h" for the flags of a command.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, restore the default handling so that a
	// second one ends a shutdown that hangs.
	context.AfterFunc(ctx, stop)

	err := run(ctx, os.Args[1:], system{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv})
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode reports err on w, if it needs reporting, and returns the
// process's exit status for it.
func exitCode(err error, w io.Writer) int {
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(w, "stoa: %v\n", err)
		return 2
	default:
		fmt.Fprintf(w, "stoa: %v\n", err)
		return 1
	}
}

// run runs the subcommand named by args[0] until it finishes or ctx is done.
func run(ctx context.Context, args []string, sys system) error {
	if len(args) == 0 {
		fmt.Fprint(sys.stderr, usage)
		return usagef("no command given")
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		return serve(ctx, rest, sys)
	case "token":
		return token(rest, sys)
	case "link":
		return link(ctx, rest, sys)
	case "version", "--version", "-version":
		return version(rest, sys)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(sys.stdout, usage)
		return nil
	default:
		fmt.Fprint(sys.stderr, usage)
		return usagef("unknown command %q", cmd)
	}
}

// parseFlags parses args with fs and rejects positional arguments.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		// fs has already printed the error and the usage.
		return &usageError{msg: fmt.Sprintf("%s: %v", fs.Name(), err)}
	}
	if fs.NArg() > 0 {
		return usagef("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}
