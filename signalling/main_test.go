package signalling_test

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain fails the run if any goroutine of Stoa's outlives the tests:
// every room, participant, peer, track and connection loop must have been
// stopped by whoever owns it (STYLE rule 12).
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := waitForLeaks(10 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines left running after the tests:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

func waitForLeaks(limit time.Duration) string {
	deadline := time.Now().Add(limit)
	for {
		leaked := ourGoroutines()
		if leaked == "" || time.Now().After(deadline) {
			return leaked
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ourGoroutines returns the stacks of goroutines running Stoa's code, other
// than the one running TestMain.
func ourGoroutines() string {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "github.com/stoa-rtc/stoa/") && !strings.Contains(g, "signalling_test.TestMain") &&
			!strings.Contains(g, "signalling_test.ourGoroutines") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}
