package signalling

import (
	"errors"
	"io"
	"net/http"
	"strconv"
)

// corsMaxAge is how long, in seconds, a browser may cache a preflight
// answer. Chromium caps it at 2 hours, Firefox at 24.
const corsMaxAge = 2 * 60 * 60

// withCORS returns a handler that lets any origin call h, as LiveKit does
// (PROTOCOL.md §1.1): the browser must be able to read the status of every
// /rtc*/validate answer, errors included, or the JS SDK takes a 401 for an
// unreachable server and never falls back from /rtc/v1 to /rtc. The headers
// are set before h runs, so they are on whatever h writes.
//
// A preflight (any OPTIONS request) is answered with 204 and never reaches h.
// No Access-Control-Allow-Credentials: tokens travel in the query or in
// Authorization, never in cookies.
func withCORS(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		hdr.Set("Access-Control-Allow-Origin", "*")
		if r.Method != http.MethodOptions {
			h.ServeHTTP(w, r)
			return
		}
		hdr.Set("Access-Control-Allow-Methods", "OPTIONS, HEAD, GET, POST, PATCH, DELETE")
		// The wildcard never covers Authorization (Fetch standard, CORS
		// protocol), so it is listed; Content-Type for Twirp's JSON and protobuf.
		hdr.Set("Access-Control-Allow-Headers", "*, Authorization, Content-Type")
		hdr.Set("Access-Control-Max-Age", strconv.Itoa(corsMaxAge))
		w.WriteHeader(http.StatusNoContent)
	})
}

// writeHTTPError answers a request that failed with err, which must not be
// nil. An *httpError (also wrapped) gives its status and its Msg as a
// plain-text body, as LiveKit writes it; any other error gives a 500 whose
// body does not reveal it. Call it before anything else is written.
func writeHTTPError(w http.ResponseWriter, err error) {
	status, msg := http.StatusInternalServerError, "internal server error"
	var he *httpError
	if errors.As(err, &he) {
		status, msg = he.Status, he.Msg
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/plain; charset=utf-8")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg)
}
