package sfu

import "github.com/stoa-rtc/stoa/sfu/internal/rtpx"

// Dimensions is a simulcast layer's size in pixels.
type Dimensions struct{ Width, Height uint32 }

// LayerForDimensions picks, among layers sorted low to high, the smallest
// whose width and height both cover width×height, else the top one.
func LayerForDimensions(layers []Dimensions, width, height uint32) int {
	ls := make([]rtpx.Layer, len(layers))
	for i, l := range layers {
		ls[i] = rtpx.Layer{Width: l.Width, Height: l.Height}
	}
	return rtpx.LayerForDimensions(ls, width, height)
}

// LayerForQuality maps a LiveKit quality (0 low, 1 medium, 2 high) to a
// layer index among n layers, by position (PROTOCOL.md §5.2).
func LayerForQuality(n, quality int) int { return rtpx.LayerForQuality(n, quality) }
