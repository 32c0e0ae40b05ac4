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
	select {
	case ans := <-answers:
		if err := client.SetRemoteDescription(ans); err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("no answer")
	}

	// Hold the loop, queue Close behind it, and let the connection come
	// up, so that its state change queues behind Close.
	release := make(chan struct{})
	p.enqueue(func() { <-release })
	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	for p.pc.ConnectionState() != webrtc.PeerConnectionStateConnected {
		select {
		case <-ctx.Done():
			close(release)
			t.Fatalf("the connection did not come up: %v", p.pc.ConnectionState())
		case <-time.After(10 * time.Millisecond):
		}
	}
	time.Sleep(100 * time.Millisecond) // pion hands the state change to the loop
	close(release)
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("Close did not return")
	}
	time.Sleep(100 * time.Millisecond) // the loop drains what was queued
	if in := p.in.Load(); in != nil {
		in.close()
		t.Fatal("the own receive path started on a closed connection")
	}
}
