package signalling_test

import (
	"context"
	"encoding/binary"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/stoa-rtc/stoa/signalling"
)

// lossy is a subscriber-side interceptor that loses VP8 packets the way a
// network would: before the SDK's NACK generator sees them. It counts the
// packets that come back on the RTX stream and keeps the sender reports.
type lossy struct {
	interceptor.NoOp
	every   int         // drop one VP8 packet in every
	max     int         // drops in all
	enabled atomic.Bool // start dropping

	mu      sync.Mutex // guards the following fields
	seen    int
	dropped []uint16
	rtx     int
	reports []rtcp.SenderReport
}

func (l *lossy) BindRTCPReader(r interceptor.RTCPReader) interceptor.RTCPReader {
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, attrs, err := r.Read(b, a)
		if err == nil {
			if pkts, perr := rtcp.Unmarshal(b[:n]); perr == nil {
				l.mu.Lock()
				for _, p := range pkts {
					if sr, ok := p.(*rtcp.SenderReport); ok {
						l.reports = append(l.reports, *sr)
					}
				}
				l.mu.Unlock()
			}
		}
		return n, attrs, err
	})
}

func (l *lossy) NewInterceptor(string) (interceptor.Interceptor, error) { return l, nil }

func (l *lossy) BindRemoteStream(info *interceptor.StreamInfo, r interceptor.RTPReader) interceptor.RTPReader {
	mime := strings.ToLower(info.MimeType)
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		for {
			n, attrs, err := r.Read(b, a)
			if err != nil || n < 12 || !l.enabled.Load() {
				return n, attrs, err
			}
			l.mu.Lock()
			drop := false
			switch mime {
			case "video/rtx":
				l.rtx++
			case "video/vp8":
				l.seen++
				if l.seen%l.every == 0 && len(l.dropped) < l.max {
					l.dropped = append(l.dropped, binary.BigEndian.Uint16(b[2:4]))
					drop = true
				}
			}
			l.mu.Unlock()
			if !drop {
				return n, attrs, err
			}
		}
	})
}

func (l *lossy) state() (dropped []uint16, rtx int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]uint16(nil), l.dropped...), l.rtx
}

// pathLog is a slog handler that counts the SFU's "media path" records.
type pathLog struct {
	mu        sync.Mutex
	own, pion int
	receive   int    // connections on the own receive path
	received  uint64 // packets it forwarded, counted at close
}

func (h *pathLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *pathLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *pathLog) WithGroup(string) slog.Handler            { return h }
func (h *pathLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "receive path closed" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "packets" {
				h.mu.Lock()
				h.received += a.Value.Uint64()
				h.mu.Unlock()
			}
			return true
		})
		return nil
	}
	if r.Message != "media path" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "receive" && a.Value.Bool() {
			h.mu.Lock()
			h.receive++
			h.mu.Unlock()
		}
		if a.Key == "own" {
			h.mu.Lock()
			if a.Value.Bool() {
				h.own++
			} else {
				h.pion++
			}
			h.mu.Unlock()
		}
		return true
	})
	return nil
}

func (h *pathLog) counts() (own, pion int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.own, h.pion
}

// TestNACKRepairedOnRTX: a subscriber loses one video packet in ten; its
// SDK asks again with NACKs, and Stoa answers each from the publisher's
// layer history on the RTX stream (RFC 4588), so every lost packet arrives
// after all, with the sequence number it was first sent with.
//
// It also checks that every connection sends through the SFU's own write
// path (sfu/srtpout.go), with the keys it derived: the media arriving at
// all is the proof that they are right.
func TestNACKRepairedOnRTX(t *testing.T) {
	paths := &pathLog{}
	srv := startServer(t, func(c *signalling.Config) {
		c.Logger = slog.New(paths)
	})
	// After the participants have left (cleanups run last first): the
	// publisher's packets were forwarded by the own receive path, whose
	// count the server logs when it closes the connection.
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			paths.mu.Lock()
			n := paths.received
			paths.mu.Unlock()
			if n > 0 {
				t.Logf("%d packets forwarded by the own receive path", n)
				return
			}
			if time.Now().After(deadline) {
				t.Error("no packet forwarded by the own receive path")
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	room := roomName(t, "nack")
	pub := srv.join(t, room, "pub")
	pub.publishMedia(true, false)

	loss := &lossy{every: 10, max: 30}
	sub := srv.newParticipant(t, "sub")
	sub.interceptors = []interceptor.Factory{loss}
	if err := sub.connect(srv.token(t, room, "sub")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.close)

	deadline := time.Now().Add(mediaTimeout)
	sub.waitFor(deadline, "video from pub", func() bool {
		return sub.receivingLocked("pub", webrtc.RTPCodecTypeVideo, 20)
	})
	sub.mu.Lock()
	rt := sub.tracksFromLocked("pub", webrtc.RTPCodecTypeVideo)[0]
	rt.recording = true
	sub.mu.Unlock()
	loss.enabled.Store(true)

	sub.waitFor(deadline, "30 packets lost and repaired", func() bool {
		dropped, _ := loss.state()
		if len(dropped) < loss.max {
			return false
		}
		got := map[uint16]bool{}
		for _, info := range rt.recorded {
			if info.rtx {
				got[info.seq] = true
			}
		}
		for _, seq := range dropped {
			if !got[seq] {
				return false
			}
		}
		return true
	})
	dropped, rtx := loss.state()
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if rt.badCount > 0 {
		t.Errorf("%d bad packets, first: %v", rt.badCount, rt.bad)
	}
	// A repaired packet is the packet first sent: same timestamp as its
	// neighbours in the frame, same picture ID.
	first := map[uint16]packetInfo{}
	for _, info := range rt.recorded {
		if !info.rtx {
			first[info.seq] = info
		}
	}
	for _, info := range rt.recorded {
		if !info.rtx {
			continue
		}
		if _, dup := first[info.seq]; dup {
			t.Errorf("seq %d arrived twice: resent although not lost", info.seq)
		}
		if next, ok := first[info.seq+1]; ok && next.ts != info.ts && !info.frameStart && !next.frameStart {
			t.Errorf("seq %d resent with timestamp %d, its frame has %d", info.seq, info.ts, next.ts)
		}
	}
	if rtx < len(dropped) {
		t.Errorf("%d RTX packets for %d losses", rtx, len(dropped))
	}
	t.Logf("%d packets lost and repaired from %d RTX packets", len(dropped), rtx)
	if own, pion := paths.counts(); own < 4 || pion > 0 {
		t.Errorf("%d connections on the own write path and %d on pion's; want 4 and 0", own, pion)
	}
	paths.mu.Lock()
	if paths.receive < 2 {
		t.Errorf("%d publishing connections on the own receive path, want 2", paths.receive)
	}
	paths.mu.Unlock()

	// Sender reports for the video stream: about one a second, its NTP
	// time the wall clock and its RTP time in the stream's timestamps.
	loss.mu.Lock()
	defer loss.mu.Unlock()
	var srs []rtcp.SenderReport
	for _, sr := range loss.reports {
		if sr.SSRC == rt.ssrc {
			srs = append(srs, sr)
		}
	}
	if len(srs) < 2 {
		t.Fatalf("%d sender reports for the video stream, want at least 2", len(srs))
	}
	last := srs[len(srs)-1]
	ntp := time.Unix(int64(last.NTPTime>>32)-2208988800, int64((last.NTPTime&0xffffffff)*1e9>>32))
	if d := time.Since(ntp); d < 0 || d > 3*time.Second {
		t.Errorf("last sender report's NTP time is %v old", d)
	}
	if last.PacketCount <= srs[0].PacketCount || last.OctetCount <= srs[0].OctetCount {
		t.Errorf("sender report counts did not grow: %+v then %+v", srs[0], last)
	}
	near := false
	for _, info := range rt.recorded {
		if d := int64(int32(info.ts - last.RTPTime)); d > -90000 && d < 90000 {
			near = true // within a second of the stream's timestamps
		}
	}
	if !near {
		t.Errorf("sender report RTP time %d is not near any received timestamp", last.RTPTime)
	}
}
