package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"testing"

	"maunium.net/go/mautrix"
)

func TestErrorsIs(t *testing.T) {
	wrapped := fmt.Errorf("%w: example.org: userinfo: HTTP 401", errUnauthorized)
	if !errors.Is(wrapped, errUnauthorized) {
		t.Error("wrapped errUnauthorized is not errUnauthorized")
	}
	if errors.Is(wrapped, errNotInRoom) {
		t.Error("errUnauthorized is errNotInRoom")
	}
	if !errors.Is(errUnseenRoom, mautrix.MForbidden) || !errors.Is(errNotInRoom, mautrix.MForbidden) {
		t.Error("refusals are not M_FORBIDDEN")
	}
	if !errors.Is(badJSON(msgMissingRoomSlot), mautrix.MBadJSON) {
		t.Error("badJSON is not M_BAD_JSON")
	}
	// M_UNKNOWN errors are told apart by their text (mautrix's rule).
	if errors.Is(errCreateRoom, errInternal) {
		t.Error("errCreateRoom is errInternal")
	}
}

func TestWriteError(t *testing.T) {
	tests := []struct {
		err     error
		status  int
		errcode string
		msg     string
	}{
		{fmt.Errorf("%w: detail", errUnauthorized), 401, "M_UNAUTHORIZED", "The request could not be authorised."},
		{badJSON(msgLegacyMissingRoom), 400, "M_BAD_JSON", "Missing room parameter"},
		{fmt.Errorf("%w: %w", errNotJSON, errors.New("EOF")), 400, "M_NOT_JSON", "Error reading request"},
		{fmt.Errorf("%w: %w", errCreateRoom, errors.New("sfu down")), 500, "M_UNKNOWN", "Unable to create room on SFU"},
		{errNoDelegation, 404, "M_UNRECOGNIZED", "Delegation of delayed leave events is not supported"},
		{errors.New("secret internal detail"), 500, "M_UNKNOWN", "Internal Server Error"},
	}
	for _, tt := range tests {
		w := httptest.NewRecorder()
		writeError(w, tt.err)
		if w.Code != tt.status {
			t.Errorf("%v: status %d, want %d", tt.err, w.Code, tt.status)
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("%v: Content-Type %q", tt.err, ct)
		}
		var body map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatalf("%v: body %q: %v", tt.err, w.Body, err)
		}
		want := map[string]any{"errcode": tt.errcode, "error": tt.msg}
		if len(body) != 2 || body["errcode"] != want["errcode"] || body["error"] != want["error"] {
			t.Errorf("%v: body %v, want %v", tt.err, body, want)
		}
	}
}
