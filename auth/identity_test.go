package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"testing"

	"maunium.net/go/mautrix/id"
)

// TestIdentityVectors checks the MSC4195 appendix test vectors
// (MATRIXRTC.md §3.8), which lk-jwt-service's helper_test.go checks too.
func TestIdentityVectors(t *testing.T) {
	if got, want := roomAlias("!roomid:example.com", "slot1234"), "O8437W3+jmzMVjoIP3tNwbm+XxHQk2iKpOA7aqw3qSc"; got != want {
		t.Errorf("roomAlias = %s, want %s", got, want)
	}
	if got, want := memberIdentity("@alice:example.com", "DEVICE123", "memberABC"), "J+T45tGruxc+HrUOqJJlyQSV33m728Cme4+vt8/SWrU"; got != want {
		t.Errorf("memberIdentity = %s, want %s", got, want)
	}
}

func TestLegacyIdentity(t *testing.T) {
	if got, want := legacyIdentity("@alice:example.org", "ABCDEF"), "@alice:example.org:ABCDEF"; got != want {
		t.Errorf("legacyIdentity = %q, want %q", got, want)
	}
	if got, want := legacyIdentity("@alice:localhost:8448", ""), "@alice:localhost:8448:"; got != want {
		t.Errorf("legacyIdentity with no device = %q, want %q", got, want)
	}
}

// TestSameAliasBothEndpoints: /sfu/get names a room's call as /get_token
// does for slot m.call#ROOM.
func TestSameAliasBothEndpoints(t *testing.T) {
	room := id.RoomID("!abc:example.org")
	want := hashOf(t, `["!abc:example.org","m.call#ROOM"]`)
	if got := roomAlias(room, roomSlot); got != want {
		t.Errorf("roomAlias = %s, want %s", got, want)
	}
}

// TestJSONStringArray checks the serialisation against what JavaScript's
// JSON.stringify produces (written out by hand from ECMA-262
// QuoteJSONString).
func TestJSONStringArray(t *testing.T) {
	tests := []struct {
		in   []string
		want string
	}{
		{[]string{}, `[]`},
		{[]string{""}, `[""]`},
		{[]string{"a", "b"}, `["a","b"]`},
		{[]string{`<script>&"\`}, `["<script>&\"\\"]`},
		{[]string{"\b\f\n\r\t"}, `["\b\f\n\r\t"]`},
		{[]string{"\x00\x1f\x7f"}, "[\"\\u0000\\u001f\x7f\"]"},
		{[]string{"\u2028\u2029é😀"}, "[\"\u2028\u2029é😀\"]"},
		{[]string{"bad\xffutf8"}, "[\"bad\ufffdutf8\"]"},
	}
	for _, tt := range tests {
		if got := string(jsonStringArray(tt.in)); got != tt.want {
			t.Errorf("jsonStringArray(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// TestJSONStringArrayMatchesEncodingJSON: for text encoding/json leaves
// alone with HTML escaping off, the two agree.
func TestJSONStringArrayMatchesEncodingJSON(t *testing.T) {
	for _, in := range [][]string{
		{"@alice:example.org", "DEVICE", "7b1a6c2e-0f4d-4c1e-9a55-2f8e3c4d5e6f"},
		{"!room:localhost:8448", "m.call#ROOM"},
		{"quote\"back\\slash", "tab\tnl\n", "<>&"},
	} {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(in); err != nil {
			t.Fatal(err)
		}
		want := bytes.TrimSuffix(b.Bytes(), []byte("\n"))
		if got := jsonStringArray(in); !bytes.Equal(got, want) {
			t.Errorf("jsonStringArray(%q) = %s, encoding/json says %s", in, got, want)
		}
	}
}

// FuzzJSONStringArray: the output is JSON that decodes to the input, with
// invalid UTF-8 replaced as encoding/json replaces it.
func FuzzJSONStringArray(f *testing.F) {
	f.Add("@alice:example.org", "DEV")
	f.Add("<\u2028>", "\x01\xff\xfe")
	f.Fuzz(func(t *testing.T, a, b string) {
		out := jsonStringArray([]string{a, b})
		var got []string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("jsonStringArray(%q, %q) = %q: not JSON: %v", a, b, out, err)
		}
		std, err := json.Marshal([]string{a, b})
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		if err := json.Unmarshal(std, &want); err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
			t.Fatalf("jsonStringArray(%q, %q) decodes to %q, want %q", a, b, got, want)
		}
	})
}

func hashOf(t *testing.T, s string) string {
	t.Helper()
	sum := sha256.Sum256([]byte(s))
	return base64.RawStdEncoding.EncodeToString(sum[:])
}
