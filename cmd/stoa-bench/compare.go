package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// comparison is one shape run against both servers; it is one element of
// the JSON list that `make bench BENCH_OUT=FILE` writes. Ratios are
// Stoa/LiveKit; 0 where LiveKit's figure is 0.
type comparison struct {
	Shape   string  `json:"shape"`
	Sizes   string  `json:"sizes"`
	Stoa    *result `json:"stoa"`
	LiveKit *result `json:"livekit"`

	CPUPerPacketRatio      float64 `json:"cpu_per_packet_ratio"`
	ServerCPURatio         float64 `json:"server_cpu_ratio"`
	PacketsPerSecondRatio  float64 `json:"packets_per_second_ratio"`
	DelayP50Ratio          float64 `json:"delay_p50_ratio"`
	DelayP99Ratio          float64 `json:"delay_p99_ratio"`
	RSSRatio               float64 `json:"rss_mb_ratio"`
	RSSPerParticipantRatio float64 `json:"rss_per_participant_ratio"`
	JoinP99Ratio           float64 `json:"join_p99_ratio"`
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func (c *comparison) fillRatios() {
	s, l := c.Stoa, c.LiveKit
	if s == nil || l == nil {
		return
	}
	c.CPUPerPacketRatio = ratio(s.CPUUsPerPacket, l.CPUUsPerPacket)
	c.ServerCPURatio = ratio(s.ServerCPUPercent, l.ServerCPUPercent)
	c.PacketsPerSecondRatio = ratio(s.PacketsPerSecond, l.PacketsPerSecond)
	c.DelayP50Ratio = ratio(s.DelayP50Ms, l.DelayP50Ms)
	c.DelayP99Ratio = ratio(s.DelayP99Ms, l.DelayP99Ms)
	c.RSSRatio = ratio(s.RSSMB, l.RSSMB)
	c.RSSPerParticipantRatio = ratio(s.RSSPerParticipantKB, l.RSSPerParticipantKB)
	c.JoinP99Ratio = ratio(s.JoinP99Ms, l.JoinP99Ms)
}

type compareConfig struct {
	stoaBin, livekitBin string
	shapes              []string
	run                 runConfig // template: durations, join rate
	markdown, jsonOut   string
	workDir             string
	profileShape        string
	profileDir          string
	profileFor          time.Duration
	pause               time.Duration
	command             string
	progress            io.Writer
	pin                 bool
	cpus                *cpuSplit // nil when not pinned
	pinNote             string    // why not, when pin was asked for
}

func compareCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c compareConfig
	fs.StringVar(&c.stoaBin, "stoa", "bin/bench/stoa", "Stoa `binary`")
	fs.StringVar(&c.livekitBin, "livekit", "", "livekit-server `binary` (go install github.com/livekit/livekit-server/cmd/server@v1.9.11)")
	shapes := fs.String("shapes", "meeting:4x20,webinar:1x200,audio:20x20", "comma-separated `shapes`, each shape[:PUBLISHERSxSUBSCRIBERS]")
	fs.DurationVar(&c.run.Warmup, "warmup", 3*time.Second, "media time before measuring")
	fs.DurationVar(&c.run.Duration, "duration", 20*time.Second, "measurement window of each run")
	fs.DurationVar(&c.run.Settle, "settle-timeout", 15*time.Second, "longest wait for every stream to arrive at its layer")
	fs.Float64Var(&c.run.JoinRate, "join-rate", 25, "participants joining per second")
	fs.StringVar(&c.markdown, "markdown", "", "write the comparison as Markdown to `file`")
	fs.StringVar(&c.jsonOut, "json", "", "write the comparison as JSON to `file`")
	fs.StringVar(&c.workDir, "work", "", "`directory` for server configs and logs (default: a new temporary directory)")
	fs.StringVar(&c.profileShape, "profile", shapeWebinar, "profile both servers with perf after this `shape`'s window (\"\" for none)")
	fs.StringVar(&c.profileDir, "profile-dir", "", "`directory` for the profiles (default: the work directory)")
	fs.DurationVar(&c.profileFor, "profile-duration", 10*time.Second, "length of each profile")
	fs.DurationVar(&c.pause, "pause", 3*time.Second, "idle time between runs, so one server's teardown does not load the next")
	fs.StringVar(&c.command, "command", "", "the command line to print in the Markdown (default: this one)")
	fs.BoolVar(&c.run.Verbose, "v", false, "log pion warnings")
	fs.BoolVar(&c.run.Burst, "burst", false, "publishers send each frame's packets back to back, unpaced")
	fs.BoolVar(&c.pin, "pin", true, "run the generator and the servers on separate CPUs (half each; needs two)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if c.livekitBin == "" {
		return usagef("compare: --livekit is required")
	}
	for _, b := range []string{c.stoaBin, c.livekitBin} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("compare: %w", err)
		}
	}
	c.shapes = strings.Split(*shapes, ",")
	for _, s := range c.shapes {
		if _, _, err := parseShapeSpec(s); err != nil {
			return err
		}
	}
	if c.command == "" {
		c.command = "stoa-bench compare " + strings.Join(args, " ")
	}
	if c.workDir == "" {
		d, err := os.MkdirTemp("", "stoa-bench-")
		if err != nil {
			return err
		}
		c.workDir = d
	} else if err := os.MkdirAll(c.workDir, 0o755); err != nil {
		return err
	}
	// Servers run in the work directory: give them absolute paths.
	if abs, err := filepath.Abs(c.workDir); err == nil {
		c.workDir = abs
	}
	if c.profileDir == "" {
		c.profileDir = c.workDir
	} else if err := os.MkdirAll(c.profileDir, 0o755); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "stoa-bench: server configs and logs in %s\n", c.workDir)
	if c.pin {
		c.pinCPUs()
		if c.cpus != nil {
			fmt.Fprintf(stderr, "stoa-bench: %s\n", c.cpus.describe())
		} else {
			fmt.Fprintf(stderr, "stoa-bench: not pinned: %s\n", c.pinNote)
		}
	}

	started := time.Now()
	c.progress = stderr
	comps, err := compare(ctx, &c)
	if len(comps) == 0 {
		return err
	}
	writeComparisonTable(stdout, comps)
	if c.markdown != "" {
		md := comparisonMarkdown(&c, comps, started)
		if werr := os.WriteFile(c.markdown, []byte(md), 0o644); werr != nil {
			err = errors.Join(err, werr)
		}
	}
	if c.jsonOut != "" {
		err = errors.Join(err, writeJSON(c.jsonOut, stdout, comps))
	}
	return err
}

// pinCPUs moves the generator onto its half of the CPUs and keeps the
// other half for the servers, or says in pinNote why it cannot.
func (c *compareConfig) pinCPUs() {
	cpus, err := allowedCPUs()
	if err != nil {
		c.pinNote = err.Error()
		return
	}
	split, ok := splitCPUs(cpus)
	if !ok {
		c.pinNote = fmt.Sprintf("%d CPU available", len(cpus))
		return
	}
	if err := pinSelf(split.generator); err != nil {
		// Some threads may have moved: put them all back.
		_ = pinSelf(cpus)
		c.pinNote = err.Error()
		return
	}
	c.cpus = &split
}

// compare runs every shape against both servers, alternating which goes
// first so that slow drift in the machine's load favours neither. Each run
// gets a freshly started server, stopped by its PID afterwards.
func compare(ctx context.Context, c *compareConfig) ([]*comparison, error) {
	var out []*comparison
	for i, spec := range c.shapes {
		name, sz, _ := parseShapeSpec(spec)
		comp := &comparison{Shape: name, Sizes: sizeLabel(name, sz)}
		order := []string{"stoa", "livekit"}
		if i%2 == 1 {
			order = []string{"livekit", "stoa"}
		}
		for _, server := range order {
			res, err := compareRun(ctx, c, server, name, sz, i)
			if err != nil {
				return out, fmt.Errorf("%s %s: %w", server, spec, err)
			}
			if server == "stoa" {
				comp.Stoa = res
			} else {
				comp.LiveKit = res
			}
			if err := sleep(ctx, c.pause); err != nil {
				return out, err
			}
		}
		comp.fillRatios()
		out = append(out, comp)
	}
	return out, nil
}

func sizeLabel(shape string, sz sizes) string {
	if shape == shapeAudio {
		return fmt.Sprintf("%dx%d", sz.Audio, sz.Subscribers)
	}
	return fmt.Sprintf("%dx%d", sz.Video, sz.Subscribers)
}

func compareRun(ctx context.Context, c *compareConfig, server, shape string, sz sizes, i int) (*result, error) {
	bin := c.stoaBin
	if server == "livekit" {
		bin = c.livekitBin
	}
	tag := fmt.Sprintf("%d-%s", i+1, shape)
	srv, err := startServer(ctx, server, bin, c.workDir, tag, c.cpus)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	// Let the server finish starting (LiveKit measures its CPU load at
	// start) before the idle RSS is read.
	if err := sleep(ctx, time.Second); err != nil {
		return nil, err
	}
	cfg := c.run
	cfg.URL = srv.url
	cfg.APIKey, cfg.APISecret = "devkey", "secret"
	cfg.Shape = shape
	cfg.Sizes = sz
	cfg.ServerPID = srv.pid()
	cfg.ServerName = server
	if shape == c.profileShape {
		base := filepath.Join(c.profileDir, shape+"-"+server)
		cfg.AfterWindow = func(ctx context.Context) error {
			return profileServer(ctx, srv.pid(), c.profileFor, base)
		}
	}
	res, err := runBench(ctx, &cfg, c.progress)
	if err != nil {
		return nil, err
	}
	if c.cpus != nil {
		res.ServerCPUs, res.GeneratorCPUs = cpuList(c.cpus.server), cpuList(c.cpus.generator)
	}
	select {
	case <-srv.done:
		res.Notes = append(res.Notes, fmt.Sprintf("server exited during the run (%v); see %s", srv.err, srv.log))
	default:
	}
	return res, nil
}

// writeComparisonTable prints every shape's figures side by side.
func writeComparisonTable(w io.Writer, comps []*comparison) {
	var rs []*result
	for _, c := range comps {
		if c.Stoa != nil {
			rs = append(rs, c.Stoa)
		}
		if c.LiveKit != nil {
			rs = append(rs, c.LiveKit)
		}
	}
	writeTable(w, rs)
	fmt.Fprintln(w)
	for _, c := range comps {
		fmt.Fprintf(w, "%s %s: CPU per packet Stoa/LiveKit = %.2f\n", c.Shape, c.Sizes, c.CPUPerPacketRatio)
	}
}

// comparisonMarkdown renders deploy/bench/RESULTS.md.
func comparisonMarkdown(c *compareConfig, comps []*comparison, started time.Time) string {
	var b strings.Builder
	b.WriteString("# Stoa and livekit-server on one machine\n\n")
	b.WriteString("Written by `make bench` (`stoa-bench compare`); do not edit by hand.\n\n")
	fmt.Fprintf(&b, "- Run: %s, %s.\n", started.UTC().Format("2006-01-02 15:04 MST"), time.Since(started).Round(time.Second))
	fmt.Fprintf(&b, "- Machine: %s, %d cores, Linux %s, %s.\n", cpuModel(), runtime.NumCPU(), kernel(), runtime.Version())
	fmt.Fprintf(&b, "- Servers: Stoa `%s` (%s); livekit-server `%s`.\n",
		serverVersion(c.stoaBin, "version"), gitDescribe(), serverVersion(c.livekitBin, "--version"))
	fmt.Fprintf(&b, "- Command: `%s`.\n", c.command)
	switch {
	case c.cpus != nil:
		fmt.Fprintf(&b, "- CPUs: %s (`--pin`), as if the clients were on another machine; both servers get the same.\n", c.cpus.describe())
	case c.pin:
		fmt.Fprintf(&b, "- CPUs: shared by the servers and the generator (not pinned: %s).\n", c.pinNote)
	default:
		b.WriteString("- CPUs: shared by the servers and the generator (`--pin=false`).\n")
	}
	fmt.Fprintf(&b, "- Each run: a fresh server with every socket on 127.0.0.1 (configs below), participants joining at %.0f/s, "+
		"%v warm-up once every stream flows at its layer, then a %v window. Shapes alternate which server goes first.\n\n",
		c.run.JoinRate, c.run.Warmup, c.run.Duration)
	b.WriteString("Figures are over the window. *Forwarded* counts what subscribers received. *CPU per forwarded packet* is the " +
		"server's user+system time (`/proc/PID/stat`) divided by the packets subscribers received, so it includes receiving " +
		"from publishers, RTCP and signalling. *Delay through the SFU* is one-way, from the publisher's write to the kernel's " +
		"receive time of the datagram on the subscriber's socket (`SO_TIMESTAMPNS`, the same clock): it covers the publisher's " +
		"SRTP and send, the server, and the loopback path of both hops, and none of the generator's receive path. " +
		"*Delay to the generator's read* runs to the subscriber's read of the same packet after pion decrypted it; the gap " +
		"between the two is the generator queueing its own reads. Without kernel receive times the first figure is the " +
		"second, and a note says so. *Loss* counts sequence numbers the SFU sent that never " +
		"arrived (subscribers send no NACKs). *RSS per participant* is (RSS − idle RSS) / participants. *Other load* is CPU " +
		"used by processes other than the server and the generator (noise).\n\n")
	if c.run.Burst {
		b.WriteString("Publishers wrote each frame's packets back to back (`--burst`).\n\n")
	} else {
		b.WriteString("Publishers pace each frame's packets as a browser does (libwebrtc's pacing factor 2.5 over the three " +
			"layers' 2.75 Mbit/s: a 1,100-byte packet every 1.3 ms); `--burst` writes them back to back.\n\n")
	}
	for _, cp := range comps {
		fmt.Fprintf(&b, "## %s %s\n\n", cp.Shape, cp.Sizes)
		if cp.Stoa != nil {
			fmt.Fprintf(&b, "Video publishers: %d, audio publishers: %d, subscribers: %d.\n\n",
				cp.Stoa.VideoPublishers, cp.Stoa.AudioPublishers, cp.Stoa.Subscribers)
		}
		b.WriteString("| figure | Stoa | LiveKit | Stoa/LiveKit |\n|---|---:|---:|---:|\n")
		for _, rw := range figureRows() {
			sv, lv, rv := "–", "–", ""
			if cp.Stoa != nil {
				sv = rw.value(cp.Stoa)
			}
			if cp.LiveKit != nil {
				lv = rw.value(cp.LiveKit)
			}
			if rw.ratio && cp.Stoa != nil && cp.LiveKit != nil {
				if r := ratio(rw.get(cp.Stoa), rw.get(cp.LiveKit)); r != 0 {
					rv = fmt.Sprintf("%.2f", r)
				}
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", strings.TrimSpace(rw.label), sv, lv, rv)
		}
		b.WriteString("\n")
		for _, r := range []*result{cp.Stoa, cp.LiveKit} {
			if r == nil {
				continue
			}
			for _, k := range r.ErrorKinds {
				fmt.Fprintf(&b, "- %s error: %s\n", r.Server, k)
			}
			for _, n := range r.Notes {
				fmt.Fprintf(&b, "- %s note: %s\n", r.Server, n)
			}
		}
		b.WriteString("\n")
	}
	b.WriteString("## Server configurations\n\nStoa: `stoa serve --dev --config stoa.yaml`\n\n```yaml\n")
	b.WriteString(stoaConfig(7880, 7882))
	b.WriteString("```\n\nLiveKit: `livekit-server --dev --bind 127.0.0.1 --node-ip 127.0.0.1 --config livekit.yaml`\n\n```yaml\n")
	b.WriteString(livekitConfig(7880, 7882))
	b.WriteString("```\n\nPorts are picked free for each run; the ones above are examples.\n")
	return b.String()
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

func gitDescribe() string {
	out, err := exec.Command("git", "describe", "--always", "--dirty").Output()
	if err != nil {
		return "commit unknown"
	}
	return "commit " + strings.TrimSpace(string(out))
}
