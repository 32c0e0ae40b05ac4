package auth

import (
	"net/http"
	"net/url"
	"strings"
)

// CORS headers of the discovery endpoints: the Matrix client-server API's
// (https://spec.matrix.org/v1.16/client-server-api/#web-browser-clients).
// js-sdk sends a bearer token to rtc/transports, which Stoa ignores.
const (
	discoveryAllowMethods = "GET, HEAD, OPTIONS"
	discoveryAllowHeaders = "Origin, X-Requested-With, Content-Type, Accept, Authorization"
)

// livekitTransport is an MSC4143 RTC transport (or, in .well-known, a
// focus) of type "livekit".
type livekitTransport struct {
	Type       string `json:"type"`
	ServiceURL string `json:"livekit_service_url"`
}

// discoveryRoutes mounts RTC transport discovery (MATRIXRTC.md §2), for a
// homeserver that does not serve it (Dendrite), reverse-proxied from the
// homeserver's client-API host:
//
//	GET /_matrix/client/unstable/org.matrix.msc4143/rtc/transports  what Element Call ≥ 0.24 asks
//	GET /_matrix/client/v1/rtc/transports                           the stable path (MSC4519)
//	GET /.well-known/matrix/client                                  only the rtc_foci key: merge it
//
// The service URL is the public URL with an http(s) scheme: the service
// is on Stoa's own port, at the root.
func (s *Service) discoveryRoutes() {
	t := []livekitTransport{{Type: "livekit", ServiceURL: s.serviceURL()}}
	transports := getEndpoint(map[string]any{"rtc_transports": t})
	s.mux.HandleFunc("/_matrix/client/unstable/org.matrix.msc4143/rtc/transports", transports)
	s.mux.HandleFunc("/_matrix/client/v1/rtc/transports", transports)
	s.mux.HandleFunc("/.well-known/matrix/client", getEndpoint(map[string]any{"org.matrix.msc4143.rtc_foci": t}))
}

// getEndpoint answers GET and HEAD with body as JSON, OPTIONS with 200, and
// other methods with 405; all with CORS headers for any origin.
func getEndpoint(body any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		hdr.Set("Access-Control-Allow-Origin", "*")
		hdr.Set("Access-Control-Allow-Methods", discoveryAllowMethods)
		hdr.Set("Access-Control-Allow-Headers", discoveryAllowHeaders)
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			writeJSON(w, http.StatusOK, body)
		case http.MethodOptions:
			w.WriteHeader(http.StatusOK)
		default:
			hdr.Set("Allow", discoveryAllowMethods)
			w.WriteHeader(http.StatusMethodNotAllowed)
		}
	}
}

// serviceURL derives the service's URL from the SFU's public WebSocket
// URL: wss becomes https and ws http, as lk-jwt-service derives the
// RoomService URL from LIVEKIT_URL. A trailing slash, query and fragment
// are dropped. An unparsable URL is returned as is.
func serviceURL(public string) string {
	u, err := url.Parse(public)
	if err != nil {
		return public
	}
	switch u.Scheme {
	case "wss":
		u.Scheme = "https"
	case "ws":
		u.Scheme = "http"
	}
	u.RawQuery, u.Fragment = "", ""
	return strings.TrimRight(u.String(), "/")
}

// serviceURL is the service's advertised base URL.
func (s *Service) serviceURL() string {
	if s.cfg.ServiceURL != "" {
		return strings.TrimRight(s.cfg.ServiceURL, "/")
	}
	return serviceURL(s.cfg.PublicURL)
}
