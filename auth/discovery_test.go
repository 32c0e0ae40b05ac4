package auth

import (
	"encoding/json"
	"net/http"
	"testing"
)

func TestServiceURL(t *testing.T) {
	tests := map[string]string{
		"wss://stoa.example.org":        "https://stoa.example.org",
		"wss://stoa.example.org/":       "https://stoa.example.org",
		"ws://127.0.0.1:7880":           "http://127.0.0.1:7880",
		"wss://example.org/sfu?x=1#f":   "https://example.org/sfu",
		"https://already.example.org/x": "https://already.example.org/x",
	}
	for in, want := range tests {
		if got := serviceURL(in); got != want {
			t.Errorf("serviceURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDiscovery(t *testing.T) {
	s := newTestService(t, Config{PublicURL: "wss://stoa.example.org"}, nil, newFakeSFU())
	want := []any{map[string]any{"type": "livekit", "livekit_service_url": "https://stoa.example.org"}}
	for path, key := range map[string]string{
		"/_matrix/client/unstable/org.matrix.msc4143/rtc/transports": "rtc_transports",
		"/_matrix/client/v1/rtc/transports":                          "rtc_transports",
		"/.well-known/matrix/client":                                 "org.matrix.msc4143.rtc_foci",
	} {
		w := do(t, s, http.MethodGet, path, nil)
		if w.Code != http.StatusOK || w.Header().Get("Access-Control-Allow-Origin") != "*" ||
			w.Header().Get("Content-Type") != "application/json" {
			t.Errorf("GET %s: %d %v", path, w.Code, w.Header())
		}
		var body map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatalf("GET %s: %q: %v", path, w.Body, err)
		}
		if got, _ := json.Marshal(body[key]); len(body) != 1 || string(got) != mustJSON(t, want) {
			t.Errorf("GET %s: %s", path, w.Body)
		}

		w = do(t, s, http.MethodOptions, path, nil)
		if w.Code != http.StatusOK || w.Header().Get("Access-Control-Allow-Origin") != "*" ||
			w.Header().Get("Access-Control-Allow-Headers") == "" {
			t.Errorf("OPTIONS %s: %d %v", path, w.Code, w.Header())
		}
		if w := do(t, s, http.MethodPost, path, nil); w.Code != http.StatusMethodNotAllowed {
			t.Errorf("POST %s: %d", path, w.Code)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
