package rtpx

import "testing"

func TestLayerForDimensions(t *testing.T) {
	// A typical 16:9 simulcast publication (livekit-client defaults for 720p).
	three := []Layer{{320, 180}, {640, 360}, {1280, 720}}
	tests := []struct {
		name          string
		layers        []Layer
		width, height uint32
		want          int
	}{
		{"no layers", nil, 640, 360, -1},
		{"single layer, small request", []Layer{{640, 360}}, 100, 100, 0},
		{"single layer, large request", []Layer{{640, 360}}, 1920, 1080, 0},
		{"zero request", three, 0, 0, 0},
		{"smaller than lowest", three, 160, 90, 0},
		{"exactly lowest", three, 320, 180, 0},
		{"just above lowest", three, 321, 180, 1},
		{"exactly middle", three, 640, 360, 1},
		{"width needs top", three, 641, 100, 2},
		{"height needs top", three, 100, 361, 2},
		{"exactly top", three, 1280, 720, 2},
		{"larger than top", three, 1920, 1080, 2},
		{"portrait request on landscape layers", three, 360, 640, 2},
		{"two layers", []Layer{{640, 360}, {1280, 720}}, 480, 270, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := LayerForDimensions(tt.layers, tt.width, tt.height); got != tt.want {
				t.Errorf("LayerForDimensions(%v, %d, %d) = %d, want %d",
					tt.layers, tt.width, tt.height, got, tt.want)
			}
		})
	}
}

func TestLayerForQuality(t *testing.T) {
	tests := []struct {
		name       string
		n, quality int
		want       int
	}{
		{"no layers", 0, QualityHigh, -1},
		{"negative layer count", -1, QualityLow, -1},
		{"one layer, low", 1, QualityLow, 0},
		{"one layer, high", 1, QualityHigh, 0},
		{"two layers, low", 2, QualityLow, 0},
		{"two layers, medium", 2, QualityMedium, 1},
		{"two layers, high", 2, QualityHigh, 1},
		{"three layers, low", 3, QualityLow, 0},
		{"three layers, medium", 3, QualityMedium, 1},
		{"three layers, high", 3, QualityHigh, 2},
		{"four layers, high", 4, QualityHigh, 2},
		{"off", 3, 3, -1},
		{"negative quality", 3, -1, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := LayerForQuality(tt.n, tt.quality); got != tt.want {
				t.Errorf("LayerForQuality(%d, %d) = %d, want %d", tt.n, tt.quality, got, tt.want)
			}
		})
	}
}
