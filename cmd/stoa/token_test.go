package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
)

// runToken runs "stoa token args" and returns its standard output.
func runToken(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), append([]string{"token"}, args...),
		system{stdout: &stdout, stderr: &stderr, getenv: envMap(env)})
	return strings.TrimSpace(stdout.String()), err
}

// verify checks tok's signature with secret and returns its grants.
func verify(t *testing.T, tok, wantKey, secret string) *auth.ClaimGrants {
	t.Helper()
	v, err := auth.ParseAPIToken(tok)
	if err != nil {
		t.Fatalf("ParseAPIToken(%q): %v", tok, err)
	}
	if v.APIKey() != wantKey {
		t.Errorf("APIKey = %q, want %q", v.APIKey(), wantKey)
	}
	_, grants, err := v.Verify(secret)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return grants
}

func TestTokenDev(t *testing.T) {
	tok, err := runToken(t, nil, "--dev", "--room", "standup", "--identity", "alice", "--name", "Alice A.")
	if err != nil {
		t.Fatal(err)
	}
	g := verify(t, tok, "devkey", "secret")
	if g.Identity != "alice" || g.Name != "Alice A." {
		t.Errorf("identity, name = %q, %q", g.Identity, g.Name)
	}
	v := g.Video
	if v == nil || !v.RoomJoin || v.Room != "standup" || v.RoomAdmin {
		t.Fatalf("video grant = %+v", v)
	}
	if !v.GetCanPublish() || !v.GetCanSubscribe() || !v.GetCanPublishData() {
		t.Errorf("publish, subscribe, data = %v, %v, %v", v.GetCanPublish(), v.GetCanSubscribe(), v.GetCanPublishData())
	}
	// Explicit, so that a server reading unset as denied agrees.
	if v.CanPublish == nil || v.CanSubscribe == nil || v.CanPublishData == nil {
		t.Errorf("permissions left unset: %+v", v)
	}

	// Default TTL: one hour.
	p, err := auth.ParseAPIToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	claims, _, err := p.Verify("secret")
	if err != nil {
		t.Fatal(err)
	}
	if d := claims.ExpiresAt.Sub(claims.IssuedAt.Time); d != time.Hour {
		t.Errorf("validity = %v, want 1h", d)
	}
	if _, _, err := p.Verify("wrong"); err == nil {
		t.Error("Verify with the wrong secret succeeded")
	}
}

func TestTokenPermissions(t *testing.T) {
	tok, err := runToken(t, nil, "--dev", "--room", "r", "--identity", "bob",
		"--no-publish", "--no-subscribe", "--admin", "--ttl", "5m")
	if err != nil {
		t.Fatal(err)
	}
	g := verify(t, tok, "devkey", "secret")
	v := g.Video
	if !v.RoomAdmin || !v.RoomJoin || v.GetCanPublish() || v.GetCanSubscribe() || !v.GetCanPublishData() {
		t.Errorf("video grant = %+v", v)
	}
}

func TestTokenKeySelection(t *testing.T) {
	env := map[string]string{"STOA_KEYS": "zed: " + longSecret + ", alpha: " + longSecret + "-a"}

	tok, err := runToken(t, env, "--room", "r", "--identity", "i")
	if err != nil {
		t.Fatal(err)
	}
	verify(t, tok, "alpha", longSecret+"-a") // first in sorted order

	tok, err = runToken(t, env, "--room", "r", "--identity", "i", "--key", "zed")
	if err != nil {
		t.Fatal(err)
	}
	verify(t, tok, "zed", longSecret)

	_, err = runToken(t, env, "--room", "r", "--identity", "i", "--key", "nope")
	if err == nil || !strings.Contains(err.Error(), `"nope" is not configured`) || strings.Contains(err.Error(), longSecret) {
		t.Errorf("unknown --key: err = %v", err)
	}
}

func TestTokenConfigFile(t *testing.T) {
	path := writeFile(t, "stoa.yaml", "keys:\n  filekey: "+longSecret+"\n")
	tok, err := runToken(t, nil, "--config", path, "--room", "r", "--identity", "i")
	if err != nil {
		t.Fatal(err)
	}
	verify(t, tok, "filekey", longSecret)
}

func TestTokenUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--dev", "--identity", "i"}, "--room is required"},
		{[]string{"--dev", "--room", "r"}, "--identity is required"},
		{[]string{"--dev", "--room", "r", "--identity", "i", "--ttl", "0s"}, "--ttl must be positive"},
		{[]string{"--dev", "--room", "r", "--identity", "i", "extra"}, `unexpected argument "extra"`},
		{[]string{"--bogus"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		_, err := runToken(t, nil, tt.args...)
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("token %q: err = %v, want a usage error containing %q", tt.args, err, tt.want)
		}
	}
	// Without --dev, a key must be configured.
	if _, err := runToken(t, nil, "--room", "r", "--identity", "i"); err == nil || !strings.Contains(err.Error(), "no API key") {
		t.Errorf("no key: err = %v", err)
	}
}
