package main

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"google.golang.org/protobuf/encoding/protowire"
)

func TestPlan(t *testing.T) {
	tests := []struct {
		shape    string
		sz       sizes
		n        int
		expected int
	}{
		// 4 publishers see 3 others (video+audio); 20 subscribers see 4.
		{shapeMeeting, sizes{Video: 4, Subscribers: 20, PubsSub: true}, 24, 4*3*2 + 20*4*2},
		{shapeWebinar, sizes{Video: 1, Subscribers: 200}, 201, 200 * 2},
		{shapeAudio, sizes{Audio: 20, Subscribers: 20}, 40, 20 * 20},
		{shapeAudio, sizes{Audio: 3, Subscribers: 2, PubsSub: true}, 5, 3*2 + 2*3},
	}
	for _, tt := range tests {
		specs, err := plan(tt.shape, tt.sz)
		if err != nil {
			t.Fatalf("%s: %v", tt.shape, err)
		}
		if len(specs) != tt.n {
			t.Errorf("%s: %d participants, want %d", tt.shape, len(specs), tt.n)
		}
		exp := 0
		for _, s := range specs {
			exp += expectedStreams(s, tt.sz)
			if k, i, ok := parseIdentity(s.Identity); !ok || k != s.Kind || i != s.Index {
				t.Errorf("identity %q does not parse back to %c%d", s.Identity, s.Kind, s.Index)
			}
		}
		if exp != tt.expected {
			t.Errorf("%s: %d streams expected, want %d", tt.shape, exp, tt.expected)
		}
	}
}

// In a meeting everyone watches one publisher at the top layer, spread
// round robin, and never themselves.
func TestPlanMeetingHighLayer(t *testing.T) {
	specs, err := plan(shapeMeeting, sizes{Video: 3, Subscribers: 6, PubsSub: true})
	if err != nil {
		t.Fatal(err)
	}
	watched := map[int]int{}
	for _, s := range specs {
		if s.High < 0 || s.High >= 3 {
			t.Fatalf("%s watches %d", s.Identity, s.High)
		}
		if s.Kind == 'v' && s.High == s.Index {
			t.Errorf("%s watches itself", s.Identity)
		}
		watched[s.High]++
	}
	for i := range 3 {
		if watched[i] != 3 {
			t.Errorf("publisher %d watched by %d, want 3", i, watched[i])
		}
	}
	specs, _ = plan(shapeWebinar, sizes{Video: 1, Subscribers: 2})
	for _, s := range specs {
		if s.High != -1 {
			t.Errorf("webinar %s: High = %d, want -1 (top layer of everything)", s.Identity, s.High)
		}
	}
}

func TestParseShapeSpec(t *testing.T) {
	name, sz, err := parseShapeSpec("audio:7x9")
	if err != nil || name != shapeAudio || sz.Audio != 7 || sz.Subscribers != 9 || sz.Video != 0 {
		t.Errorf("audio:7x9 = %s %+v %v", name, sz, err)
	}
	name, sz, err = parseShapeSpec("meeting")
	if err != nil || name != shapeMeeting || sz.Video != 4 || sz.Subscribers != 20 || !sz.PubsSub {
		t.Errorf("meeting = %s %+v %v", name, sz, err)
	}
	for _, bad := range []string{"lecture", "webinar:1", "webinar:ax2", "webinar:-1x2"} {
		if _, _, err := parseShapeSpec(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// captureWriter is a webrtc.TrackLocalWriter that keeps copies of what is
// written.
type captureWriter struct{ pkts []*rtp.Packet }

func (w *captureWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	p := &rtp.Packet{Header: *h, Payload: append([]byte(nil), payload...)}
	p.Extensions = append([]rtp.Extension(nil), h.Extensions...)
	w.pkts = append(w.pkts, p)
	return len(payload), nil
}

func (w *captureWriter) Write(b []byte) (int, error) { return len(b), nil }

func boundTrack(rid string, w *captureWriter) *sendTrack {
	t := newSendTrack("cam", "s", rid, 0, "video/VP8", 0)
	t.b.Store(&binding{w: w, ssrc: 1234, pt: 96, midID: 1, ridID: 2})
	t.setMid("0")
	return t
}

// capturedVideo is publisher pub's video source, paced or not, whose three
// layers write into the returned captureWriters.
func capturedVideo(pub int, paced bool) (*videoSource, *[3]captureWriter) {
	var w [3]captureWriter
	var tracks [3]*sendTrack
	for i := range tracks {
		tracks[i] = boundTrack(layerSpecs()[i].rid, &w[i])
	}
	return newVideoSource(pub, tracks, &pubCounters{}, func() uint32 { return 1000 }, paced), &w
}

// The generator's VP8 must look like an encoder's to an SFU: payload
// descriptors that pion's depacketizer accepts, a keyframe first and after
// a PLI, consecutive picture ids, the marker on each frame's last packet,
// the rid and mid extensions, and a trailer on every packet.
func TestVideoFrames(t *testing.T) {
	v, w := capturedVideo(5, false)
	buf := make([]byte, 1500)
	var h rtp.Header
	var exts [4]rtp.Extension
	const frames = 30
	for f := range frames {
		if f == 10 {
			v.layers[2].keyWanted.Store(true)
		}
		for _, l := range v.layers {
			v.sendFrame(l, time.Duration(f)*time.Second/videoFPS, buf, &h, &exts)
		}
	}
	for li := range 3 {
		pkts := w[li].pkts
		var sent int
		var lastPic uint16
		frame := -1
		keys := map[int]bool{}
		for i, p := range pkts {
			sent += len(p.Payload)
			if got := string(p.GetExtension(2)); got != layerSpecs()[li].rid {
				t.Fatalf("layer %d packet %d: rid %q", li, i, got)
			}
			if got := string(p.GetExtension(1)); got != "0" {
				t.Fatalf("layer %d packet %d: mid %q", li, i, got)
			}
			if i > 0 && p.SequenceNumber != pkts[i-1].SequenceNumber+1 {
				t.Fatalf("layer %d: sequence %d after %d", li, p.SequenceNumber, pkts[i-1].SequenceNumber)
			}
			var vp codecs.VP8Packet
			if _, err := vp.Unmarshal(p.Payload); err != nil {
				t.Fatalf("layer %d packet %d: %v", li, i, err)
			}
			tr, ok := parseTrailer(p.Payload)
			if !ok || tr.pub != 5 || int(tr.layer) != li {
				t.Fatalf("layer %d packet %d: trailer %+v %v", li, i, tr, ok)
			}
			if vp.S == 1 {
				frame++
				if frame > 0 && vp.PictureID != (lastPic+1)&0x7fff {
					t.Errorf("layer %d: picture id %d after %d", li, vp.PictureID, lastPic)
				}
				lastPic = vp.PictureID
				if i > 0 && !pkts[i-1].Marker {
					t.Errorf("layer %d: frame %d starts without a marker on the previous packet", li, frame)
				}
				key := vp.Payload[0]&1 == 0
				if key {
					keys[frame] = true
					if !bytes.Equal(vp.Payload[3:6], []byte{0x9d, 0x01, 0x2a}) {
						t.Errorf("layer %d frame %d: keyframe without the start code", li, frame)
					}
					if wd := binary.LittleEndian.Uint16(vp.Payload[6:]) & 0x3fff; wd != layerSpecs()[li].w {
						t.Errorf("layer %d: keyframe width %d", li, wd)
					}
				}
				if key != (tr.flags&trailerKey != 0) {
					t.Errorf("layer %d frame %d: trailer key flag disagrees", li, frame)
				}
			}
		}
		if frame != frames-1 {
			t.Errorf("layer %d: %d frames, want %d", li, frame+1, frames)
		}
		if !keys[0] || (li == 2) != keys[10] || len(keys) != 1+boolInt(li == 2) {
			t.Errorf("layer %d: keyframes at %v", li, keys)
		}
		// One second of frames: the layer's bitrate, within the keyframes' extra.
		rate := float64(sent*8) * videoFPS / frames
		if want := float64(layerSpecs()[li].bitrate); rate < 0.95*want || rate > 1.4*want {
			t.Errorf("layer %d: %.0f bit/s, want about %.0f", li, rate, want)
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestRTPPayload(t *testing.T) {
	p := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: 7, CSRC: []uint32{1, 2}}, Payload: []byte("hello")}
	_ = p.Header.SetExtension(3, []byte("abc"))
	p.Header.Padding, p.PaddingSize = true, 4
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, ok := rtpPayload(b)
	if !ok || string(got) != "hello" {
		t.Errorf("payload %q %v", got, ok)
	}
	if _, ok := rtpPayload(b[:13]); ok {
		t.Error("truncated extension accepted")
	}
}

func TestLost(t *testing.T) {
	none := streamSnap{}
	a := streamSnap{started: true, first: 100, high: 199, packets: 100}
	b := streamSnap{started: true, first: 100, high: 299, packets: 195}
	if got := lost(a, b); got != 5 {
		t.Errorf("lost = %d, want 5", got)
	}
	// A stream that started during the window counts from its first packet.
	if got := lost(none, b); got != 5 {
		t.Errorf("lost from start = %d, want 5", got)
	}
	if got := lost(none, none); got != 0 {
		t.Errorf("lost of nothing = %d", got)
	}
}

func TestHistogram(t *testing.T) {
	for _, us := range []uint64{0, 1, 63, 64, 65, 100, 1000, 12345, 1 << 20, 1 << 40} {
		i := bucketOf(us)
		mid := bucketMid(i)
		if us < 1<<30 && (mid < float64(us)*0.96 || mid > float64(us)*1.04+1) {
			t.Errorf("%d µs: bucket %d, middle %.1f", us, i, mid)
		}
		if i < 0 || i >= histBuckets {
			t.Errorf("%d µs: bucket %d out of range", us, i)
		}
	}
	var h histogram
	for i := range 1000 {
		h.record(time.Duration(i+1) * 10 * time.Microsecond) // 10 µs .. 10 ms
	}
	var c counts
	c.add(&h)
	if p50 := c.quantile(0.5); p50 < 4.8 || p50 > 5.2 {
		t.Errorf("p50 = %.2f ms, want about 5", p50)
	}
	if p99 := c.quantile(0.99); p99 < 9.6 || p99 > 10.2 {
		t.Errorf("p99 = %.2f ms, want about 9.9", p99)
	}
	if got := durationQuantile([]time.Duration{3 * time.Millisecond, time.Millisecond, 2 * time.Millisecond}, 0.5); got != 2 {
		t.Errorf("median join = %v ms", got)
	}
}

func TestPerfToPprof(t *testing.T) {
	const script = `stoa 100  10.000001:    2002002 cpu-clock: 
	ffffffff81000000 pvm_irq_enable+0x5 ([kernel.kallsyms])
	          4a5b6c runtime.futex.abi0 (/usr/bin/stoa)
	          4a5c00 main.main (/usr/bin/stoa)

stoa 101  10.000002:    2002002 cpu-clock: 
	          4a5c00 main.main (/usr/bin/stoa)
`
	var out bytes.Buffer
	if err := perfToPprof(strings.NewReader(script), &out); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&out)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var strs []string
	fields := map[protowire.Number]int{}
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeTag(raw)
		if n < 0 {
			t.Fatal("bad tag")
		}
		raw = raw[n:]
		fields[num]++
		n = protowire.ConsumeFieldValue(num, typ, raw)
		if n < 0 {
			t.Fatal("bad field")
		}
		if num == 6 {
			s, _ := protowire.ConsumeString(raw)
			strs = append(strs, s)
		}
		raw = raw[n:]
	}
	if fields[2] != 2 || fields[4] != 3 || fields[5] != 3 || fields[3] != 2 {
		t.Errorf("samples, mappings, locations, functions = %d, %d, %d, %d; want 2, 2, 3, 3", fields[2], fields[3], fields[4], fields[5])
	}
	if len(strs) == 0 || strs[0] != "" || !strings.Contains(strings.Join(strs, ","), "pvm_irq_enable,") {
		t.Errorf("string table %q", strs)
	}
}

// Without kernel receive times, the main delay figure falls back to the
// generator's read and says so; with them, it is the kernel's.
func TestDelaySource(t *testing.T) {
	s := newStream(true)
	for i := range 100 {
		s.readDelay.record(time.Duration(i+1) * 100 * time.Microsecond) // 0.1 .. 10 ms
		s.noRxTime.Add(1)
	}
	s.packets.Add(100)
	t0 := time.Now()
	a := window{cpu: cpuSample{at: t0}, streams: map[*stream]streamSnap{}, delay: new(counts), readDelay: new(counts)}
	b := window{cpu: cpuSample{at: t0.Add(time.Second)}, streams: map[*stream]streamSnap{s: s.snap()}, delay: new(counts), readDelay: new(counts)}
	b.delay.add(&s.delay)
	b.readDelay.add(&s.readDelay)
	var r result
	r.fill(a, b)
	r.addNotes(2, "SO_TIMESTAMPNS: operation not permitted")
	if r.DelaySource != delayRead || r.DelayP99Ms != r.ReadDelayP99Ms || r.DelayP99Ms < 9 {
		t.Errorf("fallback: source %q, delay p99 %.2f, read p99 %.2f", r.DelaySource, r.DelayP99Ms, r.ReadDelayP99Ms)
	}
	if len(r.Notes) != 1 || !strings.Contains(r.Notes[0], "no kernel receive timestamps (SO_TIMESTAMPNS: operation not permitted)") {
		t.Errorf("notes %q", r.Notes)
	}

	for i := range 100 {
		s.delay.record(time.Duration(i+1) * 10 * time.Microsecond) // 0.01 .. 1 ms
	}
	b.streams[s] = s.snap()
	b.delay.add(&s.delay)
	r = result{}
	r.fill(a, b)
	r.addNotes(2, "")
	if r.DelaySource != delayKernel || r.DelayP99Ms > 1.05 || r.ReadDelayP99Ms < 9 || r.KernelRxPercent != 50 {
		t.Errorf("kernel: source %q, delay p99 %.2f, read p99 %.2f, %.0f%% with a receive time",
			r.DelaySource, r.DelayP99Ms, r.ReadDelayP99Ms, r.KernelRxPercent)
	}
	if len(r.Notes) != 1 || !strings.Contains(r.Notes[0], "only 50.0% of packets") {
		t.Errorf("notes %q", r.Notes)
	}
}

// A paced source spreads a frame's packets at the pacing rate, as a
// browser's pacer does; the send times in the trailers show it.
func TestVideoPaced(t *testing.T) {
	v, w := capturedVideo(1, true)
	buf := make([]byte, 1500)
	var h rtp.Header
	var exts [4]rtp.Extension
	for _, l := range v.layers {
		v.sendFrame(l, 0, buf, &h, &exts) // keyframes: the largest burst
	}
	var sent []int64
	for li := range 3 {
		for _, p := range w[li].pkts {
			tr, ok := parseTrailer(p.Payload)
			if !ok {
				t.Fatal("no trailer")
			}
			sent = append(sent, tr.sent)
		}
	}
	if len(sent) < 10 {
		t.Fatalf("%d packets in a keyframe on three layers", len(sent))
	}
	gap := pacingGap(maxVideoChunk)
	span := time.Duration(sent[len(sent)-1] - sent[0])
	// The packets before the last go out one gap apart; timers may be late
	// but never early.
	if want := time.Duration(len(sent)-2) * gap * 9 / 10; span < want {
		t.Fatalf("%d packets sent within %v, want at least %v at %v a packet", len(sent), span, want, gap)
	}
	if gap < time.Millisecond || gap > 2*time.Millisecond {
		t.Fatalf("pacing gap %v for %d bytes, want about 1.3 ms", gap, maxVideoChunk)
	}
}
