package signalling_test

// Harness for the integration tests in sdk_test.go: a Stoa server on
// loopback, participants driven by LiveKit's Go SDK, and a synthetic media
// source whose packets say who sent them, on which simulcast layer, and
// which frame they belong to.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	protoLogger "github.com/livekit/protocol/logger"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"go.uber.org/zap"

	"github.com/stoa-rtc/stoa/sfu"
	"github.com/stoa-rtc/stoa/signalling"
)

const (
	testAPIKey    = "devkey"
	testAPISecret = "secret-at-least-32-characters-long!!"

	// connectTimeout bounds one participant's join: signalling plus the
	// primary PeerConnection reaching ICE connected.
	connectTimeout = 15 * time.Second
	// mediaTimeout bounds every wait for media or signalling events.
	mediaTimeout = 15 * time.Second

	// Media pacing: 30 fps video and 20 ms Opus packets (50 pps), as a camera
	// and microphone would send them.
	frameDuration = time.Second / 30
	audioDuration = 20 * time.Millisecond
	// keyframeInterval: every N-th frame of every layer is a keyframe, so a
	// layer switch never waits more than a second even if the SFU sends no
	// PLI.
	keyframeInterval = 30
	// pliDelay: a PLI or FIR makes the frame this many frames later a key
	// frame, as an encoder answers a few frames late. It also keeps an SFU
	// that switches layers before the key frame arrives from passing by luck.
	pliDelay = 3

	// magic starts the record each generated frame carries after its VP8
	// header (or Opus TOC byte): magic, source tag, layer, frame counter.
	magic      = "STOA"
	recordSize = len(magic) + 1 + 1 + 4
	// audioLayer is the layer field of audio packets.
	audioLayer = 3
	// opusTOC is an Opus TOC byte (RFC 6716 §3.1): config 9 (SILK-only
	// wideband, 20 ms), mono, code 0 (one frame in the packet).
	opusTOC   = 9 << 3
	opusBytes = 60
)

// init sets lksdk's logger, before any test starts an SDK goroutine that
// reads it, to a zap logger at warn level. The default (logr) adapter formats
// every pion debug line, and pion formats a TrackRemote with %+v in onTrack
// while the SDK's signal goroutine configures it, a race the detector reports
// (pion/webrtc peerconnection.go onTrack, configureRTPReceivers). The zap
// adapter checks the level before formatting. No stack traces: the tests
// provoke SDK errors on purpose.
func init() {
	if l, err := protoLogger.FromZapLogger(zap.New(nil, zap.AddCaller()), &protoLogger.Config{Level: "warn"}); err == nil {
		lksdk.SetLogger(l)
	}
}

// layerSpec describes one simulcast encoding of the test video track.
type layerSpec struct {
	quality       livekit.VideoQuality
	width, height uint16
	// keySize and deltaSize are the encoded frame sizes in bytes: key
	// frames span several RTP packets on the upper layers.
	keySize, deltaSize int
}

// simulcastLayers returns the q/h/f layers Element Call publishes
// (PROTOCOL.md §5.2), lowest first; the index is the layer number that
// generated frames carry.
func simulcastLayers() []layerSpec {
	return []layerSpec{
		{quality: livekit.VideoQuality_LOW, width: 320, height: 180, keySize: 900, deltaSize: 300},
		{quality: livekit.VideoQuality_MEDIUM, width: 640, height: 360, keySize: 2000, deltaSize: 700},
		{quality: livekit.VideoQuality_HIGH, width: 1280, height: 720, keySize: 4000, deltaSize: 1500},
	}
}

// ---------------------------------------------------------------------------
// Server

// testServer is one Stoa server on loopback, or the external server named by
// STOA_SDKTEST_URL (with STOA_SDKTEST_KEY and STOA_SDKTEST_SECRET), which lets
// the same tests run against a reference LiveKit server (livekit-server --dev).
type testServer struct {
	url, key, secret string

	mu   sync.Mutex // guards the following fields
	tags map[string]byte
}

func startServer(t *testing.T, opts ...func(*signalling.Config)) *testServer {
	t.Helper()
	if u := os.Getenv("STOA_SDKTEST_URL"); u != "" {
		return &testServer{
			url:    u,
			key:    os.Getenv("STOA_SDKTEST_KEY"),
			secret: os.Getenv("STOA_SDKTEST_SECRET"),
			tags:   map[string]byte{},
		}
	}
	cfg := signalling.Config{
		Keys:             map[string]string{testAPIKey: testAPISecret},
		RTC:              sfu.Config{BindIP: "127.0.0.1", IncludeLoopback: true},
		DepartureTimeout: time.Second,
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := signalling.NewServer(cfg)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = srv.Close()
		t.Fatalf("listen: %v", err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = hs.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = hs.Close()
		<-served
		if err := srv.Close(); err != nil {
			t.Errorf("server Close: %v", err)
		}
	})
	return &testServer{
		url:    "ws://" + ln.Addr().String(),
		key:    testAPIKey,
		secret: testAPISecret,
		tags:   map[string]byte{},
	}
}

// roomName gives each test its own room, so tests never share one even on an
// external server.
func roomName(t *testing.T, suffix string) string {
	t.Helper()
	return strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()) + "-" + suffix
}

// token mints an access token for identity in room; edits adjust the grant.
func (s *testServer) token(t *testing.T, room, identity string, edits ...func(*auth.VideoGrant)) string {
	t.Helper()
	grant := &auth.VideoGrant{RoomJoin: true, Room: room}
	for _, edit := range edits {
		edit(grant)
	}
	tok, err := auth.NewAccessToken(s.key, s.secret).
		SetVideoGrant(grant).
		SetIdentity(identity).
		SetValidFor(time.Hour).
		ToJWT()
	if err != nil {
		t.Fatalf("mint token: %v", err)
	}
	return tok
}

// signHS256 builds a JWT by hand, for tokens auth.AccessToken refuses to
// make (already expired ones).
func signHS256(t *testing.T, secret string, claims map[string]any) string {
	t.Helper()
	enc := base64.RawURLEncoding
	body, err := json.Marshal(claims)
	if err != nil {
		t.Fatalf("marshal claims: %v", err)
	}
	unsigned := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString(body)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(unsigned))
	return unsigned + "." + enc.EncodeToString(mac.Sum(nil))
}

// tag returns the one-byte tag (1..63) the media of identity carries.
func (s *testServer) tag(identity string) byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tg, ok := s.tags[identity]; ok {
		return tg
	}
	// Tags are 6 bits (filler bytes are tag<<2|layer); a test has far fewer
	// sources, and a 0 tag would only make its media count as crossed.
	tg := byte(len(s.tags)+1) & 63
	s.tags[identity] = tg
	return tg
}

// ---------------------------------------------------------------------------
// Participants

// participant is one SDK client. Its callbacks record what it sees; tests
// wait on that record with waitFor.
type participant struct {
	t        *testing.T
	srv      *testServer
	identity string
	room     *lksdk.Room
	readers  sync.WaitGroup // one per subscribed track's read loop
	leave    sync.Once
	// interceptors, if set, sit between the network and the SDK's own
	// interceptors (set before connect).
	interceptors []interceptor.Factory

	mu      sync.Mutex    // guards the following fields
	changed chan struct{} // closed and replaced on every change
	closed  bool          // close has begun; readers.Add is done under mu
	// tracks holds the subscribed tracks by track SID.
	tracks       map[string]*remoteTrack
	published    map[string]map[string]bool // publisher identity -> track SIDs announced
	connected    map[string]bool
	disconnected map[string]bool
	mutes        []muteEvent
	data         []dataEvent
}

type muteEvent struct {
	identity, trackSID string
	muted              bool
}

type dataEvent struct {
	sender  string
	payload string
}

// join connects identity to room and disconnects it when the test ends.
func (s *testServer) join(t *testing.T, room, identity string, edits ...func(*auth.VideoGrant)) *participant {
	t.Helper()
	p := s.newParticipant(t, identity)
	if err := p.connect(s.token(t, room, identity, edits...)); err != nil {
		t.Fatalf("%s: join %s: %v", identity, room, err)
	}
	t.Cleanup(p.close)
	return p
}

// joinAll connects several participants to room at once.
func (s *testServer) joinAll(t *testing.T, room string, identities ...string) []*participant {
	t.Helper()
	ps := make([]*participant, len(identities))
	errs := make([]error, len(identities))
	var wg sync.WaitGroup
	for i, id := range identities {
		ps[i] = s.newParticipant(t, id)
		tok := s.token(t, room, id)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = ps[i].connect(tok)
		}()
	}
	wg.Wait()
	failed := false
	for i, p := range ps {
		if errs[i] != nil {
			t.Errorf("%s: join %s: %v", p.identity, room, errs[i])
			failed = true
			continue
		}
		t.Cleanup(p.close)
	}
	if failed {
		t.FailNow()
	}
	return ps
}

// newParticipant prepares a participant; connect joins it.
func (s *testServer) newParticipant(t *testing.T, identity string) *participant {
	t.Helper()
	p := &participant{
		t:            t,
		srv:          s,
		identity:     identity,
		changed:      make(chan struct{}),
		tracks:       map[string]*remoteTrack{},
		published:    map[string]map[string]bool{},
		connected:    map[string]bool{},
		disconnected: map[string]bool{},
	}
	cb := lksdk.NewRoomCallback()
	cb.OnParticipantConnected = func(rp *lksdk.RemoteParticipant) {
		p.update(func() { p.connected[rp.Identity()] = true })
	}
	cb.OnParticipantDisconnected = func(rp *lksdk.RemoteParticipant) {
		p.update(func() { p.disconnected[rp.Identity()] = true })
	}
	cb.OnTrackPublished = func(pub *lksdk.RemoteTrackPublication, rp *lksdk.RemoteParticipant) {
		p.update(func() {
			m := p.published[rp.Identity()]
			if m == nil {
				m = map[string]bool{}
				p.published[rp.Identity()] = m
			}
			m[pub.SID()] = true
		})
	}
	cb.OnTrackMuted = func(pub lksdk.TrackPublication, rp lksdk.Participant) {
		p.update(func() { p.mutes = append(p.mutes, muteEvent{rp.Identity(), pub.SID(), true}) })
	}
	cb.OnTrackUnmuted = func(pub lksdk.TrackPublication, rp lksdk.Participant) {
		p.update(func() { p.mutes = append(p.mutes, muteEvent{rp.Identity(), pub.SID(), false}) })
	}
	cb.OnDataPacket = func(data lksdk.DataPacket, params lksdk.DataReceiveParams) {
		if u, ok := data.(*lksdk.UserDataPacket); ok {
			p.update(func() { p.data = append(p.data, dataEvent{params.SenderIdentity, string(u.Payload)}) })
		}
	}
	// OnTrackSubscribed runs on pion's OnTrack goroutine: start a reader
	// and return.
	cb.OnTrackSubscribed = func(track *webrtc.TrackRemote, pub *lksdk.RemoteTrackPublication, rp *lksdk.RemoteParticipant) {
		rt := &remoteTrack{
			sid:       pub.SID(),
			publisher: rp.Identity(),
			wantTag:   s.tag(rp.Identity()),
			kind:      track.Kind(),
			ssrc:      uint32(track.SSRC()),
			lastLayer: -1,
		}
		p.update(func() {
			if p.closed {
				return // close is waiting for the readers: start no more
			}
			p.tracks[rt.sid] = rt
			p.readers.Add(1)
			go p.readTrack(rt, track)
		})
	}
	p.room = lksdk.NewRoom(cb)
	return p
}

// connect joins with token: signalling, then the primary PeerConnection,
// within connectTimeout.
func (p *participant) connect(token string) error {
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	opts := []lksdk.ConnectOption{lksdk.WithAutoSubscribe(true), lksdk.WithConnectTimeout(connectTimeout)}
	if p.interceptors != nil {
		opts = append(opts, lksdk.WithInterceptors(p.interceptors), lksdk.WithIncludeDefaultInterceptors(true))
	}
	return p.room.JoinWithContextAndToken(ctx, p.srv.url, token, opts...)
}

// close leaves the room (once) and waits for the track readers, which end
// when the SDK closes its PeerConnections.
func (p *participant) close() {
	p.update(func() { p.closed = true })
	p.leave.Do(p.room.Disconnect)
	done := make(chan struct{})
	go func() {
		p.readers.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.t.Errorf("%s: track readers still running 10s after Disconnect", p.identity)
	}
}

// update applies f under p.mu and wakes the waiters.
func (p *participant) update(f func()) {
	p.mu.Lock()
	f()
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

// waitFor waits until cond, called with p.mu held, is true, or fails the
// test at the deadline. Call it from the test goroutine only.
func (p *participant) waitFor(deadline time.Time, what string, cond func() bool) {
	p.t.Helper()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		p.mu.Lock()
		ok := cond()
		changed := p.changed
		p.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-timer.C:
			p.mu.Lock()
			state := p.describeLocked()
			p.mu.Unlock()
			p.t.Fatalf("%s: timed out waiting for %s; state: %s", p.identity, what, state)
		}
	}
}

func (p *participant) describeLocked() string {
	var b strings.Builder
	fmt.Fprintf(&b, "published=%v connected=%v disconnected=%v mutes=%v data=%v tracks=[", p.published, p.connected, p.disconnected, p.mutes, p.data)
	for _, rt := range p.tracks {
		fmt.Fprintf(&b, " %s/%s %s: packets=%d paddings=%d frames=%d keyframes=%d layers=%v bad=%d%v;",
			rt.publisher, rt.sid, rt.kind, rt.packets, rt.paddings, rt.frames, rt.keyframes, rt.layerPackets, rt.badCount, rt.bad)
	}
	b.WriteString(" ]")
	return b.String()
}

// tracksFromLocked returns the subscribed tracks of kind from publisher.
func (p *participant) tracksFromLocked(publisher string, kind webrtc.RTPCodecType) []*remoteTrack {
	var out []*remoteTrack
	for _, rt := range p.tracks {
		if rt.publisher == publisher && rt.kind == kind {
			out = append(out, rt)
		}
	}
	return out
}

// receiving reports, with p.mu held, whether exactly one track of kind from
// publisher is subscribed and has delivered at least n packets.
func (p *participant) receivingLocked(publisher string, kind webrtc.RTPCodecType, n int) bool {
	ts := p.tracksFromLocked(publisher, kind)
	return len(ts) == 1 && ts[0].packets >= n
}

// waitReceiving waits until p receives video (20 packets) and audio (25
// packets, half a second) from each publisher.
func (p *participant) waitReceiving(deadline time.Time, publishers ...string) {
	p.t.Helper()
	for _, pub := range publishers {
		p.waitFor(deadline, "video and audio from "+pub, func() bool {
			return p.receivingLocked(pub, webrtc.RTPCodecTypeVideo, 20) &&
				p.receivingLocked(pub, webrtc.RTPCodecTypeAudio, 25)
		})
	}
}

// packetCount returns how many packets of kind from publisher p received.
func (p *participant) packetCount(publisher string, kind webrtc.RTPCodecType) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, rt := range p.tracksFromLocked(publisher, kind) {
		n += rt.packets
	}
	return n
}

// ---------------------------------------------------------------------------
// Received tracks

// remoteTrack is what a participant has received on one subscribed track.
// Its fields are guarded by the owning participant's mu.
type remoteTrack struct {
	sid, publisher string
	wantTag        byte
	kind           webrtc.RTPCodecType
	ssrc           uint32

	packets      int // media packets; padding-only ones are counted apart
	paddings     int
	frames       int // frame starts seen
	keyframes    int
	layerPackets [3]int
	first        *packetInfo
	// lastLayer is the layer of the latest frame start; run counts the
	// consecutive frame starts on it.
	lastLayer, run int
	badCount       int
	bad            []string // the first few problems

	recording bool
	recorded  []packetInfo
}

// packetInfo is what the tests need from one received RTP packet.
type packetInfo struct {
	seq        uint16
	ts         uint32
	ssrc       uint32
	rtx        bool // repaired from an RTX stream
	padding    bool // padding only: no media, but it takes a sequence number
	pictureID  uint16
	frameStart bool // S=1 and PID=0: first packet of a frame
	keyframe   bool // frame start of a key frame
	tag        byte
	layer      int
	counter    uint32 // frame or audio packet counter; frame starts and audio only
	width      uint16 // keyframe starts only
	height     uint16
}

func (p *participant) readTrack(rt *remoteTrack, track *webrtc.TrackRemote) {
	defer p.readers.Done()
	for {
		pkt, attrs, err := track.ReadRTP()
		if err != nil {
			return // the PeerConnection closed
		}
		var info packetInfo
		switch {
		case isPadding(pkt):
			info = packetInfo{seq: pkt.SequenceNumber, ts: pkt.Timestamp, ssrc: pkt.SSRC, padding: true}
		case rt.kind == webrtc.RTPCodecTypeVideo:
			info, err = parseVideo(pkt)
		default:
			info, err = parseAudio(pkt)
		}
		info.rtx = attrs != nil && attrs.Get(webrtc.AttributeRtxSsrc) != nil
		if err == nil && !info.padding && info.tag != rt.wantTag {
			err = fmt.Errorf("media tagged %d, want %d (publisher %s): tracks are crossed", info.tag, rt.wantTag, rt.publisher)
		}
		if err == nil && info.ssrc != rt.ssrc {
			err = fmt.Errorf("SSRC %d, track announced %d", info.ssrc, rt.ssrc)
		}
		p.update(func() { rt.addLocked(info, err) })
	}
}

func (rt *remoteTrack) addLocked(info packetInfo, err error) {
	if err != nil {
		rt.badCount++
		if len(rt.bad) < 5 {
			rt.bad = append(rt.bad, fmt.Sprintf("seq %d: %v", info.seq, err))
		}
		return
	}
	if rt.recording {
		rt.recorded = append(rt.recorded, info)
	}
	if info.padding {
		rt.paddings++
		return
	}
	rt.packets++
	if rt.first == nil {
		first := info
		rt.first = &first
	}
	if rt.kind == webrtc.RTPCodecTypeVideo {
		rt.layerPackets[info.layer]++
		if info.frameStart {
			rt.frames++
			if info.keyframe {
				rt.keyframes++
			}
			if info.layer == rt.lastLayer {
				rt.run++
			} else {
				rt.lastLayer, rt.run = info.layer, 1
			}
		}
	}
}

// ---------------------------------------------------------------------------
// Generated media

// vp8Frame writes into buf a frame that starts with real VP8 syntax
// (RFC 6386 §9.1: the 3-byte frame tag, and for key frames the start code
// and 14-bit dimensions), followed by the record (magic, tag, layer,
// counter) and filler bytes tag<<2|layer, so any packet of it names its
// source and layer.
func vp8Frame(buf []byte, tag byte, layer int, spec layerSpec, counter uint32, key bool) []byte {
	size, hdr := spec.deltaSize, 3
	var keyBit uint32 = 1 // the frame tag's P bit: 0 for a key frame
	if key {
		size, hdr, keyBit = spec.keySize, 10, 0
	}
	// Frame tag: P bit, 3-bit version 0, show_frame 1, 19-bit size of the
	// first partition (here: everything after the header).
	raw := keyBit | 1<<4 | uint32(size-hdr)<<5
	buf = append(buf[:0], byte(raw), byte(raw>>8), byte(raw>>16))
	if key {
		buf = append(buf, 0x9d, 0x01, 0x2a) // start code
		// 14-bit width and height, scaling bits 0, little-endian.
		buf = binary.LittleEndian.AppendUint16(buf, spec.width&0x3fff)
		buf = binary.LittleEndian.AppendUint16(buf, spec.height&0x3fff)
	}
	buf = appendRecord(buf, tag, layer, counter)
	fill := tag<<2 | byte(layer)
	for len(buf) < size {
		buf = append(buf, fill)
	}
	return buf
}

func opusPacket(buf []byte, tag byte, counter uint32) []byte {
	buf = appendRecord(append(buf[:0], opusTOC), tag, audioLayer, counter)
	fill := tag<<2 | audioLayer
	for len(buf) < opusBytes {
		buf = append(buf, fill)
	}
	return buf
}

func appendRecord(buf []byte, tag byte, layer int, counter uint32) []byte {
	buf = append(buf, magic...)
	buf = append(buf, tag, byte(layer))
	return binary.BigEndian.AppendUint32(buf, counter)
}

// mediaSource feeds a simulcast VP8 camera track (three layers, as
// lksdk.LocalTracks with rids q/h/f) and an Opus microphone track from one
// goroutine, which the test's cleanup stops.
type mediaSource struct {
	tag    byte
	layers []*lksdk.LocalTrack // nil without video
	audio  *lksdk.LocalTrack   // nil without audio
	keyReq [3]atomic.Bool      // a PLI or FIR arrived for that layer
	// muted stops the writes, as lksdk's own sample writer does for a muted
	// publication.
	muted atomic.Bool

	// videoPub and audioPub are set by participant.publish.
	videoPub, audioPub *lksdk.LocalTrackPublication
}

// setMuted mutes or unmutes both published tracks, and stops or resumes
// sending their media.
func (m *mediaSource) setMuted(muted bool) {
	m.muted.Store(muted)
	for _, pub := range []*lksdk.LocalTrackPublication{m.videoPub, m.audioPub} {
		if pub != nil {
			pub.SetMuted(muted)
		}
	}
}

// newMediaSource creates the tracks and starts feeding them. Writes are
// dropped until the SDK binds a track to its PeerConnection.
func newMediaSource(t *testing.T, tag byte, video, audio bool) *mediaSource {
	t.Helper()
	m := &mediaSource{tag: tag}
	if video {
		simulcastID := fmt.Sprintf("camera-%d", tag)
		for i, spec := range simulcastLayers() {
			lt, err := lksdk.NewLocalTrack(
				webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000},
				lksdk.WithSimulcast(simulcastID, &livekit.VideoLayer{
					Quality: spec.quality,
					Width:   uint32(spec.width),
					Height:  uint32(spec.height),
				}),
				lksdk.WithRTCPHandler(func(pkt rtcp.Packet) {
					switch pkt.(type) {
					case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
						m.keyReq[i].Store(true)
					}
				}),
			)
			if err != nil {
				t.Fatalf("NewLocalTrack(layer %d): %v", i, err)
			}
			m.layers = append(m.layers, lt)
		}
	}
	if audio {
		lt, err := lksdk.NewLocalTrack(webrtc.RTPCodecCapability{
			MimeType:    webrtc.MimeTypeOpus,
			ClockRate:   48000,
			Channels:    2,
			SDPFmtpLine: "minptime=10;useinbandfec=1",
		})
		if err != nil {
			t.Fatalf("NewLocalTrack(opus): %v", err)
		}
		m.audio = lt
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return m
}

func (m *mediaSource) run(ctx context.Context) {
	specs := simulcastLayers()
	videoTick := time.NewTicker(frameDuration)
	defer videoTick.Stop()
	audioTick := time.NewTicker(audioDuration)
	defer audioTick.Stop()
	var frame, audioCount uint32
	var buf []byte
	var keyDue [3]uint32 // frame that answers a PLI; 0: none pending
	for {
		select {
		case <-ctx.Done():
			return
		case <-videoTick.C:
			if m.muted.Load() {
				frame++
				continue
			}
			for i, lt := range m.layers {
				if m.keyReq[i].Swap(false) && keyDue[i] == 0 {
					keyDue[i] = frame + pliDelay
				}
				key := frame%keyframeInterval == 0 || (keyDue[i] != 0 && frame >= keyDue[i])
				if key {
					keyDue[i] = 0
				}
				buf = vp8Frame(buf, m.tag, i, specs[i], frame, key)
				// Errors only mean the track is not (or no longer) bound.
				_ = lt.WriteSample(media.Sample{Data: buf, Duration: frameDuration}, nil)
			}
			frame++
		case <-audioTick.C:
			if m.audio != nil && !m.muted.Load() {
				buf = opusPacket(buf, m.tag, audioCount)
				_ = m.audio.WriteSample(media.Sample{Data: buf, Duration: audioDuration}, nil)
				audioCount++
			}
		}
	}
}

// publish publishes the source's tracks as p and fails the test if the
// server does not accept them.
func (p *participant) publish(m *mediaSource) {
	p.t.Helper()
	lp := p.room.LocalParticipant
	if m.layers != nil {
		pub, err := lp.PublishSimulcastTrack(m.layers, &lksdk.TrackPublicationOptions{
			Name:        "camera",
			Source:      livekit.TrackSource_CAMERA,
			VideoWidth:  1280,
			VideoHeight: 720,
		})
		if err != nil {
			p.t.Fatalf("%s: PublishSimulcastTrack: %v", p.identity, err)
		}
		m.videoPub = pub
	}
	if m.audio != nil {
		pub, err := lp.PublishTrack(m.audio, &lksdk.TrackPublicationOptions{
			Name:   "microphone",
			Source: livekit.TrackSource_MICROPHONE,
		})
		if err != nil {
			p.t.Fatalf("%s: PublishTrack(audio): %v", p.identity, err)
		}
		m.audioPub = pub
	}
}

// publishMedia starts a media source for p and publishes it.
func (p *participant) publishMedia(video, audio bool) *mediaSource {
	p.t.Helper()
	m := newMediaSource(p.t, p.srv.tag(p.identity), video, audio)
	p.publish(m)
	return m
}
