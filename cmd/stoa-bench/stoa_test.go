package main

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stoa-rtc/stoa/sfu"
	"github.com/stoa-rtc/stoa/signalling"
)

// TestMain fails the run if a goroutine of the generator (or of the
// in-process server) outlives the tests (STYLE rule 12).
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(10 * time.Second)
		for {
			leaked := ourGoroutines()
			if leaked == "" {
				break
			}
			if time.Now().After(deadline) {
				os.Stderr.WriteString("goroutines left running after the tests:\n" + leaked + "\n")
				code = 1
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	os.Exit(code)
}

func ourGoroutines() string {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "github.com/stoa-rtc/stoa/") && !strings.Contains(g, "stoa-bench.TestMain") &&
			!strings.Contains(g, "stoa-bench.ourGoroutines") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// startStoa runs Stoa in-process on loopback, as `stoa serve --dev` would.
func startStoa(t *testing.T) string {
	t.Helper()
	srv, err := signalling.NewServer(signalling.Config{
		Keys:   map[string]string{"devkey": "secret"},
		RTC:    sfu.Config{BindIP: "127.0.0.1", TCPPort: -1, IncludeLoopback: true},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		hs.Close()
		if err := srv.Close(); err != nil {
			t.Errorf("close server: %v", err)
		}
	})
	return "ws" + strings.TrimPrefix(hs.URL, "http")
}

// A small meeting against a real Stoa: everyone joins, every stream flows
// at the layer asked for (two publishers, so each subscriber has one at the
// top layer and one at the lowest), switches land on keyframes, nothing is
// lost, and every participant leaves.
func TestRunAgainstStoa(t *testing.T) {
	if testing.Short() {
		t.Skip("joins real PeerConnections")
	}
	url := startStoa(t)
	cfg := &runConfig{
		URL: url, APIKey: "devkey", APISecret: "secret",
		Shape:    shapeMeeting,
		Sizes:    sizes{Video: 2, Audio: 1, Subscribers: 2, PubsSub: true},
		Warmup:   500 * time.Millisecond,
		Duration: 2 * time.Second,
		Settle:   15 * time.Second,
		JoinRate: 20,
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := runBench(ctx, cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if res.Joined != 5 || res.Errors != 0 {
		t.Errorf("joined %d of 5, errors %d %v", res.Joined, res.Errors, res.ErrorKinds)
	}
	// v0 and v1 see each other (video, audio) and a0; a0 sees both videos;
	// each subscriber sees everything.
	if want := 2*3 + 4 + 2*5; res.StreamsExpected != want || res.StreamsReceiving != want {
		t.Errorf("streams receiving %d, expected %d, want %d", res.StreamsReceiving, res.StreamsExpected, want)
	}
	if res.WrongLayerPercent > 1 || res.BadSwitches != 0 {
		t.Errorf("wrong layer %.2f%%, switches not at a keyframe %d", res.WrongLayerPercent, res.BadSwitches)
	}
	// Loopback loses nothing unless the machine starves the generator's
	// sockets (the race detector on a busy machine can).
	if res.LossPercent > 5 {
		t.Errorf("loss %.2f%%", res.LossPercent)
	}
	// Per second: v0 and v1 receive the other's top layer (240) and two
	// audio tracks; a0 the two lowest layers (each subscriber watches one
	// publisher high, the other low) and one audio.
	want := 2*(240+2*50) + (2*30 + 50) + 2*(240+30+3*50)
	if res.PacketsPerSecond < 0.5*float64(want) || res.PacketsPerSecond > 1.2*float64(want) {
		t.Errorf("%.0f packets/s forwarded, want about %d", res.PacketsPerSecond, want)
	}
	// The main delay is to the kernel's receive time on the subscriber's
	// socket: present for every packet, positive, and no longer than the
	// delay to the generator's read of the same packets.
	if res.DelaySource != delayKernel || res.KernelRxPercent < 99 || res.GeneratorDrops != 0 {
		t.Errorf("delay from %q, %.1f%% of packets with a kernel receive time, %d dropped",
			res.DelaySource, res.KernelRxPercent, res.GeneratorDrops)
	}
	if res.DelayP50Ms <= 0 || res.DelayP50Ms > res.DelayP99Ms {
		t.Errorf("delay p50 %.3f ms, p99 %.3f ms", res.DelayP50Ms, res.DelayP99Ms)
	}
	if res.DelayP50Ms > res.ReadDelayP50Ms || res.DelayP99Ms > res.ReadDelayP99Ms {
		t.Errorf("delay p50/p99 %.3f/%.3f ms, to the generator's read %.3f/%.3f ms",
			res.DelayP50Ms, res.DelayP99Ms, res.ReadDelayP50Ms, res.ReadDelayP99Ms)
	}
}
