package sfu

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// TestCloseBeforeConnectedStartsNoPath closes a publishing connection while
// its DTLS handshake completes: the "connected" state change then reaches
// the Peer's loop after Close's work. It must not start the own receive
// path, whose feedback goroutine nothing would stop.
func TestCloseBeforeConnectedStartsNoPath(t *testing.T) {
	s, err := New(Config{BindIP: "127.0.0.1", IncludeLoopback: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	client := loopbackClient(t, webrtc.NetworkTypeUDP4)
	if _, err := client.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	answers := make(chan webrtc.SessionDescription, 1)
	p, err := s.NewPeer(PeerConfig{
		Logger:        slog.New(slog.DiscardHandler),
		OnDescription: func(desc webrtc.SessionDescription, _ uint32, _ map[string]string) { answers <- desc },
		OnCandidate:   func(c webrtc.ICECandidateInit) { _ = client.AddICECandidate(c) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	offer, err := client.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(client)
	if err := client.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gathered: // the offer carries the client's candidates
	case <-ctx.Done():
		t.Fatal("the client did not gather its candidates")
	}
	if err := p.HandleOffer(client.LocalDescription().SDP, 1); err != nil {
		t.Fatal(err)
	}
	var ans webrtc.SessionDescription
	select {
	case ans = <-answers:
	case <-ctx.Done():
		t.Fatal("no answer")
	}
	select {
	case <-webrtc.GatheringCompletePromise(p.pc): // no more candidates to queue
	case <-ctx.Done():
		t.Fatal("the SFU did not gather its candidates")
	}

	// Hold the loop and queue Close behind it before the client has the
	// answer, so that the connection can only come up after Close is
	// queued, and its state change queues behind Close.
	release := make(chan struct{})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	running := make(chan struct{})
	p.enqueue(func() { close(running); <-release })
	<-running
	queued := func() int {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.queue)
	}
	waitQueue := func(n int, what string) {
		t.Helper()
		for queued() < n {
			select {
			case <-ctx.Done():
				t.Fatalf("waiting for %s: %d queued", what, queued())
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	base := queued()
	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	waitQueue(base+1, "Close to be queued")
	if err := client.SetRemoteDescription(ans); err != nil {
		t.Fatal(err)
	}
	waitQueue(base+2, "the connected state change to be queued")
	if st := p.pc.ConnectionState(); st != webrtc.PeerConnectionStateConnected {
		t.Fatalf("the queue grew, but the connection is %v", st)
	}
	close(release)
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("Close did not return")
	}
	// Whatever was queued behind Close is dropped: the loop has stopped.
	if n := queued(); n != 0 {
		t.Errorf("%d functions still queued after Close", n)
	}
	if p.in.Load() != nil {
		t.Fatal("the own receive path started on a closed connection")
	}
}
