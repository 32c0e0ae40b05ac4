package auth_test

// Integration tests of the watcher and the enforcer against a real Dendrite
// (auth/authtest) and a real Stoa SFU, with participants driven by
// LiveKit's Go SDK holding tokens from the service's /sfu/get. Every
// scenario runs in bot mode and in application service mode.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	protoLogger "github.com/livekit/protocol/logger"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"go.uber.org/zap"
	"maunium.net/go/mautrix/id"

	"github.com/stoa-rtc/stoa/auth"
	"github.com/stoa-rtc/stoa/auth/authtest"
	"github.com/stoa-rtc/stoa/sfu"
	"github.com/stoa-rtc/stoa/signalling"
)

const (
	itKey    = "devkey"
	itSecret = "secret-at-least-32-characters-long!!"
	// itGrace is Config.MembershipGrace in these tests, and itLeaveGrace
	// the wait before a dropped participant's membership is ended.
	itGrace      = 2 * time.Second
	itLeaveGrace = 2 * time.Second
	// removalBound is how soon after the homeserver accepted an event the
	// participant must be gone (the brief: within ~2 s).
	removalBound = 2 * time.Second
	// itTimeout bounds every other wait: joins, media, token retries.
	itTimeout = 20 * time.Second
)

// init quiets lksdk (a zap logger at warn level) before any SDK goroutine
// reads its logger: the default adapter formats every pion debug line, and
// one of those formats races with the SDK (see signalling's
// sdktest_helpers_test.go, which does the same).
func init() {
	if l, err := protoLogger.FromZapLogger(zap.New(nil), &protoLogger.Config{Level: "warn"}); err == nil {
		lksdk.SetLogger(l)
	}
}

// removalRecord is one RemoveParticipant call the service made.
type removalRecord struct {
	room, identity, reason string
	at                     time.Time
}

// recordingSFU is the real SFU, with the service's removals recorded.
type recordingSFU struct {
	*signalling.Server

	mu       sync.Mutex // guards removals
	removals []removalRecord
	changed  chan struct{} // closed and replaced on each removal
}

func (r *recordingSFU) RemoveParticipant(room, identity, reason string) error {
	r.mu.Lock()
	r.removals = append(r.removals, removalRecord{room, identity, reason, time.Now()})
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	return r.Server.RemoveParticipant(room, identity, reason)
}

// waitRemoval waits until identity was removed and returns the record.
func (r *recordingSFU) waitRemoval(t *testing.T, identity string, within time.Duration) removalRecord {
	t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		r.mu.Lock()
		i := slices.IndexFunc(r.removals, func(x removalRecord) bool { return x.identity == identity })
		var rec removalRecord
		if i >= 0 {
			rec = r.removals[i]
		}
		changed := r.changed
		r.mu.Unlock()
		if i >= 0 {
			return rec
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("%s not removed within %v", identity, within)
		}
	}
}

func (r *recordingSFU) removed(identity string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.ContainsFunc(r.removals, func(x removalRecord) bool { return x.identity == identity })
}

// observerProxy hands the SFU's participant events to the service, which
// is built after the SFU.
type observerProxy struct{ svc atomic.Pointer[auth.Service] }

func (o *observerProxy) ParticipantJoined(room, identity string) {
	if s := o.svc.Load(); s != nil {
		s.ParticipantJoined(room, identity)
	}
}

func (o *observerProxy) ParticipantLeft(room, identity string) {
	if s := o.svc.Load(); s != nil {
		s.ParticipantLeft(room, identity)
	}
}

// handlerProxy serves the service's handler once it exists; Dendrite needs
// the application service's listener before it starts.
type handlerProxy struct{ h atomic.Pointer[http.Handler] }

func (p *handlerProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := p.h.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
}

// itEnv is one Dendrite, one SFU and one authorisation service.
type itEnv struct {
	mode    string
	hs      *authtest.Homeserver
	sfu     *recordingSFU
	svc     *auth.Service
	authURL string
	bot     *authtest.User // bot mode only

	mu    sync.Mutex // guards users
	users int
}

// serve serves h on a fresh loopback listener until the test ends.
func serve(t *testing.T, ln net.Listener, h http.Handler) {
	t.Helper()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func newITEnv(t *testing.T, mode string) *itEnv {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("STOA_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	env := &itEnv{mode: mode}

	// The service's listener comes first: Dendrite pushes to it.
	authLn := listen(t)
	env.authURL = "http://" + authLn.Addr().String()
	proxy := &handlerProxy{}
	serve(t, authLn, proxy)

	opts := authtest.Options{LiveKitServiceURL: env.authURL}
	if mode == "appservice" {
		opts.AppService = &authtest.AppService{URL: env.authURL}
	}
	env.hs = authtest.Start(t, opts)

	obs := &observerProxy{}
	srv, err := signalling.NewServer(signalling.Config{
		Keys:             map[string]string{itKey: itSecret},
		RTC:              sfu.Config{BindIP: "127.0.0.1", IncludeLoopback: true},
		DepartureTimeout: time.Second,
		Observer:         obs,
		Logger:           logger,
	})
	if err != nil {
		t.Fatalf("signalling.NewServer: %v", err)
	}
	sfuLn := listen(t)
	serve(t, sfuLn, srv)
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("SFU Close: %v", err)
		}
	})
	env.sfu = &recordingSFU{Server: srv, changed: make(chan struct{})}

	cfg := auth.Config{
		PublicURL:       "ws://" + sfuLn.Addr().String(),
		APIKey:          itKey,
		APISecret:       itSecret,
		HomeserverURL:   env.hs.URL,
		ServerName:      env.hs.ServerName,
		OpenIDBaseURLs:  map[string]string{env.hs.ServerName: env.hs.URL},
		MembershipGrace: itGrace,
		Logger:          logger,
	}
	if mode == "appservice" {
		cfg.AppserviceRegistration = env.hs.RegistrationPath
	} else {
		env.bot = env.hs.Register(t, "authz")
		cfg.AccessToken = env.bot.Token
	}
	svc, err := auth.New(cfg, env.sfu)
	if err != nil {
		t.Fatalf("auth.New: %v", err)
	}
	auth.SetLeaveGrace(svc, itLeaveGrace)
	env.svc = svc
	h := svc.Handler()
	proxy.h.Store(&h)
	obs.svc.Store(svc)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return 10 s after its context ended")
		}
	})
	return env
}

// user registers a new user whose localpart starts with name.
func (env *itEnv) user(t *testing.T, name string) *authtest.User {
	t.Helper()
	env.mu.Lock()
	env.users++
	n := env.users
	env.mu.Unlock()
	return env.hs.Register(t, fmt.Sprintf("%s%d", name, n))
}

// callRoom creates a call room owned by owner with members joined; in bot
// mode the bot is invited too (it joins by itself).
func (env *itEnv) callRoom(t *testing.T, owner *authtest.User, members ...*authtest.User) id.RoomID {
	t.Helper()
	invite := slices.Clone(members)
	if env.bot != nil {
		invite = append(invite, env.bot)
	}
	room := env.hs.CreateRoom(t, owner, invite...)
	for _, u := range members {
		env.hs.Join(t, u, room)
	}
	return room
}

// token asks the service for u's SFU token for room via POST /sfu/get, as
// Element Call does. A 403 is retried (within itTimeout): in bot mode the
// room appears once the bot's sync has caught up.
func (env *itEnv) token(t *testing.T, u *authtest.User, room id.RoomID) (url, jwt string) {
	t.Helper()
	deadline := time.Now().Add(itTimeout)
	for {
		body, err := json.Marshal(map[string]any{
			"room":      room,
			"device_id": u.Device,
			"openid_token": map[string]any{
				"access_token": u.OpenIDToken(t), "token_type": "Bearer",
				"matrix_server_name": env.hs.ServerName, "expires_in": 3600,
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Post(env.authURL+"/sfu/get", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatalf("POST /sfu/get: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			var out struct{ URL, JWT string }
			if err := json.Unmarshal(b, &out); err != nil {
				t.Fatalf("/sfu/get answer %s: %v", b, err)
			}
			return out.URL, out.JWT
		}
		if resp.StatusCode != http.StatusForbidden || time.Now().After(deadline) {
			t.Fatalf("/sfu/get for %s: %d %s", u.ID, resp.StatusCode, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// itPeer is one LiveKit SDK participant.
type itPeer struct {
	identity string
	room     *lksdk.Room
	readers  sync.WaitGroup

	packets      atomic.Int64 // RTP packets received, all tracks
	disconnected chan lksdk.DisconnectionReason
	leave        sync.Once
}

// connect gets u a token and joins the SFU room with it.
func (env *itEnv) connect(t *testing.T, u *authtest.User, room id.RoomID) *itPeer {
	t.Helper()
	url, jwt := env.token(t, u, room)
	p := &itPeer{identity: string(u.ID) + ":" + string(u.Device), disconnected: make(chan lksdk.DisconnectionReason, 1)}
	cb := lksdk.NewRoomCallback()
	cb.OnDisconnectedWithReason = func(r lksdk.DisconnectionReason) {
		select {
		case p.disconnected <- r:
		default:
		}
	}
	cb.OnTrackSubscribed = func(track *webrtc.TrackRemote, _ *lksdk.RemoteTrackPublication, _ *lksdk.RemoteParticipant) {
		p.readers.Add(1)
		go func() {
			defer p.readers.Done()
			for {
				if _, _, err := track.ReadRTP(); err != nil {
					return
				}
				p.packets.Add(1)
			}
		}()
	}
	p.room = lksdk.NewRoom(cb)
	ctx, cancel := context.WithTimeout(context.Background(), itTimeout)
	defer cancel()
	if err := p.room.JoinWithContextAndToken(ctx, url, jwt, lksdk.WithAutoSubscribe(true)); err != nil {
		t.Fatalf("%s joins: %v", p.identity, err)
	}
	if got := p.room.LocalParticipant.Identity(); got != p.identity {
		t.Fatalf("identity %q, want %q", got, p.identity)
	}
	t.Cleanup(p.close)
	return p
}

func (p *itPeer) alias() string { return p.room.Name() }

func (p *itPeer) close() {
	p.leave.Do(p.room.Disconnect)
	p.readers.Wait()
}

// waitDisconnected waits for the server to disconnect p and returns why.
func (p *itPeer) waitDisconnected(t *testing.T, within time.Duration) lksdk.DisconnectionReason {
	t.Helper()
	select {
	case r := <-p.disconnected:
		return r
	case <-time.After(within):
		t.Fatalf("%s still connected after %v", p.identity, within)
		return ""
	}
}

// publishAudio publishes an Opus track fed until the test ends.
func (p *itPeer) publishAudio(t *testing.T) {
	t.Helper()
	track, err := lksdk.NewLocalTrack(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.room.LocalParticipant.PublishTrack(track, &lksdk.TrackPublicationOptions{
		Name: "microphone", Source: livekit.TrackSource_MICROPHONE,
	}); err != nil {
		t.Fatalf("%s publishes: %v", p.identity, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		frame := make([]byte, 60)
		frame[0] = 9 << 3 // Opus TOC: SILK wideband 20 ms, mono, one frame
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				_ = track.WriteSample(media.Sample{Data: frame, Duration: 20 * time.Millisecond}, nil)
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// waitPackets waits until p has received n more packets than it had.
func (p *itPeer) waitPackets(t *testing.T, n int64, within time.Duration) {
	t.Helper()
	start := p.packets.Load()
	deadline := time.Now().Add(within)
	for p.packets.Load() < start+n {
		if time.Now().After(deadline) {
			t.Fatalf("%s received %d packets in %v, want %d", p.identity, p.packets.Load()-start, within, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func inSFU(env *itEnv, p *itPeer) bool {
	return slices.Contains(env.sfu.Participants(p.alias()), p.identity)
}

// wantRemoved waits for p's removal with reason within bound of since (when
// the event was sent, or the participant connected), and for p's client to
// see it; it logs the latency.
func wantRemoved(t *testing.T, env *itEnv, p *itPeer, reason string, since time.Time, bound time.Duration) time.Duration {
	t.Helper()
	rec := env.sfu.waitRemoval(t, p.identity, bound+itTimeout)
	latency := rec.at.Sub(since)
	if rec.reason != reason {
		t.Errorf("%s removed for %q, want %q", p.identity, rec.reason, reason)
	}
	if rec.room != p.alias() {
		t.Errorf("%s removed from %q, want %q", p.identity, rec.room, p.alias())
	}
	if latency > bound {
		t.Errorf("%s removed %v after the event, want within %v", p.identity, latency, bound)
	}
	if r := p.waitDisconnected(t, itTimeout); r != lksdk.ParticipantRemoved {
		t.Errorf("%s disconnected with %q, want %q", p.identity, r, lksdk.ParticipantRemoved)
	}
	t.Logf("%s: %s: removed %v after the event (%s)", env.mode, p.identity, latency.Round(time.Millisecond), reason)
	return latency
}

func TestWatcherIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Dendrite")
	}
	for _, mode := range []string{"bot", "appservice"} {
		t.Run(mode, func(t *testing.T) {
			env := newITEnv(t, mode)
			t.Run("hang-up", func(t *testing.T) { testHangUp(t, env) })
			for _, how := range []string{"leave", "kick", "ban"} {
				t.Run(how, func(t *testing.T) { testRoomExit(t, env, how) })
			}
			t.Run("no call membership", func(t *testing.T) { testNoMembership(t, env) })
			t.Run("spoofed membership", func(t *testing.T) { testSpoofed(t, env) })
			t.Run("dropped participant", func(t *testing.T) { testDropped(t, env) })
		})
	}
}

// Bob's call membership is emptied: he is removed at once, and alice keeps
// receiving carol's media. Valid memberships outlast the grace.
func testHangUp(t *testing.T, env *itEnv) {
	hs := env.hs
	alice, bob, carol := env.user(t, "alice"), env.user(t, "bob"), env.user(t, "carol")
	room := env.callRoom(t, alice, bob, carol)
	pa := env.connect(t, alice, room)
	pb := env.connect(t, bob, room)
	pc := env.connect(t, carol, room)
	for _, u := range []*authtest.User{alice, bob, carol} {
		hs.SendCallMember(t, u, room)
	}
	pc.publishAudio(t)
	pa.waitPackets(t, 25, itTimeout)

	// Past the grace, everyone with a membership is still there.
	time.Sleep(itGrace + 500*time.Millisecond)
	for _, p := range []*itPeer{pa, pb, pc} {
		if !inSFU(env, p) || env.sfu.removed(p.identity) {
			t.Fatalf("%s removed despite a valid membership", p.identity)
		}
	}

	sent := time.Now()
	hs.EmptyCallMember(t, bob, room)
	wantRemoved(t, env, pb, "call membership ended", sent, removalBound)
	if inSFU(env, pb) {
		t.Errorf("%s still listed in the SFU room", pb.identity)
	}
	pa.waitPackets(t, 25, 5*time.Second)
	if !inSFU(env, pa) || !inSFU(env, pc) {
		t.Error("alice or carol left with bob")
	}
}

// Bob leaves the room, is kicked or banned: he is removed at once.
func testRoomExit(t *testing.T, env *itEnv, how string) {
	hs := env.hs
	alice, bob := env.user(t, "alice"), env.user(t, "bob")
	room := env.callRoom(t, alice, bob)
	pa := env.connect(t, alice, room)
	pb := env.connect(t, bob, room)
	hs.SendCallMember(t, alice, room)
	hs.SendCallMember(t, bob, room)
	pa.publishAudio(t)
	pb.waitPackets(t, 10, itTimeout)

	reason := "left the room"
	sent := time.Now()
	switch how {
	case "leave":
		hs.Leave(t, bob, room)
	case "kick":
		hs.Kick(t, alice, room, bob)
	case "ban":
		hs.Ban(t, alice, room, bob)
		reason = "banned"
	}
	wantRemoved(t, env, pb, reason, sent, removalBound)
	if env.sfu.removed(pa.identity) {
		t.Error("alice removed too")
	}
}

// A participant who never sends a call membership is removed after the
// grace.
func testNoMembership(t *testing.T, env *itEnv) {
	alice, bob := env.user(t, "alice"), env.user(t, "bob")
	room := env.callRoom(t, alice, bob)
	env.hs.SendCallMember(t, alice, room)
	pa := env.connect(t, alice, room)
	joined := time.Now()
	pb := env.connect(t, bob, room)
	lat := wantRemoved(t, env, pb, "no call membership", joined, itGrace+removalBound)
	if lat < itGrace-100*time.Millisecond {
		t.Errorf("removed %v after joining, before the %v grace", lat, itGrace)
	}
	if env.sfu.removed(pa.identity) {
		t.Error("alice, who has a membership, removed too")
	}
}

// Bob writes a membership under alice's key, naming alice's device. It
// counts for neither: Dendrite accepts the write, but the key names another
// user than its sender.
func testSpoofed(t *testing.T, env *itEnv) {
	hs := env.hs
	alice, bob, carol := env.user(t, "alice"), env.user(t, "bob"), env.user(t, "carol")
	room := env.callRoom(t, carol, alice, bob)
	hs.SendCallMember(t, carol, room)
	pc := env.connect(t, carol, room)
	hs.SendCallMemberWithKey(t, bob, room, authtest.CallMemberKey(alice), hs.CallMemberContent(alice, room))
	hs.SendCallMemberWithKey(t, bob, room, authtest.CallMemberKey(alice)+"_spoof", hs.CallMemberContent(bob, room))
	joined := time.Now()
	pa := env.connect(t, alice, room)
	pb := env.connect(t, bob, room)
	wantRemoved(t, env, pa, "no call membership", joined, itGrace+removalBound)
	wantRemoved(t, env, pb, "no call membership", joined, itGrace+removalBound)
	if env.sfu.removed(pc.identity) {
		t.Error("carol removed too")
	}
}

// Bob's client leaves the SFU without hanging up. In application service
// mode Stoa empties his membership after the leave grace (read back through
// the homeserver); in bot mode it cannot write his state and leaves it.
func testDropped(t *testing.T, env *itEnv) {
	hs := env.hs
	alice, bob := env.user(t, "alice"), env.user(t, "bob")
	room := env.callRoom(t, alice, bob)
	hs.SendCallMember(t, alice, room)
	hs.SendCallMember(t, bob, room)
	env.connect(t, alice, room)
	pb := env.connect(t, bob, room)
	time.Sleep(500 * time.Millisecond)
	pb.close()
	left := time.Now()

	key := authtest.CallMemberKey(bob)
	if env.mode == "bot" {
		time.Sleep(itLeaveGrace + 2*time.Second)
		if c := hs.CallMemberState(t, alice, room, key); len(c) == 0 {
			t.Errorf("bot mode emptied the membership: %v", c)
		}
		return
	}
	deadline := left.Add(itLeaveGrace + itTimeout)
	for {
		c := hs.CallMemberState(t, alice, room, key)
		if c != nil && len(c) == 0 {
			t.Logf("%s: dropped participant's membership emptied %v after it left (leave grace %v)",
				env.mode, time.Since(left).Round(time.Millisecond), itLeaveGrace)
			if d := time.Since(left); d < itLeaveGrace {
				t.Errorf("emptied after %v, before the leave grace", d)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("membership still %v", c)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if strings.Contains(fmt.Sprint(hs.CallMemberState(t, alice, room, authtest.CallMemberKey(alice))), "device_id") == false {
		t.Error("alice's membership was touched")
	}
}
