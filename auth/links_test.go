package auth

import (
	"testing"
	"time"
)

func TestParseLinkCommand(t *testing.T) {
	for _, tc := range []struct {
		body     string
		ok       bool
		bad      bool
		ttl      time.Duration
		viewOnly bool
	}{
		{body: "!stoa link", ok: true, ttl: defaultCommandLinkTTL},
		{body: "  !stoa   link  ", ok: true, ttl: defaultCommandLinkTTL},
		{body: "!stoa link view-only", ok: true, ttl: defaultCommandLinkTTL, viewOnly: true},
		{body: "!stoa link 2h", ok: true, ttl: 2 * time.Hour},
		{body: "!stoa link 90m view-only", ok: true, ttl: 90 * time.Minute, viewOnly: true},
		{body: "!stoa link view-only 7d", ok: true, ttl: 7 * 24 * time.Hour, viewOnly: true},
		{body: "!stoa link soon", ok: true, bad: true},
		{body: "!stoa link 2h 3h", ok: true, bad: true},
		{body: "!stoa link 10s", ok: true, bad: true},
		{body: "!stoa link 400d", ok: true, bad: true},
		{body: "!stoa link -2h", ok: true, bad: true},
		{body: "!stoa links", ok: false},
		{body: "!stoa", ok: false},
		{body: "hello !stoa link", ok: false},
		{body: "", ok: false},
	} {
		cmd, ok, err := parseLinkCommand(tc.body)
		if ok != tc.ok || (err != nil) != tc.bad {
			t.Errorf("%q: ok %v err %v, want ok %v bad %v", tc.body, ok, err, tc.ok, tc.bad)
			continue
		}
		if tc.ok && !tc.bad && (cmd.ttl != tc.ttl || cmd.viewOnly != tc.viewOnly) {
			t.Errorf("%q: %+v, want ttl %v view-only %v", tc.body, cmd, tc.ttl, tc.viewOnly)
		}
	}
}

func TestLinkRateLimit(t *testing.T) {
	last := map[string]time.Time{}
	now := time.Now()
	if !allow(last, "r", 10*time.Second, now) {
		t.Fatal("first refused")
	}
	if allow(last, "r", 10*time.Second, now.Add(5*time.Second)) {
		t.Error("second within 10s allowed")
	}
	if !allow(last, "other", 10*time.Second, now.Add(5*time.Second)) {
		t.Error("another room refused")
	}
	if !allow(last, "r", 10*time.Second, now.Add(11*time.Second)) {
		t.Error("after 10s refused")
	}
}
