package sfu

import (
	"strconv"
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
	rtxSSRC webrtc.SSRC        // 0: retransmit on ssrc
	rtxPT   webrtc.PayloadType // RFC 4588 payload type paired with pt
	rtxSeq  uint16
	writer  webrtc.TrackLocalWriter
	munger  rtpx.Munger
	vp8m    rtpx.VP8Munger
	vp8d    rtpx.VP8
	hdr     rtp.Header
	ext     [4]rtp.Extension // backing array for interceptors' extensions
	scratch [receiveMTU]byte // rewritten VP8 payload
	sender  *webrtc.RTPSender
	peer    *Peer        // the subscriber's connection, once attached
	sent    []sentPacket // by output sequence number, for NACKs
	packets uint32       // sender report counters (RFC 3550 §6.4.1)
	octets  uint32
	lastSR  int64 // unix nanos

	// Retransmission buffers: a packet from the layer's history, and its
	// rewritten payload behind room for RTX's original sequence number.
	rtxHdr rtp.Header
	rtxIn  [receiveMTU]byte
	rtxOut [2 + receiveMTU]byte
}

// sentPacket is what a DownTrack needs to send a packet again exactly as it
// first did: where it came from in the layer's history and the values the
// rewrite gave it.
type sentPacket struct {
	lastResent int64  // unix nanos
	ts         uint32 // output timestamp
	sn         uint16 // output sequence number: the entry's key
	src        uint16 // sequence number in the layer
	pid        uint16 // output VP8 picture ID
	layer      int8   // -1: empty
	tl0        uint8  // output VP8 TL0PICIDX
	vp8        bool   // pid and tl0 are set
	resent     uint8
}

// Retransmission limits. A subscriber asks again for a packet whose
// retransmission was lost, but not sooner than a round trip; answering the
// same request more often only feeds a loss burst.
const (
	maxResends     = 3
	resendInterval = 50 * time.Millisecond
	// maxResendPerNACK bounds the packets one NACK message can make the SFU
	// send: a hostile subscriber must not turn a small RTCP packet into a
	// flood.
	maxResendPerNACK = 64
)

// srInterval spaces sender reports. Receivers use them to synchronise
// audio with video (RFC 3550 §6.4.1) and to measure round-trip time;
// libwebrtc sends one a second for video.
const srInterval = time.Second

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
	size := audioHistory
	if u.kind == webrtc.RTPCodecTypeVideo {
		size = videoHistory
	}
	d.sent = make([]sentPacket, size)
	for i := range d.sent {
		d.sent[i].layer = -1
	}
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
	d.rtxSSRC, d.rtxPT = 0, 0
	if rtx := ctx.SSRCRetransmission(); rtx != 0 {
		apt := "apt=" + strconv.Itoa(int(match.PayloadType))
		for _, c := range ctx.CodecParameters() {
			if strings.EqualFold(c.MimeType, webrtc.MimeTypeRTX) && c.SDPFmtpLine == apt {
				d.rtxSSRC, d.rtxPT = rtx, c.PayloadType
				break
			}
		}
	}
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
func (d *DownTrack) attach(p *Peer, sender *webrtc.RTPSender) bool {
	d.mu.Lock()
	d.sender = sender
	d.peer = p
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

// rtcpLoop reads the subscriber's RTCP: NACKs are answered from the
// layers' histories; PLI and FIR become a throttled keyframe request toward
// the publisher.
func (d *DownTrack) rtcpLoop(sender *webrtc.RTPSender) {
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.TransportLayerNack:
				d.resend(p, time.Now().UnixNano())
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
	m := &d.sent[sn&uint16(len(d.sent)-1)]
	*m = sentPacket{ts: ts, sn: sn, src: h.SequenceNumber, layer: int8(layer)}
	if d.vp8 && len(payload) > 0 && d.vp8d.Unmarshal(payload) == nil {
		pid, tl0 := d.vp8m.Map(&d.vp8d)
		if b, err := rtpx.PutVP8IDs(&d.vp8d, payload, d.scratch[:0], pid, tl0); err == nil {
			out = b
			m.pid, m.tl0, m.vp8 = pid, tl0, true
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
	if err := d.writeLocked(&d.hdr, out); err != nil {
		return
	}
	d.packets++
	d.octets += uint32(len(out))
	if arrival-d.lastSR >= int64(srInterval) {
		d.reportLocked(ts, arrival)
	}
}

// writeLocked sends one packet: on the connection's own write path once it
// has one, else through pion's.
func (d *DownTrack) writeLocked(h *rtp.Header, payload []byte) error {
	if d.peer != nil {
		if o := d.peer.out.Load(); o != nil {
			return o.writeRTP(h, payload)
		}
	}
	_, err := d.writer.WriteRTP(h, payload)
	return err
}

// reportLocked sends a sender report mapping now to ts, the timestamp of
// the packet just written. Like libwebrtc's, it uses the arrival time as
// the wall clock of that packet.
func (d *DownTrack) reportLocked(ts uint32, now int64) {
	d.lastSR = now
	if d.sender == nil {
		return
	}
	sr := &rtcp.SenderReport{
		SSRC:        uint32(d.ssrc),
		NTPTime:     ntpTime(now),
		RTPTime:     ts,
		PacketCount: d.packets,
		OctetCount:  d.octets,
	}
	_, _ = d.sender.Transport().WriteRTCP([]rtcp.Packet{sr})
}

// ntpTime converts unix nanoseconds to the 64-bit NTP format of sender
// reports (RFC 3550 §4): seconds since 1900 and a binary fraction.
func ntpTime(unixNanos int64) uint64 {
	const epochOffset = 2208988800 // 1900-01-01 to 1970-01-01, in seconds
	sec := uint64(unixNanos/1e9) + epochOffset
	frac := uint64(unixNanos%1e9) << 32 / 1e9
	return sec<<32 | frac
}

// resend answers a NACK (RFC 4585 §6.2.1): every listed packet still in
// the histories is sent again, byte for byte as the first time, on the RTX
// stream when one was negotiated (RFC 4588) or else on the media stream.
func (d *DownTrack) resend(nack *rtcp.TransportLayerNack, now int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.writer == nil || d.closed {
		return
	}
	budget := maxResendPerNACK
	for _, pair := range nack.Nacks {
		if budget <= 0 {
			return
		}
		if d.resendLocked(pair.PacketID, now) {
			budget--
		}
		for i := range uint16(16) {
			if pair.LostPackets&(1<<i) != 0 && budget > 0 && d.resendLocked(pair.PacketID+i+1, now) {
				budget--
			}
		}
	}
}

// resendLocked sends output packet sn again and reports whether it did.
func (d *DownTrack) resendLocked(sn uint16, now int64) bool {
	m := &d.sent[sn&uint16(len(d.sent)-1)]
	if m.layer < 0 || m.sn != sn || m.resent >= maxResends || now-m.lastResent < int64(resendInterval) {
		return false
	}
	n := d.up.packet(int32(m.layer), m.src, d.rtxIn[:])
	if n == 0 {
		return false
	}
	var h rtp.Header
	payload, err := parseRTP(d.rtxIn[:n], &h)
	if err != nil || h.SequenceNumber != m.src {
		return false
	}
	out := payload
	if m.vp8 && d.vp8d.Unmarshal(payload) == nil {
		if b, err := rtpx.PutVP8IDs(&d.vp8d, payload, d.rtxOut[2:2], m.pid, m.tl0); err == nil {
			out = b
		}
	}
	d.rtxHdr = rtp.Header{
		Version:        2,
		Marker:         h.Marker,
		PayloadType:    uint8(d.pt),
		SequenceNumber: sn,
		Timestamp:      m.ts,
		SSRC:           uint32(d.ssrc),
		Extensions:     d.ext[:0],
	}
	if d.rtxSSRC != 0 {
		// RTX payload: the original sequence number, then the payload.
		body := d.rtxOut[:2+len(out)]
		copy(body[2:], out)
		body[0], body[1] = byte(sn>>8), byte(sn)
		out = body
		d.rtxHdr.PayloadType = uint8(d.rtxPT)
		d.rtxHdr.SequenceNumber = d.rtxSeq
		d.rtxHdr.SSRC = uint32(d.rtxSSRC)
		d.rtxSeq++
	}
	if err := d.writeLocked(&d.rtxHdr, out); err != nil {
		return false
	}
	m.resent++
	m.lastResent = now
	return true
}
