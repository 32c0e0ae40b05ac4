package rtpx

import "testing"

func TestCodecString(t *testing.T) {
	tests := []struct {
		c    Codec
		want string
	}{
		{CodecUnknown, "unknown"},
		{CodecOpus, "opus"},
		{CodecVP8, "VP8"},
		{CodecVP9, "VP9"},
		{CodecH264, "H264"},
		{CodecAV1, "AV1"},
		{Codec(42), "Codec(42)"},
	}
	for _, tt := range tests {
		if got := tt.c.String(); got != tt.want {
			t.Errorf("Codec(%d).String() = %q, want %q", uint8(tt.c), got, tt.want)
		}
	}
}

func TestCodecFromMime(t *testing.T) {
	tests := []struct {
		mime string
		want Codec
	}{
		{"audio/opus", CodecOpus},
		{"audio/OPUS", CodecOpus},
		{"video/VP8", CodecVP8},
		{"video/vp8", CodecVP8},
		{"VIDEO/VP8", CodecVP8},
		{"video/VP9", CodecVP9},
		{"video/H264", CodecH264},
		{"video/h264", CodecH264},
		{"video/AV1", CodecAV1},
		{"video/av1", CodecAV1},
		{"video/H265", CodecUnknown},
		{"audio/red", CodecUnknown},
		{"video/rtx", CodecUnknown},
		{"video/opus", CodecUnknown},
		{"VP8", CodecUnknown},
		{"", CodecUnknown},
	}
	for _, tt := range tests {
		if got := CodecFromMime(tt.mime); got != tt.want {
			t.Errorf("CodecFromMime(%q) = %v, want %v", tt.mime, got, tt.want)
		}
	}
}

// Real first packets, as libwebrtc sends them.
//
// VP8 (RFC 7741): descriptor 90 e0 | 80 2a | 07 | 20 is X=1 S=1 PID=0, then
// I L T set, 15-bit picture ID 42, TL0PICIDX 7, TID 0 Y 1. It is followed by
// the VP8 payload header: a key frame's frame tag 50 42 00 (bit 0, the
// inverse key frame flag P, is 0), the start code 9d 01 2a and 640x360.
func vp8KeyframePacket() []byte {
	return []byte{
		0x90, 0xe0, 0x80, 0x2a, 0x07, 0x20,
		0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01,
		0x00, 0x47, 0x08, 0x85, 0x85, 0x88, 0x99, 0x84, 0x88, 0x3f,
	}
}

// vp8DeltaPacket is the first packet of an interframe: frame tag 31 0f 00 has
// P=1 and there is no start code.
func vp8DeltaPacket() []byte {
	return []byte{
		0x90, 0xe0, 0x80, 0x2b, 0x07, 0x60,
		0x31, 0x0f, 0x00, 0x11, 0x12, 0x00, 0x13, 0x14, 0x15, 0x16,
	}
}

func TestIsKeyframe(t *testing.T) {
	tests := []struct {
		name    string
		codec   Codec
		payload []byte
		want    bool
	}{
		{"unknown codec", CodecUnknown, vp8KeyframePacket(), false},
		{"out of range codec", Codec(99), vp8KeyframePacket(), false},

		// Opus: TOC byte of a 20 ms SILK wideband frame.
		{"opus", CodecOpus, []byte{0x78, 0x0b, 0xe4, 0xc1}, true},
		{"opus empty", CodecOpus, nil, false},

		{"vp8 keyframe", CodecVP8, vp8KeyframePacket(), true},
		{"vp8 interframe", CodecVP8, vp8DeltaPacket(), false},
		{"vp8 keyframe, minimal descriptor", CodecVP8,
			[]byte{0x10, 0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01}, true},
		{"vp8 keyframe, 7-bit picture ID", CodecVP8,
			[]byte{0x90, 0x80, 0x05, 0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01}, true},
		{"vp8 keyframe continuation (S=0)", CodecVP8,
			[]byte{0x80, 0xe0, 0x80, 0x2a, 0x07, 0x20, 0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a}, false},
		{"vp8 second partition (PID=1)", CodecVP8,
			[]byte{0x91, 0xe0, 0x80, 0x2a, 0x07, 0x20, 0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a}, false},
		{"vp8 P=0 without start code", CodecVP8,
			[]byte{0x90, 0xe0, 0x80, 0x2a, 0x07, 0x20, 0x50, 0x42, 0x00, 0x00, 0x00, 0x00}, false},
		{"vp8 keyframe cut in the start code", CodecVP8,
			[]byte{0x90, 0xe0, 0x80, 0x2a, 0x07, 0x20, 0x50, 0x42, 0x00, 0x9d, 0x01}, false},
		{"vp8 truncated descriptor", CodecVP8, []byte{0x90, 0xe0, 0x80}, false},
		{"vp8 empty", CodecVP8, nil, false},

		// VP9 (RFC 9628): 0xaa is I=1 P=0 L=1 F=0 B=1 V=1, then picture
		// ID 0x8001, layer indices TID 0 SID 0, TL0PICIDX 5, and the SS for
		// 3 spatial layers (320x180, 640x360, 1280x720) with one picture
		// group entry (R=1, P_DIFF 1). The VP9 payload starts 82 49 83 42
		// (frame marker, key frame, sync code).
		{"vp9 keyframe with SS", CodecVP9, []byte{
			0xaa, 0x80, 0x01, 0x00, 0x05,
			0x58, 0x01, 0x40, 0x00, 0xb4, 0x02, 0x80, 0x01, 0x68, 0x05, 0x00, 0x02, 0xd0,
			0x01, 0x04, 0x01,
			0x82, 0x49, 0x83, 0x42, 0x00,
		}, true},
		{"vp9 keyframe, SS cut short", CodecVP9, []byte{
			0xaa, 0x80, 0x01, 0x00, 0x05,
			0x58, 0x01, 0x40, 0x00, 0xb4, 0x02, 0x80, 0x01, 0x68, 0x05, 0x00, 0x02, 0xd0,
			0x01, 0x04,
		}, false},
		{"vp9 keyframe, no payload after descriptor", CodecVP9, []byte{
			0xaa, 0x80, 0x01, 0x00, 0x05,
			0x58, 0x01, 0x40, 0x00, 0xb4, 0x02, 0x80, 0x01, 0x68, 0x05, 0x00, 0x02, 0xd0,
			0x01, 0x04, 0x01,
		}, false},
		{"vp9 keyframe, no layers", CodecVP9, []byte{0x88, 0x23, 0x82, 0x49, 0x83, 0x42}, true},
		{"vp9 keyframe, flexible mode", CodecVP9, []byte{0xb8, 0x80, 0x01, 0x00, 0x82, 0x49}, true},
		{"vp9 keyframe, upper spatial layer", CodecVP9, []byte{0xa8, 0x80, 0x01, 0x03, 0x05, 0x82}, false},
		{"vp9 interframe", CodecVP9, []byte{0xe8, 0x80, 0x02, 0x00, 0x06, 0x86, 0x00}, false},
		{"vp9 keyframe continuation (B=0)", CodecVP9, []byte{0xa0, 0x80, 0x01, 0x00, 0x05, 0x00}, false},
		{"vp9 truncated picture ID", CodecVP9, []byte{0xa8, 0x80}, false},
		{"vp9 empty", CodecVP9, nil, false},

		// H.264 (RFC 6184), packetization mode 1.
		{"h264 STAP-A SPS PPS IDR", CodecH264, []byte{
			0x78,
			0x00, 0x0b, 0x67, 0x42, 0xc0, 0x1f, 0x8c, 0x8d, 0x40, 0x50, 0x1e, 0xd0, 0x0f,
			0x00, 0x04, 0x68, 0xce, 0x3c, 0x80,
			0x00, 0x03, 0x65, 0x88, 0x84,
		}, true},
		{"h264 STAP-A PPS then IDR", CodecH264, []byte{
			0x78, 0x00, 0x04, 0x68, 0xce, 0x3c, 0x80, 0x00, 0x03, 0x65, 0x88, 0x84,
		}, true},
		{"h264 STAP-A without key NAL", CodecH264, []byte{
			0x78, 0x00, 0x04, 0x68, 0xce, 0x3c, 0x80, 0x00, 0x02, 0x06, 0x05,
		}, false},
		{"h264 STAP-A size past the end", CodecH264, []byte{
			0x78, 0x00, 0x04, 0x68, 0xce, 0x3c, 0x80, 0x00, 0x09, 0x65, 0x88,
		}, false},
		{"h264 STAP-A zero size", CodecH264, []byte{0x78, 0x00, 0x00, 0x67, 0x42}, false},
		{"h264 single SPS", CodecH264, []byte{0x67, 0x42, 0xc0, 0x1f, 0x8c}, true},
		{"h264 single IDR", CodecH264, []byte{0x65, 0x88, 0x84, 0x00, 0x33}, true},
		{"h264 single PPS", CodecH264, []byte{0x68, 0xce, 0x3c, 0x80}, false},
		{"h264 single non-IDR slice", CodecH264, []byte{0x41, 0x9a, 0x02, 0x0c}, false},
		{"h264 FU-A IDR start", CodecH264, []byte{0x7c, 0x85, 0x88, 0x84, 0x00}, true},
		{"h264 FU-A IDR middle", CodecH264, []byte{0x7c, 0x05, 0x12, 0x34}, false},
		{"h264 FU-A IDR end", CodecH264, []byte{0x7c, 0x45, 0x12, 0x34}, false},
		{"h264 FU-A non-IDR start", CodecH264, []byte{0x5c, 0x81, 0x9a, 0x02}, false},
		{"h264 FU-A without data", CodecH264, []byte{0x7c, 0x85}, false},
		{"h264 FU-B", CodecH264, []byte{0x7d, 0x85, 0x00, 0x01, 0x88}, false},
		{"h264 STAP-B", CodecH264, []byte{0x79, 0x00, 0x01, 0x00, 0x03, 0x65, 0x88, 0x84}, false},
		{"h264 empty", CodecH264, nil, false},

		// AV1: aggregation header 0x18 is N=1 W=1, followed by a
		// sequence header OBU; 0x10 is W=1 alone.
		{"av1 new coded video sequence", CodecAV1, []byte{0x18, 0x08, 0x00, 0x00, 0x00, 0x24}, true},
		{"av1 interframe", CodecAV1, []byte{0x10, 0x32, 0x10, 0x01}, false},
		{"av1 N with continuation", CodecAV1, []byte{0x88, 0x32, 0x10}, false},
		{"av1 header only", CodecAV1, []byte{0x18}, false},
		{"av1 empty", CodecAV1, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsKeyframe(tt.codec, tt.payload); got != tt.want {
				t.Errorf("IsKeyframe(%v, % x) = %v, want %v", tt.codec, tt.payload, got, tt.want)
			}
		})
	}
}

func BenchmarkIsKeyframeVP8(b *testing.B) {
	key, delta := vp8KeyframePacket(), vp8DeltaPacket()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p := delta
		if i&1 == 0 {
			p = key
		}
		if IsKeyframe(CodecVP8, p) != (i&1 == 0) {
			b.Fatal("wrong answer")
		}
	}
}

func BenchmarkIsKeyframeH264(b *testing.B) {
	stap := []byte{
		0x78,
		0x00, 0x0b, 0x67, 0x42, 0xc0, 0x1f, 0x8c, 0x8d, 0x40, 0x50, 0x1e, 0xd0, 0x0f,
		0x00, 0x04, 0x68, 0xce, 0x3c, 0x80,
		0x00, 0x03, 0x65, 0x88, 0x84,
	}
	b.ReportAllocs()
	for b.Loop() {
		if !IsKeyframe(CodecH264, stap) {
			b.Fatal("wrong answer")
		}
	}
}
