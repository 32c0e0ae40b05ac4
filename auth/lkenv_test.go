package auth

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestConfigFromLKEnv(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyFile := write("keysecret", "fromkeyfile:secretfromkeyfile\n")
	badKeyFile := write("bad", "a:b:c")
	keyOnly := write("key", " keyfromfile\r\n")
	secretOnly := write("secret", "secretfromfile\n")

	base := map[string]string{
		"LIVEKIT_URL":                     "wss://sfu.example.org",
		"LIVEKIT_KEY":                     "key",
		"LIVEKIT_SECRET":                  "secret",
		"LIVEKIT_FULL_ACCESS_HOMESERVERS": "example.org",
	}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return m
	}
	tests := []struct {
		name    string
		env     map[string]string
		key     string
		secret  string
		servers []string
		err     string
	}{
		{name: "plain", env: base, key: "key", secret: "secret", servers: []string{"example.org"}},
		{name: "list", env: with("LIVEKIT_FULL_ACCESS_HOMESERVERS", "a.org, b.org  c.org,,d.org"),
			key: "key", secret: "secret", servers: []string{"a.org", "b.org", "c.org", "d.org"}},
		{name: "wildcard", env: with("LIVEKIT_FULL_ACCESS_HOMESERVERS", "*"), key: "key", secret: "secret", servers: []string{"*"}},
		{name: "deprecated alias", env: with("LIVEKIT_FULL_ACCESS_HOMESERVERS", "", "LIVEKIT_LOCAL_HOMESERVERS", "old.org"),
			key: "key", secret: "secret", servers: []string{"old.org"}},
		{name: "new name wins", env: with("LIVEKIT_LOCAL_HOMESERVERS", "old.org"), key: "key", secret: "secret", servers: []string{"example.org"}},
		{name: "key file", env: with("LIVEKIT_KEY_FILE", keyFile, "LIVEKIT_KEY_FROM_FILE", keyOnly),
			key: "fromkeyfile", secret: "secretfromkeyfile", servers: []string{"example.org"}},
		{name: "key and secret files", env: with("LIVEKIT_KEY", "", "LIVEKIT_SECRET", "", "LIVEKIT_KEY_FROM_FILE", keyOnly, "LIVEKIT_SECRET_FROM_FILE", secretOnly),
			key: "keyfromfile", secret: "secretfromfile", servers: []string{"example.org"}},
		{name: "secret file only", env: with("LIVEKIT_SECRET_FROM_FILE", secretOnly), key: "key", secret: "secretfromfile", servers: []string{"example.org"}},
		{name: "bad key file", env: with("LIVEKIT_KEY_FILE", badKeyFile), err: "key:secret"},
		{name: "missing key file", env: with("LIVEKIT_KEY_FILE", filepath.Join(dir, "nope")), err: "LIVEKIT_KEY_FILE"},
		{name: "missing secret file", env: with("LIVEKIT_SECRET_FROM_FILE", filepath.Join(dir, "nope")), err: "LIVEKIT_SECRET_FROM_FILE"},
		{name: "no url", env: with("LIVEKIT_URL", ""), err: "LIVEKIT_URL"},
		{name: "no secret", env: with("LIVEKIT_SECRET", ""), err: "LIVEKIT_SECRET"},
		{name: "no full access", env: with("LIVEKIT_FULL_ACCESS_HOMESERVERS", ""), err: "LIVEKIT_FULL_ACCESS_HOMESERVERS"},
		{name: "blank full access", env: with("LIVEKIT_FULL_ACCESS_HOMESERVERS", " , "), err: "LIVEKIT_FULL_ACCESS_HOMESERVERS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := ConfigFromLKEnv(func(k string) string { return tt.env[k] })
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want one mentioning %s", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.PublicURL != "wss://sfu.example.org" || cfg.APIKey != tt.key || cfg.APISecret != tt.secret ||
				cfg.UnseenRooms != UnseenLKJWT || !slices.Equal(cfg.FullAccessHomeservers, tt.servers) {
				t.Errorf("config %+v, want key %q secret %q servers %q and the lk-jwt policy", cfg, tt.key, tt.secret, tt.servers)
			}
		})
	}
}

func TestConfigFromLKEnvUnset(t *testing.T) {
	cfg, err := ConfigFromLKEnv(func(k string) string {
		if k == "LIVEKIT_JWT_BIND" || k == "STOA_PORT" {
			return "x" // not ours
		}
		return ""
	})
	if err != nil || cfg.PublicURL != "" || cfg.UnseenRooms != "" || cfg.APIKey != "" {
		t.Errorf("with no lk-jwt variables: %+v, %v; want the zero Config", cfg, err)
	}
}

// TestConfigFromLKEnvNew: the result is a Config New accepts.
func TestConfigFromLKEnvNew(t *testing.T) {
	env := map[string]string{
		"LIVEKIT_URL": "ws://127.0.0.1:7880", "LIVEKIT_KEY": "k", "LIVEKIT_SECRET": "s",
		"LIVEKIT_FULL_ACCESS_HOMESERVERS": "*",
	}
	cfg, err := ConfigFromLKEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger = discardLogger()
	if _, err := New(cfg, newFakeSFU()); err != nil {
		t.Fatal(err)
	}
}
