package sfu

import (
	"bytes"
	"sync"
	"testing"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// fakeContext is the part of pion's TrackLocalContext a DownTrack uses.
type fakeContext struct {
	codecs []webrtc.RTPCodecParameters
	w      webrtc.TrackLocalWriter
	rtx    webrtc.SSRC
}

func (c *fakeContext) CodecParameters() []webrtc.RTPCodecParameters { return c.codecs }
func (c *fakeContext) HeaderExtensions() []webrtc.RTPHeaderExtensionParameter {
	return nil
}
func (c *fakeContext) SSRC() webrtc.SSRC                       { return 0xCAFE }
func (c *fakeContext) SSRCRetransmission() webrtc.SSRC         { return c.rtx }
func (c *fakeContext) SSRCForwardErrorCorrection() webrtc.SSRC { return 0 }
func (c *fakeContext) WriteStream() webrtc.TrackLocalWriter    { return c.w }
func (c *fakeContext) ID() string                              { return "ctx" }
func (c *fakeContext) RTCPReader() interceptor.RTCPReader      { return nil }

// recorder keeps what a DownTrack writes.
type recorder struct {
	mu       sync.Mutex
	headers  []rtp.Header
	payloads [][]byte
}

func (r *recorder) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.headers = append(r.headers, *h)
	r.payloads = append(r.payloads, append([]byte(nil), payload...))
	return len(payload), nil
}

func (r *recorder) Write(b []byte) (int, error) { return len(b), nil }

// discard is a writer that keeps nothing, for benchmarks.
type discard struct{}

func (discard) WriteRTP(_ *rtp.Header, payload []byte) (int, error) { return len(payload), nil }
func (discard) Write(b []byte) (int, error)                         { return len(b), nil }

var vp8Codec = webrtc.RTPCodecParameters{
	RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000},
	PayloadType:        96,
}

// vp8Packet builds a VP8 payload with a 15-bit picture id; key makes it the
// first packet of a keyframe (RFC 7741 §4.2, RFC 6386 §9.1).
func vp8Packet(pictureID uint16, key bool) []byte {
	b := []byte{0x90, 0x80, 0x80 | byte(pictureID>>8), byte(pictureID)}
	if key {
		b = append(b, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xb4, 0x00)
	} else {
		b = append(b, 0x11, 0x02, 0x00)
	}
	return append(b, bytes.Repeat([]byte{0xEE}, 1000)...)
}

func newBoundDownTrack(t testing.TB, layers int, w webrtc.TrackLocalWriter) *DownTrack {
	t.Helper()
	up := NewUpTrack("TR_test", webrtc.RTPCodecTypeVideo, vp8Codec, layers, nil)
	d := up.NewDownTrack("PA_x|TR_test", 0)
	codec, err := d.Bind(&fakeContext{codecs: []webrtc.RTPCodecParameters{{
		RTPCodecCapability: vp8Codec.RTPCodecCapability, PayloadType: 120,
	}}, w: w})
	if err != nil {
		t.Fatal(err)
	}
	if codec.PayloadType != 120 {
		t.Fatalf("bound payload type %d, want 120", codec.PayloadType)
	}
	d.setReady(true)
	return d
}

// layerSource produces a layer's packets: its own SSRC, sequence numbers,
// timestamps and picture ids, as a browser's simulcast encodings have.
type layerSource struct {
	h   rtp.Header
	pid uint16
}

func (s *layerSource) next(key bool, frameEnd bool) (*rtp.Header, []byte) {
	s.h.SequenceNumber++
	h := s.h
	h.Marker = frameEnd
	p := vp8Packet(s.pid, key)
	if frameEnd {
		s.pid = (s.pid + 1) & 0x7fff
		s.h.Timestamp += 3000
	}
	return &h, p
}

func TestDownTrackSwitchesLayersAtKeyframes(t *testing.T) {
	rec := &recorder{}
	d := newBoundDownTrack(t, 3, rec)
	low := &layerSource{h: rtp.Header{Version: 2, SSRC: 111, SequenceNumber: 65530, Timestamp: 1000}, pid: 32760}
	high := &layerSource{h: rtp.Header{Version: 2, SSRC: 333, SequenceNumber: 9000, Timestamp: 4_000_000_000}, pid: 5}
	now := int64(1e9)
	send := func(layer int32, s *layerSource, key bool) {
		now += 33e6
		h, p := s.next(key, true)
		d.writeRTP(layer, h, p, key, now)
	}

	send(0, low, false) // no keyframe yet: dropped
	send(2, high, true) // not the target: dropped
	if len(rec.headers) != 0 {
		t.Fatalf("forwarded %d packets before a keyframe of the target layer", len(rec.headers))
	}
	send(0, low, true)
	for range 10 {
		send(0, low, false)
		send(2, high, false)
	}
	d.SetLayer(2)
	send(2, high, false) // not a keyframe: the switch waits
	send(0, low, false)
	send(2, high, true)
	send(0, low, false) // old layer after the switch: dropped
	for range 10 {
		send(2, high, false)
	}

	if got := d.Layer(); got != 2 {
		t.Fatalf("forwarding layer %d, want 2", got)
	}
	want := 1 + 10 + 1 + 1 + 10
	if len(rec.headers) != want {
		t.Fatalf("forwarded %d packets, want %d", len(rec.headers), want)
	}
	for i, h := range rec.headers {
		if h.SSRC != 0xCAFE || h.PayloadType != 120 {
			t.Fatalf("packet %d: ssrc %x pt %d, want the subscriber's", i, h.SSRC, h.PayloadType)
		}
		if i == 0 {
			continue
		}
		prev := rec.headers[i-1]
		if h.SequenceNumber != prev.SequenceNumber+1 {
			t.Fatalf("packet %d: sequence %d after %d", i, h.SequenceNumber, prev.SequenceNumber)
		}
		if int32(h.Timestamp-prev.Timestamp) <= 0 {
			t.Fatalf("packet %d: timestamp %d after %d", i, h.Timestamp, prev.Timestamp)
		}
		pid := uint16(rec.payloads[i][2]&0x7f)<<8 | uint16(rec.payloads[i][3])
		ppid := uint16(rec.payloads[i-1][2]&0x7f)<<8 | uint16(rec.payloads[i-1][3])
		if pid != (ppid+1)&0x7fff {
			t.Fatalf("packet %d: picture id %d after %d", i, pid, ppid)
		}
	}
	if first := rec.payloads[12]; first[4]&0x01 != 0 {
		t.Fatalf("first packet after the switch is not a keyframe")
	}
}

func TestDownTrackNeverModifiesSharedPayload(t *testing.T) {
	recs := []*recorder{{}, {}, {}}
	var downs []*DownTrack
	for _, r := range recs {
		downs = append(downs, newBoundDownTrack(t, 1, r))
	}
	// Different histories make each subscriber's picture ids differ.
	src := &layerSource{h: rtp.Header{Version: 2, SSRC: 1, SequenceNumber: 1}, pid: 100}
	for i, d := range downs {
		for range i {
			h, p := src.next(true, true)
			d.writeRTP(0, h, p, true, 1)
		}
	}
	h, p := src.next(true, true)
	orig := append([]byte(nil), p...)
	for _, d := range downs {
		d.writeRTP(0, h, p, true, 2)
	}
	if !bytes.Equal(p, orig) {
		t.Fatal("the shared payload was modified")
	}
}

// marshaller marshals what a DownTrack writes into a buffer the size of
// pion's SRTP pool, as the real write path does.
type marshaller struct{ out [][]byte }

func (m *marshaller) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	buf := make([]byte, 1492)
	n, err := (&rtp.Packet{Header: *h, Payload: payload}).MarshalTo(buf)
	if err != nil {
		return 0, err
	}
	m.out = append(m.out, buf[:n])
	return n, nil
}

func (m *marshaller) Write(b []byte) (int, error) { return len(b), nil }

// TestPaddedPacketsForwarded sends large padded packets (a hostile publisher
// once crashed the server with one) and a padding-only probe through the
// parse and forward steps: what the subscriber gets carries the same
// payload and padding.
func TestPaddedPacketsForwarded(t *testing.T) {
	m := &marshaller{}
	d := newBoundDownTrack(t, 1, m)
	for i, tc := range []struct{ payload, pad int }{{1300, 1}, {1200, 200}, {0, 255}, {1400, 4}} {
		payload := vp8Packet(uint16(i), true)[:10]
		payload = append(payload, bytes.Repeat([]byte{0xAB}, tc.payload)...)
		if tc.payload == 0 {
			payload = nil
		}
		h := rtp.Header{Version: 2, Padding: true, SequenceNumber: uint16(100 + i), Timestamp: 1, SSRC: 5}
		pkt, err := h.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		pkt = append(pkt, payload...)
		pkt = append(pkt, make([]byte, tc.pad-1)...)
		pkt = append(pkt, byte(tc.pad))

		var got rtp.Header
		p, err := parseRTP(pkt, &got)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if !bytes.Equal(p, payload) || got.PaddingSize != byte(tc.pad) {
			t.Fatalf("case %d: payload %d bytes, padding %d; want %d, %d", i, len(p), got.PaddingSize, len(payload), tc.pad)
		}
		d.writeRTP(0, &got, p, true, int64(i+1))
	}
	if len(m.out) != 4 {
		t.Fatalf("forwarded %d packets, want 4", len(m.out))
	}
	for i, b := range m.out {
		var p rtp.Packet
		if err := p.Unmarshal(b); err != nil {
			t.Fatalf("packet %d does not parse: %v", i, err)
		}
	}
	for _, bad := range [][]byte{
		{0xa0, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 5},             // padding bit, no payload
		{0xa0, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 5, 1, 2, 9},    // padding longer than the payload
		{0xa0, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 5, 1, 2, 3, 0}, // padding size 0
	} {
		var h rtp.Header
		if _, err := parseRTP(bad, &h); err == nil {
			t.Fatalf("parseRTP accepted % x", bad)
		}
	}
}

func FuzzParseRTP(f *testing.F) {
	f.Add([]byte{0x80, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 5, 1, 2, 3})
	f.Add([]byte{0xa0, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 5, 1, 2, 3, 2})
	d := newBoundDownTrack(f, 1, &marshaller{})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		var h rtp.Header
		p, err := parseRTP(pkt, &h)
		if err != nil {
			return
		}
		d.writeRTP(0, &h, p, true, 1)
	})
}

func TestDownTrackWaitsForTransport(t *testing.T) {
	rec := &recorder{}
	d := newBoundDownTrack(t, 1, rec)
	d.setReady(false)
	src := &layerSource{h: rtp.Header{Version: 2, SSRC: 7, SequenceNumber: 1}, pid: 1}
	h, p := src.next(true, true)
	d.writeRTP(0, h, p, true, 1) // lost by pion before DTLS: not written
	d.setReady(true)
	h, p = src.next(false, true)
	d.writeRTP(0, h, p, false, 2) // must wait for a new keyframe
	h, p = src.next(true, true)
	d.writeRTP(0, h, p, true, 3)
	if len(rec.headers) != 1 || rec.payloads[0][4]&0x01 != 0 {
		t.Fatalf("forwarded %d packets; want exactly the keyframe after the transport came up", len(rec.headers))
	}
}

func TestDownTrackPauseResumesAtKeyframe(t *testing.T) {
	rec := &recorder{}
	d := newBoundDownTrack(t, 1, rec)
	src := &layerSource{h: rtp.Header{Version: 2, SSRC: 7, SequenceNumber: 100, Timestamp: 5}, pid: 1}
	send := func(key bool) {
		h, p := src.next(key, true)
		d.writeRTP(0, h, p, key, 1)
	}
	send(true)
	send(false)
	d.SetPaused(true)
	send(false)
	send(true)
	d.SetPaused(false)
	send(false) // waits for a keyframe
	send(true)
	send(false)
	if len(rec.headers) != 4 {
		t.Fatalf("forwarded %d packets, want 4", len(rec.headers))
	}
	for i := 1; i < len(rec.headers); i++ {
		if rec.headers[i].SequenceNumber != rec.headers[i-1].SequenceNumber+1 {
			t.Fatalf("gap after resume: %d then %d", rec.headers[i-1].SequenceNumber, rec.headers[i].SequenceNumber)
		}
	}
}

// BenchmarkDownTrackWriteRTP measures the per-subscriber forwarding step:
// layer gate, munging, VP8 picture id rewrite and the header handed to the
// sender's stream.
func BenchmarkDownTrackWriteRTP(b *testing.B) {
	d := newBoundDownTrack(b, 1, discard{})
	src := &layerSource{h: rtp.Header{Version: 2, SSRC: 1, SequenceNumber: 1}, pid: 1}
	h, p := src.next(true, true)
	d.writeRTP(0, h, p, true, 1)
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	b.ResetTimer()
	for i := range b.N {
		h.SequenceNumber++
		h.Timestamp += 3000
		d.writeRTP(0, h, p, false, int64(i))
	}
}

// BenchmarkFanOut measures one received packet forwarded to 50 subscribers,
// the read loop's inner step.
func BenchmarkFanOut(b *testing.B) {
	up := NewUpTrack("TR_bench", webrtc.RTPCodecTypeVideo, vp8Codec, 1, nil)
	for range 50 {
		benchSubscribe(b, up, discard{})
	}
	h, p := benchKeyframe(up)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		h.SequenceNumber++
		for _, d := range *up.downs.Load() {
			d.writeRTP(0, h, p, false, int64(i))
		}
	}
}

// benchSubscribe adds to up a DownTrack bound to a fake connection that
// writes to w, ready to forward.
func benchSubscribe(b *testing.B, up *UpTrack, w webrtc.TrackLocalWriter) {
	b.Helper()
	d := up.NewDownTrack("PA_x|"+up.ID(), 0)
	if _, err := d.Bind(&fakeContext{codecs: []webrtc.RTPCodecParameters{vp8Codec}, w: w}); err != nil {
		b.Fatal(err)
	}
	d.setReady(true)
	up.addDownTrack(d)
}

// benchKeyframe forwards a first keyframe to every DownTrack of up, so that
// they forward what follows, and returns its header and payload.
func benchKeyframe(up *UpTrack) (*rtp.Header, []byte) {
	src := &layerSource{h: rtp.Header{Version: 2, SSRC: 1, SequenceNumber: 1}, pid: 1}
	h, p := src.next(true, true)
	for _, d := range *up.downs.Load() {
		d.writeRTP(0, h, p, true, 1)
	}
	return h, p
}
