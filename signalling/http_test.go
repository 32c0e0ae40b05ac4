package signalling_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
)

func httpURL(s *testServer) string { return "http" + strings.TrimPrefix(s.url, "ws") }

// TestHTTPEndpoints checks the plain HTTP side the clients probe: HEAD /,
// the validate endpoints with LiveKit's status codes, CORS on every answer,
// and that a bad token is refused before the WebSocket upgrade.
func TestHTTPEndpoints(t *testing.T) {
	srv := startServer(t)
	base := httpURL(srv)
	good := srv.token(t, "r", "alice")
	expired := signHS256(t, srv.secret, map[string]any{
		"iss": srv.key, "sub": "alice", "exp": time.Now().Add(-time.Hour).Unix(),
		"video": map[string]any{"roomJoin": true, "room": "r"},
	})
	forged := good[:len(good)-4] + "AAAA"
	wrongKey, err := auth.NewAccessToken(srv.key, "another-secret-of-at-least-32-chars").
		SetVideoGrant(&auth.VideoGrant{RoomJoin: true, Room: "r"}).SetIdentity("alice").SetValidFor(time.Hour).ToJWT()
	if err != nil {
		t.Fatal(err)
	}
	unknownKey, err := auth.NewAccessToken("nokey", srv.secret).
		SetVideoGrant(&auth.VideoGrant{RoomJoin: true, Room: "r"}).SetIdentity("alice").SetValidFor(time.Hour).ToJWT()
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name, method, path string
		header             http.Header
		status             int
		body               string
	}{
		{"head root", http.MethodHead, "/", nil, 200, ""},
		{"validate ok", "GET", "/rtc/validate?access_token=" + good, nil, 200, "success"},
		{"validate bearer", "GET", "/rtc/validate", http.Header{"Authorization": {"Bearer " + good}}, 200, "success"},
		{"validate non-bearer", "GET", "/rtc/validate", http.Header{"Authorization": {"Basic " + good}}, 401, "Bearer"},
		{"validate expired", "GET", "/rtc/validate?access_token=" + expired, nil, 401, "invalid authorization token"},
		{"validate forged", "GET", "/rtc/validate?access_token=" + forged, nil, 401, "invalid authorization token"},
		{"validate wrong secret", "GET", "/rtc/validate?access_token=" + wrongKey, nil, 401, "invalid authorization token"},
		{"validate unknown key", "GET", "/rtc/validate?access_token=" + unknownKey, nil, 401, "invalid API key"},
		{"validate no token", "GET", "/rtc/validate", nil, 401, ""},
		{"v1 validate without join_request", "GET", "/rtc/v1/validate?access_token=" + good, nil, 400, "join_request"},
		{"rtc without upgrade", "GET", "/rtc?access_token=" + good, nil, 404, ""},
		{"upgrade with expired token", "GET", "/rtc?access_token=" + expired, http.Header{
			"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Version": {"13"},
			"Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="},
		}, 401, "invalid authorization token"},
		{"preflight", http.MethodOptions, "/rtc/validate", http.Header{
			"Origin": {"https://call.example"}, "Access-Control-Request-Method": {"GET"},
			"Access-Control-Request-Headers": {"authorization"},
		}, 204, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, base+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.header {
				req.Header[k] = v
			}
			req.Header.Set("Origin", "https://call.example")
			resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d (%q), want %d", resp.StatusCode, body, tc.status)
			}
			if !strings.Contains(string(body), tc.body) {
				t.Fatalf("body %q does not contain %q", body, tc.body)
			}
			if resp.Header.Get("Access-Control-Allow-Origin") == "" {
				t.Fatal("no CORS header")
			}
		})
	}
}

// TestSignalKeepaliveAndRefresh checks both ping styles and the token the
// server pushes after join, which must open the same room for the same
// identity.
func TestSignalKeepaliveAndRefresh(t *testing.T) {
	srv := startServer(t)
	room := roomName(t, "room")
	c := dialRaw(t, srv, room, "alice")
	c.write(websocket.BinaryMessage, mustMarshal(t, &livekit.SignalRequest{Message: &livekit.SignalRequest_Ping{Ping: 7}}))
	c.write(websocket.BinaryMessage, mustMarshal(t, &livekit.SignalRequest{Message: &livekit.SignalRequest_PingReq{PingReq: &livekit.Ping{Timestamp: 9}}}))
	var pong, pongResp bool
	var refreshed string
	for !pong || !pongResp || refreshed == "" {
		m := c.read()
		switch {
		case m.GetPong() != 0:
			if d := time.Since(time.UnixMilli(m.GetPong())); d < -time.Minute || d > time.Minute {
				t.Fatalf("pong %d is not the server time in ms", m.GetPong())
			}
			pong = true
		case m.GetPongResp() != nil:
			if m.GetPongResp().LastPingTimestamp != 9 {
				t.Fatalf("pong_resp echoes %d, want 9", m.GetPongResp().LastPingTimestamp)
			}
			pongResp = true
		case m.GetRefreshToken() != "":
			refreshed = m.GetRefreshToken()
		}
	}
	v, err := auth.ParseAPIToken(refreshed)
	if err != nil {
		t.Fatal(err)
	}
	reg, claims, err := v.Verify(srv.secret)
	if err != nil {
		t.Fatalf("refresh token does not verify: %v", err)
	}
	if claims.Identity != "alice" || claims.Video == nil || claims.Video.Room != room || !claims.Video.RoomJoin {
		t.Fatalf("refresh token grants %+v to %q, want room %q for alice", claims.Video, claims.Identity, room)
	}
	if reg.ExpiresAt == nil || time.Until(reg.ExpiresAt.Time) < 9*time.Minute {
		t.Fatalf("refresh token expires at %v, want at least 10 minutes from now", reg.ExpiresAt)
	}
}

// TestRoomLifecycle checks that a same-identity join replaces the old
// session (which is told why) and that an empty room closes after the
// departure timeout: the next join gets a new room.
func TestRoomLifecycle(t *testing.T) {
	srv := startServer(t)
	room := roomName(t, "room")
	first := dialRaw(t, srv, room, "alice")
	second := dialRaw(t, srv, room, "alice")
	for {
		m := first.read()
		if l := m.GetLeave(); l != nil {
			if l.Reason != livekit.DisconnectReason_DUPLICATE_IDENTITY || l.Action != livekit.LeaveRequest_DISCONNECT {
				t.Fatalf("replaced session got leave %v/%v, want DUPLICATE_IDENTITY/DISCONNECT", l.Reason, l.Action)
			}
			break
		}
	}
	second.write(websocket.BinaryMessage, mustMarshal(t, &livekit.SignalRequest{Message: &livekit.SignalRequest_Leave{
		Leave: &livekit.LeaveRequest{Reason: livekit.DisconnectReason_CLIENT_INITIATED, Action: livekit.LeaveRequest_DISCONNECT},
	}}))
	firstSid := joinedRoomSid(t, srv, room, "probe")
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Each probe leaves at once; the room must then stay empty for the
		// departure timeout (1 s) to close.
		time.Sleep(1500 * time.Millisecond)
		if sid := joinedRoomSid(t, srv, room, "probe"); sid != firstSid {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the empty room never closed")
		}
	}
}

// joinedRoomSid joins room as identity with a leave right after, and
// returns the room sid from the join response.
func joinedRoomSid(t *testing.T, s *testServer, room, identity string) string {
	t.Helper()
	h := http.Header{"Authorization": {"Bearer " + s.token(t, room, identity)}}
	ws, resp, err := (&websocket.Dialer{HandshakeTimeout: 5 * time.Second}).Dial(s.url+"/rtc?protocol=17", h)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	_ = resp.Body.Close()
	defer ws.Close()
	c := &rawClient{t: t, ws: ws}
	join := c.read().GetJoin()
	if join == nil || join.Room == nil || !strings.HasPrefix(join.Room.Sid, "RM_") {
		t.Fatalf("join response without a room sid: %v", join)
	}
	if join.Participant == nil || !strings.HasPrefix(join.Participant.Sid, "PA_") || join.Participant.Permission == nil {
		t.Fatalf("join response participant %v lacks sid or permission", join.Participant)
	}
	if join.PingInterval == 0 || join.PingTimeout == 0 || join.ServerInfo.GetVersion() == "" || !join.SubscriberPrimary {
		t.Fatalf("join response lacks keepalive, version or subscriber_primary: %v", join)
	}
	c.write(websocket.BinaryMessage, mustMarshal(t, &livekit.SignalRequest{Message: &livekit.SignalRequest_Leave{
		Leave: &livekit.LeaveRequest{Reason: livekit.DisconnectReason_CLIENT_INITIATED},
	}}))
	return join.Room.Sid
}
