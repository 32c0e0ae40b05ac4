package udpbatch

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"
)

// receivers opens n loopback UDP sockets and returns their addresses.
func receivers(t testing.TB, n int) ([]*net.UDPConn, []netip.AddrPort) {
	t.Helper()
	var conns []*net.UDPConn
	var addrs []netip.AddrPort
	for range n {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadBuffer(4 << 20)
		t.Cleanup(func() { c.Close() })
		conns = append(conns, c)
		addrs = append(addrs, c.LocalAddr().(*net.UDPAddr).AddrPort())
	}
	return conns, addrs
}

func newConn(t testing.TB, network, addr string) *Conn {
	t.Helper()
	uc, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Fatal(err)
	}
	c := New(uc)
	t.Cleanup(func() { c.Close() })
	return c
}

func read(t *testing.T, c *net.UDPConn) []byte {
	t.Helper()
	buf := make([]byte, 4096)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatalf("read on %s: %v", c.LocalAddr(), err)
	}
	return buf[:n]
}

func TestBatchDelivers(t *testing.T) {
	for _, tc := range []struct{ network, addr string }{
		{"udp4", "127.0.0.1:0"},
		{"udp", "[::]:0"}, // dual stack: IPv4 peers get v4-mapped addresses
	} {
		t.Run(tc.network, func(t *testing.T) {
			c := newConn(t, tc.network, tc.addr)
			if runtime.GOOS == "linux" && c.sys == nil {
				t.Fatal("no sendmmsg on linux")
			}
			rs, addrs := receivers(t, 150) // more than two batches
			c.Begin()
			for i, a := range addrs {
				p := bytes.Repeat([]byte{byte(i)}, 100+i)
				if n, err := c.WriteToAddrPort(p, a); err != nil || n != len(p) {
					t.Fatalf("write %d: %d, %v", i, n, err)
				}
			}
			c.End()
			for i, r := range rs {
				if got, want := read(t, r), bytes.Repeat([]byte{byte(i)}, 100+i); !bytes.Equal(got, want) {
					t.Fatalf("receiver %d got %d bytes, want %d", i, len(got), len(want))
				}
			}
			if runtime.GOOS == "linux" {
				batches, packets, dropped := c.Stats()
				if batches != 3 || packets != 150 || dropped != 0 {
					t.Fatalf("stats: %d batches, %d packets, %d dropped; want 3, 150, 0", batches, packets, dropped)
				}
			}
		})
	}
}

func TestUnbatchedWritesGoStraightOut(t *testing.T) {
	c := newConn(t, "udp4", "127.0.0.1:0")
	rs, addrs := receivers(t, 1)
	if _, err := c.WriteToAddrPort([]byte("now"), addrs[0]); err != nil {
		t.Fatal(err)
	}
	if got := read(t, rs[0]); string(got) != "now" {
		t.Fatalf("got %q", got)
	}
	// Too big for a slot: sent at once, even inside Begin/End.
	c.Begin()
	big := make([]byte, slotSize+1)
	if _, err := c.WriteToAddrPort(big, addrs[0]); err != nil {
		t.Fatal(err)
	}
	if got := read(t, rs[0]); len(got) != len(big) {
		t.Fatalf("got %d bytes", len(got))
	}
	c.End()
	if b, p, _ := c.Stats(); b != 0 || p != 0 {
		t.Fatalf("stats %d batches %d packets, want none", b, p)
	}
}

func TestRefusedPacketsAreDropped(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("batching is Linux-only")
	}
	c := newConn(t, "udp4", "127.0.0.1:0")
	rs, addrs := receivers(t, 2)
	c.Begin()
	_, _ = c.WriteToAddrPort([]byte("a"), addrs[0])
	// Port 0 is refused by the kernel (EINVAL): it must not stop the rest.
	_, _ = c.WriteToAddrPort([]byte("x"), netip.MustParseAddrPort("127.0.0.1:0"))
	_, _ = c.WriteToAddrPort([]byte("b"), addrs[1])
	c.End()
	if got := read(t, rs[0]); string(got) != "a" {
		t.Fatalf("got %q", got)
	}
	if got := read(t, rs[1]); string(got) != "b" {
		t.Fatalf("got %q", got)
	}
	if _, p, d := c.Stats(); p != 2 || d != 1 {
		t.Fatalf("%d sent, %d dropped; want 2, 1", p, d)
	}
	// An IPv6 destination on an IPv4 socket is the kernel's to refuse.
	c.Begin()
	if _, err := c.WriteToAddrPort([]byte("v6"), netip.MustParseAddrPort("[::1]:9")); err == nil {
		t.Fatal("IPv6 write on an IPv4 socket succeeded")
	}
	c.End()
}

// Writers outside Begin/End and batching goroutines interleave; every packet
// must arrive, none may wait for a later End.
func TestConcurrentWriters(t *testing.T) {
	c := newConn(t, "udp4", "127.0.0.1:0")
	rs, addrs := receivers(t, 8)
	const each = 200
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				batched := w%2 == 0
				if batched {
					c.Begin()
				}
				_, _ = c.WriteToAddrPort(fmt.Appendf(nil, "%d-%d", w, i), addrs[w])
				if batched {
					c.End()
				}
			}
		}()
	}
	wg.Wait()
	for w, r := range rs {
		seen := 0
		for range each {
			read(t, r)
			seen++
		}
		if seen != each {
			t.Fatalf("writer %d: %d of %d packets", w, seen, each)
		}
	}
}

// BenchmarkWrite compares a fan-out of one packet to 64 subscribers written
// one system call each with the same fan-out gathered into one sendmmsg.
func BenchmarkWrite(b *testing.B) {
	pkt := make([]byte, 1100)
	for _, batched := range []bool{false, true} {
		b.Run(fmt.Sprintf("batched=%v", batched), func(b *testing.B) {
			c := newConn(b, "udp4", "127.0.0.1:0")
			_, addrs := receivers(b, 64)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if batched && i%64 == 0 {
					c.Begin()
				}
				_, _ = c.WriteToAddrPort(pkt, addrs[i%64])
				if batched && i%64 == 63 {
					c.End()
				}
			}
		})
	}
}

func TestReadFrom(t *testing.T) {
	for _, tc := range []struct{ network, addr string }{
		{"udp4", "127.0.0.1:0"},
		{"udp", "[::]:0"},
	} {
		t.Run(tc.network, func(t *testing.T) {
			c := newConn(t, tc.network, tc.addr)
			peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer peer.Close()
			port := c.LocalAddr().(*net.UDPAddr).Port
			if _, err := peer.WriteToUDP([]byte("hello"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 1500)
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, from, err := c.ReadFromAddrPort(buf)
			if err != nil {
				t.Fatal(err)
			}
			want := peer.LocalAddr().(*net.UDPAddr).AddrPort()
			if string(buf[:n]) != "hello" || from.Addr().Unmap() != want.Addr() || from.Port() != want.Port() {
				t.Fatalf("read %q from %v, want hello from %v", buf[:n], from, want)
			}
			// The address read back is one the socket can answer.
			if _, err := c.WriteToAddrPort([]byte("back"), from); err != nil {
				t.Fatal(err)
			}
			_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, _, err := peer.ReadFrom(buf); err != nil || string(buf[:n]) != "back" {
				t.Fatalf("answer: %q, %v", buf[:n], err)
			}
		})
	}
}

func TestReadUnblocksOnClose(t *testing.T) {
	c := newConn(t, "udp4", "127.0.0.1:0")
	done := make(chan error, 1)
	go func() {
		_, _, err := c.ReadFromAddrPort(make([]byte, 1500))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	c.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("read after close returned no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("read still blocked after close")
	}
}

func TestDirectPathAllocatesNothing(t *testing.T) {
	c := newConn(t, "udp4", "127.0.0.1:0")
	self := c.LocalAddr().(*net.UDPAddr).AddrPort()
	pkt := make([]byte, 1200)
	buf := make([]byte, 1500)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := c.WriteToAddrPort(pkt, self); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.ReadFromAddrPort(buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per write and read", allocs)
	}
}

func TestReceiverConsumes(t *testing.T) {
	c := newConn(t, "udp4", "127.0.0.1:0")
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	var seen []string
	c.SetReceiver(func(b []byte, from netip.AddrPort) bool {
		seen = append(seen, string(b))
		return string(b) == "mine"
	})
	to := c.LocalAddr().(*net.UDPAddr)
	for _, m := range []string{"mine", "mine", "yours"} {
		if _, err := peer.WriteToUDP([]byte(m), to); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 100)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := c.ReadFromAddrPort(buf)
	if err != nil || string(buf[:n]) != "yours" {
		t.Fatalf("read %q, %v; want only the datagram the receiver left", buf[:n], err)
	}
	if len(seen) != 3 {
		t.Fatalf("receiver saw %d datagrams, want 3", len(seen))
	}
}
