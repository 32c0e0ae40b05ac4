package main

import (
	"context"
	"encoding/binary"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// Synthetic media. Publishers send what a browser's encoder would: VP8
// frames with real payload descriptors (RFC 7741) and frame headers
// (RFC 6386 §9.1), a keyframe first and on every PLI or FIR, and Opus
// packets every 20 ms. The bytes after the headers are filler, except for
// a trailer at the end of every payload that SFUs leave alone: it names the
// publisher and layer and carries the send time, so subscribers measure
// one-way delay on the machine's own clock.

const (
	videoFPS      = 30
	videoClock    = 90000
	audioPtime    = 20 * time.Millisecond
	audioClock    = 48000
	audioPayload  = 80   // bytes: 32 kbit/s Opus
	maxVideoChunk = 1100 // VP8 bytes per packet, well below the MTU with SRTP and extensions
	// keyframeFactor is how much larger a keyframe is than a delta frame;
	// real encoders produce 3 to 10 times, and a switching SFU sees the
	// burst.
	keyframeFactor = 3
	vp8Descriptor  = 6 // X, I (15-bit picture id), L, T: as Chrome sends
)

// layerSpec is one simulcast layer a publisher sends.
type layerSpec struct {
	rid     string
	quality int32 // livekit.VideoQuality
	bitrate int   // bit/s
	w, h    uint16
}

// layerSpecs are the simulcast layers, low to high, with LiveKit's rids
// (PROTOCOL.md §5.2) and about the bitrates of its 720p camera preset.
func layerSpecs() [3]layerSpec {
	return [3]layerSpec{
		{"q", 0, 150_000, 320, 180},
		{"h", 1, 600_000, 640, 360},
		{"f", 2, 2_000_000, 1280, 720},
	}
}

// Trailer layout, at the end of every payload:
//
//	[0:2]  publisher index
//	[2]    layer (0 low .. 2 high; trailerAudio for Opus)
//	[3]    flags: trailerKey on the first packet of a keyframe
//	[4:12] send time, unix nanoseconds
//	[12:16] trailerMagic
const (
	trailerLen   = 16
	trailerMagic = 0x53544f41 // "STOA"
	trailerAudio = 0xff
	trailerKey   = 1
)

func putTrailer(b []byte, pub int, layer byte, flags byte, now int64) {
	t := b[len(b)-trailerLen:]
	binary.BigEndian.PutUint16(t[0:], uint16(pub))
	t[2] = layer
	t[3] = flags
	binary.BigEndian.PutUint64(t[4:], uint64(now))
	binary.BigEndian.PutUint32(t[12:], trailerMagic)
}

// trailer is a decoded trailer.
type trailer struct {
	pub   int
	layer byte
	flags byte
	sent  int64
}

func parseTrailer(payload []byte) (trailer, bool) {
	if len(payload) < trailerLen {
		return trailer{}, false
	}
	t := payload[len(payload)-trailerLen:]
	if binary.BigEndian.Uint32(t[12:]) != trailerMagic {
		return trailer{}, false
	}
	return trailer{
		pub:   int(binary.BigEndian.Uint16(t[0:])),
		layer: t[2],
		flags: t[3],
		sent:  int64(binary.BigEndian.Uint64(t[4:])),
	}, true
}

// binding is what pion told a sendTrack when it bound it to a sender.
type binding struct {
	w                     webrtc.TrackLocalWriter
	ssrc                  uint32
	pt                    uint8
	midID, ridID, levelID uint8
}

// sendTrack is one outgoing RTP stream (one simulcast layer, or the audio).
// It implements webrtc.TrackLocal and writes straight to the sender's
// interceptor chain: the generator builds each packet once, with no
// TrackLocalStaticRTP lock or copy.
type sendTrack struct {
	b   atomic.Pointer[binding]
	mid atomic.Pointer[[]byte] // the transceiver's mid, set after negotiation

	id, streamID, rid string
	kind              webrtc.RTPCodecType
	mime              string
	ridBytes          []byte
	level             [1]byte // ssrc-audio-level payload; 0 for none
}

func newSendTrack(id, streamID, rid string, kind webrtc.RTPCodecType, mime string, level byte) *sendTrack {
	return &sendTrack{id: id, streamID: streamID, rid: rid, kind: kind, mime: mime, ridBytes: []byte(rid), level: [1]byte{level}}
}

// setMid records the mid pion gave the track's transceiver.
func (t *sendTrack) setMid(mid string) {
	b := []byte(mid)
	t.mid.Store(&b)
}

func (t *sendTrack) ID() string                { return t.id }
func (t *sendTrack) RID() string               { return t.rid }
func (t *sendTrack) StreamID() string          { return t.streamID }
func (t *sendTrack) Kind() webrtc.RTPCodecType { return t.kind }

// Bind implements webrtc.TrackLocal.
func (t *sendTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	for _, c := range ctx.CodecParameters() {
		if !strings.EqualFold(c.MimeType, t.mime) {
			continue
		}
		b := &binding{w: ctx.WriteStream(), ssrc: uint32(ctx.SSRC()), pt: uint8(c.PayloadType)}
		for _, e := range ctx.HeaderExtensions() {
			switch e.URI {
			case sdp.SDESMidURI:
				b.midID = uint8(e.ID)
			case sdp.SDESRTPStreamIDURI:
				b.ridID = uint8(e.ID)
			case sdp.AudioLevelURI:
				b.levelID = uint8(e.ID)
			}
		}
		t.b.Store(b)
		return c, nil
	}
	return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
}

// Unbind implements webrtc.TrackLocal.
func (t *sendTrack) Unbind(webrtc.TrackLocalContext) error {
	t.b.Store(nil)
	return nil
}

// header fills h for a packet of t with the mid, rid and audio level
// extensions a browser sends; exts backs h.Extensions (pion's TWCC
// interceptor appends one more). It reports false until t is bound and
// negotiated. It does not allocate.
func (t *sendTrack) header(h *rtp.Header, exts *[4]rtp.Extension) (*binding, bool) {
	b := t.b.Load()
	mid := t.mid.Load()
	if b == nil || mid == nil {
		return nil, false
	}
	*h = rtp.Header{Version: 2, PayloadType: b.pt, SSRC: b.ssrc, Extensions: exts[:0]}
	// One-byte extensions (RFC 8285); every payload here is 1 to 3 bytes.
	if b.midID != 0 {
		_ = h.SetExtension(b.midID, *mid)
	}
	if t.rid != "" && b.ridID != 0 {
		_ = h.SetExtension(b.ridID, t.ridBytes)
	}
	if t.level[0] != 0 && b.levelID != 0 {
		_ = h.SetExtension(b.levelID, t.level[:])
	}
	return b, true
}

// pubCounters count what one publisher sent.
type pubCounters struct {
	packets atomic.Uint64
	bytes   atomic.Uint64
	keys    atomic.Uint64 // keyframes sent
	plis    atomic.Uint64 // keyframe requests received
	errors  atomic.Uint64 // failed writes
	skipped atomic.Uint64 // frames not sent because the generator fell behind
}

// videoLayer is one simulcast layer of a videoSource.
type videoLayer struct {
	keyWanted atomic.Bool

	t      *sendTrack
	index  int
	seq    uint16
	tsBase uint32
	picID  uint16
	tl0    uint8
	sent   bool // a keyframe went out
}

// videoSource sends three-layer VP8 simulcast at videoFPS. Its loop is
// owned by the publishing participant.
type videoSource struct {
	layers [3]*videoLayer
	pub    int
	c      *pubCounters
	paced  bool
	next   time.Time // the pacer's next send time
}

// pacingFactor is how much faster than the media's own rate a browser's
// pacer lets packets out: libwebrtc's default pacing factor. A browser
// never writes a frame's packets back to back; it spreads them at this
// rate (libwebrtc modules/pacing).
const pacingFactor = 2.5

// pacingGap is the time a packet of n bytes takes at the pacing rate of
// all three layers together.
func pacingGap(n int) time.Duration {
	rate := 0
	for _, l := range layerSpecs() {
		rate += l.bitrate
	}
	return time.Duration(float64(n*8) / (pacingFactor * float64(rate)) * float64(time.Second))
}

// newVideoSource makes a publisher's video. paced spreads each frame's
// packets as a browser's pacer does; otherwise they go back to back.
func newVideoSource(pub int, tracks [3]*sendTrack, c *pubCounters, rnd func() uint32, paced bool) *videoSource {
	v := &videoSource{pub: pub, c: c, paced: paced}
	for i, t := range tracks {
		v.layers[i] = &videoLayer{t: t, index: i, seq: uint16(rnd()), tsBase: rnd(), picID: uint16(rnd()) & 0x7fff}
	}
	return v
}

// readRTCP reads the RTCP of layer l until the sender stops: PLI and FIR
// ask for a keyframe. Reading also drives pion's interceptors.
func (v *videoSource) readRTCP(sender *webrtc.RTPSender, l *videoLayer) {
	buf := make([]byte, 1500)
	for {
		n, _, err := sender.ReadSimulcast(buf, l.t.rid)
		if err != nil {
			return
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				l.keyWanted.Store(true)
				v.c.plis.Add(1)
			}
		}
	}
}

func (v *videoSource) run(ctx context.Context) {
	buf := make([]byte, 1500)
	var h rtp.Header
	var exts [4]rtp.Extension
	pace(ctx, time.Second/videoFPS, v.c, func(frame int64) {
		for _, l := range v.layers {
			v.sendFrame(l, time.Duration(frame)*time.Second/videoFPS, buf, &h, &exts)
		}
	})
}

// maxCatchUp bounds how many late frames a source sends at once when its
// goroutine ran late: the load offered to the server stays the same through
// short stalls of the generator, and a long stall does not end in a burst.
const maxCatchUp = 10

// pace calls send with frame numbers 1, 2, ... at interval, and sends the
// frames whose time passed while the goroutine was not running (up to
// maxCatchUp; older ones are counted in c.skipped). It returns when ctx is
// done.
func pace(ctx context.Context, interval time.Duration, c *pubCounters, send func(frame int64)) {
	start := time.Now()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	next := int64(1)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		due := int64(time.Since(start) / interval)
		if late := due - next + 1; late > maxCatchUp {
			c.skipped.Add(uint64(late - maxCatchUp))
			next = due - maxCatchUp + 1
		}
		for ; next <= due; next++ {
			send(next)
		}
	}
}

// sendFrame sends one frame of layer l, elapsed after the source started.
func (v *videoSource) sendFrame(l *videoLayer, elapsed time.Duration, buf []byte, h *rtp.Header, exts *[4]rtp.Extension) {
	if l.t.b.Load() == nil || l.t.mid.Load() == nil {
		return // not negotiated yet: the first frame sent will be a keyframe
	}
	spec := layerSpecs()[l.index]
	key := !l.sent || l.keyWanted.Swap(false)
	size := spec.bitrate / 8 / videoFPS
	if key {
		size *= keyframeFactor
	}
	n := (size + maxVideoChunk - 1) / maxVideoChunk
	per := (size + n - 1) / n
	ts := l.tsBase + uint32(elapsed.Nanoseconds()*videoClock/int64(time.Second))
	l.picID = (l.picID + 1) & 0x7fff
	l.tl0++
	for i := range n {
		b, ok := l.t.header(h, exts)
		if !ok {
			return
		}
		h.SequenceNumber = l.seq
		h.Timestamp = ts
		h.Marker = i == n-1
		p := buf[:0]
		// RFC 7741 §4.2 descriptor: X, S on the first packet, PID 0; then
		// I with a 15-bit picture id, L, and T with TID 0 and Y set.
		d0 := byte(0x80)
		if i == 0 {
			d0 |= 0x10
		}
		p = append(p, d0, 0xe0, 0x80|byte(l.picID>>8), byte(l.picID), l.tl0, 0x20)
		hdr := 0
		if i == 0 {
			p, hdr = appendVP8FrameHeader(p, key, size, spec.w, spec.h)
		}
		body := max(per, hdr+trailerLen)
		p = p[:vp8Descriptor+body]
		var flags byte
		if key && i == 0 {
			flags = trailerKey
		}
		if v.paced {
			now := time.Now()
			if wait := v.next.Sub(now); wait > 0 {
				time.Sleep(wait)
			} else {
				v.next = now
			}
			v.next = v.next.Add(pacingGap(len(p) + 12))
		}
		putTrailer(p, v.pub, byte(l.index), flags, time.Now().UnixNano())
		if _, err := b.w.WriteRTP(h, p); err != nil {
			v.c.errors.Add(1)
		} else {
			v.c.packets.Add(1)
			v.c.bytes.Add(uint64(len(p) + 12))
		}
		l.seq++
	}
	if key {
		l.sent = true
		v.c.keys.Add(1)
	}
}

// appendVP8FrameHeader appends the VP8 payload header of RFC 6386 §9.1:
// the 3-byte frame tag (inverse key frame flag, version 0, show_frame,
// first partition size) and, for a key frame, the start code and the
// 14-bit width and height. It returns the header's length.
func appendVP8FrameHeader(p []byte, key bool, size int, w, h uint16) ([]byte, int) {
	part := uint32(min(size/2, 1<<19-1))
	tag := uint32(1<<4) | part<<5 // show_frame, first_part_size
	if !key {
		tag |= 1 // P: inter frame
	}
	p = append(p, byte(tag), byte(tag>>8), byte(tag>>16))
	if !key {
		return p, 3
	}
	p = append(p, 0x9d, 0x01, 0x2a, byte(w), byte(w>>8)&0x3f, byte(h), byte(h>>8)&0x3f)
	return p, 10
}

// audioSource sends Opus every 20 ms.
type audioSource struct {
	t        *sendTrack
	pub      int
	seq      uint16
	firstSeq uint16 // the marker bit starts the talkspurt (RFC 3551 §4.1)
	tsBase   uint32
	c        *pubCounters
}

// audioLevel is what the publisher's ssrc-audio-level extension (RFC 6464)
// says: voice, at -30 dBov, so that both SFUs see a speaking participant.
const audioLevel = 0x80 | 30

func (a *audioSource) run(ctx context.Context) {
	buf := make([]byte, audioPayload)
	buf[0] = 0x78 // TOC: config 15 (hybrid, fullband, 20 ms), mono, one frame
	var h rtp.Header
	var exts [4]rtp.Extension
	pace(ctx, audioPtime, a.c, func(frame int64) {
		b, ok := a.t.header(&h, &exts)
		if !ok {
			return
		}
		h.SequenceNumber = a.seq
		h.Timestamp = a.tsBase + uint32(frame*int64(audioPtime)*audioClock/int64(time.Second))
		h.Marker = a.seq == a.firstSeq
		putTrailer(buf, a.pub, trailerAudio, 0, time.Now().UnixNano())
		if _, err := b.w.WriteRTP(&h, buf); err != nil {
			a.c.errors.Add(1)
		} else {
			a.c.packets.Add(1)
			a.c.bytes.Add(uint64(len(buf) + 12))
		}
		a.seq++
	})
}

// drainRTCP reads a sender's RTCP until it stops, for pion's interceptors.
func drainRTCP(sender *webrtc.RTPSender) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := sender.Read(buf); err != nil {
			return
		}
	}
}
