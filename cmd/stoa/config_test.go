package main

import (
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// envMap returns a getenv that reads m.
func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// writeFile writes content to a file in a fresh temporary directory and
// returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const longSecret = "0123456789abcdef0123456789abcdef"

const fullFile = `# every key
port: 9000
bind_addresses: [10.0.0.1, "::1"]
rtc:
  udp_port: 9002
  tcp_port: -1
  node_ip: 203.0.113.7
  bind_address: 10.0.0.1
keys:
  k1: ` + longSecret + `
  k2: short
room:
  empty_timeout: 2m
  departure_timeout: 30s
logging:
  level: warn
`

func TestLoadConfigDefaults(t *testing.T) {
	c, err := loadConfig(loadOptions{getenv: envMap(map[string]string{"STOA_KEYS": "k: " + longSecret})})
	if err != nil {
		t.Fatal(err)
	}
	want := defaultConfig()
	want.Keys = map[string]string{"k": longSecret}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got %+v, want %+v", c, want)
	}
	if got := c.httpAddrs(); !slices.Equal(got, []string{":7880"}) {
		t.Errorf("httpAddrs = %q, want [:7880]", got)
	}
	sc := c.signalling(discardLogger())
	if sc.RTC.BindIP != "" || sc.RTC.IncludeLoopback || sc.RTC.UDPPort != 7882 || sc.RTC.TCPPort != 7881 || sc.RTC.NodeIPs != nil {
		t.Errorf("RTC config = %+v", sc.RTC)
	}
	if sc.EmptyTimeout != 5*time.Minute || sc.DepartureTimeout != 20*time.Second {
		t.Errorf("timeouts = %v, %v", sc.EmptyTimeout, sc.DepartureTimeout)
	}
	if sc.Logger == nil || sc.RTC.Logger == nil {
		t.Error("loggers not set")
	}
}

func TestLoadConfigDev(t *testing.T) {
	c, err := loadConfig(loadOptions{dev: true, getenv: envMap(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.httpAddrs(), []string{"127.0.0.1:7880"}) {
		t.Errorf("httpAddrs = %q", c.httpAddrs())
	}
	if !maps.Equal(c.Keys, map[string]string{"devkey": "secret"}) {
		t.Errorf("keys = %v", slices.Collect(maps.Keys(c.Keys)))
	}
	if c.Logging.Level != "debug" {
		t.Errorf("level = %q", c.Logging.Level)
	}
	if w := c.weakKeys(); w != nil {
		t.Errorf("weakKeys in dev = %q, want none", w)
	}
	sc := c.signalling(discardLogger())
	if sc.RTC.BindIP != "127.0.0.1" || !sc.RTC.IncludeLoopback || sc.RTC.UDPPort != 7882 || sc.RTC.TCPPort != 7881 {
		t.Errorf("RTC config = %+v", sc.RTC)
	}
}

func TestLoadConfigFile(t *testing.T) {
	path := writeFile(t, "stoa.yaml", fullFile)
	c, err := loadConfig(loadOptions{path: path, getenv: envMap(nil)})
	if err != nil {
		t.Fatal(err)
	}
	want := config{
		Port:          9000,
		BindAddresses: []string{"10.0.0.1", "::1"},
		RTC:           rtcConfig{UDPPort: 9002, TCPPort: -1, NodeIP: "203.0.113.7", BindAddress: "10.0.0.1"},
		Keys:          map[string]string{"k1": longSecret, "k2": "short"},
		Room:          roomConfig{EmptyTimeout: 2 * time.Minute, DepartureTimeout: 30 * time.Second},
		Logging:       loggingConfig{Level: "warn"},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got %+v, want %+v", c, want)
	}
	if got := c.httpAddrs(); !slices.Equal(got, []string{"10.0.0.1:9000", "[::1]:9000"}) {
		t.Errorf("httpAddrs = %q", got)
	}
	if got := c.weakKeys(); !slices.Equal(got, []string{"k2"}) {
		t.Errorf("weakKeys = %q, want [k2]", got)
	}
	sc := c.signalling(discardLogger())
	if !slices.Equal(sc.RTC.NodeIPs, []string{"203.0.113.7"}) || sc.RTC.IncludeLoopback {
		t.Errorf("RTC config = %+v", sc.RTC)
	}
}

func TestLoadConfigDevThenFile(t *testing.T) {
	path := writeFile(t, "stoa.yaml", "port: 9000\nkeys: {k: "+longSecret+"}\nlogging: {level: error}\n")
	c, err := loadConfig(loadOptions{dev: true, path: path, getenv: envMap(nil)})
	if err != nil {
		t.Fatal(err)
	}
	// The file wins where it speaks, dev defaults stay elsewhere, and the
	// file's keys replace the dev key rather than join it.
	if c.Port != 9000 || c.Logging.Level != "error" || c.RTC.BindAddress != "127.0.0.1" || !c.dev {
		t.Errorf("got %+v", c)
	}
	if !maps.Equal(c.Keys, map[string]string{"k": longSecret}) {
		t.Errorf("keys = %v", slices.Collect(maps.Keys(c.Keys)))
	}
}

func TestLoadConfigEmptyFile(t *testing.T) {
	path := writeFile(t, "stoa.yaml", "# nothing yet\n")
	c, err := loadConfig(loadOptions{dev: true, path: path, getenv: envMap(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != defaultPort || c.Keys[devKey] != devSecret {
		t.Errorf("got %+v", c)
	}
}

func TestLoadConfigEnvOverridesFile(t *testing.T) {
	path := writeFile(t, "stoa.yaml", fullFile)
	env := map[string]string{
		"STOA_PORT":         "0",
		"STOA_RTC_UDP_PORT": "0",
		"STOA_RTC_TCP_PORT": " 9101 ",
		"STOA_NODE_IP":      "198.51.100.1",
		"STOA_KEYS":         "a: " + longSecret + ", b: other:secret-with-colon\nc:x",
		"LIVEKIT_KEYS":      "ignored: because-STOA_KEYS-is-set",
	}
	c, err := loadConfig(loadOptions{path: path, getenv: envMap(env), binds: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 0 || c.RTC.UDPPort != 0 || c.RTC.TCPPort != 9101 || c.RTC.NodeIP != "198.51.100.1" {
		t.Errorf("got %+v", c)
	}
	wantKeys := map[string]string{"a": longSecret, "b": "other:secret-with-colon", "c": "x"}
	if !maps.Equal(c.Keys, wantKeys) {
		t.Errorf("keys = %v, want %v", c.Keys, wantKeys)
	}
	// --bind comes last and moves HTTP and ICE.
	if !slices.Equal(c.BindAddresses, []string{"127.0.0.1"}) || c.RTC.BindAddress != "127.0.0.1" {
		t.Errorf("bind = %q, %q", c.BindAddresses, c.RTC.BindAddress)
	}
	if !c.signalling(discardLogger()).RTC.IncludeLoopback {
		t.Error("IncludeLoopback = false with ICE bound to loopback")
	}
	// Untouched by the environment.
	if c.Room.EmptyTimeout != 2*time.Minute || c.Logging.Level != "warn" {
		t.Errorf("got %+v", c)
	}
}

func TestLoadConfigLivekitKeys(t *testing.T) {
	c, err := loadConfig(loadOptions{getenv: envMap(map[string]string{"LIVEKIT_KEYS": "lk: " + longSecret})})
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(c.Keys, map[string]string{"lk": longSecret}) {
		t.Errorf("keys = %v", c.Keys)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	const secretValue = "very-secret-value"
	keyEnv := map[string]string{"STOA_KEYS": "k: " + longSecret}
	tests := []struct {
		name string
		file string // "" for no file
		env  map[string]string
		dev  bool
		want []string // substrings of the error
	}{
		{name: "unknown top-level key", file: "port: 1\nprot: 2\n", env: keyEnv,
			want: []string{"line 2", `unknown key "prot"`, "stoa.yaml"}},
		{name: "unknown nested key", file: "rtc:\n  udp_port: 1\n  udp_prot: 2\n", env: keyEnv,
			want: []string{"line 3", `unknown key "rtc.udp_prot"`}},
		{name: "unknown key in dev", file: "room:\n  empty_timout: 1s\n", dev: true,
			want: []string{"line 2", `unknown key "room.empty_timout"`}},
		{name: "bad type", file: "port: abc\n", env: keyEnv, want: []string{"line 1", "abc"}},
		{name: "duration without unit", file: "room:\n  empty_timeout: 300\n", env: keyEnv, want: []string{"line 2", "time.Duration"}},
		{name: "two documents", file: "port: 1\n---\nport: 2\n", env: keyEnv, want: []string{"more than one YAML document"}},
		{name: "no keys", env: map[string]string{}, want: []string{"no API key", "STOA_KEYS", "--dev"}},
		{name: "empty keys in file", file: "keys: {}\n", dev: true, want: []string{"no API key"}},
		{name: "empty secret", file: "keys: {k: \"\"}\n", want: []string{`API key "k" has an empty secret`}},
		{name: "port too large", file: "port: 70000\n", env: keyEnv, want: []string{"port: 70000 is out of range"}},
		{name: "negative udp port", file: "rtc: {udp_port: -1}\n", env: keyEnv, want: []string{"rtc.udp_port: -1 is out of range"}},
		{name: "tcp port too small", file: "rtc: {tcp_port: -2}\n", env: keyEnv, want: []string{"rtc.tcp_port: -2 is out of range"}},
		{name: "env port", env: map[string]string{"STOA_PORT": "http", "STOA_KEYS": "k: x"}, want: []string{"STOA_PORT", `"http" is not a port number`}},
		{name: "env port range", env: map[string]string{"STOA_RTC_UDP_PORT": "65536", "STOA_KEYS": "k: x"}, want: []string{"rtc.udp_port: 65536"}},
		{name: "bad bind", file: "bind_addresses: [example.org]\n", env: keyEnv, want: []string{`bind_addresses: "example.org" is not an IP address`}},
		{name: "bad rtc bind", file: "rtc: {bind_address: nowhere}\n", env: keyEnv, want: []string{"rtc.bind_address"}},
		{name: "bad node ip", env: map[string]string{"STOA_NODE_IP": "1.2.3", "STOA_KEYS": "k: x"}, want: []string{`rtc.node_ip: "1.2.3" is not an IP address`}},
		{name: "bad level", file: "logging: {level: loud}\n", env: keyEnv, want: []string{`logging.level: "loud"`}},
		{name: "negative timeout", file: "room: {departure_timeout: -1s}\n", env: keyEnv, want: []string{"room.departure_timeout: -1s is negative"}},
		{name: "malformed STOA_KEYS", env: map[string]string{"STOA_KEYS": "k: x, " + secretValue}, want: []string{"STOA_KEYS: entry 2"}},
		{name: "malformed LIVEKIT_KEYS", env: map[string]string{"LIVEKIT_KEYS": secretValue + ":"}, want: []string{"LIVEKIT_KEYS: entry 1"}},
		{name: "duplicate key", env: map[string]string{"STOA_KEYS": "k: " + secretValue + ", k: y"}, want: []string{`STOA_KEYS: key "k" is given twice`}},
		{name: "only separators", env: map[string]string{"STOA_KEYS": " , "}, want: []string{"STOA_KEYS: no \"key: secret\" entry"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := loadOptions{dev: tt.dev, getenv: envMap(tt.env)}
			if tt.file != "" {
				opts.path = writeFile(t, "stoa.yaml", tt.file)
			}
			_, err := loadConfig(opts)
			if err == nil {
				t.Fatalf("loadConfig succeeded, want an error containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			for _, s := range []string{secretValue, longSecret} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q reveals a secret", err)
				}
			}
		})
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.yaml")
	_, err := loadConfig(loadOptions{dev: true, path: path, getenv: envMap(nil)})
	if err == nil || !strings.Contains(err.Error(), "absent.yaml") {
		t.Fatalf("err = %v, want one naming the file", err)
	}
}

// TestDeploySampleConfig checks that the sample config shipped in deploy/
// loads, so that it cannot drift from the code.
func TestDeploySampleConfig(t *testing.T) {
	path := filepath.Join("..", "..", "deploy", "stoa.yaml")
	c, err := loadConfig(loadOptions{path: path, getenv: envMap(map[string]string{"STOA_KEYS": "k: " + longSecret})})
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != defaultPort {
		t.Errorf("port = %d, want %d", c.Port, defaultPort)
	}
}
