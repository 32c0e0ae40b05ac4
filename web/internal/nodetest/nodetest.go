// Package nodetest runs the Node.js browser drivers of Stoa's browser tests
// (Playwright with Debian's Chromium) from Go tests: it checks they are
// installed, runs one with a JSON input on stdin, streams its log into the
// test output, and stops it by its PID if it overruns.
package nodetest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Chromium is where Debian's chromium package installs the browser.
const Chromium = "/usr/bin/chromium"

// Require fails t, naming what is missing and how to install it, unless
// Chromium, node and every npm package in packages (looked up in
// modulesDir, a node_modules directory) are installed. It never skips.
func Require(t testing.TB, modulesDir string, packages ...string) {
	t.Helper()
	var missing []string
	if _, err := os.Stat(Chromium); err != nil {
		missing = append(missing, Chromium+" (apt-get install -y chromium)")
	}
	if _, err := exec.LookPath("node"); err != nil {
		missing = append(missing, "node on PATH (apt-get install -y nodejs npm)")
	}
	for _, p := range packages {
		if _, err := os.Stat(filepath.Join(modulesDir, p)); err != nil {
			missing = append(missing, "web/node_modules/"+p+" (cd web && npm ci)")
		}
	}
	if len(missing) > 0 {
		t.Fatalf("this browser test needs %s; `make -C web deps` installs them",
			strings.Join(missing, ", "))
	}
}

// Run runs `node script` in the current directory with input, as JSON, on
// its stdin, and returns what it printed on stdout and how it exited. Its
// stderr goes to t's output a line at a time. If it has not finished within
// timeout the test fails: node is first interrupted (Playwright then closes
// Chromium, which also exits by itself when node dies), and killed by its
// PID 10 s later.
func Run(t testing.TB, script string, input any, timeout time.Duration) (stdout []byte, runErr error) {
	t.Helper()
	in, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", script)
	cmd.Stdin = bytes.NewReader(in)
	var out bytes.Buffer
	cmd.Stdout = &out
	stderr := Lines(t.Output())
	defer stderr.Flush()
	cmd.Stderr = stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	runErr = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("node %s did not finish within %v", script, timeout)
	}
	return out.Bytes(), runErr
}

// LineWriter passes whole lines to its writer, so that a process's output
// does not interleave mid-line with others' in the test output. Not safe
// for concurrent use (os/exec serialises writes when Stdout == Stderr).
type LineWriter struct {
	w   io.Writer
	buf []byte
}

// Lines returns a LineWriter writing to w. Call Flush when done.
func Lines(w io.Writer) *LineWriter { return &LineWriter{w: w} }

// Write implements io.Writer.
func (l *LineWriter) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	if i := bytes.LastIndexByte(l.buf, '\n'); i >= 0 {
		if _, err := l.w.Write(l.buf[:i+1]); err != nil {
			return 0, err
		}
		l.buf = append(l.buf[:0], l.buf[i+1:]...)
	}
	return len(p), nil
}

// Flush writes a last, unterminated line.
func (l *LineWriter) Flush() {
	if len(l.buf) > 0 {
		_, _ = l.w.Write(append(l.buf, '\n'))
		l.buf = nil
	}
}
