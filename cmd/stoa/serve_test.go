package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer that serve's goroutines and the test may
// use at once.
type syncBuffer struct {
	mu  sync.Mutex // guards the following fields
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// checkGoroutines fails t if, when t ends, more goroutines run than when
// checkGoroutines was called. Tests that use it must not be parallel.
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// startServe runs "stoa serve args" with env until the test ends and
// returns the bound HTTP addresses and its log.
func startServe(t *testing.T, env map[string]string, args ...string) ([]net.Addr, *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := new(syncBuffer)
	ready := make(chan []net.Addr, 1) // serve sends at most once and must not block
	done := make(chan error, 1)       // the test may stop listening after ready
	go func() {
		done <- run(ctx, append([]string{"serve"}, args...), system{
			stdout: log, stderr: log, getenv: envMap(env),
			ready: func(addrs []net.Addr) { ready <- addrs },
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v\nlog:\n%s", err, log)
			}
		case <-time.After(shutdownTimeout + 5*time.Second):
			t.Errorf("serve did not stop\nlog:\n%s", log)
		}
	})
	select {
	case addrs := <-ready:
		return addrs, log
	case err := <-done:
		done <- err // for the cleanup
		t.Fatalf("serve exited early: %v\nlog:\n%s", err, log)
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not start\nlog:\n%s", log)
	}
	return nil, nil
}

func TestServeAnswersHead(t *testing.T) {
	checkGoroutines(t)
	path := writeFile(t, "stoa.yaml", `
port: 0
bind_addresses: [127.0.0.1]
rtc:
  udp_port: 0
  tcp_port: 0
  bind_address: 127.0.0.1
keys:
  k: `+longSecret+`
logging:
  level: debug
`)
	addrs, log := startServe(t, nil, "--config", path)
	if len(addrs) != 1 {
		t.Fatalf("addrs = %v", addrs)
	}

	client := &http.Client{Timeout: 10 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	resp, err := client.Head("http://" + addrs[0].String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("HEAD / = %s, want 200 OK", resp.Status)
	}
	if s := log.String(); strings.Contains(s, longSecret) {
		t.Errorf("log reveals the secret:\n%s", s)
	}
}

func TestServeEnvPortsAndDev(t *testing.T) {
	checkGoroutines(t)
	env := map[string]string{"STOA_PORT": "0", "STOA_RTC_UDP_PORT": "0", "STOA_RTC_TCP_PORT": "-1"}
	addrs, log := startServe(t, env, "--dev")
	if len(addrs) != 1 || !addrs[0].(*net.TCPAddr).IP.IsLoopback() {
		t.Fatalf("addrs = %v, want one loopback address", addrs)
	}
	s := log.String()
	if !strings.Contains(s, "development mode") {
		t.Errorf("log does not show dev mode:\n%s", s)
	}
	if strings.Contains(s, "secret=") {
		t.Errorf("log may reveal the dev secret:\n%s", s)
	}
}

func TestServePortInUse(t *testing.T) {
	checkGoroutines(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	port := l.Addr().(*net.TCPAddr).Port

	env := map[string]string{"STOA_PORT": fmt.Sprint(port), "STOA_RTC_UDP_PORT": "0", "STOA_RTC_TCP_PORT": "0"}
	var stderr syncBuffer
	err = run(context.Background(), []string{"serve", "--dev"}, system{stdout: &stderr, stderr: &stderr, getenv: envMap(env)})
	if err == nil || !strings.Contains(err.Error(), "listen") {
		t.Errorf("err = %v, want a listen error", err)
	}
}
