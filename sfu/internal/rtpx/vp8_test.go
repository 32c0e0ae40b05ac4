package rtpx

import (
	"errors"
	"testing"
)

func TestVP8Unmarshal(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
		want    VP8
	}{
		{
			name:    "libwebrtc simulcast keyframe",
			payload: vp8KeyframePacket(),
			want: VP8{
				HeaderLen: 6, S: true, PID: 0,
				HasPictureID: true, PictureID: 42, PictureIDBits: 15,
				HasTL0PICIDX: true, TL0PICIDX: 7,
				HasTID: true, TID: 0, Y: true,
				IsKeyframe: true,
			},
		},
		{
			name:    "libwebrtc simulcast interframe, TID 1",
			payload: vp8DeltaPacket(),
			want: VP8{
				HeaderLen: 6, S: true,
				HasPictureID: true, PictureID: 43, PictureIDBits: 15,
				HasTL0PICIDX: true, TL0PICIDX: 7,
				HasTID: true, TID: 1, Y: true,
			},
		},
		{
			name:    "continuation packet of a frame",
			payload: []byte{0x80, 0xe0, 0xff, 0xff, 0xfe, 0x80, 0x11, 0x22},
			want: VP8{
				HeaderLen:    6,
				HasPictureID: true, PictureID: 0x7fff, PictureIDBits: 15,
				HasTL0PICIDX: true, TL0PICIDX: 0xfe,
				HasTID: true, TID: 2,
			},
		},
		{
			name:    "no extension",
			payload: []byte{0x10, 0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01},
			want:    VP8{HeaderLen: 1, S: true, IsKeyframe: true},
		},
		{
			name:    "7-bit picture ID only",
			payload: []byte{0x90, 0x80, 0x7f, 0x31, 0x0f, 0x00},
			want: VP8{
				HeaderLen: 3, S: true,
				HasPictureID: true, PictureID: 127, PictureIDBits: 7,
			},
		},
		{
			name:    "non-reference frame, partition 3",
			payload: []byte{0x23, 0x00, 0xaa},
			want:    VP8{HeaderLen: 1, N: true, PID: 3},
		},
		{
			name:    "KEYIDX without TID",
			payload: []byte{0x90, 0x10, 0x3f, 0x31},
			want:    VP8{HeaderLen: 3, S: true, HasKeyIdx: true, KeyIdx: 0x1f},
		},
		{
			name:    "TID, Y and KEYIDX share one octet",
			payload: []byte{0x90, 0x30, 0xe5, 0x31},
			want: VP8{
				HeaderLen: 3, S: true,
				HasTID: true, TID: 3, Y: true,
				HasKeyIdx: true, KeyIdx: 5,
			},
		},
		{
			name:    "TL0PICIDX without picture ID",
			payload: []byte{0x90, 0x40, 0x09, 0x31},
			want:    VP8{HeaderLen: 3, S: true, HasTL0PICIDX: true, TL0PICIDX: 9},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := VP8{PictureID: 999, IsKeyframe: true} // Unmarshal must reset it
			if err := v.Unmarshal(tt.payload); err != nil {
				t.Fatalf("Unmarshal(% x): %v", tt.payload, err)
			}
			if v != tt.want {
				t.Errorf("Unmarshal(% x)\n got %+v\nwant %+v", tt.payload, v, tt.want)
			}
		})
	}
}

func TestVP8UnmarshalShort(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
	}{
		{"empty", nil},
		{"descriptor only", []byte{0x10}},
		{"X without extension octet", []byte{0x90}},
		{"I without picture ID", []byte{0x90, 0x80}},
		{"M without second octet", []byte{0x90, 0x80, 0x80}},
		{"L without TL0PICIDX", []byte{0x90, 0xc0, 0x80, 0x01}},
		{"T without TID octet", []byte{0x90, 0xe0, 0x80, 0x01, 0x07}},
		{"K without KEYIDX octet", []byte{0x90, 0x10}},
		{"full descriptor, no payload", []byte{0x90, 0xf0, 0x80, 0x01, 0x07, 0x20}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v VP8
			if err := v.Unmarshal(tt.payload); !errors.Is(err, ErrShortPacket) {
				t.Errorf("Unmarshal(% x) = %v, want ErrShortPacket", tt.payload, err)
			}
		})
	}
}

func BenchmarkVP8Unmarshal(b *testing.B) {
	p := vp8DeltaPacket()
	b.ReportAllocs()
	var v VP8
	for b.Loop() {
		if err := v.Unmarshal(p); err != nil {
			b.Fatal(err)
		}
	}
}
