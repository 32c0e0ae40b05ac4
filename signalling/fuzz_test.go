package signalling

import (
	"encoding/base64"
	"errors"
	"net/http"
	"testing"

	"github.com/livekit/protocol/livekit"
	"google.golang.org/protobuf/proto"
)

// FuzzDecodeJoinRequest feeds arbitrary join_request values to the decoder:
// it must not panic, must fail only with a 400 *httpError, and anything it
// accepts must be within the limits.
func FuzzDecodeJoinRequest(f *testing.F) {
	seed := func(jr *livekit.JoinRequest, gz bool, enc *base64.Encoding) {
		f.Add(encodeJoinRequest(f, jr, gz, enc))
	}
	seed(jsJoinRequest(), true, base64.URLEncoding)
	seed(jsJoinRequest(), false, base64.RawStdEncoding)
	seed(&livekit.JoinRequest{
		Metadata: "m", ParticipantAttributes: map[string]string{"a": "b"}, Reconnect: true, ParticipantSid: "PA_x",
		AddTrackRequests: []*livekit.AddTrackRequest{{Cid: "c", Layers: []*livekit.VideoLayer{{Rid: "q"}}}},
	}, true, base64.URLEncoding)
	f.Add("")
	f.Add("====")
	f.Add("__8")
	f.Add("CAESBB-LCAA")
	f.Fuzz(func(t *testing.T, param string) {
		jr, err := decodeJoinRequest(param)
		if err != nil {
			var he *httpError
			if !errors.As(err, &he) || he.Status != http.StatusBadRequest {
				t.Fatalf("error %v (%T), want a 400 *httpError", err, err)
			}
			return
		}
		if jr == nil {
			t.Fatal("nil JoinRequest without an error")
		}
		if n := proto.Size(jr); n > maxJoinRequestSize {
			t.Errorf("accepted a %d byte JoinRequest", n)
		}
		if err := checkLimits(jr.ProtoReflect()); err != nil {
			t.Errorf("accepted a JoinRequest over the limits: %v", err)
		}
	})
}

// FuzzSignalRequest decodes arbitrary bytes as a SignalRequest, as the
// connection loop does, and validates it: no panic, and the only error is a
// limitError.
func FuzzSignalRequest(f *testing.F) {
	for _, req := range []*livekit.SignalRequest{
		{Message: &livekit.SignalRequest_Offer{Offer: jsJoinRequest().PublisherOffer}},
		{Message: &livekit.SignalRequest_Trickle{Trickle: &livekit.TrickleRequest{
			CandidateInit: `{"candidate":"candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host","sdpMid":"0","sdpMLineIndex":0}`,
			Target:        livekit.SignalTarget_SUBSCRIBER,
		}}},
		{Message: &livekit.SignalRequest_AddTrack{AddTrack: &livekit.AddTrackRequest{
			Cid: "c", Type: livekit.TrackType_VIDEO, Source: livekit.TrackSource_CAMERA,
			Layers:          []*livekit.VideoLayer{{Rid: "q"}, {Rid: "h"}, {Rid: "f"}},
			SimulcastCodecs: []*livekit.SimulcastCodec{{Codec: "vp8", Cid: "c"}},
		}}},
		{Message: &livekit.SignalRequest_Subscription{Subscription: &livekit.UpdateSubscription{
			TrackSids: []string{"TR_a"}, ParticipantTracks: []*livekit.ParticipantTracks{{ParticipantSid: "PA_a", TrackSids: []string{"TR_b"}}},
		}}},
		{Message: &livekit.SignalRequest_UpdateMetadata{UpdateMetadata: &livekit.UpdateParticipantMetadata{
			Metadata: "m", Name: "n", Attributes: map[string]string{"a": "b"}, RequestId: 7,
		}}},
		{Message: &livekit.SignalRequest_SyncState{SyncState: &livekit.SyncState{
			Answer: &livekit.SessionDescription{Type: "answer", Sdp: "v=0"},
			PublishTracks: []*livekit.TrackPublishedResponse{{Cid: "c", Track: &livekit.TrackInfo{
				Sid: "TR_a", Codecs: []*livekit.SimulcastCodecInfo{{MimeType: "video/VP8"}},
			}}},
		}}},
		{Message: &livekit.SignalRequest_StoreDataBlobRequest{StoreDataBlobRequest: &livekit.StoreDataBlobRequest{
			Blob: &livekit.DataBlob{Key: &livekit.DataBlobKey{Key: &livekit.DataBlobKey_Generic{Generic: "k"}}, Contents: []byte("x")},
		}}},
		{Message: &livekit.SignalRequest_PingReq{PingReq: &livekit.Ping{Timestamp: 1, Rtt: 2}}},
	} {
		b, err := proto.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req := &livekit.SignalRequest{}
		if err := proto.Unmarshal(b, req); err != nil {
			return
		}
		if err := validateSignalRequest(req); err != nil && !errors.Is(err, errTooLarge) {
			t.Fatalf("validateSignalRequest: %v (%T), want a limitError", err, err)
		}
	})
}
