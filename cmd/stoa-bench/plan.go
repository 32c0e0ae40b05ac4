package main

import (
	"fmt"
	"strconv"
	"strings"
)

// Shape names.
const (
	shapeMeeting = "meeting"
	shapeWebinar = "webinar"
	shapeAudio   = "audio"
)

// sizes is how many participants of each kind a run joins.
type sizes struct {
	Video       int  // publishers of simulcast VP8 plus Opus
	Audio       int  // publishers of Opus only
	Subscribers int  // participants that only subscribe
	PubsSub     bool // publishers also subscribe to the other publishers
}

// defaultSizes are the sizes of each shape on a 2-core machine (issue 4):
// meeting 4x20, webinar 1x200, audio 20x20.
func defaultSizes(shape string) (sizes, error) {
	switch shape {
	case shapeMeeting:
		return sizes{Video: 4, Subscribers: 20, PubsSub: true}, nil
	case shapeWebinar:
		return sizes{Video: 1, Subscribers: 200}, nil
	case shapeAudio:
		return sizes{Audio: 20, Subscribers: 20}, nil
	}
	return sizes{}, usagef("unknown shape %q (meeting, webinar or audio)", shape)
}

// parseShapeSpec parses "shape" or "shape:PxS" as used by compare: P is the
// number of video publishers (audio publishers for the audio shape) and S
// the number of subscribers.
func parseShapeSpec(spec string) (string, sizes, error) {
	name, dims, hasDims := strings.Cut(spec, ":")
	sz, err := defaultSizes(name)
	if err != nil || !hasDims {
		return name, sz, err
	}
	ps, ss, ok := strings.Cut(dims, "x")
	p, err1 := strconv.Atoi(ps)
	s, err2 := strconv.Atoi(ss)
	if !ok || err1 != nil || err2 != nil || p < 0 || s < 0 {
		return "", sizes{}, usagef("bad shape %q: want shape:PUBLISHERSxSUBSCRIBERS", spec)
	}
	if name == shapeAudio {
		sz.Audio = p
	} else {
		sz.Video = p
	}
	sz.Subscribers = s
	return name, sz, nil
}

// spec is one participant of a run.
type spec struct {
	Identity  string
	Kind      byte // 'v' video publisher, 'a' audio publisher, 's' subscriber
	Index     int  // index among the participants of its kind
	Subscribe bool
	// High is the index of the video publisher this participant watches at
	// the top layer; it takes every other video at the lowest. -1 takes
	// every video at the top layer (webinar).
	High int
}

func (s spec) publishesVideo() bool { return s.Kind == 'v' }
func (s spec) publishes() bool      { return s.Kind == 'v' || s.Kind == 'a' }

// identityOf names participant i of a kind: v3, a0, s17. The name is how
// subscribers tell publishers apart; parseIdentity reverses it.
func identityOf(kind byte, i int) string { return string(kind) + strconv.Itoa(i) }

func parseIdentity(id string) (kind byte, index int, ok bool) {
	if len(id) < 2 {
		return 0, 0, false
	}
	n, err := strconv.Atoi(id[1:])
	if err != nil {
		return 0, 0, false
	}
	return id[0], n, true
}

// plan lists the participants of a run, publishers first so that
// subscribers join a room whose tracks already flow.
//
// meeting: every video publisher also subscribes; each subscribing
// participant watches one publisher at the top layer (round robin, never
// itself) and the others at the lowest, as a grid with one speaker.
// webinar: subscribers take every video at the top layer.
// audio: audio publishers, and subscribers that hear all of them.
func plan(shape string, sz sizes) ([]spec, error) {
	if sz.Video < 0 || sz.Audio < 0 || sz.Subscribers < 0 {
		return nil, usagef("negative participant count")
	}
	if sz.Video+sz.Audio == 0 {
		return nil, usagef("nobody publishes")
	}
	meeting := shape == shapeMeeting
	high := func(k int, self int) int {
		if !meeting || sz.Video == 0 {
			return -1
		}
		h := k % sz.Video
		if h == self && sz.Video > 1 {
			h = (h + 1) % sz.Video
		}
		return h
	}
	var out []spec
	for i := range sz.Video {
		out = append(out, spec{Identity: identityOf('v', i), Kind: 'v', Index: i, Subscribe: sz.PubsSub, High: high(i+1, i)})
	}
	for i := range sz.Audio {
		out = append(out, spec{Identity: identityOf('a', i), Kind: 'a', Index: i, Subscribe: sz.PubsSub, High: high(i, -1)})
	}
	for i := range sz.Subscribers {
		out = append(out, spec{Identity: identityOf('s', i), Kind: 's', Index: i, Subscribe: true, High: high(i, -1)})
	}
	return out, nil
}

// expectedStreams is the number of tracks s should receive in a run of
// sz: a video and an audio track per other video publisher, an audio
// track per other audio publisher.
func expectedStreams(s spec, sz sizes) int {
	if !s.Subscribe {
		return 0
	}
	v, a := sz.Video, sz.Audio
	switch s.Kind {
	case 'v':
		v--
	case 'a':
		a--
	}
	return 2*v + a
}

func (sz sizes) String() string {
	return fmt.Sprintf("%d video publishers, %d audio publishers, %d subscribers (publishers subscribe: %v)",
		sz.Video, sz.Audio, sz.Subscribers, sz.PubsSub)
}
