package rtpx

// Layer describes one simulcast layer of a video track by its resolution.
type Layer struct {
	Width, Height uint32
}

// LayerForDimensions returns the index of the layer to send to a subscriber
// that displays the track at width x height pixels: the smallest layer that
// covers both dimensions, else the largest. layers must be sorted from the
// lowest resolution to the highest. It returns -1 if layers is empty.
func LayerForDimensions(layers []Layer, width, height uint32) int {
	for i, l := range layers {
		if l.Width >= width && l.Height >= height {
			return i
		}
	}
	return len(layers) - 1
}

// Video qualities, numbered as LiveKit's VideoQuality (LOW, MEDIUM, HIGH;
// livekit_models.proto), in which a subscriber asks for a layer.
const (
	QualityLow    = 0
	QualityMedium = 1
	QualityHigh   = 2
)

// LayerForQuality returns the index, among n layers sorted from low to high,
// of the layer for quality: quality is taken as a position (LOW the first,
// MEDIUM the second, HIGH the third) and capped at the top layer, so a track
// published with two layers sends its second for both MEDIUM and HIGH. It
// returns -1, no layer, if n < 1 or quality is outside QualityLow..QualityHigh
// (LiveKit's OFF is 3).
func LayerForQuality(n int, quality int) int {
	if n < 1 || quality < QualityLow || quality > QualityHigh {
		return -1
	}
	return min(quality, n-1)
}
