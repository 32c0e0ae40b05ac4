package signalling

import (
	"bytes"
	"compress/gzip"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"hash"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

const (
	testKey    = "APItestkey"
	testSecret = "test-secret-0123456789abcdefghijklmnop"

	// User-Agents of the browsers Element Call runs in.
	uaChromeMac  = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	uaSafariIOS  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
	uaFirefoxLin = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
	uaEdgeWin    = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86"
	uaChromeAnd  = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36"
	uaIPad       = "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1"
)

func testKeys() map[string]string {
	return map[string]string{testKey: testSecret, "APIother": "other-secret"}
}

// newToken mints a token with auth.AccessToken as lk-jwt-service does:
// identity alice, name Alice, roomJoin to room1, valid for an hour. edit
// changes it before signing.
func newToken(t *testing.T, edit func(at *auth.AccessToken)) string {
	t.Helper()
	at := auth.NewAccessToken(testKey, testSecret).
		SetIdentity("alice").
		SetName("Alice").
		SetValidFor(time.Hour).
		SetVideoGrant(&auth.VideoGrant{RoomJoin: true, Room: "room1"})
	if edit != nil {
		edit(at)
	}
	tok, err := at.ToJWT()
	if err != nil {
		t.Fatalf("ToJWT: %v", err)
	}
	return tok
}

// signJWT signs claims by hand, for tokens auth.AccessToken cannot make:
// without exp, with a future nbf, or with another algorithm.
func signJWT(t *testing.T, alg, secret string, claims map[string]any) string {
	t.Helper()
	enc := base64.RawURLEncoding
	header, err := json.Marshal(map[string]string{"alg": alg, "typ": "JWT"})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	signing := enc.EncodeToString(header) + "." + enc.EncodeToString(payload)
	var mac hash.Hash
	switch alg {
	case "HS256":
		mac = hmac.New(sha256.New, []byte(secret))
	case "HS512":
		mac = hmac.New(sha512.New, []byte(secret))
	case "none":
		return signing + "."
	default:
		t.Fatalf("signJWT: alg %s", alg)
	}
	mac.Write([]byte(signing))
	return signing + "." + enc.EncodeToString(mac.Sum(nil))
}

// rawClaims returns the claims of newToken's default token as a map, valid
// for an hour from now.
func rawClaims() map[string]any {
	now := time.Now().Unix()
	return map[string]any{
		"iss": testKey, "sub": "alice", "nbf": now, "iat": now, "exp": now + 3600,
		"video": map[string]any{"roomJoin": true, "room": "room1"},
	}
}

func withClaim(claims map[string]any, k string, v any) map[string]any {
	claims[k] = v
	return claims
}

// newRequest builds a GET for target with a Chrome User-Agent; hdr holds
// extra header name, value pairs.
func newRequest(target string, hdr ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	r.Header.Set("User-Agent", uaChromeMac)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	return r
}

// encodeJoinRequest encodes jr as the JS SDK does when gz is set (URL-safe
// base64 with padding of a gzip-compressed WrappedJoinRequest), or
// uncompressed with enc.
func encodeJoinRequest(tb testing.TB, jr *livekit.JoinRequest, gz bool, enc *base64.Encoding) string {
	tb.Helper()
	b, err := proto.Marshal(jr)
	if err != nil {
		tb.Fatal(err)
	}
	w := &livekit.WrappedJoinRequest{JoinRequest: b}
	if gz {
		w.Compression = livekit.WrappedJoinRequest_GZIP
		w.JoinRequest = gzipBytes(tb, b)
	}
	return wrapJoinRequest(tb, w, enc)
}

func wrapJoinRequest(tb testing.TB, w *livekit.WrappedJoinRequest, enc *base64.Encoding) string {
	tb.Helper()
	b, err := proto.Marshal(w)
	if err != nil {
		tb.Fatal(err)
	}
	return enc.EncodeToString(b)
}

func gzipBytes(tb testing.TB, b []byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// jsJoinRequest is what livekit-client 2.23 sends on /rtc/v1 from Chrome.
func jsJoinRequest() *livekit.JoinRequest {
	return &livekit.JoinRequest{
		ClientInfo: &livekit.ClientInfo{
			Sdk: livekit.ClientInfo_JS, Version: "2.23.0", Protocol: 17, ClientProtocol: 2,
		},
		ConnectionSettings: &livekit.ConnectionSettings{AutoSubscribe: true, AdaptiveStream: true},
		PublisherOffer: &livekit.SessionDescription{
			Type: "offer", Id: 1,
			Sdp: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n",
		},
	}
}

func query(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v.Encode()
}

func TestParseJoin(t *testing.T) {
	tok := newToken(t, nil)
	meta := newToken(t, func(at *auth.AccessToken) {
		g := &auth.VideoGrant{RoomJoin: true, Room: "room1"}
		g.SetCanUpdateOwnMetadata(true)
		at.SetVideoGrant(g).SetMetadata("from-token").SetAttributes(map[string]string{"a": "1", "b": "2"})
	})
	goAttrs := base64.URLEncoding.EncodeToString([]byte(`{"b":"3","c":"4","a":""}`))
	goSDK := &livekit.JoinRequest{
		ClientInfo:            &livekit.ClientInfo{Sdk: livekit.ClientInfo_GO, Version: "2.19.0", Protocol: 17, Os: "linux"},
		ConnectionSettings:    &livekit.ConnectionSettings{AutoSubscribe: true},
		Metadata:              "from-request",
		ParticipantAttributes: map[string]string{"b": "3", "a": ""},
		AddTrackRequests:      []*livekit.AddTrackRequest{{Cid: "mic", Type: livekit.TrackType_AUDIO, Source: livekit.TrackSource_MICROPHONE}},
		PublisherOffer:        &livekit.SessionDescription{Type: "offer", Sdp: "v=0\r\n"},
	}
	resume := &livekit.JoinRequest{
		ClientInfo:         &livekit.ClientInfo{Sdk: livekit.ClientInfo_JS},
		ConnectionSettings: &livekit.ConnectionSettings{AutoSubscribe: true},
		Reconnect:          true, ReconnectReason: livekit.ReconnectReason_RR_SIGNAL_DISCONNECTED, ParticipantSid: "PA_abc",
	}
	tests := []struct {
		name  string
		req   *http.Request
		v1    bool
		check func(t *testing.T, p *joinParams)
	}{{
		name: "legacy JS query",
		req: newRequest("/rtc?" + query("access_token", tok, "auto_subscribe", "1", "sdk", "js", "version", "2.23.0",
			"protocol", "17", "client_protocol", "2", "adaptive_stream", "1", "network", "wifi")),
		check: func(t *testing.T, p *joinParams) {
			t.Helper()
			if p.Token != tok || p.APIKey != testKey || p.Identity != "alice" || p.Name != "Alice" || p.Room != "room1" {
				t.Errorf("token %t key %q identity %q name %q room %q", p.Token == tok, p.APIKey, p.Identity, p.Name, p.Room)
			}
			if p.SinglePC || !p.AutoSubscribe || !p.AdaptiveStream || p.Reconnect || p.Kind != livekit.ParticipantInfo_STANDARD {
				t.Errorf("single %v auto %v adaptive %v reconnect %v kind %v", p.SinglePC, p.AutoSubscribe, p.AdaptiveStream, p.Reconnect, p.Kind)
			}
			want := &livekit.ClientInfo{
				Sdk: livekit.ClientInfo_JS, Version: "2.23.0", Protocol: 17, ClientProtocol: 2, Network: "wifi",
				Browser: "Chrome", BrowserVersion: "131.0.0.0", Os: "Mac OS X", OsVersion: "10.15.7", Address: "192.0.2.1",
			}
			if !proto.Equal(p.ClientInfo, want) {
				t.Errorf("ClientInfo %v, want %v", p.ClientInfo, want)
			}
			if p.ExpiresAt.Sub(time.Now()) < 59*time.Minute {
				t.Errorf("ExpiresAt %v", p.ExpiresAt)
			}
		},
	}, {
		name: "Go SDK header and attributes",
		req:  newRequest("/rtc?version=2.19.0&protocol=17&auto_subscribe=0&&sdk=go&os=linux&attributes="+goAttrs, "Authorization", "Bearer "+meta),
		check: func(t *testing.T, p *joinParams) {
			t.Helper()
			if p.AutoSubscribe || p.ClientInfo.GetSdk() != livekit.ClientInfo_GO || p.ClientInfo.GetOs() != "linux" || p.ClientInfo.GetBrowser() != "" {
				t.Errorf("auto %v client %v", p.AutoSubscribe, p.ClientInfo)
			}
			want := map[string]string{"a": "1", "b": "3", "c": "4"}
			if !equalMaps(p.Attributes, want) || !equalMaps(p.Claims.Attributes, want) || p.Metadata != "from-token" {
				t.Errorf("attributes %v, claims %v, metadata %q", p.Attributes, p.Claims.Attributes, p.Metadata)
			}
		},
	}, {
		name: "legacy resume",
		req:  newRequest("/rtc?" + query("access_token", tok, "reconnect", "1", "sid", "PA_abc", "reconnect_reason", "2")),
		check: func(t *testing.T, p *joinParams) {
			t.Helper()
			if !p.Reconnect || p.ParticipantSID != "PA_abc" || p.ReconnectReason != livekit.ReconnectReason_RR_PUBLISHER_FAILED {
				t.Errorf("reconnect %v sid %q reason %v", p.Reconnect, p.ParticipantSID, p.ReconnectReason)
			}
		},
	}, {
		name: "sid without reconnect is ignored",
		req:  newRequest("/rtc?" + query("access_token", tok, "sid", "PA_abc", "auto_subscribe", "true")),
		check: func(t *testing.T, p *joinParams) {
			t.Helper()
			if p.Reconnect || p.ParticipantSID != "" || !p.AutoSubscribe {
				t.Errorf("reconnect %v sid %q auto %v", p.Reconnect, p.ParticipantSID, p.AutoSubscribe)
			}
		},
	}, {
		name: "room comes from the token, not the URL",
		req:  newRequest("/rtc?" + query("access_token", tok, "room", "other", "sid", "x")),
		check: func(t *testing.T, p *joinParams) {
			t.Helper()
			if p.Room != "room1" {
				t.Errorf("room %q", p.Room)
			}
		},
	}, {
		name: "forwarded address",
		req:  newRequest("/rtc?"+query("access_token", tok), "X-Forwarded-For", "198.51.100.7, 10.0.0.1"),
		check: func(t *testing.T, p *joinParams) {
			t.Helper()
			if p.ClientInfo.GetAddress() != "198.51.100.7" {
				t.Errorf("address %q", p.ClientInfo.GetAddress())
			}
		},
	}, {
		name: "v1 gzip",
		req:  newRequest("/rtc/v1?" + query("access_token", tok, "join_request", encodeJoinRequest(t, jsJoinRequest(), true, base64.URLEncoding))),
		v1:   true,
		check: func(t *testing.T, p *joinParams) {
			t.Helper()
			if !p.SinglePC || !p.AutoSubscribe || !p.AdaptiveStream || p.Reconnect {
				t.Errorf("single %v auto %v adaptive %v reconnect %v", p.SinglePC, p.AutoSubscribe, p.AdaptiveStream, p.Reconnect)
			}
			if !proto.Equal(p.PublisherOffer, jsJoinRequest().PublisherOffer) {
				t.Errorf("offer %v", p.PublisherOffer)
			}
			ci := p.ClientInfo
			if ci.GetSdk() != livekit.ClientInfo_JS || ci.GetProtocol() != 17 || ci.GetBrowser() != "Chrome" || ci.GetAddress() != "192.0.2.1" {
				t.Errorf("ClientInfo %v", ci)
			}
		},
	}, {
		name: "v1 uncompressed, standard alphabet, no padding",
		req:  newRequest("/rtc/v1?" + query("access_token", tok, "join_request", encodeJoinRequest(t, jsJoinRequest(), false, base64.RawStdEncoding))),
		v1:   true,
		check: func(t *testing.T, p *joinParams) {
			t.Helper()
			if !p.SinglePC || p.PublisherOffer.GetId() != 1 {
				t.Errorf("single %v offer %v", p.SinglePC, p.PublisherOffer)
			}
		},
	}, {
		name: "v1 resume",
		req:  newRequest("/rtc/v1?" + query("access_token", tok, "join_request", encodeJoinRequest(t, resume, true, base64.URLEncoding))),
		v1:   true,
		check: func(t *testing.T, p *joinParams) {
			t.Helper()
			if !p.Reconnect || p.ParticipantSID != "PA_abc" || p.ReconnectReason != livekit.ReconnectReason_RR_SIGNAL_DISCONNECTED || p.PublisherOffer != nil {
				t.Errorf("reconnect %v sid %q reason %v offer %v", p.Reconnect, p.ParticipantSID, p.ReconnectReason, p.PublisherOffer)
			}
		},
	}, {
		name: "join_request on /rtc is single PC (Go SDK)",
		req: newRequest("/rtc?"+query("join_request", encodeJoinRequest(t, goSDK, true, base64.URLEncoding), "auto_subscribe", "0"),
			"Authorization", "Bearer "+meta, "User-Agent", "Go-http-client/1.1"),
		check: func(t *testing.T, p *joinParams) {
			t.Helper()
			if !p.SinglePC || !p.AutoSubscribe || len(p.AddTrackRequests) != 1 || p.AddTrackRequests[0].GetCid() != "mic" || p.PublisherOffer.GetId() != 0 {
				t.Errorf("single %v auto %v tracks %v offer %v", p.SinglePC, p.AutoSubscribe, p.AddTrackRequests, p.PublisherOffer)
			}
			if p.Metadata != "from-request" || p.Claims.Metadata != "from-request" {
				t.Errorf("metadata %q, claims %q", p.Metadata, p.Claims.Metadata)
			}
			if want := map[string]string{"a": "1", "b": "3"}; !equalMaps(p.Attributes, want) {
				t.Errorf("attributes %v, want %v", p.Attributes, want)
			}
			if p.ClientInfo.GetOs() != "linux" || p.ClientInfo.GetBrowser() != "" {
				t.Errorf("ClientInfo %v", p.ClientInfo)
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := parseJoin(tt.req, testKeys(), tt.v1)
			if err != nil {
				t.Fatalf("parseJoin: %v", err)
			}
			tt.check(t, p)
		})
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestParseJoinErrors(t *testing.T) {
	tok := newToken(t, nil)
	gzipBomb := wrapJoinRequest(t, &livekit.WrappedJoinRequest{
		Compression: livekit.WrappedJoinRequest_GZIP,
		JoinRequest: gzipBytes(t, make([]byte, 16<<20)),
	}, base64.URLEncoding)
	garbage := func(w *livekit.WrappedJoinRequest) string { return wrapJoinRequest(t, w, base64.URLEncoding) }
	bigOffer := jsJoinRequest()
	bigOffer.PublisherOffer.Sdp = strings.Repeat("a", maxSDPSize+1)
	forged := func() string {
		parts := strings.Split(tok, ".")
		payload, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			t.Fatal(err)
		}
		payload = bytes.Replace(payload, []byte(`"room1"`), []byte(`"room2"`), 1)
		return parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
	}()
	noMeta := newToken(t, nil)
	hs512 := signJWT(t, "HS512", testSecret, rawClaims())
	none := signJWT(t, "none", "", rawClaims())
	noExp := rawClaims()
	delete(noExp, "exp")

	tests := []struct {
		name   string
		req    *http.Request
		v1     bool
		status int
		msg    string // exact body, or its prefix when it ends in "…"
	}{
		{"non-Bearer header", newRequest("/rtc", "Authorization", "Basic "+tok), false, 401, "invalid authorization header. Must start with Bearer "},
		{"lower-case bearer", newRequest("/rtc", "Authorization", "bearer "+tok), false, 401, "invalid authorization header. Must start with Bearer "},
		{"header wins over query", newRequest("/rtc?access_token="+tok, "Authorization", "Basic x"), false, 401, "invalid authorization header. Must start with Bearer "},
		{"no token", newRequest("/rtc"), false, 401, "no permissions to access the room"},
		{"not a JWT", newRequest("/rtc?access_token=abc"), false, 401, "invalid authorization token"},
		{"unknown key", newRequest("/rtc?access_token=" + signJWT(t, "HS256", testSecret, withClaim(rawClaims(), "iss", "APIunknown"))), false, 401, "invalid API key"},
		{"no key", newRequest("/rtc?access_token=" + signJWT(t, "HS256", testSecret, withClaim(rawClaims(), "iss", ""))), false, 401, "invalid API key"},
		{"wrong secret", newRequest("/rtc?access_token=" + signJWT(t, "HS256", "not-the-secret", rawClaims())), false, 401, "invalid authorization token: token signature is invalid…"},
		{"forged payload", newRequest("/rtc?access_token=" + forged), false, 401, "invalid authorization token: token signature is invalid…"},
		{"wrong key", newRequest("/rtc?access_token=" + signJWT(t, "HS256", testSecret, withClaim(rawClaims(), "iss", "APIother"))), false, 401, "invalid authorization token: token signature is invalid…"},
		{"HS512", newRequest("/rtc?access_token=" + hs512), false, 401, "invalid authorization token…"},
		{"alg none", newRequest("/rtc?access_token=" + none), false, 401, "invalid authorization token…"},
		{"no exp", newRequest("/rtc?access_token=" + signJWT(t, "HS256", testSecret, noExp)), false, 401, "invalid authorization token: token has invalid claims: token is missing required claim: exp claim is required"},
		{"no video grant", newRequest("/rtc?access_token=" + newToken(t, func(at *auth.AccessToken) { at.SetVideoGrant(nil) })), false, 401, "no permissions to access the room"},
		{"no roomJoin", newRequest("/rtc?access_token=" + newToken(t, func(at *auth.AccessToken) {
			at.SetVideoGrant(&auth.VideoGrant{Room: "room1", RoomAdmin: true})
		})), false, 401, "permissions denied"},
		{"empty identity", newRequest("/rtc?access_token=" + newToken(t, func(at *auth.AccessToken) { at.SetIdentity("") })), false, 400, "identity cannot be empty"},
		{"long identity", newRequest("/rtc?access_token=" + newToken(t, func(at *auth.AccessToken) { at.SetIdentity(strings.Repeat("i", 257)) })), false, 400, "participant identity length exceeds limits: max length 256"},
		{"empty room", newRequest("/rtc?access_token=" + newToken(t, func(at *auth.AccessToken) {
			at.SetVideoGrant(&auth.VideoGrant{RoomJoin: true})
		})), false, 400, "no room name"},
		{"long room", newRequest("/rtc?access_token=" + newToken(t, func(at *auth.AccessToken) {
			at.SetVideoGrant(&auth.VideoGrant{RoomJoin: true, Room: strings.Repeat("r", 257)})
		})), false, 400, "room name length exceeds limits: max length 256"},
		{"large token metadata", newRequest("/rtc?access_token=" + newToken(t, func(at *auth.AccessToken) { at.SetMetadata(strings.Repeat("m", maxMetadataSize+1)) })), false, 400, "metadata size exceeds limits"},
		{"v1 without join_request", newRequest("/rtc/v1?access_token=" + tok), true, 400, "join_request is required"},
		{"bad base64", newRequest("/rtc/v1?access_token=" + tok + "&join_request=%21%21%21"), true, 400, "cannot base64 decode wrapped join request"},
		{"bad wrapper", newRequest("/rtc/v1?access_token=" + tok + "&join_request=__8"), true, 400, "cannot unmarshal wrapped join request"},
		{"bad join request", newRequest("/rtc/v1?" + query("access_token", tok, "join_request", garbage(&livekit.WrappedJoinRequest{JoinRequest: []byte{0xff, 0xff}}))), true, 400, "cannot unmarshal join request"},
		{"bad gzip", newRequest("/rtc/v1?" + query("access_token", tok, "join_request", garbage(&livekit.WrappedJoinRequest{
			Compression: livekit.WrappedJoinRequest_GZIP, JoinRequest: []byte("not gzip"),
		}))), true, 400, "cannot read decompressed join request"},
		{"truncated gzip", newRequest("/rtc/v1?" + query("access_token", tok, "join_request", garbage(&livekit.WrappedJoinRequest{
			Compression: livekit.WrappedJoinRequest_GZIP, JoinRequest: gzipBytes(t, make([]byte, 100))[:20],
		}))), true, 400, "cannot read decompressed join request"},
		{"unknown compression", newRequest("/rtc/v1?" + query("access_token", tok, "join_request", garbage(&livekit.WrappedJoinRequest{Compression: 7}))), true, 400, "unknown join request compression 7"},
		{"gzip bomb", newRequest("/rtc/v1?" + query("access_token", tok, "join_request", gzipBomb)), true, 400, "join request too large"},
		{"long join_request", newRequest("/rtc/v1?access_token=" + tok + "&join_request=" + strings.Repeat("A", maxJoinRequestParam+1)), true, 400, "join request too large"},
		{"oversized offer", newRequest("/rtc/v1?" + query("access_token", tok, "join_request", encodeJoinRequest(t, bigOffer, true, base64.URLEncoding))), true, 400,
			"join request field publisher_offer.sdp has 262145 bytes, limit 262144"},
		{"attributes without canUpdateOwnMetadata", newRequest("/rtc?access_token=" + noMeta + "&attributes=" + base64.URLEncoding.EncodeToString([]byte(`{"a":"b"}`))), false, 401, "no permissions to access the room"},
		{"bad attributes", newRequest("/rtc?access_token=" + noMeta + "&attributes=e30K%21"), false, 400, "cannot decode attributes"},
		{"attributes not strings", newRequest("/rtc?access_token=" + noMeta + "&attributes=" + base64.URLEncoding.EncodeToString([]byte(`{"a":1}`))), false, 400, "cannot decode attributes"},
		{"join_request metadata without canUpdateOwnMetadata", newRequest("/rtc?" + query("access_token", noMeta, "join_request",
			encodeJoinRequest(t, &livekit.JoinRequest{Metadata: "m"}, true, base64.URLEncoding))), false, 401, "no permissions to access the room"},
		{"join_request attributes without canUpdateOwnMetadata", newRequest("/rtc/v1?" + query("access_token", noMeta, "join_request",
			encodeJoinRequest(t, &livekit.JoinRequest{ParticipantAttributes: map[string]string{"a": "b"}}, false, base64.URLEncoding))), true, 401, "no permissions to access the room"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := parseJoin(tt.req, testKeys(), tt.v1)
			if err == nil {
				t.Fatalf("parseJoin = %+v, want an error", p)
			}
			checkHTTPError(t, err, tt.status, tt.msg)
		})
	}
}

// checkHTTPError fails t unless err is an *httpError with status and msg,
// where a msg ending in "…" is a prefix.
func checkHTTPError(t *testing.T, err error, status int, msg string) {
	t.Helper()
	var he *httpError
	if !errors.As(err, &he) {
		t.Fatalf("error %v (%T) is not an *httpError", err, err)
	}
	prefix, isPrefix := strings.CutSuffix(msg, "…")
	if he.Status != status || (isPrefix && !strings.HasPrefix(he.Msg, prefix)) || (!isPrefix && he.Msg != msg) {
		t.Errorf("got %d %q, want %d %q", he.Status, he.Msg, status, msg)
	}
	if strings.Contains(he.Msg, "eyJ") { // base64 of `{"`, how every JWT starts
		t.Errorf("error text %q contains a token", he.Msg)
	}
}

// TestParseJoinTokenTime checks exp and nbf with the verifier's 60 s leeway,
// on synctest's clock.
func TestParseJoinTokenTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		parse := func(tok string) error {
			_, err := parseJoin(newRequest("/rtc?access_token="+tok), testKeys(), false)
			return err
		}
		tok := newToken(t, func(at *auth.AccessToken) { at.SetValidFor(time.Minute) })
		future := rawClaims()
		future["nbf"] = time.Now().Add(2 * time.Minute).Unix()
		soon := rawClaims()
		soon["nbf"] = time.Now().Add(50 * time.Second).Unix()
		if err := parse(signJWT(t, "HS256", testSecret, future)); err == nil {
			t.Error("nbf in 2 min: accepted")
		} else {
			checkHTTPError(t, err, 401, "invalid authorization token: token has invalid claims: token is not valid yet")
		}
		if err := parse(signJWT(t, "HS256", testSecret, soon)); err != nil {
			t.Errorf("nbf in 50 s, within the leeway: %v", err)
		}

		time.Sleep(time.Minute + 59*time.Second)
		if err := parse(tok); err != nil {
			t.Errorf("59 s after exp, within the leeway: %v", err)
		}
		time.Sleep(2 * time.Second)
		if err := parse(tok); err == nil {
			t.Error("61 s after exp: accepted")
		} else {
			checkHTTPError(t, err, 401, "invalid authorization token: token has invalid claims: token is expired")
		}
	})
}

func TestJoinPermission(t *testing.T) {
	f, tr := false, true
	all := []livekit.TrackSource(nil)
	tests := []struct {
		name  string
		grant auth.VideoGrant
		kind  livekit.ParticipantInfo_Kind
		want  *livekit.ParticipantPermission
	}{{
		name: "defaults",
		want: &livekit.ParticipantPermission{CanSubscribe: true, CanPublish: true, CanPublishData: true, CanPublishSources: all},
	}, {
		name:  "canPublishData follows canPublish",
		grant: auth.VideoGrant{CanPublish: &f},
		want:  &livekit.ParticipantPermission{CanSubscribe: true},
	}, {
		name:  "canPublishData set on its own",
		grant: auth.VideoGrant{CanPublish: &f, CanPublishData: &tr, CanSubscribe: &f},
		want:  &livekit.ParticipantPermission{CanPublishData: true},
	}, {
		name:  "sources",
		grant: auth.VideoGrant{CanPublishSources: []string{"camera", "microphone", "screen_share", "screen_share_audio"}},
		want: &livekit.ParticipantPermission{CanSubscribe: true, CanPublish: true, CanPublishData: true, CanPublishSources: []livekit.TrackSource{
			livekit.TrackSource_CAMERA, livekit.TrackSource_MICROPHONE, livekit.TrackSource_SCREEN_SHARE, livekit.TrackSource_SCREEN_SHARE_AUDIO,
		}},
	}, {
		name:  "hidden recorder with metadata",
		grant: auth.VideoGrant{Hidden: true, Recorder: true, CanUpdateOwnMetadata: &tr, CanSubscribeMetrics: &tr},
		kind:  livekit.ParticipantInfo_EGRESS,
		want: &livekit.ParticipantPermission{CanSubscribe: true, CanPublish: true, CanPublishData: true, Hidden: true, Recorder: true,
			CanUpdateMetadata: true, CanSubscribeMetrics: true},
	}, {
		name:  "agent",
		grant: auth.VideoGrant{Agent: true},
		kind:  livekit.ParticipantInfo_AGENT,
		want:  &livekit.ParticipantPermission{CanSubscribe: true, CanPublish: true, CanPublishData: true, Agent: true},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := newToken(t, func(at *auth.AccessToken) {
				g := tt.grant
				g.RoomJoin, g.Room = true, "room1"
				at.SetVideoGrant(&g)
				if tt.kind != livekit.ParticipantInfo_STANDARD {
					at.SetKind(tt.kind)
				}
			})
			p, err := parseJoin(newRequest("/rtc?access_token="+tok), testKeys(), false)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(p.Permission, tt.want) {
				t.Errorf("permission %v, want %v", p.Permission, tt.want)
			}
			if p.Kind != tt.kind {
				t.Errorf("kind %v, want %v", p.Kind, tt.kind)
			}
		})
	}
}

func TestJoinParamsLogValue(t *testing.T) {
	tok := newToken(t, nil)
	p, err := parseJoin(newRequest("/rtc?access_token="+tok), testKeys(), false)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("join", "join", p)
	if strings.Contains(buf.String(), tok) || !strings.Contains(buf.String(), `"identity":"alice"`) {
		t.Errorf("log line %s", buf.String())
	}
}

func TestJoinDecodeBase64(t *testing.T) {
	want := []byte{0xfb, 0xff, 0xfe, 0x00, 0x3e, 0x3f, 0x7a}
	for _, tt := range []struct {
		name string
		in   string
	}{
		{"url padded", base64.URLEncoding.EncodeToString(want)},
		{"url raw", base64.RawURLEncoding.EncodeToString(want)},
		{"std padded", base64.StdEncoding.EncodeToString(want)},
		{"std raw", base64.RawStdEncoding.EncodeToString(want)},
		{"std with + unescaped in a query", strings.ReplaceAll(base64.StdEncoding.EncodeToString(want), "+", " ")},
	} {
		got, err := decodeBase64(tt.in)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: decodeBase64(%q) = %x, %v", tt.name, tt.in, got, err)
		}
	}
	if _, err := decodeBase64("a*b"); err == nil {
		t.Error("decodeBase64 accepted '*'")
	}
}

func TestJoinUserAgent(t *testing.T) {
	for _, tt := range []struct {
		ua                          string
		browser, bversion, os, over string
	}{
		{uaChromeMac, "Chrome", "131.0.0.0", "Mac OS X", "10.15.7"},
		{uaSafariIOS, "Safari", "17.4", "iOS", "17.4"},
		{uaIPad, "Safari", "16.6", "iOS", "16.6"},
		{uaFirefoxLin, "Firefox", "133.0", "Linux", ""},
		{uaEdgeWin, "Edge", "131.0.2903.86", "Windows", "10.0"},
		{uaChromeAnd, "Chrome", "131.0.6778.81", "Android", "14"},
		{"", "", "", "", ""},
		{"curl/8.5.0", "", "", "", ""},
	} {
		b, bv := browserFromUA(tt.ua)
		o, ov := osFromUA(tt.ua)
		if b != tt.browser || bv != tt.bversion || o != tt.os || ov != tt.over {
			t.Errorf("%q: %q %q %q %q, want %q %q %q %q", tt.ua, b, bv, o, ov, tt.browser, tt.bversion, tt.os, tt.over)
		}
	}
}

func TestValidateSignalRequest(t *testing.T) {
	sids := func(n int) []string {
		s := make([]string, n)
		for i := range s {
			s[i] = "TR_x"
		}
		return s
	}
	str := func(n int) string { return strings.Repeat("x", n) }
	offer := func(n int) *livekit.SignalRequest {
		return &livekit.SignalRequest{Message: &livekit.SignalRequest_Offer{Offer: &livekit.SessionDescription{Type: "offer", Sdp: str(n)}}}
	}
	layers := func(n int) []*livekit.VideoLayer {
		l := make([]*livekit.VideoLayer, n)
		for i := range l {
			l[i] = &livekit.VideoLayer{Rid: "q"}
		}
		return l
	}
	subscription := func(u *livekit.UpdateSubscription) *livekit.SignalRequest {
		return &livekit.SignalRequest{Message: &livekit.SignalRequest_Subscription{Subscription: u}}
	}
	metadata := func(u *livekit.UpdateParticipantMetadata) *livekit.SignalRequest {
		return &livekit.SignalRequest{Message: &livekit.SignalRequest_UpdateMetadata{UpdateMetadata: u}}
	}
	bigAttrs := map[string]string{"a": str(40 << 10), "b": str(30 << 10)}

	tests := []struct {
		name  string
		req   *livekit.SignalRequest
		field string // "" if valid
	}{
		{"nil", nil, ""},
		{"empty", &livekit.SignalRequest{}, ""},
		{"ping", &livekit.SignalRequest{Message: &livekit.SignalRequest_Ping{Ping: 1}}, ""},
		{"sdp at limit", offer(maxSDPSize), ""},
		{"sdp over limit", offer(maxSDPSize + 1), "offer.sdp"},
		{"answer mid_to_track_id", &livekit.SignalRequest{Message: &livekit.SignalRequest_Answer{Answer: &livekit.SessionDescription{
			MidToTrackId: map[string]string{"0": str(maxMapSize)},
		}}}, "answer.mid_to_track_id"},
		{"candidate", &livekit.SignalRequest{Message: &livekit.SignalRequest_Trickle{Trickle: &livekit.TrickleRequest{CandidateInit: str(maxCandidateSize + 1)}}}, "trickle.candidateInit"},
		{"track sids at limit", subscription(&livekit.UpdateSubscription{TrackSids: sids(maxEntries)}), ""},
		{"track sids", subscription(&livekit.UpdateSubscription{TrackSids: sids(maxEntries + 1)}), "subscription.track_sids"},
		{"participant tracks", subscription(&livekit.UpdateSubscription{ParticipantTracks: []*livekit.ParticipantTracks{
			{ParticipantSid: "PA_a"}, {ParticipantSid: "PA_b", TrackSids: sids(maxEntries + 1)},
		}}), "subscription.participant_tracks[1].track_sids"},
		{"long sid", subscription(&livekit.UpdateSubscription{TrackSids: []string{"TR_a", str(maxStringSize + 1)}}), "subscription.track_sids[1]"},
		{"track settings", &livekit.SignalRequest{Message: &livekit.SignalRequest_TrackSetting{TrackSetting: &livekit.UpdateTrackSettings{TrackSids: sids(maxEntries + 1)}}}, "track_setting.track_sids"},
		{"permissions", &livekit.SignalRequest{Message: &livekit.SignalRequest_SubscriptionPermission{SubscriptionPermission: &livekit.SubscriptionPermission{
			TrackPermissions: []*livekit.TrackPermission{{ParticipantIdentity: "bob", TrackSids: sids(maxEntries + 1)}},
		}}}, "subscription_permission.track_permissions[0].track_sids"},
		{"add track", &livekit.SignalRequest{Message: &livekit.SignalRequest_AddTrack{AddTrack: &livekit.AddTrackRequest{Cid: "c", Layers: layers(3)}}}, ""},
		{"add track layers", &livekit.SignalRequest{Message: &livekit.SignalRequest_AddTrack{AddTrack: &livekit.AddTrackRequest{Layers: layers(maxLayers + 1)}}}, "add_track.layers"},
		{"add track cid", &livekit.SignalRequest{Message: &livekit.SignalRequest_AddTrack{AddTrack: &livekit.AddTrackRequest{Cid: str(maxStringSize + 1)}}}, "add_track.cid"},
		{"simulcast codec layers", &livekit.SignalRequest{Message: &livekit.SignalRequest_AddTrack{AddTrack: &livekit.AddTrackRequest{
			SimulcastCodecs: []*livekit.SimulcastCodec{{Codec: "vp8"}, {Codec: "av1", Layers: layers(maxLayers + 1)}},
		}}}, "add_track.simulcast_codecs[1].layers"},
		{"metadata at limit", metadata(&livekit.UpdateParticipantMetadata{Metadata: str(maxMetadataSize)}), ""},
		{"metadata", metadata(&livekit.UpdateParticipantMetadata{Metadata: str(maxMetadataSize + 1)}), "update_metadata.metadata"},
		{"name", metadata(&livekit.UpdateParticipantMetadata{Name: str(maxNameSize + 1)}), "update_metadata.name"},
		{"attributes", metadata(&livekit.UpdateParticipantMetadata{Attributes: bigAttrs}), "update_metadata.attributes"},
		{"sync state offer", &livekit.SignalRequest{Message: &livekit.SignalRequest_SyncState{SyncState: &livekit.SyncState{
			Answer: &livekit.SessionDescription{Sdp: "v=0"}, Offer: &livekit.SessionDescription{Sdp: str(maxSDPSize + 1)},
		}}}, "sync_state.offer.sdp"},
		{"sync state track", &livekit.SignalRequest{Message: &livekit.SignalRequest_SyncState{SyncState: &livekit.SyncState{
			PublishTracks: []*livekit.TrackPublishedResponse{{Cid: "c", Track: &livekit.TrackInfo{Sid: "TR_a", Layers: layers(maxLayers + 1)}}},
		}}}, "sync_state.publish_tracks[0].track.layers"},
		{"data blob", &livekit.SignalRequest{Message: &livekit.SignalRequest_StoreDataBlobRequest{StoreDataBlobRequest: &livekit.StoreDataBlobRequest{
			Blob: &livekit.DataBlob{Contents: make([]byte, maxBlobSize+1)},
		}}}, "store_data_blob_request.blob.contents"},
		{"data blob at limit", &livekit.SignalRequest{Message: &livekit.SignalRequest_StoreDataBlobRequest{StoreDataBlobRequest: &livekit.StoreDataBlobRequest{
			Blob: &livekit.DataBlob{Contents: make([]byte, maxBlobSize)},
		}}}, ""},
		{"data track encoding", &livekit.SignalRequest{Message: &livekit.SignalRequest_PublishDataTrackRequest{PublishDataTrackRequest: &livekit.PublishDataTrackRequest{
			FrameEncoding: &livekit.DataTrackFrameEncoding{Value: &livekit.DataTrackFrameEncoding_Custom{Custom: str(maxEncodingSize + 1)}},
		}}}, "publish_data_track_request.frame_encoding.custom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Through the wire, as the connection loop sees it.
			var req *livekit.SignalRequest
			if tt.req != nil {
				b, err := proto.Marshal(tt.req)
				if err != nil {
					t.Fatal(err)
				}
				req = &livekit.SignalRequest{}
				if err := proto.Unmarshal(b, req); err != nil {
					t.Fatal(err)
				}
			}
			err := validateSignalRequest(req)
			var le *limitError
			switch {
			case tt.field == "" && err != nil:
				t.Errorf("validateSignalRequest: %v", err)
			case tt.field == "":
			case !errors.As(err, &le) || !errors.Is(err, errTooLarge):
				t.Errorf("validateSignalRequest = %v, want a limitError for %s", err, tt.field)
			case le.Field != tt.field:
				t.Errorf("field %q (%v), want %q", le.Field, err, tt.field)
			}
		})
	}
}

// TestValidateLimitNames checks that every field limitOf names exists, so a
// renamed field cannot silently fall back to the default limit.
func TestValidateLimitNames(t *testing.T) {
	size := func(n int) fieldLimit { return fieldLimit{size: n, count: maxEntries} }
	count := func(n int) fieldLimit { return fieldLimit{size: maxStringSize, count: n} }
	for name, want := range map[protoreflect.FullName]fieldLimit{
		"livekit.SessionDescription.sdp":               size(maxSDPSize),
		"livekit.TrickleRequest.candidateInit":         size(maxCandidateSize),
		"livekit.UpdateParticipantMetadata.metadata":   size(maxMetadataSize),
		"livekit.JoinRequest.metadata":                 size(maxMetadataSize),
		"livekit.UpdateParticipantMetadata.name":       size(maxNameSize),
		"livekit.DataBlob.contents":                    size(maxBlobSize),
		"livekit.DataBlobKey.generic":                  size(maxBlobKeySize),
		"livekit.DataTrackFrameEncoding.custom":        size(maxEncodingSize),
		"livekit.AddTrackRequest.layers":               count(maxLayers),
		"livekit.SimulcastCodec.layers":                count(maxLayers),
		"livekit.UpdateVideoLayers.layers":             count(maxLayers),
		"livekit.TrackInfo.layers":                     count(maxLayers),
		"livekit.SimulcastCodecInfo.layers":            count(maxLayers),
		"livekit.AddTrackRequest.simulcast_codecs":     count(maxCodecs),
		"livekit.TrackInfo.codecs":                     count(maxCodecs),
		"livekit.UpdateParticipantMetadata.attributes": {size: maxMapSize, count: maxEntries},
		"livekit.UpdateSubscription.track_sids":        count(maxEntries),
	} {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		fd, ok := d.(protoreflect.FieldDescriptor)
		if !ok {
			t.Errorf("%s is a %T, not a field", name, d)
			continue
		}
		if got := limitOf(fd); got != want {
			t.Errorf("%s: limit %+v, want %+v", name, got, want)
		}
	}
}
