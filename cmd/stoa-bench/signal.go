package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	"google.golang.org/protobuf/proto"
)

const (
	// protocolVersion is the LiveKit client protocol the generator speaks:
	// 16, what Stoa and livekit-server 1.9 both serve.
	protocolVersion = "16"
	// signalWriteTimeout bounds one WebSocket write.
	signalWriteTimeout = 10 * time.Second
	// maxSignalMessage bounds one message from the server; join responses
	// of big rooms list every participant.
	maxSignalMessage = 8 << 20
)

var errLeft = errors.New("server sent leave")

// mintToken signs an access token for identity in room.
func mintToken(key, secret, room, identity string, publish, subscribe bool) (string, error) {
	grant := &auth.VideoGrant{RoomJoin: true, Room: room}
	grant.SetCanPublish(publish)
	grant.SetCanSubscribe(subscribe)
	grant.SetCanPublishData(true)
	return auth.NewAccessToken(key, secret).
		SetIdentity(identity).
		SetName(identity).
		SetValidFor(2 * time.Hour).
		SetVideoGrant(grant).
		ToJWT()
}

// signalConn is one participant's WebSocket to the server. Reads happen on
// one goroutine (the participant's signal loop); send may be called from
// any goroutine.
type signalConn struct {
	ws *websocket.Conn

	mu sync.Mutex // guards writes to ws
}

// dialSignal opens /rtc with the legacy dual-PC query parameters, as
// LiveKit's Go SDK does, and reads the join response.
func dialSignal(ctx context.Context, base, token string) (*signalConn, *livekit.JoinResponse, error) {
	u, err := url.Parse(strings.TrimSuffix(base, "/") + "/rtc")
	if err != nil {
		return nil, nil, fmt.Errorf("signal URL: %w", err)
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	}
	q := url.Values{}
	q.Set("auto_subscribe", "1")
	q.Set("adaptive_stream", "0")
	q.Set("protocol", protocolVersion)
	q.Set("sdk", "go")
	q.Set("version", "2.19.0")
	q.Set("os", "linux")
	u.RawQuery = q.Encode()
	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	d := websocket.Dialer{HandshakeTimeout: 15 * time.Second, ReadBufferSize: 16 << 10, WriteBufferSize: 16 << 10}
	ws, resp, err := d.DialContext(ctx, u.String(), h)
	if err != nil {
		if resp != nil {
			return nil, nil, fmt.Errorf("signal dial: %w (HTTP %s)", err, resp.Status)
		}
		return nil, nil, fmt.Errorf("signal dial: %w", err)
	}
	ws.SetReadLimit(maxSignalMessage)
	c := &signalConn{ws: ws}
	deadline := time.Now().Add(15 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = ws.SetReadDeadline(deadline)
	for {
		msg, err := c.read()
		if err != nil {
			ws.Close()
			return nil, nil, fmt.Errorf("waiting for join response: %w", err)
		}
		switch m := msg.Message.(type) {
		case *livekit.SignalResponse_Join:
			_ = ws.SetReadDeadline(time.Time{})
			return c, m.Join, nil
		case *livekit.SignalResponse_Leave:
			ws.Close()
			return nil, nil, fmt.Errorf("%w before join: %s", errLeft, m.Leave.GetReason())
		}
	}
}

func (c *signalConn) read() (*livekit.SignalResponse, error) {
	for {
		typ, data, err := c.ws.ReadMessage()
		if err != nil {
			return nil, err
		}
		if typ != websocket.BinaryMessage {
			continue
		}
		msg := &livekit.SignalResponse{}
		if err := proto.Unmarshal(data, msg); err != nil {
			return nil, fmt.Errorf("decode signal response: %w", err)
		}
		return msg, nil
	}
}

func (c *signalConn) send(req *livekit.SignalRequest) error {
	data, err := proto.Marshal(req)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(signalWriteTimeout))
	return c.ws.WriteMessage(websocket.BinaryMessage, data)
}

// close says goodbye if it can and closes the socket.
func (c *signalConn) close(leave bool) {
	if leave {
		_ = c.send(&livekit.SignalRequest{Message: &livekit.SignalRequest_Leave{Leave: &livekit.LeaveRequest{
			Reason: livekit.DisconnectReason_CLIENT_INITIATED, Action: livekit.LeaveRequest_DISCONNECT,
		}}})
	}
	c.mu.Lock()
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""),
		time.Now().Add(time.Second))
	c.mu.Unlock()
	c.ws.Close()
}
