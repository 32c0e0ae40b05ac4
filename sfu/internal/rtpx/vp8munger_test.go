package rtpx

import (
	"bytes"
	"errors"
	"testing"
)

// vp8Packet builds the first packet of a VP8 interframe as libwebrtc sends it
// with simulcast: X=1 S=1, I L T, a picture ID bits (7 or 15) wide, TL0PICIDX,
// TID 0 Y 1, then the frame tag and some frame data.
func vp8Packet(pid uint16, bits int, tl0 uint8) []byte {
	p := []byte{0x90, 0xe0}
	if bits == 15 {
		p = append(p, 0x80|byte(pid>>8), byte(pid))
	} else {
		p = append(p, byte(pid)&0x7f)
	}
	return append(p, tl0, 0x20, 0x31, 0x0f, 0x00, 0xaa, 0xbb, 0xcc)
}

type vp8Step struct {
	switchTo bool // call Switch before Rewrite
	payload  []byte
	wantPID  uint16
	wantTL0  uint8
	wantCopy bool
}

func TestVP8Munger(t *testing.T) {
	tests := []struct {
		name  string
		steps []vp8Step
	}{
		{"first source keeps its values and is not copied", []vp8Step{
			{true, vp8Packet(100, 15, 5), 100, 5, false},
			{false, vp8Packet(101, 15, 5), 101, 5, false},
			{false, vp8Packet(102, 15, 6), 102, 6, false},
		}},
		{"zero VP8Munger without Switch", []vp8Step{
			{false, vp8Packet(100, 15, 5), 100, 5, false},
			{false, vp8Packet(101, 15, 6), 101, 6, false},
		}},
		{"switch between 15-bit layers", []vp8Step{
			{true, vp8Packet(100, 15, 5), 100, 5, false},
			{false, vp8Packet(101, 15, 6), 101, 6, false},
			{true, vp8Packet(20000, 15, 200), 102, 7, true},
			{false, vp8Packet(20000, 15, 200), 102, 7, true},
			{false, vp8Packet(20001, 15, 200), 103, 7, true},
			{false, vp8Packet(20002, 15, 201), 104, 8, true},
		}},
		{"15-bit picture ID wraps", []vp8Step{
			{true, vp8Packet(32766, 15, 1), 32766, 1, false},
			{false, vp8Packet(32767, 15, 1), 32767, 1, false},
			{false, vp8Packet(0, 15, 2), 0, 2, false},
			{true, vp8Packet(5000, 15, 90), 1, 3, true},
			{true, vp8Packet(32767, 15, 90), 2, 4, true},
			{false, vp8Packet(0, 15, 91), 3, 5, true},
		}},
		{"switch from 15-bit to 7-bit", []vp8Step{
			{true, vp8Packet(1000, 15, 5), 1000, 5, false},
			// 1001 mod 2^7 = 105.
			{true, vp8Packet(3, 7, 40), 105, 6, true},
			{false, vp8Packet(4, 7, 41), 106, 7, true},
			{false, vp8Packet(25, 7, 42), 127, 8, true},
			{false, vp8Packet(26, 7, 43), 0, 9, true},
		}},
		{"switch from 7-bit to 15-bit", []vp8Step{
			{true, vp8Packet(126, 7, 5), 126, 5, false},
			{false, vp8Packet(127, 7, 5), 127, 5, false},
			{false, vp8Packet(0, 7, 6), 0, 6, false},
			// The 7-bit IDs were 126, 127, 128: the 15-bit ID goes on from there.
			{true, vp8Packet(9000, 15, 70), 129, 7, true},
		}},
		{"TL0PICIDX wraps", []vp8Step{
			{true, vp8Packet(100, 15, 254), 100, 254, false},
			{false, vp8Packet(101, 15, 255), 101, 255, false},
			{true, vp8Packet(7000, 15, 17), 102, 0, true},
			{false, vp8Packet(7001, 15, 18), 103, 1, true},
		}},
		{"reordered pictures within the new layer", []vp8Step{
			{true, vp8Packet(100, 15, 5), 100, 5, false},
			{true, vp8Packet(20000, 15, 200), 101, 6, true},
			{false, vp8Packet(20002, 15, 201), 103, 7, true},
			{false, vp8Packet(20001, 15, 200), 102, 6, true},
			{false, vp8Packet(20003, 15, 202), 104, 8, true},
		}},
		{"a switch to the same values needs no copy", []vp8Step{
			{true, vp8Packet(100, 15, 5), 100, 5, false},
			{true, vp8Packet(101, 15, 6), 101, 6, false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m VP8Munger
			buf := make([]byte, 0, 1500)
			for i, s := range tt.steps {
				var in VP8
				if err := in.Unmarshal(s.payload); err != nil {
					t.Fatalf("step %d: Unmarshal: %v", i, err)
				}
				if s.switchTo {
					m.Switch()
				}
				orig := bytes.Clone(s.payload)
				out, err := m.Rewrite(&in, s.payload, buf)
				if err != nil {
					t.Fatalf("step %d: Rewrite: %v", i, err)
				}
				if !bytes.Equal(s.payload, orig) {
					t.Fatalf("step %d: Rewrite modified the shared payload", i)
				}
				if copied := &out[0] != &s.payload[0]; copied != s.wantCopy {
					t.Errorf("step %d: copied = %v, want %v", i, copied, s.wantCopy)
				}
				if s.wantCopy && &out[0] != &buf[:1][0] {
					t.Errorf("step %d: the copy is not in buf", i)
				}
				checkVP8Rewrite(t, &in, s.payload, out, s.wantPID, s.wantTL0)
			}
		})
	}
}

// checkVP8Rewrite checks that out is in with picture ID pid and TL0PICIDX
// tl0, the field widths kept, and every other byte unchanged.
func checkVP8Rewrite(t *testing.T, v *VP8, in, out []byte, pid uint16, tl0 uint8) {
	t.Helper()
	var got VP8
	if err := got.Unmarshal(out); err != nil {
		t.Fatalf("Unmarshal(rewritten % x): %v", out, err)
	}
	want := *v
	want.PictureID, want.TL0PICIDX = pid, tl0
	if got != want {
		t.Errorf("rewritten descriptor\n got %+v\nwant %+v", got, want)
	}
	if len(out) != len(in) || !bytes.Equal(out[v.HeaderLen:], in[v.HeaderLen:]) ||
		!bytes.Equal(out[:2], in[:2]) {
		t.Errorf("rewritten payload % x differs from % x outside the descriptor fields", out, in)
	}
}

func TestVP8MungerNoPictureID(t *testing.T) {
	var m VP8Munger
	buf := make([]byte, 0, 1500)
	steps := []vp8Step{
		{true, vp8Packet(100, 15, 5), 100, 5, false},
		// A keyframe without the X octet: nothing to rewrite.
		{true, []byte{0x10, 0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01}, 0, 0, false},
		// Its first packet with a picture ID continues from the last one.
		{false, vp8Packet(7, 15, 1), 101, 6, true},
	}
	for i, s := range steps {
		var in VP8
		if err := in.Unmarshal(s.payload); err != nil {
			t.Fatalf("step %d: Unmarshal: %v", i, err)
		}
		if s.switchTo {
			m.Switch()
		}
		out, err := m.Rewrite(&in, s.payload, buf)
		if err != nil {
			t.Fatalf("step %d: Rewrite: %v", i, err)
		}
		if copied := &out[0] != &s.payload[0]; copied != s.wantCopy {
			t.Errorf("step %d: copied = %v, want %v", i, copied, s.wantCopy)
		}
		if in.HasPictureID {
			checkVP8Rewrite(t, &in, s.payload, out, s.wantPID, s.wantTL0)
		}
	}
}

func TestVP8MungerShortPacket(t *testing.T) {
	full := vp8Packet(100, 15, 5)
	var v VP8
	if err := v.Unmarshal(full); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		payload []byte
	}{
		{"empty", nil},
		{"cut in the picture ID", full[:3]},
		{"cut before TL0PICIDX", full[:4]},
		{"cut after TL0PICIDX", full[:5]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m VP8Munger
			m.Switch()
			if _, err := m.Rewrite(&v, tt.payload, nil); !errors.Is(err, ErrShortPacket) {
				t.Errorf("Rewrite(% x) = %v, want ErrShortPacket", tt.payload, err)
			}
		})
	}
}

func BenchmarkVP8Rewrite(b *testing.B) {
	// A full-size packet after a layer switch: every packet is copied.
	payload := append(vp8Packet(20000, 15, 200), make([]byte, 1100)...)
	var v VP8
	if err := v.Unmarshal(payload); err != nil {
		b.Fatal(err)
	}
	var m VP8Munger
	first := vp8Packet(100, 15, 5)
	var vf VP8
	if err := vf.Unmarshal(first); err != nil {
		b.Fatal(err)
	}
	if _, err := m.Rewrite(&vf, first, nil); err != nil {
		b.Fatal(err)
	}
	m.Switch()
	buf := make([]byte, 0, 1500)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		out, err := m.Rewrite(&v, payload, buf)
		if err != nil || &out[0] == &payload[0] {
			b.Fatal("not rewritten", err)
		}
	}
}
