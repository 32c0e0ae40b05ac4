package sfu

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/pion/dtls/v3/pkg/crypto/prf"
	"github.com/pion/dtls/v3/pkg/protocol/extension"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/stoa-rtc/stoa/sfu/internal/udpbatch"
)

// The SFU's own RTP write path. pion's path from a TrackLocal to the socket
// runs through its interceptor chain, an SRTP session (with a buffer pool
// and a lock), the DTLS and ICE muxes and the UDP mux, about nine calls and
// three locks per packet, which was a fifth of Stoa's CPU at the webinar
// shape. A Peer that is the DTLS server of its connection (always, with
// LiveKit clients: the SFU offers actpass to subscribers and answers
// passive) derives the SRTP keys itself and writes each packet in one step:
// marshal, encrypt in place, hand to the shared UDP socket (or the ICE-TCP
// connection) for the selected candidate pair.
//
// The keys come from the DTLS handshake through two of pion's public hooks:
// the master secret and client random from its key log writer (kept in
// memory, never written anywhere), and the server random, cipher suite and
// SRTP profile from the ServerHello it sends. From them the RFC 5705
// exporter gives the RFC 5764 keying material, exactly as pion computes it.
// A connection where that fails (the SFU was the DTLS client, an unknown
// cipher suite) keeps pion's path for its whole life, so that one SRTP
// context owns each stream's rollover counter.

// dtlsSecrets collects what the SFU needs of one DTLS handshake, in which it
// is the server. It implements io.Writer for pion's key log, and
// srtp.KeyingMaterialExporter.
type dtlsSecrets struct {
	mu           sync.Mutex // guards the following fields
	clientRandom []byte
	masterSecret []byte
	serverRandom []byte
	suite        uint16
	profile      srtp.ProtectionProfile
}

// Write takes a key log line: "CLIENT_RANDOM <client random> <master
// secret>", both in hex (NSS key log format).
func (k *dtlsSecrets) Write(line []byte) (int, error) {
	fields := bytes.Fields(line)
	if len(fields) != 3 || string(fields[0]) != "CLIENT_RANDOM" {
		return len(line), nil
	}
	cr, err1 := hex.DecodeString(string(fields[1]))
	ms, err2 := hex.DecodeString(string(fields[2]))
	if err1 != nil || err2 != nil {
		return len(line), nil
	}
	k.mu.Lock()
	k.clientRandom, k.masterSecret = cr, ms
	k.mu.Unlock()
	return len(line), nil
}

// serverHello is pion's ServerHello hook: it records the hello and sends it
// unchanged.
func (k *dtlsSecrets) serverHello(m handshake.MessageServerHello) handshake.Message {
	random := m.Random.MarshalFixed()
	k.mu.Lock()
	k.serverRandom = random[:]
	if m.CipherSuiteID != nil {
		k.suite = *m.CipherSuiteID
	}
	for _, e := range m.Extensions {
		if u, ok := e.(*extension.UseSRTP); ok && len(u.ProtectionProfiles) == 1 {
			k.profile = srtp.ProtectionProfile(u.ProtectionProfiles[0])
		}
	}
	k.mu.Unlock()
	return &m
}

var errNoSecrets = errors.New("sfu: DTLS secrets unknown (not the DTLS server)")

// prfHash is the PRF hash of the TLS 1.2 cipher suites pion's DTLS offers
// (RFC 5246 §5: SHA-256 unless the suite names another).
func prfHash(suite uint16) func() hash.Hash {
	switch suite {
	case 0xc02c, 0xc030: // ECDHE_{ECDSA,RSA}_WITH_AES_256_GCM_SHA384
		return sha512.New384
	case 0xc02b, 0xc02f, // ECDHE_{ECDSA,RSA}_WITH_AES_128_GCM_SHA256
		0xc00a, 0xc014, // ECDHE_{ECDSA,RSA}_WITH_AES_256_CBC_SHA
		0xc0ac, 0xc0ae: // ECDHE_ECDSA_WITH_AES_128_CCM(_8)
		return sha256.New
	}
	return nil
}

// ExportKeyingMaterial is the RFC 5705 exporter without context:
// PRF(master secret, label, client random + server random).
func (k *dtlsSecrets) ExportKeyingMaterial(label string, context []byte, length int) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	h := prfHash(k.suite)
	if len(k.masterSecret) == 0 || len(k.serverRandom) == 0 || len(context) != 0 || h == nil {
		return nil, errNoSecrets
	}
	seed := append(append([]byte(label), k.clientRandom...), k.serverRandom...)
	return prf.PHash(k.masterSecret, seed, length, h)
}

// forget wipes the master secret.
func (k *dtlsSecrets) forget() {
	k.mu.Lock()
	clear(k.masterSecret)
	k.masterSecret = nil
	k.mu.Unlock()
}

// contexts returns the SRTP contexts for what the SFU sends and for what
// it receives, and forgets the master secret.
func (k *dtlsSecrets) contexts() (local, remote *srtp.Context, err error) {
	k.mu.Lock()
	profile := k.profile
	k.mu.Unlock()
	if profile == 0 {
		return nil, nil, errNoSecrets
	}
	cfg := srtp.Config{Profile: profile}
	if err := cfg.ExtractSessionKeysFromDTLS(k, false); err != nil {
		return nil, nil, err
	}
	k.forget()
	if local, err = srtp.CreateContext(cfg.Keys.LocalMasterKey, cfg.Keys.LocalMasterSalt, profile); err != nil {
		return nil, nil, err
	}
	if remote, err = remoteContext(&cfg); err != nil {
		return nil, nil, err
	}
	return local, remote, nil
}

// srtpOut is a Peer's own RTP write path: its SRTP context and where the
// selected candidate pair sends. Its methods are safe for concurrent use
// (every publisher's read loop writes to it).
type srtpOut struct {
	udp  atomic.Pointer[netip.AddrPort] // the remote end of a UDP pair
	tcp  atomic.Pointer[tcpConn]        // or the ICE-TCP connection of a TCP pair
	conn *udpbatch.Conn

	mu  sync.Mutex // guards the following fields
	ctx *srtp.Context
	hdr rtp.Header // EncryptRTP's parse of the packet
	// buf holds one packet: RFC 4571 framing, then the RTP packet, then
	// room for the authentication tag.
	buf [2 + receiveMTU + 64]byte
}

// setPair points the path at a newly selected candidate pair.
func (o *srtpOut) setPair(pair *webrtc.ICECandidatePair, tcps *tcpConns) {
	if pair == nil || pair.Remote == nil {
		return
	}
	ip, err := netip.ParseAddr(pair.Remote.Address)
	if err != nil {
		return
	}
	addr := netip.AddrPortFrom(ip.Unmap(), pair.Remote.Port)
	if pair.Remote.Protocol == webrtc.ICEProtocolTCP {
		o.tcp.Store(tcps.find(addr))
		o.udp.Store(nil)
		return
	}
	o.udp.Store(&addr)
	o.tcp.Store(nil)
}

// writeRTP encrypts and sends one packet. h's SSRC, sequence number and
// padding must be final; payload is not kept.
func (o *srtpOut) writeRTP(h *rtp.Header, payload []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	pkt := o.buf[2:]
	n, err := rtp.MarshalPacketTo(pkt, h, payload) //nolint:staticcheck // the one-call marshal pion's session uses
	if err != nil {
		return err
	}
	enc, err := o.ctx.EncryptRTP(pkt[:0], pkt[:n], &o.hdr)
	if err != nil {
		return err
	}
	if addr := o.udp.Load(); addr != nil {
		_, err = o.conn.WriteToAddrPort(enc, *addr)
		return err
	}
	if c := o.tcp.Load(); c != nil {
		// enc is in place behind the two bytes of framing.
		binary.BigEndian.PutUint16(o.buf[:2], uint16(len(enc)))
		_, err = c.Write(o.buf[:2+len(enc)])
		return err
	}
	return errNoPath
}

var errNoPath = errors.New("sfu: no selected candidate pair")
