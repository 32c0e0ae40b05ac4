package sfu

import (
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/stoa-rtc/stoa/sfu/internal/rtpx"
	"github.com/stoa-rtc/stoa/sfu/internal/udpbatch"
)

// MaxLayers is the number of simulcast layers a track may have: LiveKit's
// q, h and f (PROTOCOL.md §5.2).
const MaxLayers = 3

// keyframeInterval throttles keyframe requests toward a publisher per layer.
// A PLI makes the encoder spend bits on an intra frame; several subscribers
// asking at once (a join storm, a layer switch) need only one. Chrome itself
// ignores PLIs closer than ~300 ms apart (libwebrtc
// video_send_stream's minimum keyframe request interval).
const keyframeInterval = 300 * time.Millisecond

// receiveMTU bounds one received RTP packet. pion's own receive MTU is 1460.
const receiveMTU = 1500

// RTCPWriter sends RTCP toward a publisher. *webrtc.PeerConnection is one.
type RTCPWriter interface {
	WriteRTCP(pkts []rtcp.Packet) error
}

// UpTrack is one published track: a single media section of a publisher's
// PeerConnection, received as one RTP stream per simulcast layer. It fans
// every received packet out to its DownTracks.
//
// Methods are safe for concurrent use.
type UpTrack struct {
	downs      atomic.Pointer[[]*DownTrack] // copy-on-write snapshot read per packet
	layerCount atomic.Int32
	levelID    atomic.Uint32 // audio level extension id; 0 = not negotiated
	level      audioLevel
	lastPacket [MaxLayers]atomic.Int64 // per layer: arrival of its last packet, unix nanos

	id    string
	kind  webrtc.RTPCodecType
	log   *slog.Logger
	codec webrtc.RTPCodecParameters
	ckind rtpx.Codec
	wg    sync.WaitGroup

	mu     sync.Mutex // guards the following fields
	layers [MaxLayers]*upLayer
	closed bool
}

// upLayer is one received RTP stream (one RID) and the goroutine that reads it.
type upLayer struct {
	lastKeyframeRequest atomic.Int64 // unix nanos
	up                  *UpTrack
	index               int32
	remote              *webrtc.TrackRemote
	rtcp                RTCPWriter
	batch               *udpbatch.Conn // nil: write to each subscriber at once
	hist                *history       // for subscribers' NACKs
	malformed           atomic.Uint64
	peer                *Peer // the publisher's connection, when it is a Peer
}

// NewUpTrack makes an UpTrack named id (a LiveKit TR_ sid) for media
// received with codec. layers is the number of simulcast layers the
// publisher announced (1 for audio and non-simulcast video).
func NewUpTrack(id string, kind webrtc.RTPCodecType, codec webrtc.RTPCodecParameters, layers int, log *slog.Logger) *UpTrack {
	if log == nil {
		log = slog.Default()
	}
	u := &UpTrack{id: id, kind: kind, codec: codec, ckind: rtpx.CodecFromMime(codec.MimeType), log: log}
	u.downs.Store(&[]*DownTrack{})
	u.SetLayerCount(layers)
	return u
}

// ID is the track's sid.
func (u *UpTrack) ID() string { return u.id }

// Kind is audio or video.
func (u *UpTrack) Kind() webrtc.RTPCodecType { return u.kind }

// Codec is the codec the publisher sends.
func (u *UpTrack) Codec() webrtc.RTPCodecParameters { return u.codec }

// LayerCount is the number of simulcast layers the track has.
func (u *UpTrack) LayerCount() int { return int(u.layerCount.Load()) }

// SetLayerCount records how many simulcast layers the publisher sends,
// clamped to 1..MaxLayers.
func (u *UpTrack) SetLayerCount(n int) {
	n = min(max(n, 1), MaxLayers)
	u.layerCount.Store(int32(n))
}

// AddLayer starts reading remote as simulcast layer index (0 = lowest).
// w carries keyframe requests for that layer back to the publisher. When w
// is the publisher's Peer, each packet's writes to subscribers on the same
// SFU leave in one system call. It returns an error if the track is closed
// or the layer is already present.
func (u *UpTrack) AddLayer(index int, remote *webrtc.TrackRemote, w RTCPWriter) error {
	if index < 0 || index >= MaxLayers {
		return errors.New("sfu: layer index out of range")
	}
	size := audioHistory
	if u.kind == webrtc.RTPCodecTypeVideo {
		size = videoHistory
	}
	l := &upLayer{up: u, index: int32(index), remote: remote, rtcp: w, hist: newHistory(size)}
	if p, ok := w.(*Peer); ok {
		l.batch = p.batch
		l.peer = p
	}
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return ErrClosed
	}
	if u.layers[index] != nil {
		u.mu.Unlock()
		return errors.New("sfu: layer already present")
	}
	u.layers[index] = l
	u.wg.Add(1)
	u.mu.Unlock()
	go l.readLoop()
	if l.peer != nil {
		l.peer.addLayer(l)
	}
	// Subscribers may have asked for this layer before it existed.
	l.requestKeyframe()
	return nil
}

// HasLayer reports whether layer index is being received.
func (u *UpTrack) HasLayer(index int) bool {
	if index < 0 || index >= MaxLayers {
		return false
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.layers[index] != nil
}

// layerLiveFor is how long a layer counts as sent after its last packet.
// Chrome pauses upper simulcast layers when its bandwidth estimate drops
// (and before it has ramped up); a second is well above video's packet
// spacing even at low frame rates.
const layerLiveFor = time.Second

// live reports whether layer received a packet within layerLiveFor of now.
// Lock-free: called for packets a subscriber is not forwarding.
func (u *UpTrack) live(layer int, now int64) bool {
	if layer < 0 || layer >= MaxLayers {
		return false
	}
	last := u.lastPacket[layer].Load()
	return last != 0 && now-last < int64(layerLiveFor)
}

// addDownTrack starts forwarding to d. It reports false once the track is
// closed.
func (u *UpTrack) addDownTrack(d *DownTrack) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return false
	}
	old := *u.downs.Load()
	next := make([]*DownTrack, 0, len(old)+1)
	next = append(next, old...)
	next = append(next, d)
	u.downs.Store(&next)
	return true
}

// removeDownTrack stops forwarding to d.
func (u *UpTrack) removeDownTrack(d *DownTrack) {
	u.mu.Lock()
	defer u.mu.Unlock()
	old := *u.downs.Load()
	next := make([]*DownTrack, 0, len(old))
	for _, x := range old {
		if x != d {
			next = append(next, x)
		}
	}
	u.downs.Store(&next)
}

// packet copies the packet of layer with sequence number seq into dst, as
// received, and returns its length; 0 if it is not kept.
func (u *UpTrack) packet(layer int32, seq uint16, dst []byte) int {
	if layer < 0 || layer >= MaxLayers {
		return 0
	}
	u.mu.Lock()
	l := u.layers[layer]
	u.mu.Unlock()
	if l == nil {
		return 0
	}
	return l.hist.get(seq, dst)
}

// RequestKeyframe asks the publisher for a keyframe on layer, throttled.
func (u *UpTrack) RequestKeyframe(layer int) {
	if u.kind != webrtc.RTPCodecTypeVideo || layer < 0 || layer >= MaxLayers {
		return
	}
	u.mu.Lock()
	l := u.layers[layer]
	u.mu.Unlock()
	if l != nil {
		l.requestKeyframe()
	}
}

func (l *upLayer) requestKeyframe() {
	if l.up.kind != webrtc.RTPCodecTypeVideo {
		return
	}
	now := time.Now().UnixNano()
	last := l.lastKeyframeRequest.Load()
	if now-last < int64(keyframeInterval) || !l.lastKeyframeRequest.CompareAndSwap(last, now) {
		return
	}
	pli := &rtcp.PictureLossIndication{MediaSSRC: uint32(l.remote.SSRC())}
	if err := l.rtcp.WriteRTCP([]rtcp.Packet{pli}); err != nil {
		l.up.log.Debug("keyframe request failed", "layer", l.index, "err", err)
	}
}

// readLoop is the one goroutine per received stream (STYLE §2): it owns buf,
// parses each packet in place and hands the same header and payload to every
// subscriber. It ends when pion closes the stream.
func (l *upLayer) readLoop() {
	u := l.up
	defer u.wg.Done()
	if l.peer != nil {
		defer l.peer.removeLayer(l)
	}
	buf := make([]byte, receiveMTU)
	var h rtp.Header
	for {
		n, _, err := l.remote.Read(buf)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				u.log.Debug("layer read ended", "layer", l.index, "err", err)
			}
			return
		}
		l.forward(buf[:n], &h)
	}
}

// forward sends one received packet to the layer's subscribers: pkt is the
// whole RTP packet, parsed into h (the caller's; reused per packet). Called
// by the read loop and, for a connection on the own receive path, by the
// socket's reader; both may run at once for one layer (RTX repairs come
// through pion). pkt is only read, and not kept.
func (l *upLayer) forward(pkt []byte, h *rtp.Header) {
	if payload, ok := l.parse(pkt, h); ok {
		l.send(pkt, h, payload)
	}
}

// parse parses pkt into h and returns its payload, or counts it as
// malformed and reports false.
func (l *upLayer) parse(pkt []byte, h *rtp.Header) ([]byte, bool) {
	payload, err := parseRTP(pkt, h)
	if err != nil {
		if n := l.malformed.Add(1); n%100 == 1 {
			l.up.log.Debug("dropping malformed RTP", "layer", l.index, "count", n, "err", err)
		}
		return nil, false
	}
	return payload, true
}

// send is forward once pkt is parsed into h and payload.
func (l *upLayer) send(pkt []byte, h *rtp.Header, payload []byte) {
	u := l.up
	l.hist.add(h.SequenceNumber, pkt)
	if id := u.levelID.Load(); id != 0 {
		if ext := h.GetExtension(uint8(id)); len(ext) > 0 {
			u.level.observe(ext[0] & 0x7f)
		}
	}
	// Audio can be switched to at any packet; video only at a keyframe.
	switchable := u.kind != webrtc.RTPCodecTypeVideo || (len(payload) > 0 && rtpx.IsKeyframe(u.ckind, payload))
	arrival := time.Now().UnixNano()
	u.lastPacket[l.index].Store(arrival)
	l.writePart(*u.downs.Load(), h, payload, switchable, arrival)
}

// writePart writes one packet to downs, gathering the writes into one
// system call per batch.
func (l *upLayer) writePart(downs []*DownTrack, h *rtp.Header, payload []byte, switchable bool, arrival int64) {
	if l.batch != nil && len(downs) > 1 {
		l.batch.Begin()
		defer l.batch.End()
	}
	for _, d := range downs {
		d.writeRTP(l.index, h, payload, switchable, arrival)
	}
}

var errBadPadding = errors.New("sfu: RTP padding longer than the payload")

// parseRTP parses pkt's header into h and returns the payload without its
// padding (RFC 3550 §5.1); h.PaddingSize records the padding so each
// subscriber's copy of the header reproduces it when pion marshals.
// The payload aliases pkt.
func parseRTP(pkt []byte, h *rtp.Header) ([]byte, error) {
	hlen, err := h.Unmarshal(pkt)
	if err != nil {
		return nil, err
	}
	payload := pkt[hlen:]
	h.PaddingSize = 0
	if h.Padding {
		if len(payload) == 0 {
			return nil, errBadPadding
		}
		pad := int(payload[len(payload)-1])
		if pad == 0 || pad > len(payload) {
			return nil, errBadPadding
		}
		payload = payload[:len(payload)-pad]
		h.PaddingSize = byte(pad)
	}
	return payload, nil
}

// Close stops forwarding and waits for the read loops, which end once the
// publisher's PeerConnection or transceiver has stopped. Closing twice is a
// no-op.
func (u *UpTrack) Close() {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return
	}
	u.closed = true
	u.mu.Unlock()
	downs := *u.downs.Swap(&[]*DownTrack{})
	for _, d := range downs {
		d.upClosed()
	}
}

// Wait blocks until every read loop has returned.
func (u *UpTrack) Wait() { u.wg.Wait() }
