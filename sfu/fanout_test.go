package sfu

import (
	"net"
	"net/netip"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/stoa-rtc/stoa/sfu/internal/udpbatch"
)

// udpWriter writes each packet to a loopback UDP socket, as the own write
// path does, so a benchmark pays the kernel's share of a forwarded packet.
type udpWriter struct {
	conn *udpbatch.Conn
	to   netip.AddrPort
}

func (w udpWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	var buf [1500]byte
	n, err := rtp.MarshalPacketTo(buf[:], h, payload) //nolint:staticcheck // as the write path does
	if err != nil {
		return 0, err
	}
	return w.conn.WriteToAddrPort(buf[:n], w.to)
}

func (w udpWriter) Write(b []byte) (int, error) { return len(b), nil }

// fanOutRoom is a layer with n subscribers whose packets go to n loopback
// sockets through a batching socket.
func fanOutRoom(b *testing.B, n int) (*upLayer, *rtp.Header, []byte) {
	b.Helper()
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	conn := udpbatch.New(uc)
	b.Cleanup(func() { conn.Close() })
	up := NewUpTrack("TR_fan", webrtc.RTPCodecTypeVideo, vp8Codec, 1, nil)
	l := &upLayer{up: up, batch: conn, hist: newHistory(videoHistory)}
	for range n {
		rc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { rc.Close() })
		benchSubscribe(b, up, udpWriter{conn: conn, to: rc.LocalAddr().(*net.UDPAddr).AddrPort()})
	}
	h, p := benchKeyframe(up)
	return l, h, p
}

// BenchmarkFanOutUDP measures the time for one received packet to reach
// all of 100 subscribers over loopback UDP through the batching socket:
// the read loop's inner step with the kernel's share included. ns/op is
// the packet's time to its last subscriber.
func BenchmarkFanOutUDP(b *testing.B) {
	l, h, p := fanOutRoom(b, 100)
	benchFanOut(b, l, h, p)
}

// BenchmarkFanOutSRTP is BenchmarkFanOutUDP on the own write path: each of
// the 100 subscribers has its connection's SRTP context (AES-128-GCM), so
// a packet is rewritten, marshalled, encrypted and batched per subscriber,
// as in the server.
func BenchmarkFanOutSRTP(b *testing.B) {
	l, h, p := fanOutRoom(b, 100)
	for _, d := range *l.up.downs.Load() {
		ctx, err := srtp.CreateContext(make([]byte, 16), make([]byte, 12), srtp.ProtectionProfileAeadAes128Gcm)
		if err != nil {
			b.Fatal(err)
		}
		o := &srtpOut{conn: l.batch, ctx: ctx}
		to := d.writer.(udpWriter).to
		o.udp.Store(&to)
		d.peer = &Peer{}
		d.peer.out.Store(o)
	}
	benchFanOut(b, l, h, p)
}

// benchFanOut forwards a packet of l to all its subscribers b.N times.
func benchFanOut(b *testing.B, l *upLayer, h *rtp.Header, p []byte) {
	downs := *l.up.downs.Load()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		h.SequenceNumber++
		l.writePart(downs, h, p, false, int64(i))
	}
}
