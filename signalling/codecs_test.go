package signalling_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

// h264AccessUnit is an Annex B access unit: SPS, PPS and an IDR slice for a
// keyframe, a non-IDR slice otherwise (RFC 6184 NAL types 7, 8, 5, 1). The
// slice bodies are filler that also marks the frame number, as the
// bitstream after the NAL header is opaque to the SFU (and may be E2EE
// ciphertext).
func h264AccessUnit(n int, key bool) []byte {
	start := []byte{0, 0, 0, 1}
	var b []byte
	body := bytes.Repeat([]byte{byte(n), 0x5a}, 600)
	if key {
		b = append(b, start...)
		b = append(b, 0x67, 0x42, 0xe0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8) // SPS
		b = append(b, start...)
		b = append(b, 0x68, 0xce, 0x3c, 0x80) // PPS
		b = append(b, start...)
		b = append(b, 0x65) // IDR slice
	} else {
		b = append(b, start...)
		b = append(b, 0x41) // non-IDR slice
	}
	return append(b, body...)
}

// TestH264AndEncryptionPassThrough publishes an H.264 track announced as
// end-to-end encrypted: a subscriber gets it as H.264, starting at a
// keyframe, with TrackInfo.encryption as the publisher set it and the
// slice bytes exactly as sent.
func TestH264AndEncryptionPassThrough(t *testing.T) {
	srv := startServer(t)
	room := roomName(t, "room")

	type got struct {
		mime      string
		firstNAL  byte
		encrypted livekit.Encryption_Type
		payloads  int
		exact     bool
	}
	var mu sync.Mutex
	var g got
	done := make(chan struct{})
	var once sync.Once
	cb := lksdk.NewRoomCallback()
	cb.OnTrackSubscribed = func(track *webrtc.TrackRemote, pub *lksdk.RemoteTrackPublication, _ *lksdk.RemoteParticipant) {
		if track.Kind() != webrtc.RTPCodecTypeVideo {
			return
		}
		mu.Lock()
		g.mime = track.Codec().MimeType
		g.encrypted = pub.TrackInfo().Encryption
		mu.Unlock()
		go func() {
			for {
				pkt, _, err := track.ReadRTP()
				if err != nil {
					return
				}
				mu.Lock()
				if g.payloads == 0 && len(pkt.Payload) > 0 {
					g.firstNAL = pkt.Payload[0] & 0x1f
				}
				g.payloads++
				// FU-A fragments (type 28) of a slice carry its filler:
				// the frame's number and 0x5a, alternating.
				if len(pkt.Payload) > 10 && pkt.Payload[0]&0x1f == 28 && fillerOnly(pkt.Payload[2:]) {
					g.exact = true
				}
				n := g.payloads
				mu.Unlock()
				if n >= 30 {
					once.Do(func() { close(done) })
				}
			}
		}()
	}
	sub, err := lksdk.ConnectToRoomWithToken(srv.url, srv.token(t, room, "sub"), cb, lksdk.WithAutoSubscribe(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Disconnect)

	pubRoom, err := lksdk.ConnectToRoomWithToken(srv.url, srv.token(t, room, "pub"), lksdk.NewRoomCallback())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pubRoom.Disconnect)
	track, err := lksdk.NewLocalSampleTrack(webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pubRoom.LocalParticipant.PublishTrack(track, &lksdk.TrackPublicationOptions{
		Name: "h264", Source: livekit.TrackSource_CAMERA, VideoWidth: 640, VideoHeight: 360,
		Encryption: livekit.Encryption_GCM,
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		tick := time.NewTicker(33 * time.Millisecond)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			_ = track.WriteSample(media.Sample{Data: h264AccessUnit(n, n%30 == 0), Duration: 33 * time.Millisecond}, nil)
		}
	}()

	select {
	case <-done:
	case <-time.After(mediaTimeout):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("subscriber got %d H.264 packets (%+v), want 30", g.payloads, g)
	}
	mu.Lock()
	defer mu.Unlock()
	if g.mime != webrtc.MimeTypeH264 {
		t.Errorf("subscriber's codec is %q, want H.264", g.mime)
	}
	if g.encrypted != livekit.Encryption_GCM {
		t.Errorf("subscriber sees encryption %v, want GCM as published", g.encrypted)
	}
	// The stream starts at a keyframe: SPS (7), or a STAP-A (24) carrying it.
	if g.firstNAL != 7 && g.firstNAL != 24 && g.firstNAL != 5 {
		t.Errorf("first packet's NAL type is %d, want the start of a keyframe", g.firstNAL)
	}
	if !g.exact {
		t.Error("slice bytes did not arrive as sent")
	}
}

// fillerOnly reports whether b is made of 0x5a and one other byte value
// alternating, as h264AccessUnit's slice bodies are.
func fillerOnly(b []byte) bool {
	var other int = -1
	for i, c := range b {
		if c == 0x5a && (i == 0 || b[i-1] != 0x5a || other == 0x5a) {
			continue
		}
		if other == -1 {
			other = int(c)
		}
		if int(c) != other {
			return false
		}
	}
	return bytes.IndexByte(b, 0x5a) >= 0
}
