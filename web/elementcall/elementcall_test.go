package elementcall_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/stoa-rtc/stoa/web/internal/nodetest"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/stoa-rtc/stoa/auth"
	"github.com/stoa-rtc/stoa/auth/authtest"
	"github.com/stoa-rtc/stoa/sfu"
	"github.com/stoa-rtc/stoa/signalling"
)

const (
	apiKey    = "devkey"
	apiSecret = "secret-at-least-32-characters-long!!"

	chromiumPath = "/usr/bin/chromium"

	// harnessTimeoutMs bounds run.mjs from starting Chromium to the last
	// check: two Element Call instances load (a 20 MB bundle and wasm each),
	// join one after the other, then must play each other's media, on two
	// shared cores.
	harnessTimeoutMs = 120_000
	// nodeTimeout bounds the node process: the harness's own timeout plus
	// its watchdog margin, closing the browser and writing the report.
	nodeTimeout = harnessTimeoutMs*time.Millisecond + 45*time.Second
	// roomWait bounds the wait for Stoa's bot to join and sync the room.
	roomWait = 20 * time.Second
	// membershipGrace is Stoa's auth.Config.MembershipGrace, shortened so
	// that holdCall outlasts it: a participant Stoa cannot match to a call
	// membership by then is removed, and the media check after the hold
	// fails.
	membershipGrace = 4 * time.Second
	holdCall        = 2*membershipGrace + 2*time.Second

	callMemberType = "org.matrix.msc3401.call.member"
	// roomSlot is the MatrixRTC slot of a room's call, the one /sfu/get
	// implies (MATRIXRTC.md §3.8).
	roomSlot = "m.call#ROOM"
)

// TestElementCall holds a call between alice and bob in Element Call 0.26.1
// through Stoa. Dendrite is the homeserver, Stoa's authorisation service
// follows the room with a bot account and serves the token endpoints and
// RTC transport discovery on Stoa's port. Each user's Element Call runs in
// a widget host page in headless Chromium; alice starts the call, bob
// joins, and each Element Call must play the other's camera in a <video>
// and microphone in an <audio> element (MATRIXRTC.md §9: tiles and
// getStats alone do not show that the identities match). The call is held
// past Stoa's membership grace and checked again: Stoa must match both
// participants to the call memberships Element Call sent. Then both hang up
// and their call memberships must be empty.
func TestElementCall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Dendrite and two Element Call instances in Chromium")
	}
	requireHarness(t)

	hs := authtest.Start(t, authtest.Options{})
	alice, bob := hs.Register(t, "alice"), hs.Register(t, "bob")
	bot := hs.Register(t, "stoabot")
	room := hs.CreateRoom(t, alice, bob, bot)
	hs.Join(t, bob, room)

	base := startStoa(t, hs, bot)
	waitForBot(t, base, hs, alice, room)

	users := []*authtest.User{alice, bob}
	cfg := harnessConfig{
		HomeserverURL: hs.URL,
		TransportsURL: base + "/_matrix/client/unstable/org.matrix.msc4143/rtc/transports",
		RoomID:        string(room),
		TimeoutMs:     harnessTimeoutMs,
		HoldMs:        int(holdCall / time.Millisecond),
		Hangup:        true,
	}
	for _, u := range users {
		cfg.Users = append(cfg.Users, harnessUser{
			Name:        strings.TrimPrefix(strings.SplitN(string(u.ID), ":", 2)[0], "@"),
			UserID:      string(u.ID),
			DeviceID:    string(u.Device),
			AccessToken: u.Token,
		})
	}
	res := runHarness(t, cfg)
	t.Logf("Element Call run (%d ms):\n%s", res.DurationMs, res.summary())
	if !res.OK {
		t.Fatalf("Element Call harness failed: %s", res.Error)
	}

	// Both joined the same SFU room with the identities Element Call
	// expects for state memberships, user:device (MATRIXRTC.md §3.8).
	alias := hashStrings(string(room), roomSlot)
	for i, p := range res.Pages {
		u := users[i]
		want := string(u.ID) + ":" + string(u.Device)
		var got []string
		for _, tok := range p.Tokens {
			if tok.Status != http.StatusOK {
				continue
			}
			got = append(got, tok.Endpoint+" "+tok.Identity)
			if tok.Room != alias {
				t.Errorf("%s got a token for SFU room %q on %s, want %q", p.Name, tok.Room, tok.Endpoint, alias)
			}
			if tok.Endpoint == "/sfu/get" && tok.Identity != want {
				t.Errorf("%s got identity %q from /sfu/get, want %q", p.Name, tok.Identity, want)
			}
		}
		if len(got) == 0 {
			t.Errorf("%s got no token from Stoa", p.Name)
		}
		// Element Call found Stoa through RTC transport discovery
		// (MSC4143, via the widget API), not through a configured URL.
		if p.Host.Actions["org.matrix.msc4515.get_rtc_transports"] == 0 {
			t.Errorf("%s: Element Call never asked the widget host for RTC transports; actions %v", p.Name, p.Host.Actions)
		}
		// Tiles come from Matrix memberships; what plays was checked by
		// run.mjs.
		if p.Media == nil || len(p.Media.Tiles) != len(users) {
			t.Errorf("%s: Element Call showed tiles %v, want %d", p.Name, p.Media, len(users))
		}
	}

	// The hang-up emptied both memberships in the room's state.
	for _, u := range users {
		key := "_" + string(u.ID) + "_" + string(u.Device) + "_m.call"
		if c := hs.CallMemberState(t, alice, room, key); c == nil || len(c) != 0 {
			t.Errorf("%s after hang-up: %v, want {}", key, c)
		}
	}
}

// requireHarness fails the test, rather than skipping it, when something the
// harness needs is missing.
func requireHarness(t *testing.T) {
	t.Helper()
	nodetest.Require(t, filepath.Join("..", "node_modules"), "playwright-core", "matrix-widget-api", "@element-hq/element-call-embedded")
}

// observer passes the SFU's participant events to the authorisation
// service, which is built after the server it observes.
type observer struct {
	svc atomic.Pointer[auth.Service]
}

func (o *observer) ParticipantJoined(room, identity string) {
	if s := o.svc.Load(); s != nil {
		s.ParticipantJoined(room, identity)
	}
}

func (o *observer) ParticipantLeft(room, identity string) {
	if s := o.svc.Load(); s != nil {
		s.ParticipantLeft(room, identity)
	}
}

// startStoa runs Stoa on a free loopback port until the test ends: the
// signalling server with the authorisation service mounted next to it, in
// bot mode with bot's account, verifying OpenID tokens against hs over
// plain HTTP. It returns Stoa's http:// base URL, which is also the
// livekit_service_url that discovery announces.
func startStoa(t *testing.T, hs *authtest.Homeserver, bot *authtest.User) string {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()

	obs := &observer{}
	srv, err := signalling.NewServer(signalling.Config{
		Keys:     map[string]string{apiKey: apiSecret},
		RTC:      sfu.Config{BindIP: "127.0.0.1", IncludeLoopback: true},
		Observer: obs,
		Logger:   logger.With("component", "signalling"),
	})
	if err != nil {
		_ = ln.Close()
		t.Fatalf("signalling.NewServer: %v", err)
	}
	svc, err := auth.New(auth.Config{
		PublicURL:       "ws://" + addr,
		APIKey:          apiKey,
		APISecret:       apiSecret,
		HomeserverURL:   hs.URL,
		ServerName:      hs.ServerName,
		AccessToken:     bot.Token,
		OpenIDBaseURLs:  map[string]string{hs.ServerName: hs.URL},
		MembershipGrace: membershipGrace,
		Logger:          logger.With("component", "auth"),
	}, srv)
	if err != nil {
		_ = srv.Close()
		_ = ln.Close()
		t.Fatalf("auth.New: %v", err)
	}
	obs.svc.Store(svc)
	for _, pattern := range []string{"/sfu/get", "/get_token", "/delegate_delayed_leave", "/healthz", "/_matrix/", "/.well-known/"} {
		srv.Handle(pattern, svc.Handler())
	}

	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- svc.Run(ctx) }()
	hsrv := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hsrv.Serve(ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("auth service: %v", err)
		}
		// The SFU first: it ends the hijacked WebSocket connections, which
		// http.Server does not track.
		if err := srv.Close(); err != nil {
			t.Errorf("closing the server: %v", err)
		}
		if err := hsrv.Close(); err != nil {
			t.Errorf("closing the http server: %v", err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("http server: %v", err)
		}
	})
	return "http://" + addr
}

// waitForBot waits until Stoa's bot has joined and synced room: until then
// Stoa refuses tokens for it. It asks /sfu/get as alice with a device of
// its own, so that the token cannot be mistaken for Element Call's.
func waitForBot(t *testing.T, base string, hs *authtest.Homeserver, alice *authtest.User, room id.RoomID) {
	t.Helper()
	body, err := json.Marshal(map[string]any{
		"room":      room,
		"device_id": "PROBE",
		"openid_token": map[string]any{
			"access_token":       alice.OpenIDToken(t),
			"matrix_server_name": hs.ServerName,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(roomWait)
	for {
		resp, err := client.Post(base+"/sfu/get", "application/json", bytes.NewReader(body))
		var status int
		var msg []byte
		if err == nil {
			status = resp.StatusCode
			msg, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<10))
			resp.Body.Close()
			if status == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Stoa still refuses tokens for %s after %v (%d %s, %v): its bot did not join the room", room, roomWait, status, msg, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// hashStrings is Stoa's room alias: standard base64 without padding of
// the SHA-256 of the JSON array of parts (MATRIXRTC.md §3.8), written out
// again here so that the test checks it.
func hashStrings(parts ...string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(parts); err != nil {
		panic(err)
	}
	sum := sha256.Sum256(bytes.TrimRight(b.Bytes(), "\n"))
	return base64.RawStdEncoding.EncodeToString(sum[:])
}

// harnessConfig is run.mjs's input; see the comment at its top.
type harnessConfig struct {
	HomeserverURL string        `json:"homeserverUrl"`
	TransportsURL string        `json:"transportsUrl"`
	RoomID        string        `json:"roomId"`
	Users         []harnessUser `json:"users"`
	TimeoutMs     int           `json:"timeoutMs"`
	HoldMs        int           `json:"holdMs"`
	Hangup        bool          `json:"hangup"`
}

type harnessUser struct {
	Name        string `json:"name"`
	UserID      string `json:"userId"`
	DeviceID    string `json:"deviceId"`
	AccessToken string `json:"accessToken"`
}

// harnessResult is the part of run.mjs's report the test reads.
type harnessResult struct {
	OK         bool   `json:"ok"`
	Error      string `json:"error"`
	DurationMs int    `json:"durationMs"`
	Steps      []struct {
		Step   string          `json:"step"`
		OK     bool            `json:"ok"`
		Ms     int             `json:"ms"`
		Result json.RawMessage `json:"result"`
	} `json:"steps"`
	Pages []struct {
		Name   string `json:"name"`
		Intent string `json:"intent"`
		Host   struct {
			Phase        string `json:"phase"`
			Capabilities struct {
				Requested []string `json:"requested"`
				Approved  []string `json:"approved"`
			} `json:"capabilities"`
			Actions    map[string]int `json:"actions"`
			SentEvents []struct {
				Type     string         `json:"type"`
				StateKey *string        `json:"stateKey"`
				Content  map[string]any `json:"content"`
			} `json:"sentEvents"`
			ToDevice []struct {
				Type string `json:"type"`
			} `json:"toDevice"`
			Driver []struct {
				Call  string `json:"call"`
				OK    bool   `json:"ok"`
				Error string `json:"error"`
			} `json:"driver"`
		} `json:"host"`
		Tokens []struct {
			Endpoint string `json:"endpoint"`
			Status   int    `json:"status"`
			Identity string `json:"identity"`
			Room     string `json:"room"`
			URL      string `json:"url"`
			Error    string `json:"error"`
		} `json:"tokens"`
		Websockets []struct {
			URL string `json:"url"`
		} `json:"websockets"`
		Requests []struct {
			Frame  string `json:"frame"`
			Method string `json:"method"`
			URL    string `json:"url"`
			Status int    `json:"status"`
			Error  string `json:"error"`
		} `json:"requests"`
		Media *struct {
			Tiles []string `json:"tiles"`
		} `json:"media"`
	} `json:"pages"`
}

// summary describes what each Element Call did: the steps, its widget API
// actions, the events it sent, its requests outside the widget API, its
// tokens and WebSockets.
func (r *harnessResult) summary() string {
	var b strings.Builder
	for _, s := range r.Steps {
		status := "ok"
		if !s.OK {
			status = "FAILED"
		}
		fmt.Fprintf(&b, "  step %-7s %-6s %6d ms  %s\n", s.Step, status, s.Ms, s.Result)
	}
	for _, p := range r.Pages {
		fmt.Fprintf(&b, "  %s (intent %s): host %s, %d capabilities approved\n", p.Name, p.Intent, p.Host.Phase, len(p.Host.Capabilities.Approved))
		fmt.Fprintf(&b, "    widget actions: %v\n", p.Host.Actions)
		sent := map[string]int{}
		for _, e := range p.Host.SentEvents {
			k := e.Type
			if e.StateKey != nil {
				k += " [" + *e.StateKey + "]"
				if len(e.Content) == 0 {
					k += " {}"
				}
			}
			sent[k]++
		}
		fmt.Fprintf(&b, "    events sent: %v\n", sent)
		failed := map[string]int{}
		for _, d := range p.Host.Driver {
			if !d.OK {
				failed[d.Call+": "+d.Error]++
			}
		}
		if len(failed) > 0 {
			fmt.Fprintf(&b, "    driver calls refused or failed: %v\n", failed)
		}
		reqs := map[string]int{}
		for _, q := range p.Requests {
			u := q.URL
			if i := strings.IndexAny(u, "?"); i >= 0 {
				u = u[:i]
			}
			status := fmt.Sprint(q.Status)
			if q.Error != "" {
				status = q.Error
			}
			reqs[fmt.Sprintf("%s %s %s -> %s", q.Frame, q.Method, u, status)]++
		}
		fmt.Fprintf(&b, "    requests (frame method url -> status: count):\n")
		for _, k := range slices.Sorted(maps.Keys(reqs)) {
			fmt.Fprintf(&b, "      %s: %d\n", k, reqs[k])
		}
		for _, tok := range p.Tokens {
			fmt.Fprintf(&b, "    token %s -> %d identity %q room %q url %q %s\n", tok.Endpoint, tok.Status, tok.Identity, tok.Room, tok.URL, tok.Error)
		}
		for _, ws := range p.Websockets {
			fmt.Fprintf(&b, "    websocket %s\n", ws.URL)
		}
		if p.Media != nil {
			fmt.Fprintf(&b, "    tiles %q\n", p.Media.Tiles)
		}
	}
	return b.String()
}

// runHarness runs node run.mjs with cfg on stdin, streams its stderr to the
// test log, and decodes the JSON report it prints on stdout.
func runHarness(t *testing.T, cfg harnessConfig) *harnessResult {
	t.Helper()
	out, runErr := nodetest.Run(t, "run.mjs", cfg, nodeTimeout)
	var res harnessResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("node run.mjs (%v) printed no JSON report: %v\nstdout:\n%s", runErr, err, out)
	}
	if dir := os.Getenv("STOA_EC_REPORT"); dir != "" {
		// For a run by hand: the whole report, with every request.
		_ = os.WriteFile(filepath.Join(dir, "elementcall-report.json"), out, 0o600)
	}
	if runErr != nil && res.OK {
		t.Fatalf("node run.mjs reported ok but exited with %v", runErr)
	}
	if runErr == nil && !res.OK {
		t.Fatalf("node run.mjs exited 0 but reported failure: %s", res.Error)
	}
	return &res
}
