package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestServeWithLKJWTEnvironment starts serve the way an admin migrating
// from lk-jwt-service would, with its environment variables, and checks that
// the authorisation service answers on Stoa's port and signs with that key.
func TestServeWithLKJWTEnvironment(t *testing.T) {
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
`)
	addrs, log := startServe(t, map[string]string{
		"LIVEKIT_URL":                     "wss://stoa.example.org",
		"LIVEKIT_KEY":                     "lk",
		"LIVEKIT_SECRET":                  strings.Repeat("s", 40),
		"LIVEKIT_FULL_ACCESS_HOMESERVERS": "example.org",
	}, "--config", path)
	base := "http://" + addrs[0].String()
	client := &http.Client{Timeout: 10 * time.Second}
	t.Cleanup(client.CloseIdleConnections)

	resp, err := client.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz = %s", resp.Status)
	}

	resp, err = client.Post(base+"/sfu/get", "application/json", strings.NewReader(`{"room": "!r:example.org"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var merr struct{ Errcode string }
	if err := json.Unmarshal(body, &merr); err != nil || resp.StatusCode != http.StatusBadRequest || merr.Errcode != "M_BAD_JSON" {
		t.Fatalf("POST /sfu/get without openid_token = %s %s, want 400 M_BAD_JSON", resp.Status, body)
	}

	resp, err = client.Get(base + "/_matrix/client/unstable/org.matrix.msc4143/rtc/transports")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "https://stoa.example.org") {
		t.Fatalf("rtc/transports = %s, want the service URL", body)
	}
	if s := log.String(); strings.Contains(s, strings.Repeat("s", 40)) {
		t.Errorf("log reveals the secret:\n%s", s)
	}
}

func TestMatrixConfigErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"matrix:\n  unseen_rooms: maybe\n  homeserver_url: http://hs\n", "matrix.unseen_rooms"},
		{"matrix:\n  access_token: x\n", "homeserver_url and server_name"},
		{"matrix:\n  access_token: x\n  appservice_registration: r.yaml\n  homeserver_url: http://hs\n  server_name: hs\n", "not both"},
		{"matrix:\n  homeserver_url: hs\n", "matrix.homeserver_url"},
		{"matrix:\n  homesrever_url: http://hs\n", `unknown key "matrix.homesrever_url"`},
	} {
		path := writeFile(t, "stoa.yaml", "keys:\n  k: "+longSecret+"\n"+tc.yaml)
		_, err := loadConfig(loadOptions{path: path, getenv: envMap(nil)})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one mentioning %q", tc.yaml, err, tc.want)
		}
	}
}
