package sfu

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/stoa-rtc/stoa/sfu/internal/rtpx"
)

// DownTrack is one subscriber's copy of an UpTrack. It implements
// webrtc.TrackLocal: pion binds it to the subscriber's RTPSender, and it
// writes straight to the sender's interceptor chain, so each packet is
// rewritten once and never parsed again (STYLE §2).
//
// The subscriber sees one stream with one SSRC whatever simulcast layer is
// forwarded; the switch from one layer to another happens at a keyframe of
// the target layer and is hidden by rewriting sequence numbers, timestamps
// and VP8 picture ids.
type DownTrack struct {
	current    atomic.Int32 // layer being forwarded; -1 before the first keyframe
	target     atomic.Int32 // layer wanted
	paused     atomic.Bool
	ready      atomic.Bool  // the subscriber's transport is connected
	bound      atomic.Bool  // pion has bound the track to a sender
	lastKeyReq atomic.Int64 // arrival time of the last keyframe request, unix nanos
	lastPLI    atomic.Int64 // the subscriber's last honoured PLI/FIR, unix nanos

	up       *UpTrack
	id       string
	streamID string
	vp8      bool
	clock    uint32

	mu      sync.Mutex // guards the following fields
	closed  bool
	ssrc    webrtc.SSRC
	pt      webrtc.PayloadType
	writer  webrtc.TrackLocalWriter
	munger  rtpx.Munger
	vp8m    rtpx.VP8Munger
	vp8d    rtpx.VP8
	hdr     rtp.Header
	ext     [4]rtp.Extension // backing array for interceptors' extensions
	scratch [receiveMTU]byte // rewritten VP8 payload
	sender  *webrtc.RTPSender
}

// NewDownTrack makes a subscriber's copy of u. streamID is the msid stream
// id the subscriber's SDK expects ("PA_…|TR_…" for LiveKit clients). The
// DownTrack starts forwarding once it is bound to a sender and attached with
// Attach.
func (u *UpTrack) NewDownTrack(streamID string, layer int) *DownTrack {
	d := &DownTrack{
		up:       u,
		id:       u.id,
		streamID: streamID,
		vp8:      u.ckind == rtpx.CodecVP8,
		clock:    u.codec.ClockRate,
	}
	d.current.Store(-1)
	d.target.Store(int32(d.clampLayer(layer)))
	return d
}

// ID implements webrtc.TrackLocal: the track sid.
func (d *DownTrack) ID() string { return d.id }

// RID implements webrtc.TrackLocal; a DownTrack is never simulcast.
func (d *DownTrack) RID() string { return "" }

// StreamID implements webrtc.TrackLocal.
func (d *DownTrack) StreamID() string { return d.streamID }

// Kind implements webrtc.TrackLocal.
func (d *DownTrack) Kind() webrtc.RTPCodecType { return d.up.kind }

// UpTrack is the track this DownTrack copies.
func (d *DownTrack) UpTrack() *UpTrack { return d.up }

// Bind implements webrtc.TrackLocal. It picks the subscriber's payload type
// for the publisher's codec; a subscriber that did not negotiate it gets
// ErrNoCodec and no media.
func (d *DownTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	want := d.up.codec
	var match *webrtc.RTPCodecParameters
	for _, c := range ctx.CodecParameters() {
		if !strings.EqualFold(c.MimeType, want.MimeType) {
			continue
		}
		if c.SDPFmtpLine == want.SDPFmtpLine {
			match = &c
			break
		}
		if match == nil {
			match = &c
		}
	}
	if match == nil {
		return webrtc.RTPCodecParameters{}, ErrNoCodec
	}
	d.mu.Lock()
	d.ssrc = ctx.SSRC()
	d.pt = match.PayloadType
	d.writer = ctx.WriteStream()
	d.current.Store(-1)
	d.mu.Unlock()
	d.bound.Store(true)
	d.up.RequestKeyframe(int(d.target.Load()))
	return *match, nil
}

// Unbind implements webrtc.TrackLocal.
func (d *DownTrack) Unbind(webrtc.TrackLocalContext) error {
	d.bound.Store(false)
	d.mu.Lock()
	d.writer = nil
	d.mu.Unlock()
	return nil
}

// attach starts forwarding from the UpTrack and reads the subscriber's RTCP
// on sender until it closes. Called once by the Peer that owns sender. It
// reports false if the UpTrack has closed meanwhile (nothing is forwarded).
func (d *DownTrack) attach(sender *webrtc.RTPSender) bool {
	d.mu.Lock()
	d.sender = sender
	d.mu.Unlock()
	go d.rtcpLoop(sender)
	return d.up.addDownTrack(d)
}

// detach stops forwarding. The RTCP loop ends when pion stops the sender.
func (d *DownTrack) detach() {
	d.up.removeDownTrack(d)
	d.bound.Store(false)
	d.mu.Lock()
	d.closed = true
	d.writer = nil
	d.mu.Unlock()
}

func (d *DownTrack) upClosed() { d.bound.Store(false) }

// rtcpLoop reads the subscriber's RTCP. Reading is what drives pion's
// interceptors (NACK responder, report handling); PLI and FIR become a
// throttled keyframe request toward the publisher.
func (d *DownTrack) rtcpLoop(sender *webrtc.RTPSender) {
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				// One subscriber gets at most one keyframe a second: a
				// keyframe costs every other subscriber of the layer bits.
				now := time.Now().UnixNano()
				if last := d.lastPLI.Load(); now-last < int64(subscriberPLIInterval) || !d.lastPLI.CompareAndSwap(last, now) {
					continue
				}
				layer := d.current.Load()
				if layer < 0 {
					layer = d.target.Load()
				}
				d.up.RequestKeyframe(int(layer))
			}
		}
	}
}

func (d *DownTrack) clampLayer(layer int) int {
	n := d.up.LayerCount()
	return min(max(layer, 0), n-1)
}

// setReady records whether the subscriber's transport can carry media. pion
// drops what is written before DTLS is up, so a keyframe written then would
// be lost: becoming ready restarts the stream at a fresh keyframe.
func (d *DownTrack) setReady(ready bool) {
	if d.ready.Swap(ready) == ready || !ready {
		return
	}
	d.current.Store(-1)
	d.up.RequestKeyframe(int(d.target.Load()))
}

// keyframeRetry is how long a subscriber waits for the keyframe it asked
// for before asking again: a PLI or the keyframe itself may be lost, and
// browsers send no periodic keyframes. Longer than the publisher-side
// throttle so retries are not swallowed by it.
const keyframeRetry = 500 * time.Millisecond

// subscriberPLIInterval bounds how often one subscriber's PLI or FIR is
// passed on to the publisher.
const subscriberPLIInterval = time.Second

// wantedLayer is the layer to forward: the target if the publisher sends
// it, else the closest sent layer below it, else the closest above. Chrome
// stops sending upper layers when its bandwidth estimate drops; waiting for
// them would freeze the video.
func (d *DownTrack) wantedLayer(now int64) int32 {
	t := int(d.target.Load())
	if d.up.live(t, now) {
		return int32(t)
	}
	for l := t - 1; l >= 0; l-- {
		if d.up.live(l, now) {
			return int32(l)
		}
	}
	for l := t + 1; l < d.up.LayerCount(); l++ {
		if d.up.live(l, now) {
			return int32(l)
		}
	}
	return int32(t)
}

// SetLayer selects the simulcast layer to forward (0 = lowest), clamped to
// the layers the publisher sends. The switch happens at the next keyframe of
// that layer, which is requested now.
func (d *DownTrack) SetLayer(layer int) {
	layer = d.clampLayer(layer)
	if d.target.Swap(int32(layer)) == int32(layer) {
		return
	}
	if d.current.Load() != int32(layer) {
		d.up.RequestKeyframe(layer)
	}
}

// Layer is the layer being forwarded, or -1 while waiting for a keyframe.
func (d *DownTrack) Layer() int { return int(d.current.Load()) }

// TargetLayer is the layer requested with SetLayer.
func (d *DownTrack) TargetLayer() int { return int(d.target.Load()) }

// SetPaused stops or resumes forwarding (a subscriber's disabled track, a
// muted publication). Resuming waits for a keyframe, which is requested.
func (d *DownTrack) SetPaused(paused bool) {
	if d.paused.Swap(paused) == paused {
		return
	}
	if !paused {
		d.current.Store(-1)
		d.up.RequestKeyframe(int(d.target.Load()))
	}
}

// writeRTP forwards one packet of layer. h and payload belong to the
// caller's read loop and are only read; switchable says the packet may start
// the stream (a keyframe start for video, any packet for audio). arrival is
// the packet's receive time in unix nanoseconds.
//
// Called by UpTrack read loops; layers meet under mu only while a switch is
// under way. Allocates nothing.
func (d *DownTrack) writeRTP(layer int32, h *rtp.Header, payload []byte, switchable bool, arrival int64) {
	if d.paused.Load() || !d.ready.Load() || !d.bound.Load() {
		return
	}
	cur := d.current.Load()
	if layer != cur {
		// Only packets of layers not being forwarded get here: decide
		// whether this layer should take over (cur's layer stopped, or the
		// subscriber wants this one) and wait for its keyframe.
		if cur >= 0 && d.up.live(int(cur), arrival) && cur == d.target.Load() {
			return
		}
		if layer != d.wantedLayer(arrival) {
			return
		}
		if !switchable {
			if last := d.lastKeyReq.Load(); arrival-last > int64(keyframeRetry) && d.lastKeyReq.CompareAndSwap(last, arrival) {
				d.up.RequestKeyframe(int(layer))
			}
			return
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.writer == nil {
		return
	}
	if layer != d.current.Load() {
		if !switchable {
			return
		}
		d.munger.Switch(h, arrival, d.clock)
		if d.vp8 {
			d.vp8m.Switch()
		}
		d.current.Store(layer)
	}
	sn, ts, ok := d.munger.Rewrite(h, arrival)
	if !ok {
		return
	}
	out := payload
	if d.vp8 && len(payload) > 0 && d.vp8d.Unmarshal(payload) == nil {
		if b, err := d.vp8m.Rewrite(&d.vp8d, payload, d.scratch[:0]); err == nil {
			out = b
		}
	}
	d.hdr = rtp.Header{
		Version:        2,
		Padding:        h.PaddingSize > 0,
		PaddingSize:    h.PaddingSize,
		Marker:         h.Marker,
		PayloadType:    uint8(d.pt),
		SequenceNumber: sn,
		Timestamp:      ts,
		SSRC:           uint32(d.ssrc),
		Extensions:     d.ext[:0],
	}
	_, _ = d.writer.WriteRTP(&d.hdr, out)
}
