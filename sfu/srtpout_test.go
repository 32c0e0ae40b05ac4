package sfu

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/selfsign"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
)

// TestOwnWritePath connects a pion client to an SFU Peer over UDP and over
// ICE-TCP, and checks that the packets a DownTrack writes on the SFU's own
// write path (keys derived from the DTLS handshake, encrypted and sent
// without pion's SRTP session) decrypt at the client, byte for byte.
func TestOwnWritePath(t *testing.T) {
	for _, network := range []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeTCP4} {
		t.Run(network.String(), func(t *testing.T) { testOwnWritePath(t, network) })
	}
}

func testOwnWritePath(t *testing.T, network webrtc.NetworkType) {
	s, err := New(Config{BindIP: "127.0.0.1", IncludeLoopback: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	// The client answers the SFU's offers as LiveKit's subscriber
	// connection does.
	client := loopbackClient(t, network)

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var p *Peer
	answers := make(chan error, 4)
	// The SFU's candidates wait for the client to have its offer: an
	// ICE-TCP client that lost the passive candidate would never connect.
	candidates := make(chan webrtc.ICECandidateInit, 16)
	p, err = s.NewPeer(PeerConfig{
		ServerOffers: true,
		Logger:       slog.New(slog.DiscardHandler),
		OnDescription: func(desc webrtc.SessionDescription, id uint32, _ map[string]string) {
			go func() {
				err := answer(client, p, desc, id)
				answers <- err
				for {
					select {
					case c := <-candidates:
						_ = client.AddICECandidate(c)
					case <-ctx.Done():
						return
					}
				}
			}()
		},
		OnCandidate: func(c webrtc.ICECandidateInit) { candidates <- c },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	client.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			p.AddCandidate(c.ToJSON())
		}
	})
	received := make(chan *rtp.Packet, 64)
	client.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			select {
			case received <- pkt:
			default:
			}
		}
	})

	up := NewUpTrack("TR_own", webrtc.RTPCodecTypeVideo, vp8Codec, 1, nil)
	d := up.NewDownTrack("PA_x|TR_own", 0)
	p.AddDownTrack(d)
	select {
	case err := <-answers:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("no offer from the SFU")
	}
	for p.out.Load() == nil || !d.ready.Load() {
		select {
		case <-ctx.Done():
			t.Fatalf("own write path not set up (connection %s)", p.pc.ConnectionState())
		case <-time.After(10 * time.Millisecond):
		}
	}
	o := p.out.Load()
	if network == webrtc.NetworkTypeTCP4 && o.tcp.Load() == nil || network == webrtc.NetworkTypeUDP4 && o.udp.Load() == nil {
		t.Fatalf("own write path not on %s", network)
	}

	// Write until the client has decoded ten packets; every one must be
	// what was written.
	src := &layerSource{h: rtp.Header{Version: 2, SSRC: 42, SequenceNumber: 100, Timestamp: 9000}, pid: 7}
	want := map[uint16][]byte{}
	got := 0
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i := 0; got < 10; i++ {
		select {
		case <-ctx.Done():
			t.Fatalf("client decoded %d packets", got)
		case pkt := <-received:
			w, ok := want[pkt.SequenceNumber]
			if !ok || !bytes.Equal(pkt.Payload, w) {
				t.Fatalf("packet %d: payload differs from the one written", pkt.SequenceNumber)
			}
			got++
		case <-tick.C:
			h, payload := src.next(i == 0, true)
			want[h.SequenceNumber] = payload // the source's numbering is kept from the first packet
			d.writeRTP(0, h, payload, i == 0, time.Now().UnixNano())
		}
	}
}

// answer gives the client the SFU's offer and the SFU the client's answer.
// loopbackClient is a pion PeerConnection with the default codecs that
// gathers loopback candidates of one network type only. It is closed when
// the test ends.
func loopbackClient(t *testing.T, network webrtc.NetworkType) *webrtc.PeerConnection {
	t.Helper()
	se := webrtc.SettingEngine{}
	se.SetNetworkTypes([]webrtc.NetworkType{network})
	se.SetIncludeLoopbackCandidate(true)
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	client, err := webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(me)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return client
}

func answer(client *webrtc.PeerConnection, p *Peer, offer webrtc.SessionDescription, id uint32) error {
	if err := client.SetRemoteDescription(offer); err != nil {
		return err
	}
	ans, err := client.CreateAnswer(nil)
	if err != nil {
		return err
	}
	if err := client.SetLocalDescription(ans); err != nil {
		return err
	}
	return p.HandleAnswer(ans.SDP, id)
}

// TestDTLSSecretsExport runs pion's own DTLS between two loopback sockets
// and checks that the keying material dtlsSecrets derives from the server's
// key log and ServerHello equals what the server's DTLS state exports, for
// a SHA-256 and a SHA-384 cipher suite and both kinds of SRTP profile.
func TestDTLSSecretsExport(t *testing.T) {
	cert, err := selfsign.GenerateSelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		suite   dtls.CipherSuiteID
		profile dtls.SRTPProtectionProfile
	}{
		{dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, dtls.SRTP_AEAD_AES_128_GCM},
		{dtls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, dtls.SRTP_AES128_CM_HMAC_SHA1_80},
	} {
		t.Run(tc.suite.String(), func(t *testing.T) {
			a, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			b, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			secrets := &dtlsSecrets{}
			cfg := func() *dtls.Config {
				return &dtls.Config{
					Certificates:           []tls.Certificate{cert},
					InsecureSkipVerify:     true,
					CipherSuites:           []dtls.CipherSuiteID{tc.suite},
					SRTPProtectionProfiles: []dtls.SRTPProtectionProfile{tc.profile},
				}
			}
			scfg := cfg()
			scfg.KeyLogWriter = secrets
			scfg.ServerHelloMessageHook = secrets.serverHello
			server, err := dtls.Server(a, b.LocalAddr(), scfg)
			if err != nil {
				t.Fatal(err)
			}
			defer server.Close()
			client, err := dtls.Client(b, a.LocalAddr(), cfg())
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			errs := make(chan error, 1)
			go func() { errs <- client.HandshakeContext(ctx) }()
			if err := server.HandshakeContext(ctx); err != nil {
				t.Fatal(err)
			}
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
			state, ok := server.ConnectionState()
			if !ok {
				t.Fatal("no server state")
			}
			want, err := state.ExportKeyingMaterial("EXTRACTOR-dtls_srtp", nil, 60)
			if err != nil {
				t.Fatal(err)
			}
			got, err := secrets.ExportKeyingMaterial("EXTRACTOR-dtls_srtp", nil, 60)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatal("derived keying material differs from the DTLS state's")
			}
			if secrets.profile != srtp.ProtectionProfile(tc.profile) {
				t.Fatalf("profile %v, want %v", secrets.profile, tc.profile)
			}
			if _, _, err := secrets.contexts(); err != nil {
				t.Fatal(err)
			}
			if secrets.masterSecret != nil {
				t.Fatal("master secret kept after the context was made")
			}
		})
	}
}

func TestKeyLogJunkIgnored(t *testing.T) {
	k := &dtlsSecrets{}
	for _, line := range []string{"", "CLIENT_RANDOM", "CLIENT_RANDOM zz yy\n", "SERVER_HANDSHAKE 00 11\n", "CLIENT_RANDOM 00 11 22\n"} {
		if n, err := k.Write([]byte(line)); err != nil || n != len(line) {
			t.Fatalf("Write(%q) = %d, %v", line, n, err)
		}
	}
	if k.masterSecret != nil {
		t.Fatal("junk taken as a secret")
	}
	if _, _, err := k.contexts(); err == nil {
		t.Fatal("a context without secrets")
	}
}
