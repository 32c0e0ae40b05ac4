package web_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"github.com/stoa-rtc/stoa/web/internal/nodetest"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
	protoLogger "github.com/livekit/protocol/logger"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"
)

const (
	// meetingKey and meetingSecret sign everything in the meeting tests:
	// the CLI's admin tokens, the guests' tokens, the observer's.
	meetingKey    = "meetingkey"
	meetingSecret = "meeting-test-secret-at-least-32-characters"
	// meetingNodeTimeout bounds one run of app/test/meeting.mjs; the
	// script's own watchdog (meetingRunTimeoutMs) fires first.
	meetingRunTimeoutMs = 180_000
	meetingNodeTimeout  = meetingRunTimeoutMs*time.Millisecond + 30*time.Second
	// stoaStartTimeout bounds `stoa serve` from start to answering HTTP.
	stoaStartTimeout = 20 * time.Second
	// stoaStopTimeout bounds its graceful stop after SIGTERM.
	stoaStopTimeout = 15 * time.Second
	// e2eeSalt and e2eeIterations are how livekit-client's
	// ExternalE2EEKeyProvider turns a string key into an AES-GCM key
	// (livekit-client src/e2ee/constants.ts SALT, utils.ts getAlgoOptions).
	e2eeSalt       = "LKFrameEncryptionKey"
	e2eeIterations = 100_000
	e2eeKeyBytes   = 16 // keySize 128 (KEY_PROVIDER_DEFAULTS)
	e2eeIVLen      = 12
	// updateScreenshotsEnv, set to 1, makes TestMeetingLinks copy its
	// screenshots to web/screenshots/ for the README.
	updateScreenshotsEnv = "STOA_UPDATE_SCREENSHOTS"
)

// The SDK logs through zap; at warn, pion's debug formatting (which races
// with the SDK's signal goroutine, see signalling/sdktest_helpers_test.go)
// never runs.
func init() {
	if l, err := protoLogger.FromZapLogger(zap.New(nil), &protoLogger.Config{Level: "warn"}); err == nil {
		lksdk.SetLogger(l)
	}
}

// TestMeetingLinks is issue 5's browser test: a real `stoa serve` with its
// embedded meeting page, links made with `stoa link create`, and guests in
// headless Chromium (app/test/meeting.mjs) who type their names and join.
// Screenshots of the pre-join screen and the three-person call are test
// artefacts (go test -artifacts keeps them); with STOA_UPDATE_SCREENSHOTS=1
// they are also copied to web/screenshots/.
//
// It needs Chromium and web/node_modules; `make -C web test` installs both.
func TestMeetingLinks(t *testing.T) {
	requireHarness(t)
	bin := buildStoa(t)
	s := startStoa(t, bin)

	t.Run("meeting", func(t *testing.T) {
		link := s.link(t, "--room", "demo-"+randomHex(t, 3))
		rep := runMeeting(t, "meeting", map[string]any{"main": link})
		if os.Getenv(updateScreenshotsEnv) == "1" {
			copyScreenshots(t, rep, "prejoin.png", "call.png")
		}
	})

	t.Run("e2ee", func(t *testing.T) {
		room := "e2ee-" + randomHex(t, 3)
		link := s.link(t, "--room", room, "--e2ee")
		page, fragment, ok := strings.Cut(link, "#")
		key := strings.TrimPrefix(fragment, "key=")
		if !ok || key == fragment || key == "" {
			t.Fatalf("stoa link create --e2ee printed %q, want a URL with #key=...", link)
		}
		obs := observe(t, s.ws, s.mint(t, room, "observer", func(g *auth.VideoGrant) {
			g.SetCanPublish(false)
			g.SetCanPublishData(false)
			// Hidden: the guests' pages do not show it.
			g.Hidden = true
		}))
		runMeeting(t, "e2ee", map[string]any{"e2ee": link, "e2eeNoKey": page})
		obs.close()
		checkCiphertext(t, obs, key)
	})

	t.Run("refused", func(t *testing.T) {
		room := "refused-" + randomHex(t, 3)
		expired := s.link(t, "--room", room, "--ttl", "1s")
		revoked := s.link(t, "--room", room)
		s.stoa(t, "link", "revoke", revoked)
		main := s.link(t, "--room", room)
		// The link is 1 s old at most; make sure it is over.
		time.Sleep(1100 * time.Millisecond)
		runMeeting(t, "refused", map[string]any{
			"expired":  expired,
			"revoked":  revoked,
			"tampered": tamper(t, main),
			"main":     main,
		})
	})

	t.Run("viewonly", func(t *testing.T) {
		room := "view-" + randomHex(t, 3)
		viewOnly := s.link(t, "--room", room, "--view-only")
		// The token the page gets has no right to publish...
		claims := s.joinClaims(t, viewOnly)
		if claims.Video == nil || claims.Video.GetCanPublish() || !claims.Video.GetCanSubscribe() {
			t.Fatalf("a view-only guest's grant: %+v, want subscribe without publish", claims.Video)
		}
		// ...and the page's own publish attempt, past the SDK's check, is
		// refused by the server (meeting.mjs asserts NOT_ALLOWED).
		runMeeting(t, "viewonly", map[string]any{"main": s.link(t, "--room", room), "viewonly": viewOnly})
	})
}

// ------------------------------------------------------------ stoa serve

// buildStoa bundles the meeting page and builds the stoa binary, which
// embeds it, into a temporary directory.
func buildStoa(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "node", filepath.Join("app", "build.mjs")).CombinedOutput(); err != nil {
		t.Fatalf("bundling the meeting page (node app/build.mjs): %v\n%s", err, out)
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build stoa: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "stoa")
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", bin, "./cmd/stoa")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/stoa: %v\n%s", err, out)
	}
	return bin
}

// stoaServer is a `stoa serve` process on loopback, stopped by PID when the
// test ends.
type stoaServer struct {
	bin, config string
	base        string // http://127.0.0.1:PORT
	ws          string // ws://127.0.0.1:PORT
}

// freePort returns a port that was free on 127.0.0.1 a moment ago.
func freePort(t *testing.T, network string) int {
	t.Helper()
	switch network {
	case "udp":
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	default:
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
}

func startStoa(t *testing.T, bin string) *stoaServer {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t, "tcp")
	config := fmt.Sprintf(`port: %d
bind_addresses: [127.0.0.1]
rtc:
  udp_port: %d
  tcp_port: %d
  bind_address: 127.0.0.1
keys:
  %s: %s
logging:
  level: info
`, port, freePort(t, "udp"), freePort(t, "tcp"), meetingKey, meetingSecret)
	s := &stoaServer{
		bin:    bin,
		config: filepath.Join(dir, "stoa.yaml"),
		base:   fmt.Sprintf("http://127.0.0.1:%d", port),
		ws:     fmt.Sprintf("ws://127.0.0.1:%d", port),
	}
	if err := os.WriteFile(s.config, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--config", s.config)
	cmd.Env = append(os.Environ(), "STOA_KEYS=", "LIVEKIT_KEYS=") // only the file's key
	logs := nodetest.Lines(t.Output())
	cmd.Stdout = logs
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting stoa serve: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		// Stop it by its PID: SIGTERM, then SIGKILL if it hangs.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("stoa serve exited with %v", err)
			}
		case <-time.After(stoaStopTimeout):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("stoa serve did not stop within %v of SIGTERM", stoaStopTimeout)
		}
		logs.Flush()
	})

	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(stoaStartTimeout)
	for {
		resp, err := client.Get(s.base + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("stoa serve exited before answering: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("stoa serve did not answer on %s within %v: %v", s.base, stoaStartTimeout, err)
		}
	}
}

// stoa runs the stoa binary with args against the server and returns its
// standard output.
func (s *stoaServer) stoa(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, append(args, "--server", s.base, "--config", s.config)...)
	cmd.Env = append(os.Environ(), "STOA_KEYS=", "LIVEKIT_KEYS=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("stoa %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return stdout.String()
}

// link creates a meeting link with `stoa link create` and returns the URL
// it prints.
func (s *stoaServer) link(t *testing.T, args ...string) string {
	t.Helper()
	out := strings.TrimSpace(s.stoa(t, append([]string{"link", "create"}, args...)...))
	if !strings.HasPrefix(out, s.base+"/j/") || strings.Contains(out, "\n") {
		t.Fatalf("stoa link create %s printed %q, want one URL under %s/j/", strings.Join(args, " "), out, s.base)
	}
	return out
}

// mint signs an access token for room with the server's key.
func (s *stoaServer) mint(t *testing.T, room, identity string, edit func(*auth.VideoGrant)) string {
	t.Helper()
	g := &auth.VideoGrant{RoomJoin: true, Room: room}
	if edit != nil {
		edit(g)
	}
	jwt, err := auth.NewAccessToken(meetingKey, meetingSecret).
		SetIdentity(identity).
		SetValidFor(time.Hour).
		SetVideoGrant(g).
		ToJWT()
	if err != nil {
		t.Fatal(err)
	}
	return jwt
}

// joinClaims asks the links API for a guest token, as the page does, and
// returns its verified claims.
func (s *stoaServer) joinClaims(t *testing.T, link string) *auth.ClaimGrants {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	slug := strings.TrimPrefix(u.Path, "/j/")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Post(
		s.base+"/api/links/"+url.PathEscape(slug)+"/join", "application/json", strings.NewReader(`{"name":"Probe"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var grant struct {
		Token    string `json:"token"`
		ViewOnly bool   `json:"view_only"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&grant); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST join: %d %v", resp.StatusCode, err)
	}
	if !grant.ViewOnly {
		t.Errorf("the join answer for a view-only link says view_only false")
	}
	v, err := auth.ParseAPIToken(grant.Token)
	if err != nil {
		t.Fatal(err)
	}
	_, claims, err := v.Verify(meetingSecret)
	if err != nil {
		t.Fatalf("the guest token does not verify with the server's secret: %v", err)
	}
	return claims
}

// tamper changes one character of a link's slug, keeping it well-formed.
func tamper(t *testing.T, link string) string {
	t.Helper()
	i := strings.LastIndex(link, "/j/") + len("/j/") + 5
	if i >= len(link) {
		t.Fatalf("link %q has no slug to tamper with", link)
	}
	c := byte('A')
	if link[i] == 'A' {
		c = 'B'
	}
	return link[:i] + string(c) + link[i+1:]
}

// --------------------------------------------------------------- meeting.mjs

// meetingReport is the part of meeting.mjs's JSON report the test reads.
type meetingReport struct {
	OK          bool     `json:"ok"`
	Error       string   `json:"error"`
	Screenshots []string `json:"screenshots"`
	DurationMs  int      `json:"durationMs"`
	PageErrors  []string `json:"pageErrors"`
	Steps       []struct {
		Name   string          `json:"name"`
		OK     bool            `json:"ok"`
		Ms     int             `json:"ms"`
		Detail json.RawMessage `json:"detail"`
	} `json:"steps"`
}

func (r *meetingReport) summary() string {
	var b strings.Builder
	for _, s := range r.Steps {
		status := "ok"
		if !s.OK {
			status = "FAILED"
		}
		d := string(s.Detail)
		if len(d) > 300 {
			d = d[:300] + "…"
		}
		fmt.Fprintf(&b, "  %-6s %6d ms  %s  %s\n", status, s.Ms, s.Name, d)
	}
	return b.String()
}

// runMeeting runs app/test/meeting.mjs for scenario with links, saving its
// screenshots in the test's artefact directory, and fails the test unless
// every step passed.
func runMeeting(t *testing.T, scenario string, links map[string]any) *meetingReport {
	t.Helper()
	out, runErr := nodetest.Run(t, filepath.Join("app", "test", "meeting.mjs"), map[string]any{
		"scenario":  scenario,
		"links":     links,
		"artifacts": t.ArtifactDir(),
		"chromium":  chromiumPath,
		"timeoutMs": meetingRunTimeoutMs,
	}, meetingNodeTimeout)
	var rep meetingReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("meeting.mjs (%v) printed no JSON report: %v\n%s", runErr, err, out)
	}
	if !rep.OK || runErr != nil {
		t.Fatalf("meeting %s failed (%v): %s\nsteps:\n%s", scenario, runErr, rep.Error, rep.summary())
	}
	t.Logf("meeting %s passed in %d ms:\n%s", scenario, rep.DurationMs, rep.summary())
	if len(rep.PageErrors) > 0 {
		t.Logf("console errors on the pages (not failures): %q", rep.PageErrors)
	}
	return &rep
}

// copyScreenshots copies the named screenshots of a run to web/screenshots/.
func copyScreenshots(t *testing.T, rep *meetingReport, names ...string) {
	t.Helper()
	if err := os.MkdirAll("screenshots", 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		var src string
		for _, s := range rep.Screenshots {
			if filepath.Base(s) == name {
				src = s
			}
		}
		if src == "" {
			t.Fatalf("the run made no %s", name)
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("screenshots", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("updated web/screenshots/%s", name)
	}
}

// ------------------------------------------------------- the E2EE observer

// observer is a LiveKit Go SDK participant that subscribes to everything in
// a room and keeps each track's frames as the SFU forwarded them.
type observer struct {
	room    *lksdk.Room
	readers sync.WaitGroup

	mu     sync.Mutex // guards the following fields
	tracks []*observedTrack
	closed bool
}

type observedTrack struct {
	publisher, mime string
	frames          [][]byte // whole frames: VP8 depacketized, Opus as sent
	keyFrames       int
	dropped         int // frames lost to a sequence gap
}

func observe(t *testing.T, wsURL, token string) *observer {
	t.Helper()
	o := &observer{}
	cb := lksdk.NewRoomCallback()
	cb.OnTrackSubscribed = func(track *webrtc.TrackRemote, _ *lksdk.RemoteTrackPublication, rp *lksdk.RemoteParticipant) {
		ot := &observedTrack{publisher: rp.Identity(), mime: strings.ToLower(track.Codec().MimeType)}
		o.mu.Lock()
		defer o.mu.Unlock()
		if o.closed {
			return
		}
		o.tracks = append(o.tracks, ot)
		o.readers.Add(1)
		go o.read(ot, track)
	}
	o.room = lksdk.NewRoom(cb)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := o.room.JoinWithContextAndToken(ctx, wsURL, token, lksdk.WithAutoSubscribe(true)); err != nil {
		t.Fatalf("the Go SDK observer could not join: %v", err)
	}
	t.Cleanup(o.close)
	return o
}

// maxObservedFrames bounds what the observer keeps per track.
const maxObservedFrames = 3000

// read runs on its own goroutine until the track ends (the observer left).
func (o *observer) read(ot *observedTrack, track *webrtc.TrackRemote) {
	defer o.readers.Done()
	video := strings.HasSuffix(ot.mime, "/vp8")
	var frame []byte
	var lastSeq uint16
	inFrame := false
	for {
		pkt, _, err := track.ReadRTP()
		if err != nil {
			return
		}
		var done []byte
		key := false
		if !video {
			done = append([]byte(nil), pkt.Payload...)
		} else {
			gap := inFrame && pkt.SequenceNumber != lastSeq+1
			lastSeq = pkt.SequenceNumber
			var vp8 codecs.VP8Packet
			if _, err := vp8.Unmarshal(pkt.Payload); err != nil {
				continue
			}
			if vp8.S == 1 && vp8.PID == 0 {
				if inFrame {
					o.note(ot, nil, false) // the previous frame never ended
				}
				frame, inFrame = append(frame[:0], vp8.Payload...), true
			} else if inFrame && !gap {
				frame = append(frame, vp8.Payload...)
			} else {
				if gap {
					o.note(ot, nil, false)
				}
				inFrame = false
				continue
			}
			if !pkt.Marker {
				continue
			}
			inFrame = false
			done = append([]byte(nil), frame...)
			key = len(done) > 0 && done[0]&1 == 0 // VP8 frame tag P bit (RFC 6386 §9.1)
		}
		o.note(ot, done, key)
	}
}

func (o *observer) note(ot *observedTrack, frame []byte, key bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if frame == nil {
		ot.dropped++
		return
	}
	if len(ot.frames) < maxObservedFrames {
		ot.frames = append(ot.frames, frame)
		if key {
			ot.keyFrames++
		}
	}
}

// close leaves the room and waits for the readers.
func (o *observer) close() {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	o.closed = true
	o.mu.Unlock()
	o.room.Disconnect()
	o.readers.Wait()
}

// checkCiphertext asserts that everything the observer received is
// livekit-client's E2EE frame format (draft-omara-sframe-like: header bytes
// in clear, AES-GCM ciphertext, 12-byte IV, then IV length and key index),
// and that it opens only with the link's key: the SFU forwarded frames it
// could not read, and a subscriber without the key could not decode them.
func checkCiphertext(t *testing.T, o *observer, linkKey string) {
	t.Helper()
	key, err := pbkdf2.Key(sha256.New, linkKey, []byte(e2eeSalt), e2eeIterations, e2eeKeyBytes)
	if err != nil {
		t.Fatal(err)
	}
	gcm := newGCM(t, key)
	wrong := newGCM(t, bytes.Repeat([]byte{7}, e2eeKeyBytes))

	o.mu.Lock()
	defer o.mu.Unlock()
	video, audio := map[string]int{}, map[string]int{}
	for _, tr := range o.tracks {
		isVideo := strings.HasSuffix(tr.mime, "/vp8")
		if !isVideo && !strings.HasSuffix(tr.mime, "/opus") {
			t.Errorf("%s published %s; the check knows VP8 and Opus", tr.publisher, tr.mime)
			continue
		}
		opened, keyPlain := 0, 0
		for i, f := range tr.frames {
			clear := 1 // the Opus TOC byte (RFC 6716 §3.1)
			if isVideo {
				clear = 3 // a VP8 delta frame's tag
				if f[0]&1 == 0 {
					clear = 10 // a key frame's tag, start code and size (RFC 6386 §9.1)
				}
			}
			if len(f) < clear+16+e2eeIVLen+2 {
				t.Errorf("%s %s frame %d is %d bytes, too short for an E2EE frame", tr.publisher, tr.mime, i, len(f))
				continue
			}
			n := len(f)
			if f[n-2] != e2eeIVLen || f[n-1] != 0 {
				t.Errorf("%s %s frame %d lacks the E2EE trailer (IV length %d, key index %d)", tr.publisher, tr.mime, i, f[n-2], f[n-1])
				continue
			}
			iv := f[n-2-e2eeIVLen : n-2]
			ct := f[clear : n-2-e2eeIVLen]
			plain, err := gcm.Open(nil, iv, ct, f[:clear])
			if err != nil {
				t.Errorf("%s %s frame %d does not open with the link's key: %v", tr.publisher, tr.mime, i, err)
				continue
			}
			if _, err := wrong.Open(nil, iv, ct, f[:clear]); err == nil {
				t.Errorf("%s %s frame %d opens with a wrong key", tr.publisher, tr.mime, i)
			}
			if len(plain) >= 32 && bytes.Contains(f, plain[:32]) {
				t.Errorf("%s %s frame %d carries its plaintext", tr.publisher, tr.mime, i)
			}
			opened++
			if isVideo && f[0]&1 == 0 {
				// The decrypted key frame is real VP8: start code 9d 01 2a.
				if f[3] == 0x9d && f[4] == 0x01 && f[5] == 0x2a && len(plain) > 0 {
					keyPlain++
				}
			}
		}
		t.Logf("observer: %s %s: %d frames (%d key frames, %d dropped), %d open only with the link's key",
			tr.publisher, tr.mime, len(tr.frames), tr.keyFrames, tr.dropped, opened)
		if isVideo {
			video[tr.publisher] += opened
			if tr.keyFrames > 0 && keyPlain == 0 {
				t.Errorf("%s: no key frame decrypted to a VP8 key frame", tr.publisher)
			}
		} else {
			audio[tr.publisher] += opened
		}
	}
	// Two guests, each with a camera and a microphone, for several seconds.
	if len(video) != 2 || len(audio) != 2 {
		t.Fatalf("the observer got encrypted video from %d and audio from %d publishers, want 2 each", len(video), len(audio))
	}
	for p, n := range video {
		if n < 30 {
			t.Errorf("the observer got only %d video frames from %s", n, p)
		}
	}
	for p, n := range audio {
		if n < 100 {
			t.Errorf("the observer got only %d audio frames from %s", n, p)
		}
	}
}

func newGCM(t *testing.T, key []byte) cipher.AEAD {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return gcm
}
