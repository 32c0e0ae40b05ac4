package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// result is what one run measured. Rates are over the measurement window;
// CPU figures are in percent of one core.
type result struct {
	Server          string `json:"server,omitempty"`
	Shape           string `json:"shape"`
	URL             string `json:"url"`
	Room            string `json:"room"`
	VideoPublishers int    `json:"video_publishers"`
	AudioPublishers int    `json:"audio_publishers"`
	Subscribers     int    `json:"subscribers"`
	Participants    int    `json:"participants"`
	Joined          int    `json:"joined"`

	StreamsExpected  int     `json:"streams_expected"`
	StreamsReceiving int     `json:"streams_receiving"` // streams that got packets in the window
	SettleS          float64 `json:"settle_s"`
	DurationS        float64 `json:"duration_s"`

	PacketsPerSecond        float64 `json:"packets_per_second"`         // received by subscribers
	MbitPerSecond           float64 `json:"mbit_per_second"`            // received by subscribers
	PaddingPacketsPerSecond float64 `json:"padding_packets_per_second"` // of those, without our trailer (SFU padding, probes)
	SentPacketsPerSecond    float64 `json:"sent_packets_per_second"`    // by publishers
	SkippedFrames           uint64  `json:"skipped_frames"`             // publishers' frames not sent: the generator fell behind
	KeyframeRequests        uint64  `json:"keyframe_requests"`          // PLIs and FIRs publishers received
	Keyframes               uint64  `json:"keyframes"`                  // keyframes publishers sent (one per layer)
	SendErrors              uint64  `json:"send_errors"`                // publishers' failed writes
	LossPercent             float64 `json:"loss_percent"`
	LostPackets             int64   `json:"lost_packets"`
	DelayP50Ms              float64 `json:"delay_p50_ms"` // publisher's write to the kernel's receive on the subscriber's socket (DelaySource)
	DelayP99Ms              float64 `json:"delay_p99_ms"`
	DelayP999Ms             float64 `json:"delay_p999_ms"`
	DelaySource             string  `json:"delay_source"`      // delayKernel, or delayRead when the kernel gave no receive times
	KernelRxPercent         float64 `json:"kernel_rx_percent"` // stamped packets whose kernel receive time was found
	ReadDelayP50Ms          float64 `json:"read_delay_p50_ms"` // publisher's write to the subscriber's read in the generator, its receive path included
	ReadDelayP99Ms          float64 `json:"read_delay_p99_ms"`
	ReadDelayP999Ms         float64 `json:"read_delay_p999_ms"`
	GeneratorDrops          uint64  `json:"generator_socket_drops"` // datagrams the subscribers' sockets dropped, their buffer full
	JoinP50Ms               float64 `json:"join_p50_ms"`
	JoinP99Ms               float64 `json:"join_p99_ms"`
	WrongLayerPercent       float64 `json:"wrong_layer_percent"` // video packets not of the layer asked for
	LayerSwitches           uint64  `json:"layer_switches"`
	BadSwitches             uint64  `json:"bad_switches"` // switches not at a keyframe

	CPUUsPerPacket      float64 `json:"cpu_us_per_packet"`  // server CPU per packet received by subscribers
	ServerCPUPercent    float64 `json:"server_cpu_percent"` // of one core
	RSSMB               float64 `json:"rss_mb"`
	RSSIdleMB           float64 `json:"rss_idle_mb"`
	RSSPerParticipantKB float64 `json:"rss_per_participant_kb"` // (rss - idle rss) / participants
	GeneratorCPUPercent float64 `json:"generator_cpu_percent"`
	ServerCPUs          string  `json:"server_cpus,omitempty"`    // the CPUs the server was pinned to (compare --pin)
	GeneratorCPUs       string  `json:"generator_cpus,omitempty"` // and the generator's
	MachineBusyPercent  float64 `json:"machine_busy_percent"`     // all cores: 200 is two busy cores
	OtherCPUPercent     float64 `json:"other_cpu_percent"`        // machine busy minus server and generator: noise

	Errors     int      `json:"errors"`
	ErrorKinds []string `json:"error_kinds,omitempty"`
	Notes      []string `json:"notes,omitempty"`
}

// Where delay is measured to.
const (
	delayKernel = "kernel-rx"      // the kernel's receive time on the subscriber's socket
	delayRead   = "generator-read" // the subscriber's read in the generator
)

// label names the run: server and shape.
func (r *result) label() string {
	if r.Server == "" {
		return r.Shape
	}
	return r.Server + " " + r.Shape
}

// fill computes the window's figures from two snapshots.
func (r *result) fill(a, b window) {
	dt := b.cpu.at.Sub(a.cpu.at).Seconds()
	r.DurationS = dt
	var pkts, bytes, unstamped, right, wrong, sw, bad, noRx uint64
	var lostN, expected int64
	for s, sb := range b.streams {
		sa := a.streams[s] // zero if the stream started during the window
		if sb.packets > sa.packets {
			r.StreamsReceiving++
		}
		pkts += sb.packets - sa.packets
		bytes += sb.bytes - sa.bytes
		unstamped += sb.unstamped - sa.unstamped
		right += sb.right - sa.right
		wrong += sb.wrong - sa.wrong
		sw += sb.switches - sa.switches
		bad += sb.badSwitch - sa.badSwitch
		noRx += sb.noRxTime - sa.noRxTime
		l := lost(sa, sb)
		lostN += l
		expected += int64(sb.packets-sa.packets) + l
	}
	r.PacketsPerSecond = float64(pkts) / dt
	r.MbitPerSecond = float64(bytes) * 8 / dt / 1e6
	r.PaddingPacketsPerSecond = float64(unstamped) / dt
	r.SentPacketsPerSecond = float64(b.sent-a.sent) / dt
	r.SkippedFrames = b.skipped - a.skipped
	r.KeyframeRequests = b.plis - a.plis
	r.Keyframes = b.keys - a.keys
	r.SendErrors = b.sendErr - a.sendErr
	r.LostPackets = lostN
	if expected > 0 {
		r.LossPercent = 100 * float64(lostN) / float64(expected)
	}
	if right+wrong > 0 {
		r.WrongLayerPercent = 100 * float64(wrong) / float64(right+wrong)
	}
	r.LayerSwitches, r.BadSwitches = sw, bad
	rd := b.readDelay.sub(a.readDelay)
	r.ReadDelayP50Ms = rd.quantile(0.5)
	r.ReadDelayP99Ms = rd.quantile(0.99)
	r.ReadDelayP999Ms = rd.quantile(0.999)
	d := b.delay.sub(a.delay)
	withRx := d.total()
	if withRx+noRx > 0 {
		r.KernelRxPercent = 100 * float64(withRx) / float64(withRx+noRx)
	}
	r.DelaySource = delayKernel
	if withRx == 0 {
		r.DelaySource, d = delayRead, rd
	}
	r.DelayP50Ms = d.quantile(0.5)
	r.DelayP99Ms = d.quantile(0.99)
	r.DelayP999Ms = d.quantile(0.999)
	r.GeneratorDrops = b.rxDrops - a.rxDrops

	server := (b.cpu.server - a.cpu.server).Seconds()
	gen := (b.cpu.generator - a.cpu.generator).Seconds()
	busy := b.cpu.busySince(a.cpu).Seconds()
	r.ServerCPUPercent = 100 * server / dt
	r.GeneratorCPUPercent = 100 * gen / dt
	r.MachineBusyPercent = 100 * busy / dt
	r.OtherCPUPercent = math.Max(0, r.MachineBusyPercent-r.ServerCPUPercent-r.GeneratorCPUPercent)
	if pkts > 0 && b.cpu.server > 0 {
		r.CPUUsPerPacket = server * 1e6 / float64(pkts)
	}
}

// noisyOther is how much CPU other processes may use during a window, in
// percent of a core, before the result is marked noisy.
const noisyOther = 25

// addNotes flags windows whose figures mean less than they seem. rxErr is
// why subscriber sockets have no kernel timestamps, if known.
func (r *result) addNotes(cores int, rxErr string) {
	if r.OtherCPUPercent > noisyOther {
		r.Notes = append(r.Notes, fmt.Sprintf("noisy: other processes used %.0f%% of a core during the window", r.OtherCPUPercent))
	}
	if busy := r.MachineBusyPercent; busy > 0.9*float64(100*cores) {
		r.Notes = append(r.Notes, fmt.Sprintf("saturated: the machine was %.0f%% busy (of %d%%); delay and loss measure the machine, not only the server", busy, 100*cores))
	}
	if r.SkippedFrames > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("the generator fell behind and skipped %d frames", r.SkippedFrames))
	}
	switch {
	case r.DelaySource == delayRead && r.ReadDelayP50Ms > 0:
		why := "none arrived"
		if rxErr != "" {
			why = rxErr
		}
		r.Notes = append(r.Notes, fmt.Sprintf("no kernel receive timestamps (%s): delay is to the generator's read and includes its receive path", why))
	case r.DelaySource == delayKernel && r.KernelRxPercent < 99:
		r.Notes = append(r.Notes, fmt.Sprintf("only %.1f%% of packets had a kernel receive time when read (the generator read the others too late); delay is over those", r.KernelRxPercent))
	}
	if r.GeneratorDrops > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("the generator's sockets dropped %d datagrams; loss includes them", r.GeneratorDrops))
	}
	if r.StreamsReceiving < r.StreamsExpected {
		r.Notes = append(r.Notes, fmt.Sprintf("%d of %d streams received nothing in the window", r.StreamsExpected-r.StreamsReceiving, r.StreamsExpected))
	}
}

// row is one line of the figures table: a label and how to read the
// figure from a result.
type row struct {
	label  string
	format string
	get    func(*result) float64
	// ratio says whether a Stoa/LiveKit ratio means something for the row.
	ratio bool
}

// figureRows are the figures every report shows, in order.
func figureRows() []row {
	return []row{
		{"CPU per forwarded packet (µs)", "%.2f", func(r *result) float64 { return r.CPUUsPerPacket }, true},
		{"packets forwarded /s", "%.0f", func(r *result) float64 { return r.PacketsPerSecond }, true},
		{"Mbit/s forwarded", "%.1f", func(r *result) float64 { return r.MbitPerSecond }, true},
		{"  of which padding packets /s", "%.0f", func(r *result) float64 { return r.PaddingPacketsPerSecond }, false},
		{"server CPU (% of a core)", "%.1f", func(r *result) float64 { return r.ServerCPUPercent }, true},
		{"loss (%)", "%.3f", func(r *result) float64 { return r.LossPercent }, false},
		{"delay through the SFU p50 (ms)", "%.2f", func(r *result) float64 { return r.DelayP50Ms }, true},
		{"delay through the SFU p99 (ms)", "%.2f", func(r *result) float64 { return r.DelayP99Ms }, true},
		{"delay to the generator's read p50 (ms)", "%.2f", func(r *result) float64 { return r.ReadDelayP50Ms }, false},
		{"delay to the generator's read p99 (ms)", "%.2f", func(r *result) float64 { return r.ReadDelayP99Ms }, false},
		{"join p50 (ms)", "%.0f", func(r *result) float64 { return r.JoinP50Ms }, true},
		{"join p99 (ms)", "%.0f", func(r *result) float64 { return r.JoinP99Ms }, true},
		{"server RSS (MB)", "%.1f", func(r *result) float64 { return r.RSSMB }, true},
		{"RSS per participant (KB)", "%.0f", func(r *result) float64 { return r.RSSPerParticipantKB }, true},
		{"wrong layer (% of video)", "%.2f", func(r *result) float64 { return r.WrongLayerPercent }, false},
		{"switches not at a keyframe", "%.0f", func(r *result) float64 { return float64(r.BadSwitches) }, false},
		{"keyframe requests to publishers", "%.0f", func(r *result) float64 { return float64(r.KeyframeRequests) }, false},
		{"streams receiving / expected", "", nil, false},
		{"errors", "%.0f", func(r *result) float64 { return float64(r.Errors) }, false},
		{"generator socket drops", "%.0f", func(r *result) float64 { return float64(r.GeneratorDrops) }, false},
		{"generator CPU (% of a core)", "%.1f", func(r *result) float64 { return r.GeneratorCPUPercent }, false},
		{"generator frames skipped", "%.0f", func(r *result) float64 { return float64(r.SkippedFrames) }, false},
		{"other load (% of a core)", "%.1f", func(r *result) float64 { return r.OtherCPUPercent }, false},
	}
}

func (rw row) value(r *result) string {
	if rw.get == nil {
		return fmt.Sprintf("%d / %d", r.StreamsReceiving, r.StreamsExpected)
	}
	return fmt.Sprintf(rw.format, rw.get(r))
}

// writeTable prints results side by side, one column per result.
func writeTable(w io.Writer, rs []*result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t", r.label())
	}
	fmt.Fprintln(tw)
	fmt.Fprint(tw, "participants (video/audio/subscribers)\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%d/%d/%d\t", r.VideoPublishers, r.AudioPublishers, r.Subscribers)
	}
	fmt.Fprintln(tw)
	for _, rw := range figureRows() {
		fmt.Fprintf(tw, "%s\t", rw.label)
		for _, r := range rs {
			fmt.Fprintf(tw, "%s\t", rw.value(r))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	for _, r := range rs {
		for _, k := range r.ErrorKinds {
			fmt.Fprintf(w, "error (%s): %s\n", r.label(), k)
		}
		for _, n := range r.Notes {
			fmt.Fprintf(w, "note (%s): %s\n", r.label(), n)
		}
	}
}

func writeJSON(path string, stdout io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if path == "-" {
		_, err = stdout.Write(b)
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// progress prints a status line every second: phase, joins, packet rate,
// loss and delay over the last second, CPU.
type progress struct {
	w        io.Writer
	e        *env
	cfg      *runConfig
	total    int
	expected int
	tty      bool
	start    time.Time

	mu    sync.Mutex // guards phase
	phase string
}

func newProgress(w io.Writer, e *env, cfg *runConfig, total, expected int) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progress{w: w, e: e, cfg: cfg, total: total, expected: expected, tty: tty, start: time.Now()}
}

func (p *progress) setPhase(s string) {
	p.mu.Lock()
	p.phase = s
	p.mu.Unlock()
}

func (p *progress) loop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	prev := takeWindow(p.e, p.cfg.ServerPID)
	n := 0
	for {
		select {
		case <-ctx.Done():
			if p.tty {
				fmt.Fprintln(p.w)
			}
			return
		case <-t.C:
		}
		cur := takeWindow(p.e, p.cfg.ServerPID)
		var r result
		r.fill(prev, cur)
		prev = cur
		n++
		p.mu.Lock()
		phase := p.phase
		p.mu.Unlock()
		p.e.rec.mu.Lock()
		joined := len(p.e.rec.joins)
		p.e.rec.mu.Unlock()
		errs, _ := p.e.rec.errorsSummary()
		started := 0
		for _, sn := range cur.streams {
			if sn.started {
				started++
			}
		}
		name := p.cfg.ServerName
		if name != "" {
			name += " "
		}
		line := fmt.Sprintf("%s%s %3ds %-7s joined %d/%d streams %d/%d  %6.0f pkt/s %6.1f Mbit/s  loss %.2f%%  delay p50 %.2f p99 %.2f ms (read p99 %.2f)  cpu server %.0f%% gen %.0f%% other %.0f%%  errors %d",
			name, p.cfg.Shape, int(time.Since(p.start).Seconds()), phase, joined, p.total, started, p.expected,
			r.PacketsPerSecond, r.MbitPerSecond, r.LossPercent, r.DelayP50Ms, r.DelayP99Ms, r.ReadDelayP99Ms,
			r.ServerCPUPercent, r.GeneratorCPUPercent, r.OtherCPUPercent, errs)
		if p.tty {
			fmt.Fprintf(p.w, "\r%s\x1b[K", line)
		} else if n%5 == 0 || phase != "measure" {
			fmt.Fprintln(p.w, strings.TrimSpace(line))
		}
	}
}
