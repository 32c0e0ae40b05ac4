package sfu

import (
	"fmt"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// Header extension URIs the SFU negotiates.
const (
	extAudioLevel = "urn:ietf:params:rtp-hdrext:ssrc-audio-level" // RFC 6464, for active speakers
	extMid        = "urn:ietf:params:rtp-hdrext:sdes:mid"         // RFC 8843 §15
)

// Payload types are the ones browsers commonly use (Opus 111, VP8 96), so SDP stays familiar
// to anyone debugging against a LiveKit deployment.
func registerCodecs(me *webrtc.MediaEngine) error {
	videoFB := []webrtc.RTCPFeedback{
		{Type: webrtc.TypeRTCPFBGoogREMB},
		{Type: webrtc.TypeRTCPFBTransportCC},
		{Type: webrtc.TypeRTCPFBCCM, Parameter: "fir"},
		{Type: webrtc.TypeRTCPFBNACK},
		{Type: webrtc.TypeRTCPFBNACK, Parameter: "pli"},
	}
	// usedtx=1 in our answer turns on Opus DTX in the browser's sender
	// (RFC 7587 §7; PROTOCOL.md §5.1), which Element Call relies on.
	audio := []webrtc.RTPCodecParameters{
		{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
			SDPFmtpLine:  "minptime=10;useinbandfec=1;usedtx=1",
			RTCPFeedback: []webrtc.RTCPFeedback{{Type: webrtc.TypeRTCPFBNACK}, {Type: webrtc.TypeRTCPFBTransportCC}},
		}, PayloadType: 111},
	}
	type vc struct {
		mime string
		fmtp string
		pt   webrtc.PayloadType
	}
	// Each video codec's RTX (RFC 4588) takes PT+1, so the pairs must stay
	// below 127 and clear of Opus' 111.
	video := []vc{
		{webrtc.MimeTypeVP8, "", 96},
		{webrtc.MimeTypeVP9, "profile-id=0", 98},
		{webrtc.MimeTypeVP9, "profile-id=2", 100},
		{webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", 102},
		{webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f", 104},
		{webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f", 106},
		{webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f", 108},
		{webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640032", 112},
		{webrtc.MimeTypeAV1, "", 35},
	}
	for _, c := range audio {
		if err := me.RegisterCodec(c, webrtc.RTPCodecTypeAudio); err != nil {
			return fmt.Errorf("sfu: register %s: %w", c.MimeType, err)
		}
	}
	for _, c := range video {
		p := webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: c.mime, ClockRate: 90000, SDPFmtpLine: c.fmtp, RTCPFeedback: videoFB,
		}, PayloadType: c.pt}
		if err := me.RegisterCodec(p, webrtc.RTPCodecTypeVideo); err != nil {
			return fmt.Errorf("sfu: register %s: %w", c.mime, err)
		}
		// RTX (RFC 4588) on PT+1: browsers retransmit on it and pion unwraps
		// it before TrackRemote.Read; DownTrack answers subscribers' NACKs on it.
		rtx := webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: fmt.Sprintf("apt=%d", c.pt),
		}, PayloadType: c.pt + 1}
		if err := me.RegisterCodec(rtx, webrtc.RTPCodecTypeVideo); err != nil {
			return fmt.Errorf("sfu: register rtx: %w", err)
		}
	}
	for _, ext := range []string{extMid, extAudioLevel} {
		if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: ext}, webrtc.RTPCodecTypeAudio); err != nil {
			return fmt.Errorf("sfu: register %s: %w", ext, err)
		}
	}
	if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: extMid}, webrtc.RTPCodecTypeVideo); err != nil {
		return fmt.Errorf("sfu: register %s: %w", extMid, err)
	}
	// rid and repaired-rid let pion demultiplex rid-based simulcast.
	for _, ext := range []string{sdp.SDESRTPStreamIDURI, sdp.SDESRepairRTPStreamIDURI} {
		if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: ext}, webrtc.RTPCodecTypeVideo,
			webrtc.RTPTransceiverDirectionRecvonly); err != nil {
			return fmt.Errorf("sfu: register %s: %w", ext, err)
		}
	}
	return nil
}

// registerFeedback negotiates what the receive interceptors need: NACK
// and PLI feedback for video, and the transport-wide sequence number
// extension (without transport-cc feedback Chrome's estimate stays low and
// it never sends its top simulcast layer; PROTOCOL.md §5.3).
func registerFeedback(me *webrtc.MediaEngine) error {
	me.RegisterFeedback(webrtc.RTCPFeedback{Type: "nack"}, webrtc.RTPCodecTypeVideo)
	me.RegisterFeedback(webrtc.RTCPFeedback{Type: "nack", Parameter: "pli"}, webrtc.RTPCodecTypeVideo)
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.TransportCCURI}, kind); err != nil {
			return err
		}
	}
	return nil
}

// receiveInterceptors fills ir with pion's receive-side RTP/RTCP machinery
// for one publishing connection: NACK generation toward the publisher,
// receiver reports and transport-cc feedback. Their RTCP goes out only
// while pionRTCP says so: once the connection's own receive path
// (srtpin.go) runs, it generates all three itself and pion's stay quiet.
//
// Nothing is installed on the send side: every interceptor there runs for
// every packet to every subscriber. DownTrack answers NACKs itself from one
// history per published layer and writes its own sender reports. pion's
// stats interceptor is left out for the same reason.
func receiveInterceptors(ir *interceptor.Registry, pionRTCP func() bool) error {
	gen, err := nack.NewGeneratorInterceptor()
	if err != nil {
		return err
	}
	rr, err := report.NewReceiverInterceptor()
	if err != nil {
		return err
	}
	tw, err := twcc.NewSenderInterceptor()
	if err != nil {
		return err
	}
	for _, f := range []interceptor.Factory{gen, rr, tw} {
		ir.Add(gatedFactory{f: f, open: pionRTCP})
	}
	return nil
}

// gatedFactory makes receive interceptors whose own RTCP goes out only
// while open says so.
type gatedFactory struct {
	f    interceptor.Factory
	open func() bool
}

func (g gatedFactory) NewInterceptor(id string) (interceptor.Interceptor, error) {
	i, err := g.f.NewInterceptor(id)
	if err != nil {
		return nil, err
	}
	return &gated{Interceptor: i, open: g.open}, nil
}

type gated struct {
	interceptor.Interceptor
	open func() bool
}

// BindRTCPWriter gives the interceptor a writer that drops its RTCP while
// closed, and passes everyone else's RTCP on untouched (the receive
// interceptors only add RTCP of their own).
func (g *gated) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter {
	g.Interceptor.BindRTCPWriter(interceptor.RTCPWriterFunc(func(pkts []rtcp.Packet, a interceptor.Attributes) (int, error) {
		if !g.open() {
			return 0, nil
		}
		return w.Write(pkts, a)
	}))
	return w
}
