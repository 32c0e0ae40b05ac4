package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// serverStartTimeout bounds the wait for a server's HTTP port.
const serverStartTimeout = 30 * time.Second

// serverStopTimeout is how long a server gets to exit after SIGTERM before
// it is killed.
const serverStopTimeout = 15 * time.Second

// serverProc is a server started by compare. It is stopped by its PID,
// never by name.
type serverProc struct {
	name string
	url  string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when the process has exited
	err  error         // set before done closes
}

func (s *serverProc) pid() int { return s.cmd.Process.Pid }

// stop sends SIGTERM, waits, and kills the process if it does not exit.
func (s *serverProc) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return
	case <-time.After(serverStopTimeout):
	}
	_ = s.cmd.Process.Kill()
	<-s.done
}

// freePort returns a port that was free on 127.0.0.1 for network ("tcp" or
// "udp") a moment ago.
func freePort(network string) (int, error) {
	if network == "udp" {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// stoaConfig is the YAML for `stoa serve --dev --config`: --dev binds HTTP
// and ICE to 127.0.0.1 and sets the key devkey/secret; the file picks free
// ports, turns ICE-TCP off (as for LiveKit below) and logs at info, the
// level LiveKit gets too.
func stoaConfig(httpPort, udpPort int) string {
	return fmt.Sprintf(`# Written by stoa-bench compare.
port: %d
rtc:
  udp_port: %d
  tcp_port: -1
logging:
  level: info
`, httpPort, udpPort)
}

// livekitConfig is the YAML for `livekit-server --dev --bind 127.0.0.1
// --node-ip 127.0.0.1 --config`: one UDP port, no ICE-TCP, no external IP
// discovery (no STUN), and ICE sockets on the loopback interface only;
// without the interface and IP filters LiveKit also binds the machine's
// other addresses.
func livekitConfig(httpPort, udpPort int) string {
	return fmt.Sprintf(`# Written by stoa-bench compare.
port: %d
rtc:
  udp_port: %d
  tcp_port: 0
  use_external_ip: false
  enable_loopback_candidate: true
  interfaces:
    includes: [lo]
  ips:
    includes: [127.0.0.1/32]
logging:
  level: info
`, httpPort, udpPort)
}

// startServer starts the server named name ("stoa" or "livekit") from bin
// with its config in dir, on the server's CPUs of cpus if it is not nil,
// and waits until its HTTP port accepts.
func startServer(ctx context.Context, name, bin, dir, tag string, cpus *cpuSplit) (*serverProc, error) {
	httpPort, err := freePort("tcp")
	if err != nil {
		return nil, err
	}
	udpPort, err := freePort("udp")
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, tag+"-"+name+".yaml")
	var args []string
	var cfg string
	switch name {
	case "stoa":
		cfg = stoaConfig(httpPort, udpPort)
		args = []string{"serve", "--dev", "--config", cfgPath}
	case "livekit":
		cfg = livekitConfig(httpPort, udpPort)
		args = []string{"--dev", "--bind", "127.0.0.1", "--node-ip", "127.0.0.1", "--config", cfgPath}
	default:
		return nil, fmt.Errorf("unknown server %q", name)
	}
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, tag+"-"+name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	// The server runs in dir, so a relative binary path must be resolved first.
	if abs, err := filepath.Abs(bin); err == nil {
		bin = abs
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = dir
	start := cmd.Start
	if cpus != nil {
		start = func() error { return startOn(cmd, cpus.server, cpus.generator) }
	}
	if err := start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s := &serverProc{name: name, cmd: cmd, log: logPath, done: make(chan struct{}), url: fmt.Sprintf("ws://127.0.0.1:%d", httpPort)}
	go func() {
		s.err = cmd.Wait()
		logf.Close()
		close(s.done)
	}()
	deadline := time.Now().Add(serverStartTimeout)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort))
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return s, nil
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("%s exited during start-up (%v); see %s", name, s.err, logPath)
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("%s did not listen on %s within %v; see %s", name, addr, serverStartTimeout, logPath)
		}
	}
}

// serverVersion runs bin with args and returns its first output line.
func serverVersion(bin string, args ...string) string {
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		return "unknown"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

var errNoPerf = errors.New("perf not found")

// profileServer records pid's CPU with perf for d, with call graphs, and
// writes base+".perf.txt" (perf report, flat and by caller) and
// base+".pb.gz" (the same samples for go tool pprof).
func profileServer(ctx context.Context, pid int, d time.Duration, base string) error {
	perf, err := exec.LookPath("perf")
	if err != nil {
		return errNoPerf
	}
	data := base + ".perf.data"
	defer os.Remove(data)
	secs := strconv.FormatFloat(d.Seconds(), 'f', 0, 64)
	rec := exec.CommandContext(ctx, perf, "record", "-e", "cpu-clock", "-F", "499", "-g", "-p", strconv.Itoa(pid), "-o", data, "--", "sleep", secs)
	if out, err := rec.CombinedOutput(); err != nil {
		return fmt.Errorf("perf record: %w: %s", err, strings.TrimSpace(string(out)))
	}
	flat, err := exec.CommandContext(ctx, perf, "report", "-i", data, "--stdio", "--no-children", "--sort", "dso,sym", "--percent-limit", "0.5", "-g", "none").Output()
	if err != nil {
		return fmt.Errorf("perf report: %w", err)
	}
	tree, err := exec.CommandContext(ctx, perf, "report", "-i", data, "--stdio", "--children", "--sort", "dso,sym", "--percent-limit", "2", "-g", "none").Output()
	if err != nil {
		return fmt.Errorf("perf report: %w", err)
	}
	txt := "# perf record -e cpu-clock -F 499 -g -p PID -- sleep " + secs + "\n# Flat profile (self time):\n" + string(flat) +
		"\n\n# Inclusive time (self plus callees), entries above 2%:\n" + string(tree)
	if err := os.WriteFile(base+".perf.txt", []byte(txt), 0o644); err != nil {
		return err
	}
	script := exec.CommandContext(ctx, perf, "script", "-i", data, "-F", "comm,tid,time,period,event,ip,sym,dso")
	pipe, err := script.StdoutPipe()
	if err != nil {
		return err
	}
	if err := script.Start(); err != nil {
		return err
	}
	out, err := os.Create(base + ".pb.gz")
	if err != nil {
		_ = script.Process.Kill()
		_ = script.Wait()
		return err
	}
	convErr := perfToPprof(pipe, out)
	waitErr := script.Wait()
	return errors.Join(convErr, waitErr, out.Close())
}
