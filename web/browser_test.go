package web_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/stoa-rtc/stoa/web/internal/nodetest"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"

	"github.com/stoa-rtc/stoa/sfu"
	"github.com/stoa-rtc/stoa/signalling"
)

const (
	apiKey    = "devkey"
	apiSecret = "secret-at-least-32-characters-long!!"

	chromiumPath = "/usr/bin/chromium"

	// harnessTimeoutMs bounds the browser run inside run.mjs, from starting
	// Chromium to the last check.
	harnessTimeoutMs = 120_000
	// nodeTimeout bounds the node process itself: the harness's own timeout
	// plus closing the browser and writing the report.
	nodeTimeout = harnessTimeoutMs*time.Millisecond + 40*time.Second
)

// uplinkMinBps is the bandwidth estimate every page must reach. Without
// transport-cc feedback Chromium's estimate falls to its 30 kbit/s floor
// and only the lowest layer (160 kbit/s) is sent; with it, on loopback, it
// usually passes 1 Mbit/s within a second or two and 2 Mbit/s, where the
// 1280x720 layer starts (the step logs it), but on a loaded 2-core machine
// a page has stayed near 1.2 Mbit/s, and one took 25 s to pass 1 Mbit/s.
const uplinkMinBps = 500_000

// TestBrowserJoinAndResume runs three real livekit-client 2.23.0 participants
// in headless Chromium against an in-process Stoa: two with the SDK's default
// singlePeerConnection (/rtc/v1, one PeerConnection) and one with
// singlePeerConnection:false (/rtc, two). Every participant must decode the
// others' simulcast camera and receive their microphone, and Chromium's
// bandwidth estimate for its own camera must rise on Stoa's transport-cc
// feedback until it sends more than its lowest layer; then each kind of
// participant in turn loses its signalling WebSocket for 2.5 s and must
// resume the same session (same participant sid, no Disconnected event, the
// others never see it leave) with media flowing again.
//
// It needs Chromium and web/node_modules; `make -C web test` installs both.
func TestBrowserJoinAndResume(t *testing.T) {
	requireHarness(t)
	buildBundle(t)
	url := startServer(t)

	room := "e2e-" + randomHex(t, 4)
	names := []string{"alice", "bob", "carol"}
	tokens := make([]string, len(names))
	for i, name := range names {
		tokens[i] = token(t, room, name)
	}

	cfg := harnessConfig{
		URL:       url,
		Tokens:    tokens,
		SinglePC:  []bool{true, true, false},
		Names:     names,
		TimeoutMs: harnessTimeoutMs,
		Steps: []map[string]any{
			{"do": "join"},
			{"do": "media"},
			// Chromium's bandwidth estimate rises on Stoa's transport-cc
			// feedback until the 1280x720 layer is sent.
			{"do": "uplink", "minBps": uplinkMinBps},
			// alice: single PeerConnection (/rtc/v1).
			{"do": "cut", "page": 0, "method": "offline", "ms": 2500},
			{"do": "resumed", "page": 0},
			{"do": "media"},
			// carol: two PeerConnections (/rtc).
			{"do": "cut", "page": 2, "method": "offline", "ms": 2500},
			{"do": "resumed", "page": 2},
			{"do": "media"},
		},
	}
	res := runHarness(t, cfg)

	if !res.OK {
		t.Fatalf("browser harness failed: %s\nsteps:\n%s", res.Error, res.stepSummary())
	}
	if len(res.Pages) != len(names) {
		t.Fatalf("harness reported %d pages, want %d", len(res.Pages), len(names))
	}
	sids := map[string]bool{}
	for _, p := range res.Pages {
		if p.State.SDKVersion != "2.23.0" {
			t.Errorf("%s ran livekit-client %q, want 2.23.0 (web/package-lock.json)", p.Name, p.State.SDKVersion)
		}
		if !strings.HasPrefix(p.State.LocalSID, "PA_") {
			t.Errorf("%s has participant sid %q, want a PA_ sid", p.Name, p.State.LocalSID)
		}
		sids[p.State.LocalSID] = true
		if p.State.Events["disconnected"] != 0 {
			t.Errorf("%s got %d Disconnected events", p.Name, p.State.Events["disconnected"])
		}
	}
	if len(sids) != len(names) {
		t.Errorf("participant sids are not distinct: %v", sids)
	}
	t.Logf("browser harness passed in %d ms:\n%s", res.DurationMs, res.stepSummary())
}

// requireHarness fails the test, rather than skipping it, when something the
// harness needs is not installed.
func requireHarness(t *testing.T) {
	t.Helper()
	nodetest.Require(t, "node_modules", "livekit-client", "playwright-core", "esbuild")
}

// buildBundle bundles e2e/page.ts with livekit-client into e2e/dist/page.js.
// It always rebuilds: esbuild takes well under a second.
func buildBundle(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "node", filepath.Join("e2e", "build.mjs")).CombinedOutput()
	if err != nil {
		t.Fatalf("building the test page (node e2e/build.mjs): %v\n%s", err, out)
	}
}

// startServer runs Stoa on a free loopback port until the test ends and
// returns its ws:// base URL.
func startServer(t *testing.T) string {
	t.Helper()
	srv, err := signalling.NewServer(signalling.Config{
		Keys:   map[string]string{apiKey: apiSecret},
		RTC:    sfu.Config{BindIP: "127.0.0.1", IncludeLoopback: true},
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	if err != nil {
		t.Fatalf("signalling.NewServer: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = srv.Close()
		t.Fatalf("listen: %v", err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	t.Cleanup(func() {
		// Close the SFU first: it ends the hijacked WebSocket connections,
		// which http.Server does not track.
		if err := srv.Close(); err != nil {
			t.Errorf("closing the server: %v", err)
		}
		if err := hs.Close(); err != nil {
			t.Errorf("closing the http server: %v", err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("http server: %v", err)
		}
	})
	return "ws://" + ln.Addr().String()
}

func token(t *testing.T, room, identity string) string {
	t.Helper()
	jwt, err := auth.NewAccessToken(apiKey, apiSecret).
		SetIdentity(identity).
		SetName(identity).
		SetValidFor(time.Hour).
		SetVideoGrant(&auth.VideoGrant{RoomJoin: true, Room: room}).
		ToJWT()
	if err != nil {
		t.Fatalf("minting a token for %s: %v", identity, err)
	}
	return jwt
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// harnessConfig is run.mjs's input; see the comment at its top.
type harnessConfig struct {
	URL       string           `json:"url"`
	Tokens    []string         `json:"tokens"`
	SinglePC  []bool           `json:"singlePC"`
	Names     []string         `json:"names"`
	TimeoutMs int              `json:"timeoutMs"`
	Steps     []map[string]any `json:"steps"`
}

// harnessResult is the part of run.mjs's JSON report the test reads.
type harnessResult struct {
	OK         bool   `json:"ok"`
	Error      string `json:"error"`
	DurationMs int    `json:"durationMs"`
	Steps      []struct {
		Step   map[string]any  `json:"step"`
		OK     bool            `json:"ok"`
		Ms     int             `json:"ms"`
		Result json.RawMessage `json:"result"`
	} `json:"steps"`
	Pages []struct {
		Name     string `json:"name"`
		SinglePC bool   `json:"singlePC"`
		State    struct {
			SDKVersion string         `json:"sdkVersion"`
			Connection string         `json:"connectionState"`
			LocalSID   string         `json:"localSid"`
			Events     map[string]int `json:"events"`
		} `json:"state"`
	} `json:"pages"`
}

func (r *harnessResult) stepSummary() string {
	var b strings.Builder
	for _, s := range r.Steps {
		step, _ := json.Marshal(s.Step)
		status := "ok"
		if !s.OK {
			status = "FAILED"
		}
		fmt.Fprintf(&b, "  %-6s %6d ms  %s  %s\n", status, s.Ms, step, s.Result)
	}
	return b.String()
}

// runHarness runs node e2e/run.mjs with cfg on stdin, streams its stderr
// (progress and the pages' consoles) to the test log, and decodes the JSON
// report it prints on stdout.
func runHarness(t *testing.T, cfg harnessConfig) *harnessResult {
	t.Helper()
	out, runErr := nodetest.Run(t, filepath.Join("e2e", "run.mjs"), cfg, nodeTimeout)
	var res harnessResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("node e2e/run.mjs (%v) printed no JSON report: %v\nstdout:\n%s", runErr, err, out)
	}
	if runErr != nil && res.OK {
		t.Fatalf("node e2e/run.mjs reported ok but exited with %v", runErr)
	}
	if runErr == nil && !res.OK {
		t.Fatalf("node e2e/run.mjs exited 0 but reported failure: %s", res.Error)
	}
	return &res
}
