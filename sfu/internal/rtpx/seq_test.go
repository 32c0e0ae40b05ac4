package rtpx

import "testing"

func TestSeq(t *testing.T) {
	tests := []struct {
		name string
		a, b uint16
		less bool
		diff int
	}{
		{"equal", 100, 100, false, 0},
		{"one before", 99, 100, true, -1},
		{"one after", 101, 100, false, 1},
		{"before across wrap", 65535, 0, true, -1},
		{"after across wrap", 0, 65535, false, 1},
		{"far before across wrap", 65000, 500, true, -1036},
		{"largest distance before", 0, 32767, true, -32767},
		{"largest distance after", 32767, 0, false, 32767},
		{"half way", 0, 32768, false, -32768},
		{"half way reversed", 32768, 0, false, -32768},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SeqLess(tt.a, tt.b); got != tt.less {
				t.Errorf("SeqLess(%d, %d) = %v, want %v", tt.a, tt.b, got, tt.less)
			}
			if got := SeqDiff(tt.a, tt.b); got != tt.diff {
				t.Errorf("SeqDiff(%d, %d) = %d, want %d", tt.a, tt.b, got, tt.diff)
			}
		})
	}
}

func TestTS(t *testing.T) {
	tests := []struct {
		name string
		a, b uint32
		less bool
		diff int
	}{
		{"equal", 90000, 90000, false, 0},
		{"one frame before at 90 kHz", 87000, 90000, true, -3000},
		{"one frame after at 90 kHz", 93000, 90000, false, 3000},
		{"before across wrap", 4294967000, 1000, true, -1296},
		{"after across wrap", 1000, 4294967000, false, 1296},
		{"largest distance after", 1<<31 - 1, 0, false, 1<<31 - 1},
		{"half way", 0, 1 << 31, false, -1 << 31},
		{"half way reversed", 1 << 31, 0, false, -1 << 31},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := TSLess(tt.a, tt.b); got != tt.less {
				t.Errorf("TSLess(%d, %d) = %v, want %v", tt.a, tt.b, got, tt.less)
			}
			if got := TSDiff(tt.a, tt.b); got != tt.diff {
				t.Errorf("TSDiff(%d, %d) = %d, want %d", tt.a, tt.b, got, tt.diff)
			}
		})
	}
}
