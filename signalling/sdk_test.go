package signalling_test

// Integration tests: a real Stoa server on loopback and participants driven
// by LiveKit's Go SDK (github.com/livekit/server-sdk-go/v2), the client
// Element Call's tooling and LiveKit's own Go users run. The harness is in
// sdktest_helpers_test.go.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"google.golang.org/protobuf/proto"
)

// TestRoomForwarding: two publishers, each with a three-layer simulcast VP8
// camera and an Opus microphone, and three subscribers. Every subscriber
// (and each publisher, for the other's tracks) gets every track, each from
// the right publisher, starting at a key frame, with payloads intact.
func TestRoomForwarding(t *testing.T) {
	srv := startServer(t)
	room := roomName(t, "room")

	// sub-1 is in the room before anything is published; sub-2 and sub-3
	// join when the tracks exist.
	early := srv.join(t, room, "sub-1")
	pubs := srv.joinAll(t, room, "pub-1", "pub-2")
	for _, p := range pubs {
		p.publishMedia(true, true)
	}
	late := srv.joinAll(t, room, "sub-2", "sub-3")

	deadline := time.Now().Add(mediaTimeout)
	subs := append([]*participant{early}, late...)
	for _, s := range subs {
		s.waitReceiving(deadline, "pub-1", "pub-2")
	}
	pubs[0].waitReceiving(deadline, "pub-2")
	pubs[1].waitReceiving(deadline, "pub-1")

	for _, p := range append(subs, pubs...) {
		p.mu.Lock()
		want := 4
		if strings.HasPrefix(p.identity, "pub-") {
			want = 2
		}
		if len(p.tracks) != want {
			t.Errorf("%s: subscribed to %d tracks, want %d", p.identity, len(p.tracks), want)
		}
		for _, rt := range p.tracks {
			if rt.badCount > 0 {
				t.Errorf("%s: %d bad packets on %s's %s track, first: %v", p.identity, rt.badCount, rt.publisher, rt.kind, rt.bad)
			}
			if rt.kind == webrtc.RTPCodecTypeVideo && (rt.first == nil || !rt.first.keyframe) {
				t.Errorf("%s: the first video packet from %s is not the start of a key frame: %+v", p.identity, rt.publisher, rt.first)
			}
		}
		p.mu.Unlock()
	}
}

// TestSimulcastLayerSwitch: a subscriber asks for LOW, then HIGH, then for
// 640x360. Each switch lands on the asked layer at a key frame, on one SSRC,
// with gapless sequence numbers, increasing timestamps and consecutive VP8
// picture IDs.
func TestSimulcastLayerSwitch(t *testing.T) {
	srv := startServer(t)
	room := roomName(t, "room")
	pub := srv.join(t, room, "pub")
	pub.publishMedia(true, false)
	sub := srv.join(t, room, "sub")

	sub.waitFor(time.Now().Add(mediaTimeout), "video from pub", func() bool {
		return sub.receivingLocked("pub", webrtc.RTPCodecTypeVideo, 10)
	})
	rp := sub.room.GetParticipantByIdentity("pub")
	if rp == nil {
		t.Fatal("sub receives pub's video but does not know pub")
	}
	rpub, ok := rp.GetTrackPublication(livekit.TrackSource_CAMERA).(*lksdk.RemoteTrackPublication)
	if !ok {
		t.Fatal("sub has no camera publication for pub")
	}
	sub.mu.Lock()
	rt := sub.tracksFromLocked("pub", webrtc.RTPCodecTypeVideo)[0]
	sub.mu.Unlock()

	// waitLayer waits until ten frames in a row came from layer and returns
	// the packets received since shortly before the request: the last ten
	// before it show the old layer even if the SFU stops forwarding it as
	// soon as it is asked to switch.
	sub.update(func() { rt.recording = true })
	waitLayer := func(layer int, request func()) []packetInfo {
		t.Helper()
		sub.mu.Lock()
		mark := max(0, len(rt.recorded)-10)
		sub.mu.Unlock()
		request()
		sub.waitFor(time.Now().Add(mediaTimeout), fmt.Sprintf("ten frames in a row from layer %d", layer), func() bool {
			return rt.lastLayer == layer && rt.run >= 10
		})
		sub.mu.Lock()
		defer sub.mu.Unlock()
		if rt.badCount > 0 {
			t.Fatalf("%d bad packets, first: %v", rt.badCount, rt.bad)
		}
		return slices.Clone(rt.recorded[mark:])
	}

	waitLayer(0, func() {
		if err := rpub.SetVideoQuality(livekit.VideoQuality_LOW); err != nil {
			t.Fatalf("SetVideoQuality(LOW): %v", err)
		}
	})
	rec := waitLayer(2, func() {
		if err := rpub.SetVideoQuality(livekit.VideoQuality_HIGH); err != nil {
			t.Fatalf("SetVideoQuality(HIGH): %v", err)
		}
	})
	for _, problem := range switchProblems(rec, rt.ssrc, 0, 2) {
		t.Errorf("LOW -> HIGH: %s", problem)
	}
	// The Go SDK sends the dimensions together with the last quality asked
	// (HIGH): the dimensions must win.
	rec = waitLayer(1, func() { rpub.SetVideoDimensions(640, 360) })
	for _, problem := range switchProblems(rec, rt.ssrc, 2, 1) {
		t.Errorf("HIGH -> 640x360: %s", problem)
	}
}

// switchProblems checks packets recorded, in arrival order, across a layer
// switch from one layer to another.
func switchProblems(rec []packetInfo, ssrc uint32, from, to int) []string {
	var problems []string
	report := func(format string, args ...any) {
		if len(problems) < 10 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	if len(rec) == 0 {
		return []string{"no packets recorded"}
	}

	// Sequence order, one entry per sequence number: retransmissions and
	// duplicates must repeat the packet they stand for.
	type entry struct {
		ext int64
		packetInfo
	}
	exts := extSeqs(rec)
	bySeq := map[int64]packetInfo{}
	var pkts []entry
	for i, pk := range rec {
		if pk.ssrc != ssrc {
			report("seq %d on SSRC %d, want the track's SSRC %d", pk.seq, pk.ssrc, ssrc)
		}
		if prev, dup := bySeq[exts[i]]; dup {
			if prev.padding != pk.padding || prev.ts != pk.ts || prev.layer != pk.layer || prev.counter != pk.counter {
				report("seq %d reused for a different packet (ts %d layer %d, then ts %d layer %d)", pk.seq, prev.ts, prev.layer, pk.ts, pk.layer)
			}
			continue
		}
		bySeq[exts[i]] = pk
		pkts = append(pkts, entry{exts[i], pk})
	}
	slices.SortFunc(pkts, func(a, b entry) int { return int(a.ext - b.ext) })

	var (
		haveFrame bool   // a frame start has been seen
		frameTS   uint32 // its timestamp
		pictureID uint16 // and picture ID
		layer     = -1
		sawFrom   bool
	)
	for i, pk := range pkts {
		if i > 0 && pk.ext != pkts[i-1].ext+1 {
			report("sequence gap: %d is followed by %d", pkts[i-1].seq, pk.seq)
		}
		if pk.padding {
			continue // takes a sequence number, carries no media
		}
		if layer >= 0 && pk.layer != layer {
			if !pk.frameStart || !pk.keyframe {
				report("switch from layer %d to %d at seq %d, which does not start a key frame", layer, pk.layer, pk.seq)
			}
			if haveFrame && int32(pk.ts-frameTS) > 5*90000 {
				report("timestamp jumps by %d at the switch to layer %d (seq %d)", int32(pk.ts-frameTS), pk.layer, pk.seq)
			}
		}
		if layer < 0 || pk.layer != layer {
			layer = pk.layer
		}
		if layer == from {
			sawFrom = true
		}
		if !pk.frameStart {
			if haveFrame && pk.ts != frameTS {
				report("seq %d continues a frame with timestamp %d but carries %d", pk.seq, frameTS, pk.ts)
			}
			continue
		}
		if haveFrame {
			if int32(pk.ts-frameTS) <= 0 {
				report("timestamp does not increase at seq %d: %d after %d", pk.seq, pk.ts, frameTS)
			}
			if pk.pictureID != (pictureID+1)&0x7fff {
				report("picture ID %d at seq %d follows %d", pk.pictureID, pk.seq, pictureID)
			}
		}
		haveFrame, frameTS, pictureID = true, pk.ts, pk.pictureID
	}
	if !sawFrom {
		report("no packet of layer %d recorded before the switch", from)
	}
	if layer != to {
		report("recording ends on layer %d, want %d", layer, to)
	}
	if len(problems) > 0 {
		problems = append(problems, "recorded, in sequence order: "+layerRuns(rec, pkts[0].ext))
	}
	return problems
}

// layerRuns summarises a recording as runs of packets per layer, e.g.
// "seq 100: L0x12 L2x30 pad x2 L2x8", in sequence order from first.
func layerRuns(rec []packetInfo, first int64) string {
	sorted := slices.Clone(rec)
	exts := extSeqs(rec)
	idx := make([]int, len(rec))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return int(exts[a] - exts[b]) })
	for i, j := range idx {
		sorted[i] = rec[j]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "seq %d:", uint16(first))
	for i := 0; i < len(sorted); {
		j := i
		for j < len(sorted) && sorted[j].layer == sorted[i].layer && sorted[j].padding == sorted[i].padding {
			j++
		}
		if sorted[i].padding {
			fmt.Fprintf(&b, " pad x%d", j-i)
		} else {
			fmt.Fprintf(&b, " L%dx%d", sorted[i].layer, j-i)
		}
		i = j
	}
	return b.String()
}

// TestMuteSeenByOthers: a publisher mutes and unmutes its camera and
// microphone; everyone else sees both changes, and media flows again.
func TestMuteSeenByOthers(t *testing.T) {
	srv := startServer(t)
	room := roomName(t, "room")
	pub := srv.join(t, room, "pub")
	m := pub.publishMedia(true, true)
	observers := srv.joinAll(t, room, "obs-1", "obs-2")

	deadline := time.Now().Add(mediaTimeout)
	for _, o := range observers {
		o.waitReceiving(deadline, "pub")
	}
	sids := []string{m.videoPub.SID(), m.audioPub.SID()}

	for _, muted := range []bool{true, false} {
		m.setMuted(muted)
		deadline := time.Now().Add(mediaTimeout)
		for _, o := range observers {
			o.waitFor(deadline, fmt.Sprintf("pub's tracks %v muted=%v", sids, muted), func() bool {
				for _, sid := range sids {
					if got, ok := lastMute(o.mutes, "pub", sid); !ok || got != muted {
						return false
					}
				}
				return true
			})
			rp := o.room.GetParticipantByIdentity("pub")
			if rp == nil {
				t.Fatalf("%s no longer knows pub", o.identity)
			}
			for _, pub := range rp.TrackPublications() {
				if pub.IsMuted() != muted {
					t.Errorf("%s: pub's %s publication IsMuted()=%v, want %v", o.identity, pub.Kind(), pub.IsMuted(), muted)
				}
			}
		}
	}

	// Unmuted media reaches everyone again.
	deadline = time.Now().Add(mediaTimeout)
	for _, o := range observers {
		video := o.packetCount("pub", webrtc.RTPCodecTypeVideo)
		audio := o.packetCount("pub", webrtc.RTPCodecTypeAudio)
		o.waitFor(deadline, "media from pub after unmute", func() bool {
			return o.receivingLocked("pub", webrtc.RTPCodecTypeVideo, video+20) &&
				o.receivingLocked("pub", webrtc.RTPCodecTypeAudio, audio+25)
		})
	}
}

// lastMute returns the latest mute state seen for a track.
func lastMute(events []muteEvent, identity, sid string) (muted, ok bool) {
	for _, e := range events {
		if e.identity == identity && e.trackSID == sid {
			muted, ok = e.muted, true
		}
	}
	return muted, ok
}

// TestTargetedData: a reliable packet for [b] reaches b and not c. c gets a
// broadcast sent after it on the same ordered channel, which proves c was
// listening and the targeted packet would have come first.
func TestTargetedData(t *testing.T) {
	srv := startServer(t)
	room := roomName(t, "room")
	ps := srv.joinAll(t, room, "a", "b", "c")
	a, b, c := ps[0], ps[1], ps[2]

	got := func(p *participant, payload string) int {
		n := 0
		for _, d := range p.data {
			if d.payload == payload {
				n++
				if d.sender != "a" {
					p.t.Errorf("%s: %q from %q, want sender a", p.identity, payload, d.sender)
				}
			}
		}
		return n
	}
	gotPrefix := func(p *participant, prefix string) bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return slices.ContainsFunc(p.data, func(d dataEvent) bool { return strings.HasPrefix(d.payload, prefix) })
	}
	send := func(payload string, to ...string) {
		t.Helper()
		opts := []lksdk.DataPublishOption{lksdk.WithDataPublishReliable(true)}
		if len(to) > 0 {
			opts = append(opts, lksdk.WithDataPublishDestination(to))
		}
		if err := a.room.LocalParticipant.PublishDataPacket(lksdk.UserData([]byte(payload)), opts...); err != nil {
			t.Fatalf("a: PublishDataPacket(%q): %v", payload, err)
		}
	}

	// Data channels open after the PeerConnections connect: broadcast until
	// both receivers have one.
	timeout := time.NewTimer(mediaTimeout)
	defer timeout.Stop()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for i := 0; !gotPrefix(b, "ready-") || !gotPrefix(c, "ready-"); i++ {
		send(fmt.Sprintf("ready-%d", i))
		select {
		case <-tick.C:
		case <-timeout.C:
			t.Fatal("b and c do not both receive a's broadcasts")
		}
	}

	send("for-b-only", "b")
	send("for-everyone")

	deadline := time.Now().Add(mediaTimeout)
	b.waitFor(deadline, "the targeted and the broadcast packet", func() bool {
		return got(b, "for-b-only") == 1 && got(b, "for-everyone") == 1
	})
	c.waitFor(deadline, "the broadcast packet", func() bool { return got(c, "for-everyone") == 1 })
	c.mu.Lock()
	if n := got(c, "for-b-only"); n != 0 {
		t.Errorf("c received the packet addressed to b only (%d times)", n)
	}
	c.mu.Unlock()
	b.mu.Lock()
	order := slices.IndexFunc(b.data, func(d dataEvent) bool { return d.payload == "for-b-only" }) <
		slices.IndexFunc(b.data, func(d dataEvent) bool { return d.payload == "for-everyone" })
	b.mu.Unlock()
	if !order {
		t.Error("b received the reliable packets out of order")
	}
}

// TestLeaveSeenByEveryone: a publishing participant leaves; all others learn
// it promptly.
func TestLeaveSeenByEveryone(t *testing.T) {
	srv := startServer(t)
	room := roomName(t, "room")
	ps := srv.joinAll(t, room, "p-1", "p-2", "p-3", "leaver")
	stay, leaver := ps[:3], ps[3]
	leaver.publishMedia(false, true)

	deadline := time.Now().Add(mediaTimeout)
	for _, p := range stay {
		p.waitFor(deadline, "audio from leaver", func() bool {
			return p.receivingLocked("leaver", webrtc.RTPCodecTypeAudio, 5)
		})
	}

	leaver.close()
	// A clean leave is announced at once, not after a media timeout.
	deadline = time.Now().Add(5 * time.Second)
	for _, p := range stay {
		p.waitFor(deadline, "leaver's departure", func() bool { return p.disconnected["leaver"] })
	}
	for _, p := range stay {
		p.mu.Lock()
		if len(p.disconnected) != 1 {
			t.Errorf("%s saw %v leave, want only leaver", p.identity, p.disconnected)
		}
		p.mu.Unlock()
	}
}

// TestBadTokensRejected: tokens that are expired, forged, signed for an
// unknown key, malformed or without roomJoin are refused with 401; a token
// for room X only ever enters X.
func TestBadTokensRejected(t *testing.T) {
	srv := startServer(t)
	roomX, roomY := roomName(t, "x"), roomName(t, "y")
	now := time.Now()

	forged, err := auth.NewAccessToken(srv.key, "another-secret-of-at-least-32-characters").
		SetVideoGrant(&auth.VideoGrant{RoomJoin: true, Room: roomX}).
		SetIdentity("forger").SetValidFor(time.Hour).ToJWT()
	if err != nil {
		t.Fatal(err)
	}
	unknownKey, err := auth.NewAccessToken("unknown-key", srv.secret).
		SetVideoGrant(&auth.VideoGrant{RoomJoin: true, Room: roomX}).
		SetIdentity("stranger").SetValidFor(time.Hour).ToJWT()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, token string }{
		{"expired", signHS256(t, srv.secret, map[string]any{
			"iss": srv.key, "sub": "late", "nbf": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix(),
			"video": map[string]any{"roomJoin": true, "room": roomX},
		})},
		{"forged", forged},
		{"unknown-key", unknownKey},
		{"malformed", "not-a-jwt"},
		{"no-room-join", srv.token(t, roomX, "no-join", func(g *auth.VideoGrant) { g.RoomJoin = false })},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := srv.newParticipant(t, tc.name)
			err := p.connect(tc.token)
			if err == nil {
				p.close()
				t.Fatal("connected")
			}
			if msg := strings.ToLower(err.Error()); !strings.Contains(msg, "unauthorized") && !strings.Contains(msg, "401") {
				t.Errorf("error %q mentions neither unauthorized nor 401", err)
			}
		})
	}

	t.Run("room-from-token", func(t *testing.T) {
		inX := srv.join(t, roomX, "in-x")
		inY := srv.join(t, roomY, "in-y")
		intruder := srv.join(t, roomX, "intruder")
		if got := intruder.room.Name(); got != roomX {
			t.Errorf("a token for %s joined %q", roomX, got)
		}
		inX.waitFor(time.Now().Add(mediaTimeout), "the intruder in X", func() bool { return inX.connected["intruder"] })
		if inY.room.GetParticipantByIdentity("intruder") != nil {
			t.Error("the intruder with a token for X appears in Y")
		}

		// A room named in the URL is ignored: the token decides. This also
		// takes the token from access_token, as browsers send it.
		q := url.Values{
			"access_token":   {srv.token(t, roomX, "url-intruder")},
			"room":           {roomY},
			"protocol":       {"17"},
			"auto_subscribe": {"1"},
			"sdk":            {"go"},
			"version":        {"2.19.0"},
		}
		ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
		defer cancel()
		conn, resp, err := websocket.DefaultDialer.DialContext(ctx, srv.url+"/rtc?"+q.Encode(), nil)
		if err != nil {
			status := "none"
			if resp != nil {
				status = resp.Status
			}
			t.Fatalf("dial /rtc with access_token: %v (HTTP status %s)", err, status)
		}
		defer conn.Close()
		if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		_, msg, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("read the first signal message: %v", err)
		}
		var res livekit.SignalResponse
		if err := proto.Unmarshal(msg, &res); err != nil {
			t.Fatalf("first signal message: %v", err)
		}
		join := res.GetJoin()
		if join == nil {
			t.Fatalf("first signal message is %T, want join", res.GetMessage())
		}
		if got := join.GetRoom().GetName(); got != roomX {
			t.Errorf("?room=%s with a token for %s joined %q", roomY, roomX, got)
		}
		leave, err := proto.Marshal(&livekit.SignalRequest{Message: &livekit.SignalRequest_Leave{
			Leave: &livekit.LeaveRequest{Reason: livekit.DisconnectReason_CLIENT_INITIATED, Action: livekit.LeaveRequest_DISCONNECT},
		}})
		if err != nil {
			t.Fatal(err)
		}
		if err := conn.WriteMessage(websocket.BinaryMessage, leave); err != nil {
			t.Errorf("send leave: %v", err)
		}
	})
}

// TestPublishWithoutPermission: a participant whose token says
// canPublish=false cannot publish, and media from a legitimate publisher
// keeps flowing meanwhile.
func TestPublishWithoutPermission(t *testing.T) {
	srv := startServer(t)
	room := roomName(t, "room")
	legit := srv.join(t, room, "legit")
	legit.publishMedia(true, true)
	watcher := srv.join(t, room, "watcher")
	denied := srv.join(t, room, "denied", func(g *auth.VideoGrant) { g.SetCanPublish(false) })

	deadline := time.Now().Add(mediaTimeout)
	watcher.waitReceiving(deadline, "legit")
	denied.waitReceiving(deadline, "legit")

	// The Go SDK offers the track at once and waits up to 10 s for
	// track_published; audio flows to the server in the meantime.
	m := newMediaSource(t, srv.tag("denied"), false, true)
	if _, err := denied.room.LocalParticipant.PublishTrack(m.audio, &lksdk.TrackPublicationOptions{
		Name:   "microphone",
		Source: livekit.TrackSource_MICROPHONE,
	}); err == nil {
		t.Error("a participant without canPublish published a track")
	}

	deadline = time.Now().Add(mediaTimeout)
	for _, p := range []*participant{watcher, denied} {
		video := p.packetCount("legit", webrtc.RTPCodecTypeVideo)
		audio := p.packetCount("legit", webrtc.RTPCodecTypeAudio)
		p.waitFor(deadline, "legit's media after the refused publish", func() bool {
			return p.receivingLocked("legit", webrtc.RTPCodecTypeVideo, video+20) &&
				p.receivingLocked("legit", webrtc.RTPCodecTypeAudio, audio+25)
		})
	}
	for _, p := range []*participant{watcher, legit} {
		p.mu.Lock()
		if n := len(p.published["denied"]); n != 0 {
			t.Errorf("%s was told of %d tracks from denied", p.identity, n)
		}
		if n := len(p.tracksFromLocked("denied", webrtc.RTPCodecTypeAudio)); n != 0 {
			t.Errorf("%s subscribed to denied's audio", p.identity)
		}
		p.mu.Unlock()
	}
}

// The checks below read what the generator in sdktest_helpers_test.go
// writes.

// parseRecord reads a frame's record and checks the filler after it.
func parseRecord(b []byte, info *packetInfo) error {
	if len(b) < recordSize || string(b[:len(magic)]) != magic {
		return errors.New("frame start without the generator's record")
	}
	b = b[len(magic):]
	info.tag, info.layer, info.counter = b[0], int(b[1]), binary.BigEndian.Uint32(b[2:6])
	return checkFiller(b[6:], info.tag, info.layer)
}

// checkFiller checks that b is all filler of tag and layer.
func checkFiller(b []byte, tag byte, layer int) error {
	want := tag<<2 | byte(layer)
	for i, c := range b {
		if c != want {
			return fmt.Errorf("filler byte %d is %#x, want %#x (payload altered or spliced)", i, c, want)
		}
	}
	return nil
}

// parseVideo reads a VP8 RTP packet (RFC 7741) the way an SFU would.
func parseVideo(pkt *rtp.Packet) (packetInfo, error) {
	info := packetInfo{seq: pkt.SequenceNumber, ts: pkt.Timestamp, ssrc: pkt.SSRC}
	var d codecs.VP8Packet
	b, err := d.Unmarshal(pkt.Payload)
	if err != nil {
		return info, fmt.Errorf("VP8 payload descriptor: %w", err)
	}
	if d.I != 1 {
		return info, errors.New("VP8 payload descriptor without picture ID")
	}
	info.pictureID = d.PictureID
	if len(b) == 0 {
		return info, errors.New("empty VP8 payload")
	}
	if d.S == 0 || d.PID != 0 {
		// Continuation: filler only, which names the source and layer.
		info.tag, info.layer = b[0]>>2, int(b[0]&3)
		if info.layer > 2 {
			return info, fmt.Errorf("continuation byte %#x names no video layer", b[0])
		}
		return info, checkFiller(b, info.tag, info.layer)
	}
	info.frameStart = true
	hdr := 3
	if b[0]&1 == 0 {
		info.keyframe = true
		hdr = 10
		if len(b) < hdr || b[3] != 0x9d || b[4] != 0x01 || b[5] != 0x2a {
			return info, errors.New("key frame without the VP8 start code")
		}
		info.width = binary.LittleEndian.Uint16(b[6:8]) & 0x3fff
		info.height = binary.LittleEndian.Uint16(b[8:10]) & 0x3fff
	}
	if len(b) < hdr {
		return info, errors.New("short VP8 frame header")
	}
	if err := parseRecord(b[hdr:], &info); err != nil {
		return info, err
	}
	if info.layer > 2 {
		return info, fmt.Errorf("frame names layer %d", info.layer)
	}
	if info.keyframe {
		spec := simulcastLayers()[info.layer]
		if info.width != spec.width || info.height != spec.height {
			return info, fmt.Errorf("layer %d key frame is %dx%d, want %dx%d", info.layer, info.width, info.height, spec.width, spec.height)
		}
	}
	return info, nil
}

// parseAudio reads a generated Opus packet.
func parseAudio(pkt *rtp.Packet) (packetInfo, error) {
	info := packetInfo{seq: pkt.SequenceNumber, ts: pkt.Timestamp, ssrc: pkt.SSRC}
	if len(pkt.Payload) < 1 || pkt.Payload[0] != opusTOC {
		return info, fmt.Errorf("Opus packet without the generator's TOC byte: % x", pkt.Payload[:min(4, len(pkt.Payload))])
	}
	if err := parseRecord(pkt.Payload[1:], &info); err != nil {
		return info, err
	}
	if info.layer != audioLayer {
		return info, fmt.Errorf("audio packet names layer %d", info.layer)
	}
	return info, nil
}

// isPadding reports a padding-only packet (RFC 3550 §5.1), such as an SFU
// sends to probe bandwidth: P bit set and no payload but zeros. LiveKit's
// carry, before the padding, 255 more bytes shaped as padding (zeros, then a
// length byte). Generated media is never padded, and its VP8 payload
// descriptor never starts with a zero byte.
func isPadding(pkt *rtp.Packet) bool {
	if !pkt.Padding {
		return false
	}
	for i, c := range pkt.Payload {
		if c != 0 && i != len(pkt.Payload)-1 {
			return false
		}
	}
	return true
}

// extSeqs unwraps 16-bit sequence numbers, in the order given, into a
// monotonic space anchored at the first one.
func extSeqs(pkts []packetInfo) []int64 {
	out := make([]int64, len(pkts))
	var last int64
	for i, pk := range pkts {
		if i == 0 {
			last = int64(pk.seq)
		} else {
			last += int64(int16(pk.seq - uint16(last)))
		}
		out[i] = last
	}
	return out
}

// TestMediaGeneratorRoundTrip checks the harness itself, without a server:
// generated frames survive pion's VP8 packetiser and parse back, damage is
// detected, and switchProblems accepts a clean switch but not a broken one.
func TestMediaGeneratorRoundTrip(t *testing.T) {
	const ssrc = 1234
	// packetise returns the packets of frames 0..n-1 of layer, with a key
	// frame at keyAt, numbered from seq0 with timestamps from ts0.
	packetise := func(layer int, first, n, keyAt int, seq0 uint16, ts0 uint32, pid0 uint16) []*rtp.Packet {
		spec := simulcastLayers()[layer]
		var out []*rtp.Packet
		seq := seq0
		var buf []byte
		for f := 0; f < n; f++ {
			buf = vp8Frame(buf, 7, layer, spec, uint32(first+f), first+f == keyAt)
			pl := &codecs.VP8Payloader{EnablePictureID: true}
			for range int(pid0) + f { // advance the picture ID
				pl.Payload(1200, []byte{0})
			}
			payloads := pl.Payload(1200-12, buf)
			for i, p := range payloads {
				out = append(out, &rtp.Packet{
					Header: rtp.Header{
						Version: 2, PayloadType: 96, SequenceNumber: seq, SSRC: ssrc,
						Timestamp: ts0 + uint32(f)*3000, Marker: i == len(payloads)-1,
					},
					Payload: p,
				})
				seq++
			}
		}
		return out
	}
	parseAll := func(pkts []*rtp.Packet) []packetInfo {
		t.Helper()
		var infos []packetInfo
		for _, p := range pkts {
			info, err := parseVideo(p)
			if err != nil {
				t.Fatalf("seq %d: %v", p.SequenceNumber, err)
			}
			infos = append(infos, info)
		}
		return infos
	}

	for layer := range simulcastLayers() {
		infos := parseAll(packetise(layer, 0, 3, 0, 65534, 1000, 0))
		if !infos[0].frameStart || !infos[0].keyframe || infos[0].layer != layer || infos[0].tag != 7 {
			t.Errorf("layer %d: first packet parses as %+v", layer, infos[0])
		}
		for _, in := range infos {
			if in.layer != layer || (in.frameStart && in.keyframe != (in.counter == 0)) {
				t.Errorf("layer %d: packet parses as %+v", layer, in)
			}
		}
	}
	audio := &rtp.Packet{Payload: opusPacket(nil, 9, 42)}
	if info, err := parseAudio(audio); err != nil || info.tag != 9 || info.counter != 42 {
		t.Errorf("opus packet parses as %+v, %v", info, err)
	}
	damaged := packetise(2, 0, 1, 0, 1, 1, 0)
	damaged[1].Payload[len(damaged[1].Payload)-1] ^= 0xff
	if _, err := parseVideo(damaged[1]); err == nil {
		t.Error("a damaged continuation packet parses")
	}

	// A clean switch, as an SFU forwards it: frames 0-9 of layer 0, then from
	// the key frame at 10 on layer 2, renumbered to continue seamlessly.
	low := packetise(0, 0, 10, 0, 65530, 5000, 100)
	last := low[len(low)-1]
	high := packetise(2, 10, 5, 10, last.SequenceNumber+1, last.Timestamp+3000, 110)
	clean := parseAll(append(slices.Clone(low), high...))
	if problems := switchProblems(clean, ssrc, 0, 2); len(problems) > 0 {
		t.Errorf("clean switch: %v", problems)
	}
	// A bandwidth probe between the layers, shaped like LiveKit's: P bit, a
	// payload of 254 zeros and 0xff, then 255 bytes of padding.
	probe := &rtp.Packet{
		Header:  rtp.Header{Version: 2, Padding: true, PaddingSize: 255, SequenceNumber: last.SequenceNumber + 1, SSRC: ssrc, Timestamp: 1},
		Payload: append(make([]byte, 254), 0xff),
	}
	raw, err := probe.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var probed rtp.Packet
	if err := probed.Unmarshal(raw); err != nil || !isPadding(&probed) {
		t.Fatalf("a padding probe is not recognised (%v)", err)
	}
	padded := append(slices.Clone(low), &probed)
	padded = append(padded, packetise(2, 10, 5, 10, last.SequenceNumber+2, last.Timestamp+3000, 110)...)
	var paddedInfos []packetInfo
	for _, p := range padded {
		if isPadding(p) {
			paddedInfos = append(paddedInfos, packetInfo{seq: p.SequenceNumber, ssrc: p.SSRC, ts: p.Timestamp, padding: true})
			continue
		}
		paddedInfos = append(paddedInfos, parseAll([]*rtp.Packet{p})...)
	}
	if problems := switchProblems(paddedInfos, ssrc, 0, 2); len(problems) > 0 {
		t.Errorf("clean switch with a padding probe: %v", problems)
	}
	retransmitted := append(slices.Clone(clean), clean[len(clean)-3])
	if problems := switchProblems(retransmitted, ssrc, 0, 2); len(problems) > 0 {
		t.Errorf("clean switch with a retransmission: %v", problems)
	}
	gap := slices.Delete(slices.Clone(clean), 12, 13)
	if problems := switchProblems(gap, ssrc, 0, 2); len(problems) == 0 {
		t.Error("a sequence gap passes")
	}
	midGOP := parseAll(append(slices.Clone(low), packetise(2, 10, 5, 0, last.SequenceNumber+1, last.Timestamp+3000, 110)...))
	if problems := switchProblems(midGOP, ssrc, 0, 2); len(problems) == 0 {
		t.Error("a switch at a delta frame passes")
	}
	rawTS := parseAll(append(slices.Clone(low), packetise(2, 10, 5, 10, last.SequenceNumber+1, 1<<30, 110)...))
	if problems := switchProblems(rawTS, ssrc, 0, 2); len(problems) == 0 {
		t.Error("an unrewritten timestamp passes")
	}
	rawPID := parseAll(append(slices.Clone(low), packetise(2, 10, 5, 10, last.SequenceNumber+1, last.Timestamp+3000, 4000)...))
	if problems := switchProblems(rawPID, ssrc, 0, 2); len(problems) == 0 {
		t.Error("an unrewritten picture ID passes")
	}
}
