// Package authtest starts a real Matrix homeserver, Dendrite v0.13.8, for
// Go tests, as net/http/httptest starts an HTTP server.
//
// [Start] writes a fresh configuration into t.TempDir() (SQLite per
// component, in-memory JetStream, plain HTTP on a free 127.0.0.1 port, rate
// limiting off, registration by shared secret, federation routes mounted so
// that GET /_matrix/federation/v1/openid/userinfo exists), starts the
// process, waits until it answers, and stops it by PID in t.Cleanup. The
// returned [Homeserver] registers users, creates rooms the way Element does
// for calls, and writes and reads MatrixRTC membership state
// (org.matrix.msc3401.call.member).
//
// The dendrite and generate-keys binaries must be installed (make test-deps
// does it); when they are missing, Start fails the test with the command
// that installs them. Every helper takes the test's testing.TB, must be
// called from the test's goroutine or a t.Cleanup function registered
// after Start, and fails the test on error. Every request and wait is
// bounded; nothing listens beyond loopback.
//
// Dendrite quirks a test may meet (details in MATRIXRTC.md §6, §7):
//   - expires_in in an OpenID token response is an absolute Unix time in
//     seconds, not a lifetime.
//   - Dendrite does not check that the user in a call.member state key is
//     the sender: anyone allowed to send the type may write any key.
//   - With an application service, start its listener before Start and
//     always answer 200, or Dendrite backs off for up to a minute.
package authtest
