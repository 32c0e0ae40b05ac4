package main

import (
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/transport/v5/stdnet"
)

func rtpBytes(t *testing.T, ssrc uint32, seq uint16, pt uint8, marker bool) []byte {
	t.Helper()
	p := rtp.Packet{Header: rtp.Header{Version: 2, SSRC: ssrc, SequenceNumber: seq, PayloadType: pt, Marker: marker}, Payload: make([]byte, 100)}
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRTPKey(t *testing.T) {
	sr, err := (&rtcp.SenderReport{SSRC: 7}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	rr, err := (&rtcp.ReceiverReport{SSRC: 7}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"VP8", rtpBytes(t, 0xdeadbeef, 65535, 96, false), true},
		{"VP8 with marker", rtpBytes(t, 0xdeadbeef, 65535, 96, true), true},
		{"Opus", rtpBytes(t, 0xdeadbeef, 65535, 111, false), true},
		{"RTCP SR", sr, false},
		{"RTCP RR", rr, false},
		// Payload type 72 with the marker is the first byte of an RTCP SR:
		// RFC 5761 §4 reserves 64..95 for that reason.
		{"payload type 72", rtpBytes(t, 0xdeadbeef, 65535, 72, true), false},
		{"STUN", append([]byte{0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42}, make([]byte, 12)...), false},
		{"DTLS", append([]byte{22, 0xfe, 0xfd}, make([]byte, 20)...), false},
		{"version 3", append([]byte{0xc0, 96}, make([]byte, 20)...), false},
		{"short", []byte{0x80, 96, 0, 1}, false},
	}
	for _, tt := range tests {
		ssrc, seq, ok := rtpKey(tt.b)
		if ok != tt.ok {
			t.Errorf("%s: RTP = %v, want %v", tt.name, ok, tt.ok)
		}
		if ok && (ssrc != 0xdeadbeef || seq != 65535) {
			t.Errorf("%s: ssrc %x seq %d", tt.name, ssrc, seq)
		}
	}
}

func TestRxTable(t *testing.T) {
	var tb rxTable
	if _, ok := tb.lookup(1, 1); ok {
		t.Fatal("empty table found a time")
	}
	// Two streams, as a subscriber gets video and audio.
	for i := range 300 {
		tb.record(0x1111, uint16(65400+i), int64(i))
		tb.record(0x2222, uint16(i), int64(1000+i))
	}
	for i := range 300 {
		if at, ok := tb.lookup(0x1111, uint16(65400+i)); !ok || at != int64(i) {
			t.Fatalf("stream 1 seq %d: %d %v", uint16(65400+i), at, ok)
		}
		if at, ok := tb.lookup(0x2222, uint16(i)); !ok || at != int64(1000+i) {
			t.Fatalf("stream 2 seq %d: %d %v", i, at, ok)
		}
	}
	if _, ok := tb.lookup(0x3333, 10); ok {
		t.Error("unknown SSRC found")
	}
	// A table's worth of later packets of the same stream reuses the slot.
	for i := range rxSlots {
		tb.record(0x1111, uint16(65400+300+i), 0)
	}
	if _, ok := tb.lookup(0x1111, 65400); ok {
		t.Error("overwritten packet found")
	}
}

// A lookup racing the writer gets the time recorded for its own packet or
// misses; it never gets another packet's time.
func TestRxTableConcurrent(t *testing.T) {
	var tb rxTable
	const n = 200000
	timeOf := func(seq uint16) int64 { return int64(seq)*3 + 1 }
	var written atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range n {
			tb.record(42, uint16(i), timeOf(uint16(i)))
			written.Store(int64(i))
		}
	}()
	var found, wrong atomic.Int64
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				// Look up the packet being written, or the one its slot
				// held, alternately.
				seq := uint16(written.Load() + 1)
				if i%2 == 1 {
					seq -= rxSlots
				}
				if at, ok := tb.lookup(42, seq); ok {
					found.Add(1)
					if at != timeOf(seq) {
						wrong.Add(1)
					}
				}
			}
		}()
	}
	wg.Wait()
	if wrong.Load() != 0 {
		t.Errorf("%d of %d lookups returned another packet's time", wrong.Load(), found.Load())
	}
}

// A subscriber socket from rxNet records the kernel receive time of RTP
// datagrams, not of RTCP, without allocating; a second socket from the
// same rxNet is plain, so the table keeps one writer.
func TestRxConn(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("kernel receive timestamps are read on Linux only")
	}
	base, err := stdnet.NewNet()
	if err != nil {
		t.Fatal(err)
	}
	var tb rxTable
	var unavailable []error
	n := &rxNet{Net: base, table: &tb, unavailable: func(err error) { unavailable = append(unavailable, err) }}
	lc, err := n.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lc.Close() })
	c, ok := lc.(*rxConn)
	if !ok {
		t.Fatalf("ListenUDP returned a %T (%v)", lc, unavailable)
	}
	second, err := n.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = second.Close() })
	if _, ok := second.(*rxConn); ok {
		t.Error("a second socket writes into the same table")
	}

	tx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Close() })
	to := c.LocalAddr().(*net.UDPAddr).AddrPort()
	buf := make([]byte, 1500)

	// The kernel stamps a datagram when it queues it on the socket (usually
	// inside the send on loopback; the delivering softirq may run later on
	// a busy machine). So each datagram's time must fall between the send
	// and the moment the socket holds it (SIOCINQ), and the read, 5 ms
	// later, cannot have supplied it. Until the kernel has switched its
	// receive timestamps on (it does so asynchronously once the first
	// socket asks) it stamps at the read instead: the first datagrams may
	// carry that, so the test sends until one is stamped on arrival.
	stamped := false
	for seq := uint16(7); seq < 7+50 && !stamped; seq++ {
		before := time.Now().UnixNano()
		if _, err := tx.WriteToUDPAddrPort(rtpBytes(t, 0xabc, seq, 96, true), to); err != nil {
			t.Fatal(err)
		}
		queued := waitQueued(t, c.UDPConn)
		time.Sleep(5 * time.Millisecond)
		if _, from, err := c.ReadFromAddrPort(buf); err != nil || from != tx.LocalAddr().(*net.UDPAddr).AddrPort() {
			t.Fatalf("read: %v from %v", err, from)
		}
		after := time.Now().UnixNano()
		at, ok := tb.lookup(0xabc, seq)
		switch {
		case !ok:
			t.Fatal("no receive time recorded")
		case at < before || at > after:
			t.Fatalf("receive time %d ns after the send began, read at %d ns", at-before, after-before)
		case at <= queued:
			stamped = true
		}
	}
	if !stamped {
		t.Error("no datagram of 50 carried its kernel arrival time")
	}

	// RTCP on the same socket (rtcp-mux) is not RTP: nothing is recorded
	// under the SSRC and sequence number its bytes would give.
	sr, err := (&rtcp.SenderReport{SSRC: 0xabc}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.WriteToUDPAddrPort(sr, to); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.ReadFromAddrPort(buf); err != nil {
		t.Fatal(err)
	}
	if _, ok := tb.lookup(0, 0x0006); ok {
		t.Error("RTCP recorded as RTP")
	}

	// Reads allocate nothing: 29,000 of them a second in a webinar.
	pkt := rtpBytes(t, 0xabc, 8, 96, false)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := tx.WriteToUDPAddrPort(pkt, to); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.ReadFromAddrPort(buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per read", allocs)
	}
	if tb.drops.Load() != 0 {
		t.Errorf("%d datagrams dropped", tb.drops.Load())
	}
}
