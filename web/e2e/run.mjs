#!/usr/bin/env node
// Drives real livekit-client participants in headless Chromium against a
// LiveKit-compatible server and checks that media flows and that a cut
// signalling connection resumes.
//
// Usage:
//   node e2e/run.mjs '<json config>'
//   node e2e/run.mjs config.json
//   node e2e/run.mjs < config.json
//
// Config (only url and tokens, or mint, are required):
//   {
//     "url": "ws://127.0.0.1:7880",        // the server's base URL
//     "tokens": ["<jwt>", "<jwt>", "<jwt>"],// one participant (page) per token, or instead:
//     "mint": {"key": "devkey", "secret": "...", "room": "r1", "identities": ["a", "b", "c"]},
//     "singlePC": [true, true, false],      // singlePeerConnection per page (default true)
//     "names": ["a", "b", "c"],             // labels for logs (default p0, p1, ...)
//     "chromium": "/usr/bin/chromium",
//     "timeoutMs": 90000,                   // whole run, browser start to last check
//     "logLevel": "info",                   // livekit-client log level (console -> stderr)
//     "allowFallback": false,               // accept a singlePeerConnection page that fell back
//                                           // to /rtc (otherwise join fails)
//     "steps": [ ... ]                      // default: DEFAULT_STEPS below
//   }
// Steps, run in order:
//   {"do": "join"}                          open every page; wait until all are connected,
//                                           have published, and see each other
//   {"do": "media"}                         wait until every page decodes video (framesDecoded)
//                                           and receives audio (totalSamplesReceived and
//                                           packetsReceived) from every other page, growing
//                                           between two consecutive samples
//   {"do": "uplink", "minBps": 500000}      wait until every page's own bandwidth estimate for
//                                           its camera (the selected candidate pair's
//                                           availableOutgoingBitrate, which Chromium's send-side
//                                           estimator sets from the server's transport-cc
//                                           feedback) reaches minBps and, of its three simulcast
//                                           layers (q, h, f), h has encoded frames since the step
//                                           began; f is logged, not required (on a loaded 2-core
//                                           machine Chromium may keep it off)
//   {"do": "cut", "page": 0, "method": "offline", "ms": 2500}
//                                           cut page 0's signalling: "offline" = context offline
//                                           (blocks new WebSockets and HTTP, not WebRTC's UDP)
//                                           and the open WebSocket closed from the page, for ms;
//                                           "close" = only close the WebSocket from the page;
//                                           "network" = only context offline: Chromium then keeps
//                                           the open WebSocket but holds back what it receives,
//                                           so the SDK resumes only on the browser's "online"
//                                           event (after a HEAD / that must get a CORS 200) or
//                                           after the ping timeout
//   {"do": "resumed", "page": 0}            wait for SignalReconnecting/Reconnecting then
//                                           Reconnected, never Disconnected; same participant
//                                           sid; the others still see it with that sid and saw
//                                           nobody leave
//   {"do": "sleep", "ms": 1000}
// Every step takes an optional "timeoutMs"; the whole run is bounded by timeoutMs.
//
// Output: progress and the pages' console on stderr; one JSON object on stdout
// ({ok, error, steps, pages, ...}). Exit status 0 when every step passed,
// 1 when a check failed or timed out, 2 for a bad config or a missing file.
// The browser is always closed.

import { createHmac } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CheckError, ConfigError, failureText, printReport, readConfig, watchdog } from '../internal/nodetest/browser.mjs';
import { keepError, launch, serveFiles, watchErrors } from '../internal/nodetest/browser.mjs';
import { log, sleep, started, until, withTimeout } from '../internal/nodetest/browser.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

const DEFAULT_STEPS = [
  { do: 'join' },
  { do: 'media' },
  { do: 'cut', page: 0, method: 'offline', ms: 2500 },
  { do: 'resumed', page: 0 },
  { do: 'media' },
];

const STEP_TIMEOUT_MS = { join: 30_000, media: 30_000, uplink: 45_000, resumed: 30_000 };

// ---------------------------------------------------------------- config

/** Checks the config and fills in its defaults; see the comment at the top. */
function parseConfig(cfg) {
  if (typeof cfg.url !== 'string' || !/^(wss?|https?):\/\//.test(cfg.url)) {
    throw new ConfigError('config.url must be a ws://, wss://, http:// or https:// URL');
  }
  if (cfg.tokens === undefined && cfg.mint) {
    cfg.tokens = mintTokens(cfg.mint);
    cfg.names ??= cfg.mint.identities;
  }
  if (!Array.isArray(cfg.tokens) || cfg.tokens.length === 0 || !cfg.tokens.every((t) => typeof t === 'string' && t)) {
    throw new ConfigError('config.tokens must be a non-empty array of strings (or give config.mint)');
  }
  const n = cfg.tokens.length;
  const singlePC = cfg.singlePC ?? [];
  if (!Array.isArray(singlePC)) throw new ConfigError('config.singlePC must be an array of booleans');
  return {
    url: cfg.url,
    tokens: cfg.tokens,
    singlePC: cfg.tokens.map((_, i) => singlePC[i] !== false),
    names: cfg.tokens.map((_, i) => cfg.names?.[i] ?? `p${i}`),
    chromium: cfg.chromium ?? '/usr/bin/chromium',
    headless: cfg.headless !== false,
    timeoutMs: cfg.timeoutMs ?? 90_000,
    logLevel: cfg.logLevel ?? 'info',
    allowFallback: cfg.allowFallback === true,
    steps: validateSteps(cfg.steps ?? DEFAULT_STEPS, n),
  };
}

/**
 * For runs by hand: HS256 access tokens with a room-join grant, as
 * github.com/livekit/protocol/auth mints them, valid for an hour.
 */
function mintTokens({ key, secret, room, identities }) {
  if (!key || !secret || !room || !Array.isArray(identities) || identities.length === 0) {
    throw new ConfigError('config.mint needs key, secret, room and identities');
  }
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  return identities.map((identity) => {
    const head = b64({ alg: 'HS256', typ: 'JWT' });
    const body = b64({
      iss: key,
      sub: identity,
      name: identity,
      nbf: now - 10,
      exp: now + 3600,
      video: { roomJoin: true, room },
    });
    const sig = createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
    return `${head}.${body}.${sig}`;
  });
}

function validateSteps(steps, n) {
  if (!Array.isArray(steps)) throw new ConfigError('config.steps must be an array');
  for (const s of steps) {
    if (!['join', 'media', 'uplink', 'cut', 'resumed', 'sleep'].includes(s?.do)) {
      throw new ConfigError(`unknown step ${JSON.stringify(s)}`);
    }
    if ((s.do === 'cut' || s.do === 'resumed') && !(Number.isInteger(s.page) && s.page >= 0 && s.page < n)) {
      throw new ConfigError(`step ${JSON.stringify(s)}: page must be an index below ${n}`);
    }
    if (s.do === 'uplink' && s.minBps !== undefined && !(Number.isFinite(s.minBps) && s.minBps > 0)) {
      throw new ConfigError(`step ${JSON.stringify(s)}: minBps must be a positive number`);
    }
    if (s.do === 'cut' && s.method !== undefined && !['offline', 'close', 'network'].includes(s.method)) {
      throw new ConfigError(`step ${JSON.stringify(s)}: method must be offline, close or network`);
    }
  }
  if (steps[0]?.do !== 'join') throw new ConfigError('the first step must be join');
  return steps;
}

/** Serves index.html and the bundle on 127.0.0.1 and nothing else. */
async function servePage() {
  const bundle = path.join(here, 'dist', 'page.js');
  if (!existsSync(bundle)) {
    throw new ConfigError(`${bundle} is missing: build it with "make -C web" (or node web/e2e/build.mjs)`);
  }
  const files = {
    '/': path.join(here, 'index.html'),
    '/dist/page.js': bundle,
    '/dist/page.js.map': `${bundle}.map`,
  };
  return serveFiles((p) => files[p]);
}

// ------------------------------------------------------------------ pages

class Participant {
  constructor(run, index) {
    this.run = run;
    this.index = index;
    this.name = run.cfg.names[index];
    this.single = run.cfg.singlePC[index];
    this.context = undefined;
    this.page = undefined;
    this.lastState = undefined;
    this.lastStats = undefined;
    /** Console errors and uncaught exceptions, newest last (bounded). */
    this.errors = [];
  }

  noteError(text) {
    keepError(this.errors, text, 20, 500);
  }

  async open(browser, origin) {
    const { cfg } = this.run;
    this.context = await browser.newContext({
      permissions: ['camera', 'microphone'],
      viewport: { width: 1100, height: 500 },
    });
    this.page = await this.context.newPage();
    // Errors and warnings carry objects (the SDK's log fields, e.g. the SDP
    // it could not apply); their JSON is logged too. A chain keeps the order.
    let consoleChain = Promise.resolve();
    this.page.on('console', (m) => {
      consoleChain = consoleChain.then(async () => {
        let text = m.text();
        if (m.type() === 'error' || m.type() === 'warning') {
          const objs = [];
          for (const a of m.args()) {
            const v = await withTimeout(a.jsonValue(), 1000, 'console arg').catch(() => undefined);
            if (v && typeof v === 'object') objs.push(JSON.stringify(v));
          }
          if (objs.length) text += ` ${objs.join(' ').slice(0, 20000)}`;
        }
        log(`${this.name} console.${m.type()}: ${text}`);
        if (m.type() === 'error') this.noteError(m.text());
      });
    });
    watchErrors(this.page, this.name, (text) => this.noteError(text));
    await this.page.addInitScript((c) => {
      window.__stoaConfig = c;
    }, {
      url: cfg.url,
      token: cfg.tokens[this.index],
      single: this.single,
      name: this.name,
      logLevel: cfg.logLevel,
    });
    // Loading three pages at once on two busy cores can be slow.
    await this.page.goto(`${origin}/`, { timeout: 20_000, waitUntil: 'domcontentloaded' });
    await this.page.waitForFunction(() => window.stoa?.ready === true, null, { timeout: 20_000 });
  }

  async state() {
    this.lastState = await withTimeout(this.page.evaluate(() => window.stoa.state()), 5000, `${this.name} state()`);
    return this.lastState;
  }

  async stats() {
    this.lastStats = await withTimeout(this.page.evaluate(() => window.stoa.stats()), 5000, `${this.name} stats()`);
    return this.lastStats;
  }

  /** Throws when the page has failed or disconnected since `base` counts. */
  assertAlive(st, baseDisconnected = 0) {
    if (st.phase === 'failed') {
      throw new CheckError(`${this.name} (singlePeerConnection=${this.single}) failed: ${st.error}`);
    }
    if ((st.events?.disconnected ?? 0) > baseDisconnected) {
      const last = st.log?.filter((e) => e.event === 'disconnected').pop();
      throw new CheckError(`${this.name} got RoomEvent.Disconnected${last?.detail ? ` (reason ${last.detail})` : ''}`);
    }
  }
}

// ------------------------------------------------------------------ steps

class Run {
  constructor(cfg) {
    this.cfg = cfg;
    this.deadline = started + cfg.timeoutMs;
    this.participants = cfg.tokens.map((_, i) => new Participant(this, i));
    this.cuts = new Map(); // page index -> baseline taken by the cut step
    this.preflight = undefined;
  }

  stepDeadline(step) {
    const own = Date.now() + (step.timeoutMs ?? STEP_TIMEOUT_MS[step.do] ?? this.cfg.timeoutMs);
    return Math.min(own, this.deadline);
  }

  /** Polls fn until it returns {done: true} or deadline passes; see until. */
  until(what, deadline, fn, intervalMs = 500) {
    const overall = deadline >= this.deadline ? ` (overall timeout ${this.cfg.timeoutMs} ms)` : '';
    return until(`${what}${overall}`, Math.max(0, deadline - Date.now()), fn, intervalMs);
  }

  async step(step, browser, origin) {
    const deadline = this.stepDeadline(step);
    switch (step.do) {
      case 'join':
        return this.join(browser, origin, deadline);
      case 'media':
        return this.media(deadline);
      case 'uplink':
        return this.uplink(step.minBps ?? 500_000, deadline);
      case 'cut':
        return this.cut(step);
      case 'resumed':
        return this.resumed(step.page, deadline);
      case 'sleep':
        await sleep(Math.min(step.ms ?? 1000, Math.max(0, this.deadline - Date.now())));
        return {};
    }
  }

  async join(browser, origin, deadline) {
    // Check first, in a page with no camera access, that host candidates
    // carry real addresses, not mDNS names.
    this.preflight = await probeCandidates(browser, origin);
    log(`preflight candidates: ${this.preflight.candidates.join(' | ') || '(none)'}`);
    if (this.preflight.mdns) {
      throw new CheckError(`Chromium hides host addresses behind mDNS names (${this.preflight.candidates.join(', ')}): --disable-features=WebRtcHideLocalIpsWithMdns was not applied`);
    }
    await Promise.all(this.participants.map((p) => p.open(browser, origin)));
    log(`opened ${this.participants.length} pages`);
    const n = this.participants.length;
    await this.until('every page to connect, publish and see the others', deadline, async () => {
      const states = await Promise.all(this.participants.map((p) => p.state()));
      const waiting = [];
      states.forEach((st, i) => {
        const p = this.participants[i];
        p.assertAlive(st);
        if (st.phase !== 'running' || !st.connected) {
          waiting.push(`${p.name}: phase ${st.phase}, ${st.connectionState}`);
        } else if (st.remoteParticipants.length < n - 1) {
          waiting.push(`${p.name}: sees ${st.remoteParticipants.length}/${n - 1} others`);
        }
      });
      return { done: waiting.length === 0, detail: waiting.join('; ') };
    });
    const states = this.participants.map((p) => p.lastState);
    if (!this.cfg.allowFallback) {
      states.forEach((st, i) => checkTransport(this.participants[i], st));
    }
    for (const [i, st] of states.entries()) {
      log(`${this.participants[i].name}: identity ${st.localIdentity} sid ${st.localSid} singlePC=${st.single} pcs=${st.peerConnections.length} tracks=${st.localTracks.map((t) => `${t.source}${t.simulcasted ? '(simulcast)' : ''}`).join(',')}`);
    }
    return { sids: Object.fromEntries(states.map((st) => [st.localIdentity, st.localSid])) };
  }

  async media(deadline) {
    const identities = this.participants.map((p) => p.lastState?.localIdentity);
    let prev;
    let rounds = 0;
    const r = await this.until('video and audio from every other participant on every page', deadline, async () => {
      const [states, stats] = await Promise.all([
        Promise.all(this.participants.map((p) => p.state())),
        Promise.all(this.participants.map((p) => p.stats())),
      ]);
      states.forEach((st, i) => this.participants[i].assertAlive(st));
      const cur = stats.map((s) => flowTotals(s));
      rounds++;
      if (!prev) {
        prev = cur;
        return { done: false, detail: 'first sample' };
      }
      const missing = [];
      const flows = [];
      this.participants.forEach((p, i) => {
        identities.forEach((id, j) => {
          if (i === j) return;
          const a = prev[i][id];
          const b = cur[i][id];
          const label = `${p.name}<-${this.participants[j].name}`;
          if (!b?.video) missing.push(`${label}: no camera track`);
          else if (!b.video.streams) missing.push(`${label}: camera ${b.video.trackSid} has received no RTP (no inbound-rtp; ${describeSub(states[i], id, 'camera')})`);
          else if (!(a?.video && b.video.framesDecoded > a.video.framesDecoded)) {
            missing.push(`${label}: framesDecoded ${a?.video?.framesDecoded ?? 0}->${b.video.framesDecoded} (packets ${b.video.packetsReceived})`);
          }
          if (!b?.audio) missing.push(`${label}: no microphone track`);
          else if (!b.audio.streams) missing.push(`${label}: microphone ${b.audio.trackSid} has received no RTP (no inbound-rtp; ${describeSub(states[i], id, 'microphone')})`);
          else if (!(a?.audio && b.audio.totalSamplesReceived > a.audio.totalSamplesReceived && b.audio.packetsReceived > a.audio.packetsReceived)) {
            missing.push(`${label}: audio samples ${a?.audio?.totalSamplesReceived ?? 0}->${b.audio.totalSamplesReceived}, packets ${a?.audio?.packetsReceived ?? 0}->${b.audio.packetsReceived}`);
          }
          if (b?.video && b?.audio) {
            flows.push(`${label} ${b.video.frameWidth ?? '?'}x${b.video.frameHeight ?? '?'} frames+${b.video.framesDecoded - (a?.video?.framesDecoded ?? 0)} samples+${b.audio.totalSamplesReceived - (a?.audio?.totalSamplesReceived ?? 0)}`);
          }
        });
      });
      prev = cur;
      return { done: missing.length === 0, detail: missing.join('; '), flows };
    }, 1000);
    log(`media flowing: ${r.flows.join('; ')}`);
    return { rounds, flows: r.flows };
  }

  async uplink(minBps, deadline) {
    let start; // the first sample: frames must grow from it
    const r = await this.until(`every page's camera estimate at ${minBps} bit/s or more, with more than its lowest layer encoding`, deadline, async () => {
      const [states, stats] = await Promise.all([
        Promise.all(this.participants.map((p) => p.state())),
        Promise.all(this.participants.map((p) => p.stats())),
      ]);
      states.forEach((st, i) => this.participants[i].assertAlive(st));
      const cur = stats.map((s) => uplinkOf(s));
      const waiting = [];
      const seen = [];
      cur.forEach((u, i) => {
        const name = this.participants[i].name;
        if (!u) {
          waiting.push(`${name}: no PeerConnection sends video`);
          return;
        }
        const layer = (rid) => u.layers.find((l) => l.rid === rid);
        const frames = (x, rid) => x?.layers.find((l) => l.rid === rid)?.framesEncoded ?? 0;
        seen.push(`${name} estimate ${u.estimate ?? '?'} bit/s, ` +
          ['q', 'h', 'f'].map((rid) => `${rid} ${layer(rid)?.frameWidth ?? '?'}px frames ${frames(u, rid)} (${layer(rid)?.qualityLimitationReason ?? '?'})`).join(', '));
        if (!(u.estimate >= minBps)) waiting.push(`${name}: estimate ${u.estimate ?? 'none'} bit/s`);
        const rids = u.layers.map((l) => l.rid).sort().join(',');
        if (rids !== 'f,h,q') waiting.push(`${name}: simulcast layers [${rids}], want f,h,q`);
        if (!(frames(u, 'h') > frames(start?.[i], 'h'))) waiting.push(`${name}: layer h frames ${frames(start?.[i], 'h')}->${frames(u, 'h')} since the step began`);
      });
      if (!start) {
        start = cur;
        return { done: false, detail: 'first sample' };
      }
      return { done: waiting.length === 0, detail: `${waiting.join('; ')} (now: ${seen.join('; ')})`, seen };
    }, 1000);
    log(`uplink: ${r.seen.join('; ')}`);
    return { pages: r.seen };
  }

  async cut(step) {
    const method = step.method ?? 'offline';
    const ms = step.ms ?? 2500;
    const p = this.participants[step.page];
    const states = await Promise.all(this.participants.map((q) => q.state()));
    const st = states[step.page];
    p.assertAlive(st);
    if (!st.connected) throw new CheckError(`${p.name} is ${st.connectionState}, not connected, before the cut`);
    this.cuts.set(step.page, {
      sid: st.localSid,
      identity: st.localIdentity,
      events: st.events,
      others: states.map((o) => ({
        events: o.events,
        seenSid: o.remoteParticipants.find((r) => r.identity === st.localIdentity)?.sid,
      })),
      at: Date.now(),
    });
    let closed = 0;
    if (method === 'offline' || method === 'network') await p.context.setOffline(true);
    if (method === 'offline' || method === 'close') {
      closed = await withTimeout(p.page.evaluate(() => window.stoa.cutSignal()), 5000, `${p.name} cutSignal()`);
      if (closed === 0) throw new CheckError(`${p.name} had no open WebSocket to cut`);
    }
    log(`cut ${p.name} (sid ${st.localSid}, singlePeerConnection=${p.single}) by ${method}: closed ${closed} websocket(s)`);
    if (method !== 'close') {
      await sleep(Math.min(ms, Math.max(0, this.deadline - Date.now())));
      await p.context.setOffline(false);
      log(`${p.name} back online after ${ms} ms`);
    }
    this.cuts.get(step.page).restoredAt = Date.now();
    return { method, ms: method === 'close' ? 0 : ms, closedWebSockets: closed };
  }

  async resumed(index, deadline) {
    const p = this.participants[index];
    const base = this.cuts.get(index);
    if (!base) throw new ConfigError(`resumed ${index} without an earlier cut of that page`);
    const r = await this.until(`${p.name} to resume (Reconnected after SignalReconnecting/Reconnecting)`, deadline, async () => {
      const st = await p.state();
      p.assertAlive(st, base.events.disconnected);
      const ev = st.events;
      const started = ev.signalReconnecting > base.events.signalReconnecting || ev.reconnecting > base.events.reconnecting;
      const done = started && ev.reconnected > base.events.reconnected && st.connected;
      return {
        done,
        st,
        detail: `${st.connectionState}; since the cut: signalReconnecting +${ev.signalReconnecting - base.events.signalReconnecting}, reconnecting +${ev.reconnecting - base.events.reconnecting}, reconnected +${ev.reconnected - base.events.reconnected}`,
      };
    }, 250);
    const st = r.st;
    const ev = st.events;
    const resumeMs = Date.now() - base.restoredAt;
    if (st.localSid !== base.sid) {
      throw new CheckError(`${p.name} did a full reconnect instead of a resume: participant sid ${base.sid} -> ${st.localSid}`);
    }
    // A resume is invisible to the others: they keep the participant, with
    // the same sid, and see nobody leave.
    const states = await Promise.all(this.participants.map((q) => q.state()));
    states.forEach((o, i) => {
      if (i === index) return;
      const q = this.participants[i];
      q.assertAlive(o, base.others[i].events.disconnected);
      const seen = o.remoteParticipants.find((rp) => rp.identity === base.identity);
      if (!seen) throw new CheckError(`${q.name} no longer sees ${p.name} (${base.identity}) after its resume`);
      if (seen.sid !== base.others[i].seenSid) {
        throw new CheckError(`${q.name} sees ${p.name} with sid ${seen.sid}, was ${base.others[i].seenSid}`);
      }
      const left = o.events.participantDisconnected - base.others[i].events.participantDisconnected;
      if (left > 0) throw new CheckError(`${q.name} got ${left} ParticipantDisconnected event(s) during ${p.name}'s resume`);
    });
    const summary = {
      sid: st.localSid,
      resumeMsAfterRestore: resumeMs,
      signalReconnecting: ev.signalReconnecting - base.events.signalReconnecting,
      reconnecting: ev.reconnecting - base.events.reconnecting,
      reconnected: ev.reconnected - base.events.reconnected,
    };
    log(`${p.name} resumed: ${JSON.stringify(summary)}`);
    return summary;
  }

  async finalCheck() {
    const states = await Promise.all(this.participants.map((p) => p.state()));
    states.forEach((st, i) => {
      this.participants[i].assertAlive(st);
      if (!st.connected) throw new CheckError(`${this.participants[i].name} ends ${st.connectionState}`);
    });
  }
}

/**
 * Checks that a page joined the way it asked to: singlePeerConnection on
 * /rtc/v1 with one PeerConnection, otherwise on /rtc with two. The SDK falls
 * back from /rtc/v1 to /rtc by itself when the server refuses v1, which would
 * otherwise pass unnoticed.
 */
function checkTransport(p, st) {
  const open = st.webSockets.filter((ws) => ws.readyState === 1);
  const paths = open.map((ws) => new URL(ws.url).pathname);
  const live = st.peerConnections.filter((pc) => pc.connectionState !== 'closed').length;
  const wantPath = p.single ? /\/rtc\/v1$/ : /\/rtc$/;
  const wantPCs = p.single ? 1 : 2;
  if (paths.length !== 1 || !wantPath.test(paths[0]) || live !== wantPCs) {
    throw new CheckError(
      `${p.name} (singlePeerConnection=${p.single}) should be on ${p.single ? '/rtc/v1' : '/rtc'} with ${wantPCs} PeerConnection(s), ` +
        `is on [${paths.join(', ')}] with ${live} (set allowFallback to accept the SDK's v1 -> v0 fallback)`,
    );
  }
}

/**
 * The page's camera uplink from a stats() result: the PeerConnection that
 * sends video, its bandwidth estimate and its simulcast layers (livekit-client
 * names them q, h and f, low to high).
 */
function uplinkOf(stats) {
  for (const pc of stats.peerConnections) {
    const layers = (pc.outbound ?? []).filter((o) => o.kind === 'video');
    if (layers.length > 0) return { estimate: pc.availableOutgoingBitrate, layers };
  }
  return undefined;
}

/** Per remote identity: the camera and microphone entries of a stats() result. */
function flowTotals(stats) {
  const out = {};
  for (const r of stats.remote) {
    const o = (out[r.identity] ??= {});
    if (r.source === 'camera') o.video = r;
    else if (r.source === 'microphone') o.audio = r;
  }
  return out;
}

function describeSub(state, identity, source) {
  const rp = state.remoteParticipants.find((r) => r.identity === identity);
  const t = rp?.tracks.find((tr) => tr.source === source);
  return t ? `subscribed=${t.subscribed} enabled=${t.enabled} muted=${t.muted}` : 'not published';
}

/** Gathers host candidates in a fresh page without media permission. */
async function probeCandidates(browser, origin) {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(`${origin}/`, { timeout: 10_000 });
    const candidates = await withTimeout(page.evaluate(async () => {
      const pc = new RTCPeerConnection();
      const found = [];
      pc.createDataChannel('probe');
      const done = new Promise((resolve) => {
        pc.onicecandidate = (e) => (e.candidate ? found.push(e.candidate.candidate) : resolve());
        // Host candidates come first; mDNS names would show there.
        setTimeout(resolve, 1500);
      });
      await pc.setLocalDescription(await pc.createOffer());
      await done;
      pc.close();
      return found;
    }), 8000, 'candidate probe');
    return {
      candidates: candidates.map((c) => c.split(' ').slice(4, 8).join(' ')),
      mdns: candidates.some((c) => /\.local\b/.test(c)),
    };
  } finally {
    await context.close().catch(() => {});
  }
}

// ------------------------------------------------------------------- main

async function main() {
  const cfg = await readConfig('run.mjs', parseConfig);
  if (!cfg) return 2;

  const run = new Run(cfg);
  const result = { ok: false, error: undefined, url: cfg.url, steps: [], pages: [] };
  let chrome;
  let httpServer;
  let exitCode = 1;
  const timer = watchdog(cfg.timeoutMs + 20_000, result);

  try {
    const served = await servePage();
    httpServer = served.server;
    log(`serving the test page at ${served.origin}; server under test ${cfg.url}`);
    chrome = await launch({ executablePath: cfg.chromium, headless: cfg.headless, profilePrefix: 'stoa-e2e-' });

    for (const step of cfg.steps) {
      const t0 = Date.now();
      log(`step ${JSON.stringify(step)}`);
      const entry = { step, ok: false };
      result.steps.push(entry);
      try {
        entry.result = await run.step(step, chrome.browser, served.origin);
        entry.ok = true;
      } finally {
        entry.ms = Date.now() - t0;
      }
    }
    await run.finalCheck();
    result.ok = true;
    exitCode = 0;
  } catch (e) {
    result.error = failureText(e, run.participants);
    exitCode = e instanceof ConfigError ? 2 : 1;
    log(`FAILED: ${result.error}`);
  } finally {
    // Final snapshots for the report, each bounded.
    for (const p of run.participants) {
      if (!p.page) continue;
      await p.state().catch(() => {});
      await p.stats().catch(() => {});
      result.pages.push({ name: p.name, singlePC: p.single, errors: p.errors, state: p.lastState, stats: p.lastStats });
    }
    result.preflight = run.preflight;
    await chrome?.close();
    httpServer?.close();
    result.durationMs = Date.now() - started;
    clearTimeout(timer);
  }
  printReport(result);
  if (!result.ok) process.stderr.write(`run.mjs: FAILED: ${result.error}\n`);
  return exitCode;
}

process.exitCode = await main();
