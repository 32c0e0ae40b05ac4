package sfu

import (
	"bytes"
	"math"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// historyTrack is a DownTrack whose UpTrack has layers with histories but
// no pion streams: the test plays the read loop.
func historyTrack(t *testing.T, rtx webrtc.SSRC) (*DownTrack, *recorder) {
	t.Helper()
	up := NewUpTrack("TR_rtx", webrtc.RTPCodecTypeVideo, vp8Codec, 1, nil)
	l := &upLayer{up: up, hist: newHistory(videoHistory)}
	l.lastKeyframeRequest.Store(math.MaxInt64) // no publisher to ask
	up.layers[0] = l
	d := up.NewDownTrack("PA_x|TR_rtx", 0)
	rec := &recorder{}
	codecs := []webrtc.RTPCodecParameters{
		{RTPCodecCapability: vp8Codec.RTPCodecCapability, PayloadType: 120},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: "apt=120"}, PayloadType: 121},
	}
	if _, err := d.Bind(&fakeContext{codecs: codecs, w: rec, rtx: rtx}); err != nil {
		t.Fatal(err)
	}
	d.setReady(true)
	return d, rec
}

// forward plays the read loop for one packet: history, then fan-out.
func forward(t *testing.T, d *DownTrack, h *rtp.Header, payload []byte, key bool, now int64) {
	t.Helper()
	pkt := &rtp.Packet{Header: *h, Payload: payload}
	raw, err := pkt.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	d.up.layers[0].hist.add(h.SequenceNumber, raw)
	d.writeRTP(0, h, payload, key, now)
}

func nackFor(sns ...uint16) *rtcp.TransportLayerNack {
	return &rtcp.TransportLayerNack{Nacks: rtcp.NackPairsFromSequenceNumbers(sns)}
}

func TestResendOnRTX(t *testing.T) {
	d, rec := historyTrack(t, 0xBEEF)
	// A source whose picture IDs and sequence numbers the munger must
	// rewrite: a resent packet must carry the rewritten values again.
	src := &layerSource{h: rtp.Header{Version: 2, SSRC: 111, SequenceNumber: 500, Timestamp: 7000}, pid: 1234}
	now := int64(1e9)
	for i := range 20 {
		h, p := src.next(i == 0, i%2 == 1)
		forward(t, d, h, p, i == 0, now)
		now += 10e6
	}
	if len(rec.headers) != 20 {
		t.Fatalf("forwarded %d packets, want 20", len(rec.headers))
	}
	lost := []uint16{rec.headers[3].SequenceNumber, rec.headers[9].SequenceNumber, rec.headers[10].SequenceNumber}
	d.resend(nackFor(lost...), now)
	if got := len(rec.headers); got != 23 {
		t.Fatalf("%d packets after the NACK, want 23", got)
	}
	for i, sn := range lost {
		h, p := rec.headers[20+i], rec.payloads[20+i]
		orig := 3
		switch i {
		case 1:
			orig = 9
		case 2:
			orig = 10
		}
		if h.SSRC != 0xBEEF || h.PayloadType != 121 {
			t.Errorf("resent on SSRC %x PT %d, want RTX %x PT 121", h.SSRC, h.PayloadType, 0xBEEF)
		}
		if want := rec.headers[20].SequenceNumber + uint16(i); h.SequenceNumber != want {
			t.Errorf("RTX sequence number %d, want %d (its own, consecutive)", h.SequenceNumber, want)
		}
		if osn := uint16(p[0])<<8 | uint16(p[1]); osn != sn {
			t.Errorf("RTX original sequence number %d, want %d", osn, sn)
		}
		if h.Timestamp != rec.headers[orig].Timestamp || h.Marker != rec.headers[orig].Marker {
			t.Errorf("resent ts %d marker %v, first sent ts %d marker %v", h.Timestamp, h.Marker, rec.headers[orig].Timestamp, rec.headers[orig].Marker)
		}
		if !bytes.Equal(p[2:], rec.payloads[orig]) {
			t.Errorf("resent payload of %d differs from the one first sent", sn)
		}
	}

	// Not again within a round trip; again after it; at most maxResends.
	d.resend(nackFor(lost[0]), now+int64(resendInterval)/2)
	if len(rec.headers) != 23 {
		t.Fatalf("resent again within %v", resendInterval)
	}
	for k := 1; k <= maxResends+1; k++ {
		d.resend(nackFor(lost[0]), now+int64(k)*int64(resendInterval))
	}
	if got := len(rec.headers) - 23; got != maxResends-1 {
		t.Fatalf("resent %d more times, want %d", got, maxResends-1)
	}

	// Never sent, or gone from the history: nothing.
	before := len(rec.headers)
	d.resend(nackFor(rec.headers[19].SequenceNumber+5), now)
	for range videoHistory {
		h, p := src.next(false, true)
		forward(t, d, h, p, false, now)
	}
	d.resend(nackFor(rec.headers[5].SequenceNumber), now+int64(time.Second))
	if got := len(rec.headers) - before - videoHistory; got != 0 {
		t.Fatalf("%d packets resent that were never sent or are no longer kept", got)
	}
}

func TestResendWithoutRTX(t *testing.T) {
	d, rec := historyTrack(t, 0)
	src := &layerSource{h: rtp.Header{Version: 2, SSRC: 111, SequenceNumber: 65530, Timestamp: 7000}, pid: 5}
	now := int64(1e9)
	for i := range 10 {
		h, p := src.next(i == 0, true)
		forward(t, d, h, p, i == 0, now)
	}
	sn := rec.headers[7].SequenceNumber // past the wrap of the source
	d.resend(nackFor(sn), now)
	if len(rec.headers) != 11 {
		t.Fatalf("%d packets, want 11", len(rec.headers))
	}
	h := rec.headers[10]
	if h.SSRC != 0xCAFE || h.PayloadType != 120 || h.SequenceNumber != sn || h.Timestamp != rec.headers[7].Timestamp {
		t.Errorf("resent as %+v, want the first header again", h)
	}
	if !bytes.Equal(rec.payloads[10], rec.payloads[7]) {
		t.Error("resent payload differs")
	}
}

// A NACK listing every packet makes the SFU send at most maxResendPerNACK.
func TestResendBudget(t *testing.T) {
	d, rec := historyTrack(t, 0xBEEF)
	src := &layerSource{h: rtp.Header{Version: 2, SSRC: 111, SequenceNumber: 1, Timestamp: 7000}}
	now := int64(1e9)
	for i := range 200 {
		h, p := src.next(i == 0, true)
		forward(t, d, h, p, i == 0, now)
	}
	var all []uint16
	for _, h := range rec.headers {
		all = append(all, h.SequenceNumber)
	}
	d.resend(nackFor(all...), now)
	if got := len(rec.headers) - 200; got != maxResendPerNACK {
		t.Fatalf("resent %d packets for one NACK, want %d", got, maxResendPerNACK)
	}
}

func TestNTPTime(t *testing.T) {
	// 2024-01-01T00:00:00.5Z
	got := ntpTime(time.Date(2024, 1, 1, 0, 0, 0, 5e8, time.UTC).UnixNano())
	if sec, frac := got>>32, got&0xffffffff; sec != 3913056000 || frac != 1<<31 {
		t.Fatalf("ntpTime = %d.%d, want 3913056000 and half of 2^32", sec, frac)
	}
}
