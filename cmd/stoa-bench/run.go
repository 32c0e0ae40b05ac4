package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"sync"
	"time"
)

// runConfig is one run of the generator against one server.
type runConfig struct {
	URL       string
	APIKey    string
	APISecret string
	Room      string
	Shape     string
	Sizes     sizes
	// Warmup is how long media flows, after every participant joined and
	// every stream arrived at its layer, before the measurement starts.
	Warmup time.Duration
	// Duration is the measurement window.
	Duration time.Duration
	// Settle bounds the wait for every stream to arrive at its layer.
	Settle time.Duration
	// JoinRate is how many participants start joining per second.
	JoinRate float64
	// ServerPID, if not 0, is the server process to read CPU and memory of.
	ServerPID  int
	ServerName string
	NACK       bool
	// Burst makes publishers write each frame's packets back to back
	// instead of pacing them as browsers do.
	Burst   bool
	Verbose bool
	// AfterWindow, if not nil, runs after the measurement window while the
	// load continues (compare takes profiles there).
	AfterWindow func(ctx context.Context) error
}

func runCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := runConfig{}
	fs.StringVar(&cfg.URL, "url", "ws://127.0.0.1:7880", "server `URL`")
	fs.StringVar(&cfg.APIKey, "api-key", "devkey", "API `key` to sign tokens with")
	fs.StringVar(&cfg.APISecret, "api-secret", "secret", "API `secret`")
	fs.StringVar(&cfg.Room, "room", "", "room `name` (default: bench-SHAPE-RANDOM)")
	fs.StringVar(&cfg.Shape, "shape", shapeWebinar, "`shape`: meeting, webinar or audio")
	video := fs.Int("video-publishers", -1, "video publishers (simulcast VP8 + Opus); default from the shape")
	audio := fs.Int("audio-publishers", -1, "audio-only publishers; default from the shape")
	subs := fs.Int("subscribers", -1, "subscribe-only participants; default from the shape")
	pubsSub := fs.String("publishers-subscribe", "", "`true|false`: publishers also subscribe (default: true for meeting)")
	fs.DurationVar(&cfg.Warmup, "warmup", 3*time.Second, "media time before measuring")
	fs.DurationVar(&cfg.Duration, "duration", 20*time.Second, "measurement window")
	fs.DurationVar(&cfg.Settle, "settle-timeout", 20*time.Second, "longest wait for every stream to arrive at its layer")
	fs.Float64Var(&cfg.JoinRate, "join-rate", 25, "participants joining per second")
	fs.IntVar(&cfg.ServerPID, "server-pid", 0, "`pid` of the server when it runs on this machine: CPU per packet and memory")
	fs.StringVar(&cfg.ServerName, "server-name", "", "label for the report")
	fs.BoolVar(&cfg.NACK, "nack", false, "subscribers send NACKs (loss is then repaired, not counted)")
	fs.BoolVar(&cfg.Burst, "burst", false, "publishers send each frame's packets back to back, unpaced")
	fs.BoolVar(&cfg.Verbose, "v", false, "log pion warnings")
	jsonOut := fs.String("json", "", "write the result as JSON to `file` (- for stdout)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	sz, err := defaultSizes(cfg.Shape)
	if err != nil {
		return err
	}
	if *video >= 0 {
		sz.Video = *video
	}
	if *audio >= 0 {
		sz.Audio = *audio
	}
	if *subs >= 0 {
		sz.Subscribers = *subs
	}
	switch *pubsSub {
	case "":
	case "true":
		sz.PubsSub = true
	case "false":
		sz.PubsSub = false
	default:
		return usagef("run: --publishers-subscribe wants true or false")
	}
	cfg.Sizes = sz
	res, err := runBench(ctx, &cfg, stderr)
	if err != nil {
		return err
	}
	writeTable(stdout, []*result{res})
	if *jsonOut != "" {
		return writeJSON(*jsonOut, stdout, res)
	}
	return nil
}

// runBench joins the participants of cfg, measures, and leaves. progress
// gets a status line every second.
func runBench(ctx context.Context, cfg *runConfig, progress io.Writer) (*result, error) {
	// The generator's garbage is pion's per-packet buffers; collecting less
	// often keeps its CPU for the media.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	if cfg.Room == "" {
		cfg.Room = fmt.Sprintf("bench-%s-%06d", cfg.Shape, rand.IntN(1000000))
	}
	specs, err := plan(cfg.Shape, cfg.Sizes)
	if err != nil {
		return nil, err
	}
	rec := newRecorder()
	pubAPI, subAPI, err := newAPIs(cfg.NACK, cfg.Verbose, progress, rec.rxUnavailable)
	if err != nil {
		return nil, err
	}
	e := &env{cfg: cfg, pubAPI: pubAPI, subAPI: subAPI, rec: rec}
	var expected int
	for _, s := range specs {
		expected += expectedStreams(s, cfg.Sizes)
	}
	res := &result{
		Server: cfg.ServerName, Shape: cfg.Shape, URL: cfg.URL, Room: cfg.Room,
		VideoPublishers: cfg.Sizes.Video, AudioPublishers: cfg.Sizes.Audio, Subscribers: cfg.Sizes.Subscribers,
		Participants: len(specs), StreamsExpected: expected,
	}
	if cfg.ServerPID > 0 {
		rss, err := procRSS(cfg.ServerPID)
		if err != nil {
			return nil, fmt.Errorf("server pid %d: %w", cfg.ServerPID, err)
		}
		res.RSSIdleMB = mb(rss)
	}
	pr := newProgress(progress, e, cfg, len(specs), expected)
	prCtx, stopProgress := context.WithCancel(ctx)
	var prWG sync.WaitGroup
	prWG.Add(1)
	go func() { defer prWG.Done(); pr.loop(prCtx) }()
	defer func() { stopProgress(); prWG.Wait() }()

	parts := make([]*participant, 0, len(specs))
	defer func() { leaveAll(parts) }()

	// Publishers first: subscribers should join a room whose tracks flow.
	var pubs, rest []spec
	for _, s := range specs {
		if s.publishes() {
			pubs = append(pubs, s)
		} else {
			rest = append(rest, s)
		}
	}
	pr.setPhase("join")
	for _, group := range [][]spec{pubs, rest} {
		joined, err := joinAll(ctx, e, group, cfg.JoinRate)
		parts = append(parts, joined...)
		if err != nil {
			return nil, err
		}
	}
	res.Joined = len(e.rec.joins)

	pr.setPhase("settle")
	settleStart := time.Now()
	if err := waitSettled(ctx, e, expected, cfg.Settle); err != nil {
		return nil, err
	}
	res.SettleS = time.Since(settleStart).Seconds()
	pr.setPhase("warmup")
	if err := sleep(ctx, cfg.Warmup); err != nil {
		return nil, err
	}

	pr.setPhase("measure")
	w0 := takeWindow(e, cfg.ServerPID)
	if err := sleep(ctx, cfg.Duration); err != nil {
		return nil, err
	}
	w1 := takeWindow(e, cfg.ServerPID)
	res.fill(w0, w1)
	e.rec.mu.Lock()
	rxErr := e.rec.rxErr
	e.rec.mu.Unlock()
	res.addNotes(runtime.NumCPU(), rxErr)
	if cfg.ServerPID > 0 {
		if rss, err := procRSS(cfg.ServerPID); err == nil {
			res.RSSMB = mb(rss)
			res.RSSPerParticipantKB = (mb(rss) - res.RSSIdleMB) * 1024 / float64(max(res.Joined, 1))
		}
	}
	if cfg.AfterWindow != nil {
		pr.setPhase("profile")
		if err := cfg.AfterWindow(ctx); err != nil {
			res.Notes = append(res.Notes, "profile: "+err.Error())
		}
	}
	pr.setPhase("leave")
	stopProgress()
	prWG.Wait()
	e.rec.mu.Lock()
	res.JoinP50Ms = durationQuantile(e.rec.joins, 0.5)
	res.JoinP99Ms = durationQuantile(e.rec.joins, 0.99)
	e.rec.mu.Unlock()
	res.Errors, res.ErrorKinds = e.rec.errorsSummary()
	return res, nil
}

func mb(b uint64) float64 { return float64(b) / (1 << 20) }

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// joinAll joins group at rate participants per second, each on its own
// goroutine, and waits for all. Failed joins are recorded and closed; the
// error is only for a cancelled run.
func joinAll(ctx context.Context, e *env, group []spec, rate float64) ([]*participant, error) {
	interval := time.Duration(float64(time.Second) / max(rate, 0.1))
	var mu sync.Mutex
	var joined []*participant
	var wg sync.WaitGroup
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i, s := range group {
		if i > 0 {
			select {
			case <-tick.C:
			case <-ctx.Done():
				wg.Wait()
				return joined, ctx.Err()
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := newParticipant(e, s)
			if s.publishes() {
				e.rec.addPublisher(&p.counters)
			}
			e.rec.addRxTable(p.rx)
			d, err := p.join(ctx)
			if err != nil {
				e.rec.fail("join: " + errorClass(err))
				p.close()
				return
			}
			e.rec.joined(d)
			mu.Lock()
			joined = append(joined, p)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return joined, ctx.Err()
}

// leaveAll closes participants, a few at a time: closing hundreds of
// PeerConnections at once makes both sides' timers fire together.
func leaveAll(parts []*participant) {
	sem := make(chan struct{}, 16) // closes in flight
	var wg sync.WaitGroup
	for _, p := range parts {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.close()
			<-sem
		}()
	}
	wg.Wait()
}

// waitSettled waits until every expected stream has started and, over the
// last half second, at least 99% of video packets were of the layer asked
// for; or until timeout, which is not an error (the report shows what is
// missing).
func waitSettled(ctx context.Context, e *env, expected int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var prevRight, prevWrong uint64
	for time.Now().Before(deadline) {
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
		var started int
		var right, wrong uint64
		for _, s := range e.rec.allStreams() {
			sn := s.snap()
			if sn.started {
				started++
			}
			right += sn.right
			wrong += sn.wrong
		}
		dr, dw := right-prevRight, wrong-prevWrong
		prevRight, prevWrong = right, wrong
		if started >= expected && dw*100 <= (dr+dw) {
			return nil
		}
	}
	return nil
}

// window is a snapshot of every counter at one instant.
type window struct {
	cpu       cpuSample
	streams   map[*stream]streamSnap
	delay     *counts
	readDelay *counts
	rxDrops   uint64 // datagrams the subscribers' sockets dropped
	sent      uint64
	skipped   uint64
	keys      uint64
	plis      uint64
	sendErr   uint64
}

func takeWindow(e *env, serverPID int) window {
	w := window{streams: map[*stream]streamSnap{}, delay: new(counts), readDelay: new(counts)}
	for _, s := range e.rec.allStreams() {
		w.streams[s] = s.snap()
		w.delay.add(&s.delay)
		w.readDelay.add(&s.readDelay)
	}
	e.rec.mu.Lock()
	for _, t := range e.rec.tables {
		w.rxDrops += uint64(t.drops.Load())
	}
	for _, c := range e.rec.pubs {
		w.sent += c.packets.Load()
		w.skipped += c.skipped.Load()
		w.keys += c.keys.Load()
		w.plis += c.plis.Load()
		w.sendErr += c.errors.Load()
	}
	e.rec.mu.Unlock()
	w.cpu = sampleCPU(serverPID)
	return w
}
