package sfu

import "log/slog"

// Config holds the media plane's settings. The zero value works: it binds
// ICE on ephemeral UDP and TCP ports on every interface and advertises the
// host's own addresses.
type Config struct {
	// BindIP is the address the ICE UDP and TCP muxes listen on.
	// Empty means all interfaces.
	BindIP string
	// UDPPort is the single UDP port every PeerConnection is multiplexed on
	// (ICE single-port mux). 0 picks a free port.
	UDPPort int
	// TCPPort is the ICE-TCP passive port. 0 picks a free port; -1 disables ICE-TCP.
	TCPPort int
	// NodeIPs, when set, replace the host candidates' addresses (1:1 NAT), for
	// a node behind a static NAT or a container bridge.
	NodeIPs []string
	// IncludeLoopback offers loopback candidates. Needed when the clients run
	// on the same host as the server (development, tests).
	IncludeLoopback bool
	// Logger receives the media plane's logs. nil means slog.Default().
	Logger *slog.Logger
}
