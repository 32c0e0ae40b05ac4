package sfu

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
)

// The SFU's own receive path. Through pion, a publisher's packet passes
// four goroutines between the socket and the layer's read loop (the UDP
// mux, the ICE candidate, the DTLS/SRTP mux, the SRTP session); each
// hand-off wakes a parked thread, and on a virtual machine that was a third
// of Stoa's CPU at the meeting shape and most of the delay's tail. A
// publishing connection on the own write path (srtpout.go) also reads its
// media itself: the shared socket's reader hands each datagram from the
// publisher's address here, where it is decrypted with the connection's
// remote SRTP context and forwarded at once, on that goroutine.
//
// pion's receive interceptors then see nothing of those packets, so this
// path runs its own: transport-cc feedback from every RTP datagram of the
// connection (the extension is in the clear), and pion's NACK generator and
// receiver reports in a chain of its own, fed packet by packet. pion's
// copies stay quiet meanwhile (receiveInterceptors). Packets this path
// does not know (a layer not yet announced by pion's OnTrack, RTX) still go
// through pion; a connection whose pair moves to ICE-TCP returns to pion's
// path and its interceptors.

// twccInterval spaces transport-cc feedback, as pion's interceptor does.
const twccInterval = 100 * time.Millisecond

// srtpIn is a publishing connection's own receive path.
type srtpIn struct {
	active  atomic.Bool                          // the pair is on the UDP socket: this path runs
	packets atomic.Uint64                        // packets forwarded by this path
	streams atomic.Pointer[map[uint32]*inStream] // copy-on-write, by SSRC

	p     *Peer
	ctx   *srtp.Context // the remote's SRTP, used only on the socket's reader goroutine
	chain interceptor.Interceptor
	start time.Time
	stop  chan struct{}
	addr  netip.AddrPort // where the SFU files the path; owned by the Peer's loop

	mu     sync.Mutex // guards the following fields
	twccID uint8      // transport-cc extension id; 0: none negotiated (yet)
	twcc   *twcc.Recorder
	hdr    rtp.Header
	subs   map[uint32]*inStream // the streams, for changes
}

// inStream is one received stream on the own path: its layer, and its
// place in the interceptor chain.
type inStream struct {
	l      *upLayer
	info   *interceptor.StreamInfo
	reader interceptor.RTPReader
	pkt    []byte // the packet the chain reads next, in dec
	h      rtp.Header
	dec    [receiveMTU + 64]byte
}

// newSRTPIn prepares the own receive path of p from its DTLS secrets.
func newSRTPIn(p *Peer, ctx *srtp.Context) (*srtpIn, error) {
	gen, err := nack.NewGeneratorInterceptor()
	if err != nil {
		return nil, err
	}
	rr, err := report.NewReceiverInterceptor()
	if err != nil {
		return nil, err
	}
	reg := &interceptor.Registry{}
	reg.Add(gen)
	reg.Add(rr)
	chain, err := reg.Build("")
	if err != nil {
		return nil, err
	}
	in := &srtpIn{p: p, ctx: ctx, chain: chain, start: time.Now(), stop: make(chan struct{}),
		twcc: twcc.NewRecorder(rand.Uint32()), subs: map[uint32]*inStream{}}
	in.streams.Store(&map[uint32]*inStream{})
	in.twccID = transportCCID(p.pc)
	chain.BindRTCPWriter(interceptor.RTCPWriterFunc(in.writeRTCP))
	go in.feedbackLoop()
	return in, nil
}

// transportCCID returns the id pc's media sections negotiated for the
// transport-wide sequence number (one for the whole bundle), or 0.
func transportCCID(pc *webrtc.PeerConnection) uint8 {
	for _, tr := range pc.GetTransceivers() {
		for _, e := range tr.Receiver().GetParameters().HeaderExtensions {
			if e.URI == sdp.TransportCCURI {
				return uint8(e.ID)
			}
		}
	}
	return 0
}

// refreshTransportCC looks the transport-cc id up again. A connection may
// have had no media section when DTLS came up (a publisher on /rtc
// negotiates its data channel first): the id then comes with the offer
// that adds media, and a layer's start checks again. Not with in.mu held.
func (in *srtpIn) refreshTransportCC() {
	id := transportCCID(in.p.pc)
	if id == 0 {
		return
	}
	in.mu.Lock()
	in.twccID = id
	in.mu.Unlock()
}

// writeRTCP sends the chain's RTCP while this path runs.
func (in *srtpIn) writeRTCP(pkts []rtcp.Packet, _ interceptor.Attributes) (int, error) {
	if !in.active.Load() {
		return 0, nil
	}
	return in.p.pc.SCTP().Transport().WriteRTCP(pkts)
}

// feedbackLoop sends transport-cc feedback every twccInterval until close.
func (in *srtpIn) feedbackLoop() {
	t := time.NewTicker(twccInterval)
	defer t.Stop()
	for {
		select {
		case <-in.stop:
			return
		case <-t.C:
		}
		in.mu.Lock()
		pkts := in.twcc.BuildFeedbackPacket()
		in.mu.Unlock()
		if len(pkts) > 0 {
			_, _ = in.writeRTCP(pkts, nil)
		}
	}
}

// add takes layer l, received from the publisher as remote, onto the path.
func (in *srtpIn) add(l *upLayer) {
	codec := l.remote.Codec()
	info := &interceptor.StreamInfo{
		SSRC:        uint32(l.remote.SSRC()),
		PayloadType: uint8(codec.PayloadType),
		MimeType:    codec.MimeType,
		ClockRate:   codec.ClockRate,
		Channels:    codec.Channels,
		SDPFmtpLine: codec.SDPFmtpLine,
	}
	for _, fb := range codec.RTCPFeedback {
		info.RTCPFeedback = append(info.RTCPFeedback, interceptor.RTCPFeedback{Type: fb.Type, Parameter: fb.Parameter})
	}
	st := &inStream{l: l, info: info}
	// The chain reads the decrypted packet where it lies: receive hands
	// it dec, which holds the packet already.
	st.reader = in.chain.BindRemoteStream(info, interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		if len(b) == 0 || len(st.pkt) == 0 || &b[0] != &st.pkt[0] {
			return copy(b, st.pkt), a, nil
		}
		return len(st.pkt), a, nil
	}))
	in.refreshTransportCC()
	in.mu.Lock()
	defer in.mu.Unlock()
	in.subs[info.SSRC] = st
	in.publishLocked()
}

// remove takes the stream with ssrc off the path.
func (in *srtpIn) remove(ssrc uint32) {
	in.mu.Lock()
	defer in.mu.Unlock()
	st := in.subs[ssrc]
	if st == nil {
		return
	}
	delete(in.subs, ssrc)
	in.publishLocked()
	in.chain.UnbindRemoteStream(st.info)
}

func (in *srtpIn) publishLocked() {
	m := make(map[uint32]*inStream, len(in.subs))
	for k, v := range in.subs {
		m[k] = v
	}
	in.streams.Store(&m)
}

// close stops the path's goroutines.
func (in *srtpIn) close() {
	in.active.Store(false)
	close(in.stop)
	_ = in.chain.Close()
}

// receive takes a datagram from the publisher's address, on the socket's
// reader goroutine, and reports whether it consumed it.
func (in *srtpIn) receive(b []byte) bool {
	// RTP only (RFC 7983: first byte 128..191), not RTCP (RFC 5761 §4:
	// payload types 64..95 with the marker bit cleared).
	if len(b) < 12 || b[0]>>6 != 2 || !in.active.Load() {
		return false
	}
	if pt := b[1] & 0x7f; pt >= 64 && pt <= 95 {
		return false
	}
	ssrc := binary.BigEndian.Uint32(b[8:12])
	st := (*in.streams.Load())[ssrc]
	if st == nil {
		// pion's path (a layer not announced yet, or RTX), but the
		// transport-cc sequence number is this path's to record. Under
		// cryptex (RFC 9335) the extensions are encrypted: then it is lost.
		in.mu.Lock()
		if _, err := in.hdr.Unmarshal(b); err == nil && in.hdr.Extension &&
			(in.hdr.ExtensionProfile == rtp.ExtensionProfileOneByte || in.hdr.ExtensionProfile == rtp.ExtensionProfileTwoByte) {
			in.recordTWCCLocked(&in.hdr)
		}
		in.mu.Unlock()
		return false
	}
	dec, err := in.ctx.DecryptRTP(st.dec[:0], b, &st.h)
	if err != nil {
		return true // forged, replayed or broken: dropped, as pion's session would
	}
	// Parsed once, from the decrypted packet (its extensions are in the
	// clear now, cryptex or not), for transport-cc and the fan-out.
	payload, ok := st.l.parse(dec, &st.h)
	if !ok {
		return true
	}
	in.mu.Lock()
	in.recordTWCCLocked(&st.h)
	in.mu.Unlock()
	st.pkt = dec
	if _, _, err := st.reader.Read(st.dec[:], nil); err != nil { // NACK log and report statistics
		return true
	}
	st.l.send(dec, &st.h, payload)
	in.packets.Add(1)
	return true
}

// recordTWCCLocked notes the transport-wide sequence number of the packet
// whose header is h.
func (in *srtpIn) recordTWCCLocked(h *rtp.Header) {
	if in.twccID == 0 {
		return
	}
	if ext := h.GetExtension(in.twccID); len(ext) >= 2 {
		in.twcc.Record(h.SSRC, binary.BigEndian.Uint16(ext), time.Since(in.start).Microseconds())
	}
}

// receive hands a datagram read on the UDP socket to the own receive path
// of the publisher it comes from.
func (s *SFU) receive(b []byte, from netip.AddrPort) bool {
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	s.rmu.RLock()
	p := s.receivers[from]
	s.rmu.RUnlock()
	if p == nil {
		return false
	}
	in := p.in.Load()
	return in != nil && in.receive(b)
}

// setReceiver files p under addr (an invalid addr only removes old).
func (s *SFU) setReceiver(old, addr netip.AddrPort, p *Peer) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if s.receivers[old] == p {
		delete(s.receivers, old)
	}
	if addr.IsValid() {
		if s.receivers == nil {
			s.receivers = map[netip.AddrPort]*Peer{}
		}
		s.receivers[addr] = p
	}
}

// remoteContext returns the SRTP context for what the remote sends. It
// takes packets with encrypted header extensions (cryptex, RFC 9335) as
// well as plain ones: pion negotiates cryptex with peers that offer it,
// and the packets are authenticated either way.
func remoteContext(cfg *srtp.Config) (*srtp.Context, error) {
	return srtp.CreateContext(cfg.Keys.RemoteMasterKey, cfg.Keys.RemoteMasterSalt, cfg.Profile,
		srtp.SRTPReplayProtection(64), srtp.Cryptex(srtp.CryptexModeEnabled))
}
