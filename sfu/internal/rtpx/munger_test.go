package rtpx

import (
	"testing"

	"github.com/pion/rtp"
)

// Three simulcast layers of one track, as a browser sends them: each with its
// own SSRC and random initial sequence number and timestamp.
const (
	ssrcLow  = 0x1a2b3c4d
	ssrcMid  = 0x5e6f7081
	ssrcHigh = 0x92a3b4c5
)

const ms = int64(1_000_000) // nanoseconds

type mungerStep struct {
	switchTo bool // call Switch before Rewrite
	ssrc     uint32
	sn       uint16
	ts       uint32
	arrival  int64 // nanoseconds
	wantSN   uint16
	wantTS   uint32
	wantOK   bool
}

func TestMunger(t *testing.T) {
	tests := []struct {
		name      string
		clockRate uint32
		steps     []mungerStep
	}{
		{"first packet keeps SN and TS", 90000, []mungerStep{
			{true, ssrcLow, 1000, 5000, 0, 1000, 5000, true},
		}},
		{"zero Munger without Switch", 90000, []mungerStep{
			{false, ssrcLow, 1000, 5000, 0, 1000, 5000, true},
			{false, ssrcLow, 1001, 8000, 33 * ms, 1001, 8000, true},
		}},
		{"in-order run", 90000, []mungerStep{
			{true, ssrcLow, 1000, 90000, 0, 1000, 90000, true},
			{false, ssrcLow, 1001, 90000, 1 * ms, 1001, 90000, true},
			{false, ssrcLow, 1002, 93000, 33 * ms, 1002, 93000, true},
			{false, ssrcLow, 1003, 93000, 34 * ms, 1003, 93000, true},
			{false, ssrcLow, 1004, 96000, 66 * ms, 1004, 96000, true},
		}},
		{"switch to a layer with other SSRC, SN and TS", 90000, []mungerStep{
			{true, ssrcLow, 1000, 90000, 0, 1000, 90000, true},
			{false, ssrcLow, 1001, 93000, 33 * ms, 1001, 93000, true},
			// 33 ms after the last packet: 33 * 90 = 2970 ticks later.
			{true, ssrcHigh, 50000, 1_000_000, 66 * ms, 1002, 95970, true},
			{false, ssrcHigh, 50001, 1_000_000, 67 * ms, 1003, 95970, true},
			{false, ssrcHigh, 50002, 1_003_000, 100 * ms, 1004, 98970, true},
		}},
		{"packets before the switch point are dropped", 90000, []mungerStep{
			{true, ssrcLow, 1000, 90000, 0, 1000, 90000, true},
			{false, ssrcLow, 1001, 93000, 33 * ms, 1001, 93000, true},
			{true, ssrcMid, 7000, 400000, 66 * ms, 1002, 95970, true},
			// A late packet of the old layer, after the switch.
			{false, ssrcLow, 1002, 96000, 67 * ms, 0, 0, false},
			// A retransmission from the new layer, sent before the switch.
			{false, ssrcMid, 6999, 397000, 68 * ms, 0, 0, false},
			{false, ssrcMid, 6500, 300000, 68 * ms, 0, 0, false},
			{false, ssrcMid, 7001, 400000, 69 * ms, 1003, 95970, true},
		}},
		{"reordered packets after the switch point pass", 90000, []mungerStep{
			{true, ssrcLow, 1000, 90000, 0, 1000, 90000, true},
			{true, ssrcMid, 7000, 400000, 33 * ms, 1001, 92970, true},
			{false, ssrcMid, 7002, 400000, 34 * ms, 1003, 92970, true},
			{false, ssrcMid, 7001, 400000, 35 * ms, 1002, 92970, true},
			{false, ssrcMid, 7003, 403000, 66 * ms, 1004, 95970, true},
			// A duplicate of the switch packet is still after the switch point.
			{false, ssrcMid, 7000, 400000, 67 * ms, 1001, 92970, true},
		}},
		{"input SN wraps at 65535", 90000, []mungerStep{
			{true, ssrcLow, 65534, 90000, 0, 65534, 90000, true},
			{false, ssrcLow, 65535, 90000, 1 * ms, 65535, 90000, true},
			{false, ssrcLow, 0, 93000, 33 * ms, 0, 93000, true},
			{false, ssrcLow, 1, 93000, 34 * ms, 1, 93000, true},
			{false, ssrcLow, 65535, 90000, 35 * ms, 65535, 90000, true},
		}},
		{"output SN wraps across a switch", 90000, []mungerStep{
			{true, ssrcLow, 65535, 90000, 0, 65535, 90000, true},
			{true, ssrcHigh, 100, 5000, 20 * ms, 0, 91800, true},
			{false, ssrcHigh, 101, 8000, 53 * ms, 1, 94800, true},
			{false, ssrcHigh, 99, 2000, 54 * ms, 0, 0, false},
		}},
		{"switch point just after an input wrap", 90000, []mungerStep{
			{true, ssrcLow, 10, 90000, 0, 10, 90000, true},
			{true, ssrcMid, 0, 5000, 10 * ms, 11, 90900, true},
			{false, ssrcMid, 65535, 2000, 11 * ms, 0, 0, false},
			{false, ssrcMid, 1, 5000, 12 * ms, 12, 90900, true},
		}},
		{"TS wraps", 90000, []mungerStep{
			{true, ssrcLow, 1000, 4294967000, 0, 1000, 4294967000, true},
			{false, ssrcLow, 1001, 2704, 33 * ms, 1001, 2704, true},
			{false, ssrcLow, 1002, 5704, 66 * ms, 1002, 5704, true},
		}},
		{"output TS wraps across a switch", 90000, []mungerStep{
			{true, ssrcLow, 1000, 4294967000, 0, 1000, 4294967000, true},
			{true, ssrcMid, 3000, 123456, 33 * ms, 1001, 2674, true},
			{false, ssrcMid, 3001, 126456, 66 * ms, 1002, 5674, true},
		}},
		{"switch without elapsed time still advances TS", 90000, []mungerStep{
			{true, ssrcLow, 1000, 90000, 10 * ms, 1000, 90000, true},
			{true, ssrcMid, 3000, 5000, 10 * ms, 1001, 90001, true},
			{true, ssrcHigh, 9000, 7000, 5 * ms, 1002, 90002, true}, // clock went back
		}},
		{"switch back to the first layer", 90000, []mungerStep{
			{true, ssrcLow, 1000, 90000, 0, 1000, 90000, true},
			{false, ssrcLow, 1001, 93000, 33 * ms, 1001, 93000, true},
			{true, ssrcHigh, 50000, 1_000_000, 66 * ms, 1002, 95970, true},
			{false, ssrcHigh, 50001, 1_003_000, 100 * ms, 1003, 98970, true},
			{false, ssrcLow, 1002, 96000, 101 * ms, 0, 0, false},
			{true, ssrcLow, 1004, 102000, 133 * ms, 1004, 101940, true},
			{false, ssrcLow, 1003, 99000, 134 * ms, 0, 0, false},
			{false, ssrcHigh, 50002, 1_006_000, 135 * ms, 0, 0, false},
			{false, ssrcLow, 1005, 105000, 166 * ms, 1005, 104940, true},
		}},
		{"resume the same source after a pause", 90000, []mungerStep{
			{true, ssrcLow, 1000, 90000, 0, 1000, 90000, true},
			{false, ssrcLow, 1001, 93000, 33 * ms, 1001, 93000, true},
			// Layer paused for 5 s; the input skipped 150 packets.
			{true, ssrcLow, 1152, 543000, 5033 * ms, 1002, 543000, true},
			{false, ssrcLow, 1100, 400000, 5034 * ms, 0, 0, false},
		}},
		{"a pause of days caps the TS jump", 90000, []mungerStep{
			{true, ssrcLow, 1000, 90000, 0, 1000, 90000, true},
			{true, ssrcMid, 3000, 5000, 3 * 24 * 3600 * 1000 * ms, 1001, 90000 + maxTSJump, true},
		}},
		{"audio at 48 kHz", 48000, []mungerStep{
			{true, 0x11, 20000, 960000, 0, 20000, 960000, true},
			{false, 0x11, 20001, 960960, 20 * ms, 20001, 960960, true},
			{true, 0x22, 500, 3000, 40 * ms, 20002, 961920, true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m Munger
			for i, s := range tt.steps {
				h := rtp.Header{SSRC: s.ssrc, SequenceNumber: s.sn, Timestamp: s.ts}
				if s.switchTo {
					m.Switch(&h, s.arrival, tt.clockRate)
				}
				sn, ts, ok := m.Rewrite(&h, s.arrival)
				if sn != s.wantSN || ts != s.wantTS || ok != s.wantOK {
					t.Errorf("step %d: Rewrite(ssrc %x sn %d ts %d) = (%d, %d, %v), want (%d, %d, %v)",
						i, s.ssrc, s.sn, s.ts, sn, ts, ok, s.wantSN, s.wantTS, s.wantOK)
				}
			}
		})
	}
}

// TestMungerSwitchBeforeForwarding checks that the offsets stay 0 until a
// packet has been forwarded, however many times the source changes before.
func TestMungerSwitchBeforeForwarding(t *testing.T) {
	var m Munger
	m.Switch(&rtp.Header{SSRC: ssrcLow, SequenceNumber: 1000, Timestamp: 90000}, 0, 90000)
	h := rtp.Header{SSRC: ssrcMid, SequenceNumber: 3000, Timestamp: 5000}
	m.Switch(&h, 10*ms, 90000)
	if sn, ts, ok := m.Rewrite(&h, 10*ms); sn != 3000 || ts != 5000 || !ok {
		t.Errorf("Rewrite(sn 3000 ts 5000) = (%d, %d, %v), want (3000, 5000, true)", sn, ts, ok)
	}
}

// TestMungerLongRun checks that the switch point keeps working after the
// input has moved on by more than half the sequence number space.
func TestMungerLongRun(t *testing.T) {
	var m Munger
	h := rtp.Header{SSRC: ssrcLow, SequenceNumber: 60000, Timestamp: 1000}
	m.Switch(&h, 0, 90000)
	for i := range 200000 {
		sn, _, ok := m.Rewrite(&h, int64(i)*ms)
		if !ok || sn != 60000+uint16(i) {
			t.Fatalf("packet %d: Rewrite(sn %d) = (%d, %v)", i, h.SequenceNumber, sn, ok)
		}
		// A packet 100 behind is after the switch point, except at the start.
		old := h
		old.SequenceNumber -= 100
		_, _, ok = m.Rewrite(&old, int64(i)*ms)
		if wantOK := i >= 100; ok != wantOK {
			t.Fatalf("packet %d: Rewrite(sn %d) ok = %v, want %v", i, old.SequenceNumber, ok, wantOK)
		}
		h.SequenceNumber++
		h.Timestamp += 30
	}
}

func TestTSAdvance(t *testing.T) {
	tests := []struct {
		name      string
		elapsed   int64
		clockRate uint32
		want      uint32
	}{
		{"negative", -5 * ms, 90000, 1},
		{"zero", 0, 90000, 1},
		{"1 ns", 1, 90000, 1},
		{"no clock rate", 20 * ms, 0, 1},
		{"one video frame at 30 fps", 33_333_333, 90000, 2999},
		{"20 ms of audio", 20 * ms, 48000, 960},
		{"1.5 s", 1500 * ms, 90000, 135000},
		{"one hour", 3600 * 1000 * ms, 90000, 324_000_000},
		{"just under the cap", 23860 * 1000 * ms, 90000, 2_147_400_000},
		{"over the cap", 23861 * 1000 * ms, 90000, maxTSJump},
		{"maximum elapsed", 1<<63 - 1, 90000, maxTSJump},
		{"maximum clock rate", 1000 * ms, 1<<32 - 1, maxTSJump},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tsAdvance(tt.elapsed, tt.clockRate); got != tt.want {
				t.Errorf("tsAdvance(%d, %d) = %d, want %d", tt.elapsed, tt.clockRate, got, tt.want)
			}
		})
	}
}

func BenchmarkMungerRewrite(b *testing.B) {
	var m Munger
	h := rtp.Header{SSRC: ssrcLow, SequenceNumber: 1000, Timestamp: 90000}
	m.Switch(&h, 0, 90000)
	b.ReportAllocs()
	for i := int64(0); b.Loop(); i++ {
		// Switch layers every 1000 packets, as a downTrack at most would.
		if i%1000 == 999 {
			h.SSRC ^= 1
			h.SequenceNumber += 5000
			m.Switch(&h, i*ms, 90000)
		}
		if _, _, ok := m.Rewrite(&h, i*ms); !ok {
			b.Fatal("dropped")
		}
		h.SequenceNumber++
		h.Timestamp += 3000
	}
}
