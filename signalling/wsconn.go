package signalling

import (
	"errors"
	"io"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/livekit/protocol/livekit"
	"google.golang.org/protobuf/proto"
)

const (
	// maxSignalMessage caps one client message. The largest legitimate ones
	// are SDP offers of many media sections (tens of KB); 1 MiB leaves room
	// and stops a client from making us buffer arbitrary amounts.
	maxSignalMessage = 1 << 20
	// maxQueuedResponses bounds the messages waiting for a slow client.
	// A client this far behind is not reading; it is disconnected.
	maxQueuedResponses = 4096
	writeTimeout       = 10 * time.Second
	// leaveDrain is how long a leave gets to reach the client before the
	// socket closes (LiveKit drains for 250 ms; PROTOCOL.md §4.3).
	leaveDrain = 250 * time.Millisecond
	// wsPingInterval and wsReadTimeout notice a client that vanished
	// without closing (no FIN, a dead NAT mapping): WebSocket pings every
	// 10 s, as LiveKit sends, and 30 s without any frame or pong ends the
	// connection (then the participant waits for a resume).
	wsPingInterval = 10 * time.Second
	wsReadTimeout  = 30 * time.Second
)

var (
	errSlowClient      = errors.New("signalling: client too slow, responses dropped")
	errMessageTooLarge = errors.New("signal message too large")
)

// wsConn is one client's WebSocket. Responses are queued without blocking
// and written by one writer goroutine in order; reads happen on the
// goroutine that owns the connection.
type wsConn struct {
	ws   *websocket.Conn
	wake chan struct{} // size 1: coalesced "queue not empty"
	done chan struct{} // closed when the writer has stopped

	mu        sync.Mutex // guards the following fields
	queue     []*livekit.SignalResponse
	closing   bool // no more responses accepted
	closeCode int
	closeText string
}

func newWSConn(ws *websocket.Conn) *wsConn {
	c := &wsConn{ws: ws, wake: make(chan struct{}, 1), done: make(chan struct{})}
	_ = ws.SetReadDeadline(time.Now().Add(wsReadTimeout))
	ws.SetPongHandler(func(string) error { return ws.SetReadDeadline(time.Now().Add(wsReadTimeout)) })
	go c.writeLoop()
	return c
}

// send queues msg. It never blocks; it reports false when the connection is
// closing or the client has fallen too far behind (then it is closed).
func (c *wsConn) send(msg *livekit.SignalResponse) bool {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return false
	}
	if len(c.queue) >= maxQueuedResponses {
		c.closing = true
		c.closeCode = websocket.CloseTryAgainLater
		c.closeText = errSlowClient.Error()
		c.mu.Unlock()
		c.signal()
		return false
	}
	c.queue = append(c.queue, msg)
	c.mu.Unlock()
	c.signal()
	return true
}

func (c *wsConn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// close flushes what is queued (for at most leaveDrain), sends a close frame
// with code and text, and closes the socket. Safe to call more than once.
func (c *wsConn) close(code int, text string) {
	c.mu.Lock()
	if !c.closing {
		c.closing = true
		c.closeCode = code
		c.closeText = text
	}
	c.mu.Unlock()
	c.signal()
	select {
	case <-c.done:
	case <-time.After(leaveDrain + writeTimeout):
		_ = c.ws.Close()
	}
}

// closeNow drops the socket without flushing (the peer is gone).
func (c *wsConn) closeNow() {
	c.mu.Lock()
	c.closing = true
	c.queue = nil
	c.mu.Unlock()
	_ = c.ws.Close()
	c.signal()
}

func (c *wsConn) writeLoop() {
	defer close(c.done)
	defer c.ws.Close()
	ping := time.NewTicker(wsPingInterval)
	defer ping.Stop()
	var drainUntil time.Time
	for {
		c.mu.Lock()
		batch := c.queue
		c.queue = nil
		closing := c.closing
		code, text := c.closeCode, c.closeText
		c.mu.Unlock()
		for _, m := range batch {
			b, err := proto.Marshal(m)
			if err != nil {
				continue
			}
			deadline := time.Now().Add(writeTimeout)
			if closing {
				if drainUntil.IsZero() {
					drainUntil = time.Now().Add(leaveDrain)
				}
				deadline = drainUntil
			}
			_ = c.ws.SetWriteDeadline(deadline)
			if err := c.ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
				return
			}
		}
		if closing {
			if len(batch) == 0 {
				if code == 0 {
					code = websocket.CloseNormalClosure
				}
				_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
				return
			}
			continue
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-c.wake:
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeTimeout)); err != nil {
				return
			}
		}
	}
}

// read returns the next client request. Text frames are accepted as
// protojson, as LiveKit does.
func (c *wsConn) read() (*livekit.SignalRequest, error) {
	// The size is checked here rather than with gorilla's read limit, which
	// would close the socket before the client could be sent a leave.
	typ, r, err := c.ws.NextReader()
	if err != nil {
		return nil, err
	}
	_ = c.ws.SetReadDeadline(time.Now().Add(wsReadTimeout))
	b, err := io.ReadAll(io.LimitReader(r, maxSignalMessage+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxSignalMessage {
		return nil, errMessageTooLarge
	}
	req := &livekit.SignalRequest{}
	switch typ {
	case websocket.BinaryMessage:
		err = proto.Unmarshal(b, req)
	case websocket.TextMessage:
		err = protojsonUnmarshal(b, req)
	default:
		err = errors.New("unexpected frame type")
	}
	if err != nil {
		return nil, &protocolError{err: err}
	}
	return req, nil
}

// protocolError is a client message that could not be decoded.
type protocolError struct{ err error }

func (e *protocolError) Error() string { return "malformed signal message: " + e.err.Error() }
func (e *protocolError) Unwrap() error { return e.err }
