package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/logging"
	"github.com/pion/sdp/v3"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"
)

// env is what every participant of a run shares.
type env struct {
	cfg    *runConfig
	pubAPI *webrtc.API
	// subAPI builds the API of one participant's subscriber
	// PeerConnection, whose socket records kernel receive times into rx.
	subAPI func(rx *rxTable) *webrtc.API
	rec    *recorder
}

// settingEngine keeps every socket of the generator on IPv4 loopback: it
// gathers loopback host candidates only (pion leaves them out by default)
// and never multicasts mDNS queries.
func settingEngine(verbose bool, stderr io.Writer) webrtc.SettingEngine {
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelDisabled
	if verbose {
		lf.DefaultLogLevel = logging.LogLevelWarn
		lf.Writer = stderr
	}
	se := webrtc.SettingEngine{LoggerFactory: lf}
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() && ip.To4() != nil })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return se
}

// videoFeedback is the RTCP feedback a browser offers for video.
func videoFeedback() []webrtc.RTCPFeedback {
	return []webrtc.RTCPFeedback{
		{Type: webrtc.TypeRTCPFBGoogREMB},
		{Type: webrtc.TypeRTCPFBTransportCC},
		{Type: webrtc.TypeRTCPFBCCM, Parameter: "fir"},
		{Type: webrtc.TypeRTCPFBNACK},
		{Type: webrtc.TypeRTCPFBNACK, Parameter: "pli"},
	}
}

// mediaEngine registers VP8 and Opus with the payload types browsers use,
// and the header extensions a browser negotiates.
func mediaEngine(publisher bool) (*webrtc.MediaEngine, error) {
	me := &webrtc.MediaEngine{}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeVP8, ClockRate: videoClock, RTCPFeedback: videoFeedback(),
	}, PayloadType: 96}, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, err
	}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeOpus, ClockRate: audioClock, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1",
		RTCPFeedback: []webrtc.RTCPFeedback{{Type: webrtc.TypeRTCPFBTransportCC}},
	}, PayloadType: 111}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	exts := map[webrtc.RTPCodecType][]string{
		webrtc.RTPCodecTypeVideo: {sdp.SDESMidURI, sdp.TransportCCURI},
		webrtc.RTPCodecTypeAudio: {sdp.SDESMidURI, sdp.TransportCCURI},
	}
	if publisher {
		exts[webrtc.RTPCodecTypeVideo] = append(exts[webrtc.RTPCodecTypeVideo], sdp.SDESRTPStreamIDURI, sdp.SDESRepairRTPStreamIDURI)
		exts[webrtc.RTPCodecTypeAudio] = append(exts[webrtc.RTPCodecTypeAudio], sdp.AudioLevelURI)
	}
	for kind, uris := range exts {
		for _, u := range uris {
			if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: u}, kind); err != nil {
				return nil, err
			}
		}
	}
	return me, nil
}

// newAPIs builds the publisher API and the builder of subscriber APIs.
// Publishers send sender reports and transport-wide sequence numbers, as
// browsers do; subscribers send receiver reports and transport-wide
// congestion control feedback (LiveKit's downstream allocator runs on it),
// and NACKs if nack is set. Neither keeps pion's stats interceptor, which
// costs work per packet. Each subscriber API has its own transport.Net, the
// only way to hand pion a socket per PeerConnection without putting a UDP
// mux, and its extra goroutine hand-off, in front of it; rxUnavailable is
// called when such a socket cannot get kernel timestamps.
func newAPIs(nackOn, verbose bool, stderr io.Writer, rxUnavailable func(error)) (pub *webrtc.API, sub func(*rxTable) *webrtc.API, err error) {
	se := settingEngine(verbose, stderr)

	pme, err := mediaEngine(true)
	if err != nil {
		return nil, nil, err
	}
	pir := &interceptor.Registry{}
	sr, err := report.NewSenderInterceptor()
	if err != nil {
		return nil, nil, err
	}
	pir.Add(sr)
	tw, err := twcc.NewHeaderExtensionInterceptor()
	if err != nil {
		return nil, nil, err
	}
	pir.Add(tw)
	pub = webrtc.NewAPI(webrtc.WithMediaEngine(pme), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(pir))

	sme, err := mediaEngine(false)
	if err != nil {
		return nil, nil, err
	}
	sir := &interceptor.Registry{}
	rr, err := report.NewReceiverInterceptor()
	if err != nil {
		return nil, nil, err
	}
	sir.Add(rr)
	fb, err := twcc.NewSenderInterceptor()
	if err != nil {
		return nil, nil, err
	}
	sir.Add(fb)
	if nackOn {
		gen, err := nack.NewGeneratorInterceptor()
		if err != nil {
			return nil, nil, err
		}
		sir.Add(gen)
	}
	base, err := stdnet.NewNet()
	if err != nil {
		return nil, nil, err
	}
	sub = func(rx *rxTable) *webrtc.API {
		sse := se
		sse.SetNet(&rxNet{Net: base, table: rx, unavailable: rxUnavailable})
		// NewPeerConnection copies the MediaEngine, and the registry builds
		// new interceptors per PeerConnection: both may be shared.
		return webrtc.NewAPI(webrtc.WithMediaEngine(sme), webrtc.WithSettingEngine(sse), webrtc.WithInterceptorRegistry(sir))
	}
	return pub, sub, nil
}

// recorder collects what participants report. Safe for concurrent use.
type recorder struct {
	mu       sync.Mutex // guards the following fields
	streams  []*stream
	pubs     []*pubCounters
	joins    []time.Duration
	errCount int
	errKinds map[string]int
	tables   []*rxTable
	rxErr    string // why a subscriber socket has no kernel timestamps, the first time it happened
}

func newRecorder() *recorder { return &recorder{errKinds: map[string]int{}} }

func (r *recorder) fail(msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errCount++
	r.errKinds[msg]++
}

func (r *recorder) addStream(s *stream) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.streams = append(r.streams, s)
}

func (r *recorder) addPublisher(c *pubCounters) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pubs = append(r.pubs, c)
}

func (r *recorder) addRxTable(t *rxTable) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tables = append(r.tables, t)
}

func (r *recorder) rxUnavailable(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rxErr == "" {
		r.rxErr = err.Error()
	}
}

func (r *recorder) joined(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.joins = append(r.joins, d)
}

func (r *recorder) allStreams() []*stream {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*stream(nil), r.streams...)
}

func (r *recorder) errorsSummary() (int, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	kinds := make([]string, 0, len(r.errKinds))
	for k, n := range r.errKinds {
		kinds = append(kinds, fmt.Sprintf("%dx %s", n, k))
	}
	sort.Strings(kinds)
	return r.errCount, kinds
}

// errorClass shortens an error to something that aggregates across
// participants (no addresses or ports).
func errorClass(err error) string {
	var ce *websocket.CloseError
	switch {
	case errors.As(err, &ce):
		return fmt.Sprintf("closed by server (%d %s)", ce.Code, ce.Text)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "EOF"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}
