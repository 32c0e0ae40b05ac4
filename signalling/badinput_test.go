package signalling_test

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	"github.com/pion/webrtc/v4"
	"google.golang.org/protobuf/proto"
)

// rawClient is a signal connection without an SDK: it sends whatever the
// test wants.
type rawClient struct {
	t  *testing.T
	ws *websocket.Conn
}

func dialRaw(t *testing.T, s *testServer, room, identity string) *rawClient {
	t.Helper()
	h := http.Header{"Authorization": {"Bearer " + s.token(t, room, identity)}}
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	ws, resp, err := d.Dial(s.url+"/rtc?protocol=17&auto_subscribe=1", h)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	_ = resp.Body.Close()
	t.Cleanup(func() { _ = ws.Close() })
	c := &rawClient{t: t, ws: ws}
	if first := c.read(); first.GetJoin() == nil {
		t.Fatalf("first message is %T, want join", first.Message)
	}
	return c
}

// read returns the next response, failing the test after 5 s.
func (c *rawClient) read() *livekit.SignalResponse {
	c.t.Helper()
	_ = c.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	typ, b, err := c.ws.ReadMessage()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	if typ != websocket.BinaryMessage {
		c.t.Fatalf("frame type %d, want binary", typ)
	}
	m := &livekit.SignalResponse{}
	if err := proto.Unmarshal(b, m); err != nil {
		c.t.Fatalf("undecodable response: %v", err)
	}
	return m
}

// expectLeave reads until a leave arrives, then expects the close frame
// with code and a reason containing text.
func (c *rawClient) expectLeave(code int, text string) {
	c.t.Helper()
	for {
		m := c.read()
		if l := m.GetLeave(); l != nil {
			if l.Action != livekit.LeaveRequest_DISCONNECT {
				c.t.Fatalf("leave action %v, want DISCONNECT", l.Action)
			}
			break
		}
	}
	_ = c.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := c.ws.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			c.t.Fatalf("connection ended with %v, want a close frame", err)
		}
		if ce.Code != code || !strings.Contains(ce.Text, text) {
			c.t.Fatalf("close %d %q, want %d containing %q", ce.Code, ce.Text, code, text)
		}
		return
	}
}

func (c *rawClient) write(typ int, b []byte) {
	c.t.Helper()
	if err := c.ws.WriteMessage(typ, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// TestBadSignalInput sends hostile messages on one signal connection while
// two SDK participants exchange media in the same room: the offender gets a
// leave and a close frame saying why, the others never notice.
func TestBadSignalInput(t *testing.T) {
	srv := startServer(t)
	room := roomName(t, "room")
	alice := srv.join(t, room, "alice")
	alice.publishMedia(true, true)
	bob := srv.join(t, room, "bob")
	bob.waitReceiving(time.Now().Add(mediaTimeout), "alice")

	cases := []struct {
		name string
		typ  int
		msg  []byte
		code int
		text string
	}{
		{"malformed protobuf", websocket.BinaryMessage, []byte{0x0a, 0xff, 0xff, 0xff, 0x0f}, websocket.CloseUnsupportedData, "malformed signal message"},
		{"malformed json", websocket.TextMessage, []byte(`{"offer": 12`), websocket.CloseUnsupportedData, "malformed signal message"},
		{"oversized frame", websocket.BinaryMessage, bytes.Repeat([]byte{0x42}, 2<<20), websocket.CloseMessageTooBig, "too large"},
		{"oversized field", websocket.BinaryMessage, mustMarshal(t, &livekit.SignalRequest{Message: &livekit.SignalRequest_Trickle{
			Trickle: &livekit.TrickleRequest{CandidateInit: strings.Repeat("x", 64<<10)},
		}}), websocket.ClosePolicyViolation, "trickle"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, srv, room, "mallory")
			c.write(tc.typ, tc.msg)
			c.expectLeave(tc.code, tc.text)
		})
	}

	t.Run("unknown message is ignored", func(t *testing.T) {
		c := dialRaw(t, srv, room, "mallory")
		// Field 999 is not in SignalRequest: a newer client's message.
		unknown := []byte{0xba, 0x3e, 0x02, 0x08, 0x01}
		c.write(websocket.BinaryMessage, unknown)
		ping := mustMarshal(t, &livekit.SignalRequest{Message: &livekit.SignalRequest_PingReq{PingReq: &livekit.Ping{Timestamp: 42}}})
		c.write(websocket.BinaryMessage, ping)
		for {
			m := c.read()
			if m.GetLeave() != nil {
				t.Fatal("an unknown message ended the session")
			}
			if p := m.GetPongResp(); p != nil {
				if p.LastPingTimestamp != 42 {
					t.Fatalf("pong echoes %d, want 42", p.LastPingTimestamp)
				}
				return
			}
		}
	})

	t.Run("add_track without canPublish", func(t *testing.T) {
		h := http.Header{"Authorization": {"Bearer " + srv.token(t, room, "viewer", noPublish)}}
		ws, resp, err := websocket.DefaultDialer.Dial(srv.url+"/rtc?protocol=17", h)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		_ = resp.Body.Close()
		t.Cleanup(func() { _ = ws.Close() })
		c := &rawClient{t: t, ws: ws}
		c.read() // join
		c.write(websocket.BinaryMessage, mustMarshal(t, &livekit.SignalRequest{Message: &livekit.SignalRequest_AddTrack{
			AddTrack: &livekit.AddTrackRequest{Cid: "cam", Type: livekit.TrackType_VIDEO, Source: livekit.TrackSource_CAMERA},
		}}))
		for {
			m := c.read()
			if m.GetTrackPublished() != nil {
				t.Fatal("a viewer's track was accepted")
			}
			if rr := m.GetRequestResponse(); rr != nil {
				if rr.Reason != livekit.RequestResponse_NOT_ALLOWED {
					t.Fatalf("add_track refused with %v, want NOT_ALLOWED", rr.Reason)
				}
				return
			}
		}
	})

	// The room carried on: bob still receives alice's media.
	before := bob.packetCount("alice", webrtc.RTPCodecTypeVideo)
	bob.waitFor(time.Now().Add(mediaTimeout), "more video from alice", func() bool {
		n := 0
		for _, rt := range bob.tracksFromLocked("alice", webrtc.RTPCodecTypeVideo) {
			n += rt.packets
		}
		return n >= before+30
	})
}

func noPublish(g *auth.VideoGrant) { g.SetCanPublish(false) }

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
