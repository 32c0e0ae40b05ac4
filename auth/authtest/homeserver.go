package authtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// DendriteVersion is the Dendrite release the harness is written for and
// the one make test-deps installs.
const DendriteVersion = "v0.13.8"

// Bounds on the waits of the process's life. Dendrite answers
// /_matrix/client/versions about 0.2–0.3 s after a cold start on a
// 2-core machine (TESTENV.md); the bounds leave room for a loaded CI run.
const (
	startTimeout = 20 * time.Second
	keysTimeout  = 30 * time.Second
	termTimeout  = 10 * time.Second // SIGTERM to exit, then SIGKILL
	killTimeout  = 5 * time.Second  // SIGKILL to exit
	pollInterval = 20 * time.Millisecond
	// startAttempts covers the race between closing the probe listener
	// that picked the free port and Dendrite binding it.
	startAttempts = 3
	logTailLines  = 60
)

// defaultLiveKitServiceURL is the livekit_service_url that SendCallMember
// advertises when Options.LiveKitServiceURL is empty. Port 9 (discard) on
// loopback: nothing should dial it.
const defaultLiveKitServiceURL = "http://127.0.0.1:9/livekit/jwt"

// Options configures Start. The zero value starts a plain homeserver.
type Options struct {
	// AppService, if not nil, registers an application service with
	// Dendrite. Start fills in its empty fields; the filled copy is
	// Homeserver.AppService.
	AppService *AppService

	// LiveKitServiceURL is the livekit_service_url of the focus that
	// SendCallMember advertises in foci_preferred, normally the URL of
	// Stoa's authorisation service. Default: a loopback URL nothing
	// listens on.
	LiveKitServiceURL string

	// OpenIDTokenLifetime is user_api.openid_token_lifetime_ms. Zero means
	// Dendrite's default, one hour.
	OpenIDTokenLifetime time.Duration
}

// AppService describes an application service registration
// (https://spec.matrix.org/v1.16/application-service-api/#registration).
// Its user namespace is non-exclusive, so Dendrite pushes every event of
// every room that a matching local user has joined, and those users can
// still register and log in.
type AppService struct {
	// URL is where Dendrite pushes transactions
	// (PUT URL/_matrix/app/v1/transactions/{txnId}), e.g. the address of
	// Stoa's listener. Required. The listener should be up before Start
	// and always answer 200.
	URL string
	// ID is the registration's id. Default "stoa".
	ID string
	// ASToken is the token the service uses towards Dendrite, HSToken the
	// one Dendrite sends (Authorization: Bearer) with each transaction.
	// Default: random.
	ASToken, HSToken string
	// SenderLocalpart is the localpart of the service's own user.
	// Default "stoa-auth".
	SenderLocalpart string
	// UserRegex is the user namespace. Dendrite matches it unanchored, so
	// anchor it. Default: every local user, ^@.*:<server name>$ with the
	// server name quoted.
	UserRegex string
}

// Homeserver is a running Dendrite started by Start. Its fields must not
// be changed. It is stopped when the test that started it ends.
type Homeserver struct {
	// URL is the base URL of the client, federation and admin APIs, e.g.
	// "http://127.0.0.1:41234". The federation OpenID userinfo endpoint is
	// served here too, over plain HTTP.
	URL string
	// ServerName is the Matrix server name, "localhost:<port>", the part of
	// user IDs after the colon.
	ServerName string
	// Dir is the state directory: config, databases, key and dendrite.log.
	Dir string
	// RegistrationPath is the application service registration YAML, to
	// give to Stoa; empty without Options.AppService.
	RegistrationPath string
	// AppService is the registration as written, with defaults and tokens
	// filled in; nil without Options.AppService.
	AppService *AppService
	// LiveKitServiceURL is what SendCallMember advertises.
	LiveKitServiceURL string
	// PID is the Dendrite process ID.
	PID int

	sharedSecret string
	password     string // of every user Register creates
	logPath      string
	cmd          *exec.Cmd
	exited       chan struct{} // closed when cmd.Wait has returned
}

// Start starts a Dendrite with a fresh configuration in t.TempDir() on a
// free loopback port and waits (at most 20 s) until it answers
// /_matrix/client/versions. It registers a t.Cleanup that stops the
// process (SIGTERM, then SIGKILL) and, if the test failed, logs the tail
// of Dendrite's log. It fails the test if the binaries are missing or
// Dendrite does not start.
func Start(t testing.TB, opts Options) *Homeserver {
	t.Helper()
	dendrite, genKeys := binaries(t)
	hs := &Homeserver{
		Dir:               t.TempDir(),
		sharedSecret:      rand.Text(),
		password:          rand.Text(),
		LiveKitServiceURL: opts.LiveKitServiceURL,
	}
	if hs.LiveKitServiceURL == "" {
		hs.LiveKitServiceURL = defaultLiveKitServiceURL
	}
	hs.logPath = filepath.Join(hs.Dir, "dendrite.log")

	ctx, cancel := context.WithTimeout(context.Background(), keysTimeout)
	defer cancel()
	keyPath := filepath.Join(hs.Dir, "matrix_key.pem")
	if out, err := exec.CommandContext(ctx, genKeys, "--private-key", keyPath).CombinedOutput(); err != nil {
		t.Fatalf("authtest: %s --private-key: %v\n%s", genKeys, err, out)
	}

	for attempt := 1; ; attempt++ {
		err := hs.start(dendrite, keyPath, opts)
		if err == nil {
			break
		}
		if attempt < startAttempts && errors.Is(err, errPortTaken) {
			t.Logf("authtest: %v; retrying on another port", err)
			continue
		}
		t.Fatalf("authtest: %v\n%s", err, hs.logTail())
	}
	t.Cleanup(func() {
		if err := hs.stop(); err != nil {
			t.Errorf("authtest: %v", err)
		}
		if t.Failed() {
			t.Logf("authtest: tail of %s:\n%s", hs.logPath, hs.logTail())
		}
	})
	return hs
}

// start picks a port, writes the configuration and runs Dendrite until it
// answers. On failure the process has been stopped.
func (hs *Homeserver) start(dendrite, keyPath string, opts Options) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	bind := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	hs.URL = "http://" + bind
	hs.ServerName = "localhost:" + strconv.Itoa(port)
	confPath, err := hs.writeConfig(keyPath, opts)
	if err != nil {
		return err
	}
	logFile, err := os.OpenFile(hs.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close() // the child has its own copy
	cmd := exec.Command(dendrite, "-config", confPath, "-http-bind-address", bind)
	cmd.Dir = hs.Dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	exited := make(chan struct{})
	started := make(chan error)
	go func() {
		// The kernel sends Pdeathsig when the thread that forked the child
		// ends, not the process (go.dev/issue/27505), and Go may end a
		// thread at any time. So this goroutine holds its thread until
		// Dendrite has exited; returning while locked then ends the thread.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait() // the exit status of a stopped test server says nothing
		close(exited)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start %s: %w", dendrite, err)
	}
	hs.cmd = cmd
	hs.PID = cmd.Process.Pid
	hs.exited = exited

	if err := hs.waitReady(); err != nil {
		stopErr := hs.stop()
		if bytes.Contains(hs.readLog(), []byte("address already in use")) {
			return fmt.Errorf("%w: %s: %w", errPortTaken, bind, err)
		}
		return errors.Join(err, stopErr)
	}
	return nil
}

// waitReady polls /_matrix/client/versions until it answers 200, the
// process exits, or startTimeout passes.
func (hs *Homeserver) waitReady() error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(startTimeout)
	url := hs.URL + "/_matrix/client/versions"
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-hs.exited:
			return fmt.Errorf("dendrite (pid %d) exited during start-up: %s", hs.PID, hs.cmd.ProcessState)
		case <-time.After(pollInterval):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dendrite (pid %d) did not answer %s within %v", hs.PID, url, startTimeout)
		}
	}
}

// stop ends the process by PID: SIGTERM, then SIGKILL after termTimeout.
// It returns once cmd.Wait has returned.
func (hs *Homeserver) stop() error {
	if hs.cmd == nil {
		return nil
	}
	select {
	case <-hs.exited:
		return nil
	default:
	}
	_ = hs.cmd.Process.Signal(syscall.SIGTERM) // fails only if it has just exited
	select {
	case <-hs.exited:
		return nil
	case <-time.After(termTimeout):
	}
	_ = hs.cmd.Process.Kill()
	select {
	case <-hs.exited:
		return fmt.Errorf("dendrite (pid %d) ignored SIGTERM for %v and was killed", hs.PID, termTimeout)
	case <-time.After(killTimeout):
		return fmt.Errorf("dendrite (pid %d) survived SIGKILL for %v", hs.PID, killTimeout)
	}
}

func (hs *Homeserver) readLog() []byte {
	b, _ := os.ReadFile(hs.logPath) // a missing log is reported as empty
	return b
}

// logTail returns the last logTailLines lines of Dendrite's log.
func (hs *Homeserver) logTail() string {
	lines := strings.Split(strings.TrimRight(string(hs.readLog()), "\n"), "\n")
	if len(lines) > logTailLines {
		lines = lines[len(lines)-logTailLines:]
	}
	return strings.Join(lines, "\n")
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// binaries finds dendrite and generate-keys in PATH, GOBIN or GOPATH/bin,
// where go install puts them, or fails the test with the install command.
func binaries(t testing.TB) (dendrite, genKeys string) {
	t.Helper()
	var dirs []string
	if goTool, err := exec.LookPath("go"); err == nil {
		if out, err := exec.Command(goTool, "env", "GOBIN", "GOPATH").Output(); err == nil {
			lines := strings.Split(string(out), "\n")
			if gobin := strings.TrimSpace(lines[0]); gobin != "" {
				dirs = append(dirs, gobin)
			}
			if len(lines) > 1 {
				for _, p := range filepath.SplitList(strings.TrimSpace(lines[1])) {
					dirs = append(dirs, filepath.Join(p, "bin"))
				}
			}
		}
	}
	find := func(name string) string {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		for _, d := range dirs {
			p := filepath.Join(d, name)
			if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
				return p
			}
		}
		t.Fatalf("authtest: %s not found in PATH or %v; install Dendrite with\n"+
			"\tgo install github.com/matrix-org/dendrite/cmd/dendrite@%s github.com/matrix-org/dendrite/cmd/generate-keys@%s\n"+
			"or run make test-deps", name, dirs, DendriteVersion, DendriteVersion)
		return ""
	}
	return find("dendrite"), find("generate-keys")
}
