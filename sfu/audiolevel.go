package sfu

import (
	"math"
	"sync/atomic"

	"github.com/pion/webrtc/v4"
)

// Voice activity from the RFC 6464 audio level header extension, which
// browsers put on every Opus packet: the level is in -dBov, 0 loudest and
// 127 silence. The payload is never decoded (it may be end-to-end
// encrypted).
const (
	// speechLevel is the loudest level still counted as silence: speech
	// sits around -20 to -30 dBov, background noise well below -40
	// (LiveKit's default threshold is 35).
	speechLevel = 35
	// speechShare is the share of packets in a window that must carry
	// speech for the speaker to count as active. With DTX, silence sends
	// few packets, so this is a share of what was sent.
	speechShare = 0.4
)

// audioLevel accumulates levels between two polls. Written by the read loop,
// read and reset by the poller.
type audioLevel struct {
	packets atomic.Uint32
	loud    atomic.Uint32
	linear  atomic.Uint64 // sum of linear amplitudes of loud packets, ×1e6
}

func (a *audioLevel) observe(level uint8) {
	a.packets.Add(1)
	if level <= speechLevel {
		a.loud.Add(1)
		a.linear.Add(uint64(math.Pow(10, -float64(level)/20) * 1e6))
	}
}

// ObserveAudioLevels makes the track read the audio level header extension
// negotiated on receiver. Call it before the first AddLayer.
func (u *UpTrack) ObserveAudioLevels(receiver *webrtc.RTPReceiver) {
	if u.kind != webrtc.RTPCodecTypeAudio {
		return
	}
	for _, e := range receiver.GetParameters().HeaderExtensions {
		if e.URI == extAudioLevel {
			u.levelID.Store(uint32(e.ID))
		}
	}
}

// AudioLevel reports the track's voice activity since the last call: level
// is the mean linear amplitude of speech packets (0..1) and active says the
// publisher is speaking. Called periodically by one poller.
func (u *UpTrack) AudioLevel() (level float64, active bool) {
	packets := u.level.packets.Swap(0)
	loud := u.level.loud.Swap(0)
	linear := u.level.linear.Swap(0)
	if packets == 0 || loud == 0 {
		return 0, false
	}
	level = float64(linear) / 1e6 / float64(loud)
	return level, float64(loud)/float64(packets) >= speechShare
}
