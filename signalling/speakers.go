package signalling

import (
	"math"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/pion/webrtc/v4"
)

// speakerInterval is how often active speakers are evaluated: LiveKit's
// default, short enough for the UI to follow turns in a conversation.
const speakerInterval = 500 * time.Millisecond

// speakerLoop sends speakers_changed deltas while the room is open. It is
// owned by the room and ends when the room closes.
func (r *room) speakerLoop() {
	t := time.NewTicker(speakerInterval)
	defer t.Stop()
	active := map[string]float32{} // participant sid -> last level sent
	for {
		select {
		case <-t.C:
		case <-r.stop:
			return
		}
		ps := r.all()
		now := map[string]float32{}
		for _, p := range ps {
			if p.hidden() {
				continue
			}
			var best float64
			speaking := false
			for _, t := range p.publishedTracks() {
				if t.up.Kind() != webrtc.RTPCodecTypeAudio {
					continue
				}
				level, on := t.up.AudioLevel()
				if on {
					speaking = true
					best = math.Max(best, level)
				}
			}
			if speaking {
				now[p.sid] = float32(best)
			}
		}
		var changed []*livekit.SpeakerInfo
		for sid, level := range now {
			if _, was := active[sid]; !was || math.Abs(float64(level-active[sid])) > 0.05 {
				changed = append(changed, &livekit.SpeakerInfo{Sid: sid, Level: level, Active: true})
			}
		}
		for sid := range active {
			if _, still := now[sid]; !still {
				changed = append(changed, &livekit.SpeakerInfo{Sid: sid, Active: false})
			}
		}
		if len(changed) == 0 {
			continue
		}
		for sid, level := range now {
			active[sid] = level
		}
		for sid := range active {
			if _, still := now[sid]; !still {
				delete(active, sid)
			}
		}
		msg := &livekit.SignalResponse{Message: &livekit.SignalResponse_SpeakersChanged{
			SpeakersChanged: &livekit.SpeakersChanged{Speakers: changed},
		}}
		for _, p := range ps {
			p.send(msg)
		}
	}
}
