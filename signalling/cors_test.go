package signalling

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCORS(t *testing.T) {
	called := false
	h := withCORS(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		called = true
		if _, err := parseJoin(r, testKeys(), true); err != nil {
			writeHTTPError(w, err)
			return
		}
		_, _ = w.Write([]byte("success"))
	}))
	tok := newToken(t, nil)

	tests := []struct {
		name      string
		method    string
		target    string
		hdr       []string
		status    int
		body      string
		called    bool
		preflight bool
	}{
		{"preflight", http.MethodOptions, "/rtc/v1/validate", []string{"Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "authorization"}, 204, "", false, true},
		{"plain OPTIONS", http.MethodOptions, "/twirp/livekit.RoomService/CreateRoom", nil, 204, "", false, true},
		{"401", http.MethodGet, "/rtc/v1/validate?access_token=x", nil, 401, "invalid authorization token", true, false},
		{"400", http.MethodGet, "/rtc/v1/validate?access_token=" + tok, nil, 400, "join_request is required", true, false},
		{"200", http.MethodGet, "/rtc/v1/validate?access_token=" + tok + "&join_request=" + encodeJoinRequest(t, jsJoinRequest(), true, base64.URLEncoding), nil, 200, "success", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			called = false
			r := httptest.NewRequest(tt.method, tt.target, nil)
			r.Header.Set("Origin", "https://call.example.org")
			for i := 0; i+1 < len(tt.hdr); i += 2 {
				r.Header.Set(tt.hdr[i], tt.hdr[i+1])
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			res := w.Result()
			if res.StatusCode != tt.status || w.Body.String() != tt.body || called != tt.called {
				t.Errorf("got %d %q called %v, want %d %q called %v", res.StatusCode, w.Body.String(), called, tt.status, tt.body, tt.called)
			}
			if got := res.Header.Get("Access-Control-Allow-Origin"); got != "*" {
				t.Errorf("Access-Control-Allow-Origin %q", got)
			}
			if !tt.preflight {
				if ct := res.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
					t.Errorf("Content-Type %q", ct)
				}
				return
			}
			if got := res.Header.Get("Access-Control-Allow-Methods"); got != "OPTIONS, HEAD, GET, POST, PATCH, DELETE" {
				t.Errorf("Access-Control-Allow-Methods %q", got)
			}
			if got := res.Header.Get("Access-Control-Allow-Headers"); !strings.Contains(got, "*") || !strings.Contains(got, "Authorization") || !strings.Contains(got, "Content-Type") {
				t.Errorf("Access-Control-Allow-Headers %q", got)
			}
			if got := res.Header.Get("Access-Control-Max-Age"); got != "7200" {
				t.Errorf("Access-Control-Max-Age %q", got)
			}
		})
	}
}

func TestCORSWriteHTTPError(t *testing.T) {
	for _, tt := range []struct {
		err    error
		status int
		body   string
	}{
		{errRoomNotFound, 404, "requested room does not exist"},
		{fmt.Errorf("join: %w", errPermissionDenied), 401, "permissions denied"},
		{badRequest("no room name"), 400, "no room name"},
		{errNodeFull, 503, "node has exceeded its configured limit"},
		{fmt.Errorf("dial /var/run/secret: refused"), 500, "internal server error"},
	} {
		w := httptest.NewRecorder()
		writeHTTPError(w, tt.err)
		if w.Code != tt.status || w.Body.String() != tt.body || w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("writeHTTPError(%v): %d %q, want %d %q", tt.err, w.Code, w.Body.String(), tt.status, tt.body)
		}
	}
}
