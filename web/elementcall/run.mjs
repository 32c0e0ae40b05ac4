#!/usr/bin/env node
// Runs Element Call 0.26.1 (npm @element-hq/element-call-embedded, the
// widget build Element Web embeds) for two users in headless Chromium, each
// inside the widget host of host.html/host.js, against a homeserver and a
// Stoa server, and checks that each one's Element Call UI plays the other's
// camera and microphone.
//
// Element Call is AGPL-3.0 and a test-only peer: it is installed into
// web/node_modules and served from there to Chromium, never bundled into
// Stoa.
//
// Usage: node web/elementcall/run.mjs < config.json  (or the JSON or a file on argv)
//
// Config:
//   {
//     "homeserverUrl": "http://127.0.0.1:8008",
//     "transportsUrl": "http://127.0.0.1:7880/_matrix/client/unstable/org.matrix.msc4143/rtc/transports",
//     "roomId": "!abc:localhost:8008",
//     "users": [                           // in order: the first starts the call, the others join
//       {"name": "alice", "userId": "@alice:...", "deviceId": "ALICEDEV", "accessToken": "..."},
//       {"name": "bob",   "userId": "@bob:...",   "deviceId": "BOBDEV",   "accessToken": "..."}
//     ],
//     "chromium": "/usr/bin/chromium",
//     "timeoutMs": 120000,                 // whole run, browser start to last check
//     "holdMs": 0,                         // after media flowed: hold the call this long,
//                                          // then check the media again
//     "hangup": true                       // end with every user leaving through the UI
//   }
//
// Steps: open the first user's host page (intent start_call), wait for
// Element Call's lobby and click "Join call", wait until Element Call says it
// joined (io.element.join); the same for the others (intent join_existing);
// then poll every page until an element Element Call attached plays each
// other user's camera and microphone: a <video> whose MediaStream carries a
// received track, not paused, with decoded frames growing between two
// samples (the element's own count and inbound-rtp framesDecoded), and an
// <audio> likewise with currentTime and totalSamplesReceived growing. With
// "holdMs", the call is held that long and the media checked again (a
// server that removed someone in between fails it). With "hangup", every
// user then clicks "Leave" and the host must see its call.member state
// emptied ({}).
//
// Output: progress and filtered page consoles on stderr; one JSON report on
// stdout: {ok, error, steps, pages: [{name, host, requests, websockets,
// tokens, media}], durationMs}. Exit 0 when every check passed, 1 when one
// failed or timed out, 2 for a bad config or a missing file. The browser is
// always closed.

import { existsSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CheckError, ConfigError, failureText, printReport, readConfig, watchdog } from '../internal/nodetest/browser.mjs';
import { keepError, launch, serveFiles, watchErrors } from '../internal/nodetest/browser.mjs';
import { log, redact, secs, sleep, started, withTimeout } from '../internal/nodetest/browser.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const modules = path.join(here, '..', 'node_modules');
const ecDist = path.join(modules, '@element-hq', 'element-call-embedded', 'dist');
const widgetApiBundle = path.join(modules, 'matrix-widget-api', 'dist', 'api.js');

const EC_PATH = '/ec/index.html';
const EC_FRAME = 'iframe[title="Element Call"]';

// Bounds of the single steps; all are also cut by the run's timeoutMs.
const LOBBY_TIMEOUT_MS = 45_000; // Element Call's bundle, wasm and widget handshake
const JOIN_TIMEOUT_MS = 30_000; // from the click to io.element.join
const HANGUP_TIMEOUT_MS = 15_000;
const POLL_MS = 1000;

// ----------------------------------------------------------------- config

/** Checks the config and fills in its defaults; see the comment at the top. */
function parseConfig(cfg) {
  for (const k of ['homeserverUrl', 'transportsUrl']) {
    if (typeof cfg[k] !== 'string' || !/^https?:\/\//.test(cfg[k])) throw new ConfigError(`config.${k} must be an http(s) URL`);
  }
  if (typeof cfg.roomId !== 'string' || !cfg.roomId.startsWith('!')) throw new ConfigError('config.roomId must be a room ID');
  if (!Array.isArray(cfg.users) || cfg.users.length < 2) throw new ConfigError('config.users needs at least two users');
  for (const u of cfg.users) {
    if (!u?.name || !u.userId || !u.deviceId || !u.accessToken) {
      throw new ConfigError('every user needs name, userId, deviceId and accessToken');
    }
  }
  return {
    homeserverUrl: cfg.homeserverUrl.replace(/\/$/, ''),
    transportsUrl: cfg.transportsUrl,
    roomId: cfg.roomId,
    users: cfg.users,
    chromium: cfg.chromium ?? '/usr/bin/chromium',
    headless: cfg.headless !== false,
    timeoutMs: cfg.timeoutMs ?? 120_000,
    holdMs: cfg.holdMs ?? 0,
    hangup: cfg.hangup !== false,
  };
}

/**
 * Serves the host page, the widget API bundle and Element Call's build on
 * 127.0.0.1, and records what was asked for and not found.
 */
async function serveHost() {
  for (const f of [path.join(ecDist, 'index.html'), widgetApiBundle]) {
    if (!existsSync(f)) throw new ConfigError(`${f} is missing: run "cd web && npm ci"`);
  }
  const fixed = {
    '/': path.join(here, 'host.html'),
    '/host.html': path.join(here, 'host.html'),
    '/host.js': path.join(here, 'host.js'),
    '/widget-api.js': widgetApiBundle,
  };
  return serveFiles((pathname) => {
    if (fixed[pathname]) return fixed[pathname];
    if (!pathname.startsWith('/ec/')) return undefined;
    // Only files below ecDist, whatever the path says.
    const abs = path.join(ecDist, path.normalize(decodeURIComponent(pathname.slice('/ec/'.length))));
    return abs.startsWith(ecDist + path.sep) ? abs : undefined;
  });
}

/** The payload of a JWT, without checking it; undefined if it is none. */
function jwtPayload(jwt) {
  try {
    return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
}

// ----------------------------------------------------------------- pages

/** One user: a browser context with the host page and Element Call in it. */
class User {
  constructor(run, index) {
    this.run = run;
    this.index = index;
    this.u = run.cfg.users[index];
    this.name = this.u.name;
    this.intent = index === 0 ? 'start_call' : 'join_existing';
    this.context = undefined;
    this.page = undefined;
    this.requests = []; // {t, frame, method, url, status, error}
    this.websockets = []; // {t, url, closedAt}
    this.tokens = []; // {t, endpoint, identity, room, url}
    this.errors = [];
    this.consoleLines = 0;
    this.lastHost = undefined;
    this.lastMedia = undefined;
  }

  noteError(text) {
    keepError(this.errors, text, 30, 400);
  }

  async open(browser, origin) {
    const { cfg } = this.run;
    this.context = await browser.newContext({
      permissions: ['camera', 'microphone'],
      viewport: { width: 1280, height: 720 },
      reducedMotion: 'reduce',
    });
    // In every frame: remember the PeerConnections (to tell received tracks
    // from local ones). In the host page only: its configuration.
    await this.context.addInitScript((hostCfg) => {
      const Orig = window.RTCPeerConnection;
      if (Orig && !Orig.__stoaHooked) {
        const pcs = [];
        window.__stoaPCs = pcs;
        const Hooked = class extends Orig {
          constructor(...args) {
            super(...args);
            pcs.push(this);
          }
        };
        Hooked.__stoaHooked = true;
        window.RTCPeerConnection = Hooked;
      }
      if (window === window.top) window.__ecHostConfig = hostCfg;
    }, {
      hsUrl: cfg.homeserverUrl,
      transportsUrl: cfg.transportsUrl,
      roomId: cfg.roomId,
      userId: this.u.userId,
      deviceId: this.u.deviceId,
      accessToken: this.u.accessToken,
      intent: this.intent,
      ecPath: EC_PATH,
      widgetId: `stoa-test-${randomUUID()}`,
    });
    this.page = await this.context.newPage();
    this.watch(origin);
    await this.page.goto(`${origin}/host.html`, { timeout: 20_000, waitUntil: 'domcontentloaded' });
  }

  /** Records requests beyond the file server, tokens, sockets and console. */
  watch(origin) {
    const frameName = (f) => (f === this.page.mainFrame() ? 'host' : f?.url().includes('/ec/') ? 'ec' : 'other');
    const external = (url) => !url.startsWith(origin) && /^(https?|wss?):/.test(url);
    const byReq = new Map();
    this.page.on('request', (req) => {
      if (!external(req.url())) return;
      const entry = { t: secs(), frame: frameName(req.frame()), method: req.method(), url: redact(req.url()) };
      byReq.set(req, entry);
      this.requests.push(entry);
      if (this.requests.length > 1500) this.requests.splice(0, 500);
    });
    this.page.on('response', async (resp) => {
      const entry = byReq.get(resp.request());
      if (!entry) return;
      entry.status = resp.status();
      const { pathname } = new URL(resp.url());
      if (resp.request().method() === 'POST' && /\/(sfu\/get|get_token)$/.test(pathname)) {
        const body = await resp.json().catch(() => undefined);
        const claims = body?.jwt ? jwtPayload(body.jwt) : undefined;
        let request;
        try {
          request = resp.request().postDataJSON();
          if (request?.openid_token?.access_token) request.openid_token.access_token = '<redacted>';
        } catch {
          request = undefined;
        }
        this.tokens.push({
          t: entry.t,
          endpoint: pathname,
          request,
          status: resp.status(),
          url: body?.url,
          identity: claims?.sub,
          room: claims?.video?.room,
          error: body?.errcode ? `${body.errcode}: ${body.error}` : undefined,
        });
        log(`${this.name}: ${pathname} -> ${resp.status()} ${claims ? `identity ${claims.sub} room ${claims.video?.room}` : JSON.stringify(body)}`);
      }
    });
    this.page.on('requestfailed', (req) => {
      const entry = byReq.get(req);
      if (entry) entry.error = req.failure()?.errorText ?? 'failed';
    });
    this.page.on('websocket', (ws) => {
      const entry = { t: secs(), url: redact(ws.url()) };
      this.websockets.push(entry);
      log(`${this.name}: websocket ${entry.url}`);
      ws.on('close', () => {
        entry.closedAt = secs();
      });
    });
    this.page.on('console', (m) => {
      const text = m.text();
      const fromHost = text.startsWith('[host]');
      const type = m.type();
      if (type === 'error') this.noteError(text);
      // Element Call logs a lot; show the host's lines, errors and warnings.
      if (!fromHost && type !== 'error' && type !== 'warning') return;
      if (++this.consoleLines > 400) return;
      log(`${this.name} ${fromHost ? '' : `console.${type}: `}${text.slice(0, 600)}`);
    });
    watchErrors(this.page, this.name, (text) => this.noteError(text));
  }

  ecFrame() {
    return this.page.frames().find((f) => f.url().includes(EC_PATH));
  }

  async host() {
    this.lastHost = await withTimeout(this.page.evaluate(() => window.ecHost?.state()), 5000, `${this.name} host state`);
    return this.lastHost;
  }

  assertHostAlive(h) {
    if (h?.phase === 'failed') throw new CheckError(`${this.name}: widget host failed: ${h.error}`);
  }

  /** Element Call's lobby, then "Join call", then io.element.join. */
  async join(deadline) {
    const frame = this.page.frameLocator(EC_FRAME);
    const lobby = frame.getByTestId('lobby_joinCall');
    const t0 = Date.now();
    try {
      await lobby.waitFor({ state: 'visible', timeout: Math.max(1, Math.min(LOBBY_TIMEOUT_MS, deadline - Date.now())) });
    } catch (e) {
      const h = await this.host().catch(() => undefined);
      this.assertHostAlive(h);
      throw new CheckError(`${this.name}: Element Call showed no lobby "Join call" button: ${e.message.split('\n')[0]}; host phase ${h?.phase}, actions ${JSON.stringify(h?.actions)}`);
    }
    const lobbyMs = Date.now() - t0;
    log(`${this.name}: lobby after ${lobbyMs} ms; clicking "Join call"`);
    await lobby.click({ timeout: 10_000 });
    const t1 = Date.now();
    const until = Math.min(deadline, t1 + JOIN_TIMEOUT_MS);
    for (;;) {
      const h = await this.host();
      this.assertHostAlive(h);
      if (h.joinedAction) break;
      if (Date.now() >= until) {
        throw new CheckError(`${this.name}: Element Call did not report joining (io.element.join) within ${until - t1} ms; actions ${JSON.stringify(h.actions)}; last driver calls ${JSON.stringify(h.driver.slice(-8))}`);
      }
      await sleep(250);
    }
    const joinMs = Date.now() - t1;
    log(`${this.name}: joined ${joinMs} ms after the click`);
    return { lobbyMs, joinMs };
  }

  /** What Element Call's frame plays: see media() in the page below. */
  async media() {
    const frame = this.ecFrame();
    if (!frame) throw new CheckError(`${this.name}: no Element Call frame`);
    this.lastMedia = await withTimeout(frame.evaluate(probeMedia), 5000, `${this.name} media probe`);
    return this.lastMedia;
  }

  /**
   * Clicks Element Call's "Leave" and waits until the widget has emptied
   * its call.member state ({}), as Element Call does on hang-up.
   */
  async leave(deadline) {
    const button = this.page.frameLocator(EC_FRAME).getByTestId('incall_leave');
    const t0 = Date.now();
    try {
      await button.click({ timeout: Math.max(1, Math.min(5_000, deadline - Date.now())) });
    } catch (e) {
      // Element Call's grid can lie over its footer (Playwright then sees
      // the click intercepted): press the button directly.
      log(`${this.name}: clicking "Leave" failed (${e.message.split('\n')[0]}); dispatching the click`);
      await button.dispatchEvent('click', undefined, { timeout: 5_000 });
    }
    const key = `_${this.u.userId}_${this.u.deviceId}_m.call`;
    const until = Math.min(deadline, Date.now() + HANGUP_TIMEOUT_MS);
    for (;;) {
      const h = await this.host();
      const emptied = h.sentEvents.some((e) => e.type === 'org.matrix.msc3401.call.member' && e.stateKey === key && Object.keys(e.content ?? {}).length === 0);
      if (emptied) {
        // The widget actions that went with it (im.vector.hangup, io.element.close).
        const actions = Object.keys(h.actions).filter((a) => /hangup|close/.test(a));
        return { emptiedMs: Date.now() - t0, actions };
      }
      if (Date.now() >= until) throw new CheckError(`${this.name}: after "Leave", no empty call.member for ${key} within ${HANGUP_TIMEOUT_MS} ms`);
      await sleep(250);
    }
  }
}

/**
 * Runs in Element Call's frame: the PeerConnections' received tracks and
 * inbound-rtp stats, and every <video> and <audio> element with the tracks
 * it plays and its playback counters.
 */
async function probeMedia() {
  const pcs = (window.__stoaPCs ?? []).filter((pc) => pc.connectionState !== 'closed');
  const received = new Map(); // track id -> kind
  for (const pc of pcs) {
    for (const r of pc.getReceivers()) if (r.track) received.set(r.track.id, r.track.kind);
  }
  const inbound = {};
  for (const pc of pcs) {
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type !== 'inbound-rtp' || !s.trackIdentifier) return;
      inbound[s.trackIdentifier] = {
        kind: s.kind,
        packetsReceived: s.packetsReceived,
        framesDecoded: s.framesDecoded,
        frameWidth: s.frameWidth,
        frameHeight: s.frameHeight,
        totalSamplesReceived: s.totalSamplesReceived,
        codec: stats.get(s.codecId)?.mimeType,
      };
    });
  }
  const elements = [...document.querySelectorAll('video, audio')].map((el) => {
    const tracks = el.srcObject instanceof MediaStream ? el.srcObject.getTracks() : [];
    const tile = el.closest('[data-testid="videoTile"]');
    const q = el.tagName === 'VIDEO' ? el.getVideoPlaybackQuality?.() : undefined;
    return {
      tag: el.tagName.toLowerCase(),
      tracks: tracks.map((t) => ({ id: t.id, kind: t.kind, received: received.has(t.id), readyState: t.readyState })),
      paused: el.paused,
      muted: el.muted,
      volume: el.volume,
      readyState: el.readyState,
      currentTime: el.currentTime,
      videoWidth: el.videoWidth,
      videoHeight: el.videoHeight,
      decodedFrames: el.webkitDecodedFrameCount ?? q?.totalVideoFrames,
      visible: el.getClientRects().length > 0,
      tile: tile ? (tile.querySelector('[data-testid="name_tag"]')?.textContent ?? '') : undefined,
    };
  });
  const tiles = [...document.querySelectorAll('[data-testid="videoTile"]')].map(
    (t) => t.querySelector('[data-testid="name_tag"]')?.textContent ?? '',
  );
  return {
    peerConnections: pcs.map((pc) => pc.connectionState),
    received: [...received.entries()],
    inbound,
    elements,
    tiles,
  };
}

/**
 * The received media a probe shows playing, per kind: elements that carry a
 * received track, with their counters and the track's inbound-rtp stats.
 */
function playing(m) {
  const out = { video: [], audio: [] };
  for (const el of m.elements) {
    for (const t of el.tracks) {
      if (!t.received || t.readyState !== 'live') continue;
      const s = m.inbound[t.id];
      if (t.kind === 'video' && el.tag === 'video') {
        out.video.push({ track: t.id, tile: el.tile, paused: el.paused, visible: el.visible, readyState: el.readyState, width: el.videoWidth, height: el.videoHeight, elementFrames: el.decodedFrames ?? 0, framesDecoded: s?.framesDecoded ?? 0, codec: s?.codec });
      }
      if (t.kind === 'audio') {
        out.audio.push({ track: t.id, tag: el.tag, paused: el.paused, muted: el.muted, currentTime: el.currentTime, samples: s?.totalSamplesReceived ?? 0, packets: s?.packetsReceived ?? 0 });
      }
    }
  }
  return out;
}

// ------------------------------------------------------------------- run

class Run {
  constructor(cfg) {
    this.cfg = cfg;
    this.deadline = started + cfg.timeoutMs;
    this.users = cfg.users.map((_, i) => new User(this, i));
  }

  async join(browser, origin) {
    const out = {};
    for (const u of this.users) {
      const deadline = this.deadline;
      await u.open(browser, origin);
      log(`${u.name}: opened the widget host (intent ${u.intent})`);
      out[u.name] = await u.join(deadline);
    }
    return out;
  }

  /**
   * Every user's Element Call plays n-1 received video tracks in visible,
   * playing <video> elements and n-1 received audio tracks, all advancing
   * between two samples.
   */
  async media() {
    const want = this.users.length - 1;
    let prev;
    let rounds = 0;
    let detail = '';
    for (;;) {
      const cur = await Promise.all(this.users.map(async (u) => {
        const h = await u.host();
        u.assertHostAlive(h);
        return playing(await u.media());
      }));
      rounds++;
      if (prev) {
        const missing = [];
        const flows = [];
        this.users.forEach((u, i) => {
          const good = { video: 0, audio: 0 };
          for (const v of cur[i].video) {
            const before = prev[i].video.find((p) => p.track === v.track);
            const ok = before && !v.paused && v.visible && v.readyState >= 2 && v.width > 0 &&
              v.elementFrames > before.elementFrames && v.framesDecoded > before.framesDecoded;
            if (ok) {
              good.video++;
              flows.push(`${u.name} plays video ${v.width}x${v.height} ${v.codec ?? ''} in tile "${v.tile ?? '?'}" (+${v.elementFrames - before.elementFrames} frames)`);
            } else {
              missing.push(`${u.name}: video ${v.track.slice(0, 8)} paused=${v.paused} visible=${v.visible} readyState=${v.readyState} frames ${before?.elementFrames ?? '-'}->${v.elementFrames} decoded ${before?.framesDecoded ?? '-'}->${v.framesDecoded}`);
            }
          }
          for (const a of cur[i].audio) {
            const before = prev[i].audio.find((p) => p.track === a.track);
            const ok = before && !a.paused && a.currentTime > before.currentTime && a.samples > before.samples;
            if (ok) {
              good.audio++;
              flows.push(`${u.name} plays audio in <${a.tag}> (+${a.samples - before.samples} samples${a.muted ? ', element muted' : ''})`);
            } else {
              missing.push(`${u.name}: audio ${a.track.slice(0, 8)} in <${a.tag}> paused=${a.paused} time ${before?.currentTime ?? '-'}->${a.currentTime} samples ${before?.samples ?? '-'}->${a.samples}`);
            }
          }
          if (good.video < want) missing.push(`${u.name}: plays ${good.video}/${want} remote videos (received tracks ${u.lastMedia.received.length}, tiles ${JSON.stringify(u.lastMedia.tiles)})`);
          if (good.audio < want) missing.push(`${u.name}: plays ${good.audio}/${want} remote audio tracks`);
        });
        const done = this.users.every((u, i) => {
          const v = flows.filter((f) => f.startsWith(`${u.name} plays video`)).length;
          const a = flows.filter((f) => f.startsWith(`${u.name} plays audio`)).length;
          return v >= want && a >= want;
        });
        if (done) {
          for (const f of flows) log(f);
          return { rounds, flows };
        }
        detail = missing.join('; ');
      }
      prev = cur;
      if (Date.now() >= this.deadline) {
        throw new CheckError(`timed out (overall ${this.cfg.timeoutMs} ms) waiting for every Element Call to play the others' media: ${detail || 'no second sample'}`);
      }
      await sleep(Math.min(POLL_MS, Math.max(0, this.deadline - Date.now())));
    }
  }

  async hangup() {
    const out = {};
    for (const u of [...this.users].reverse()) {
      out[u.name] = await u.leave(this.deadline);
      log(`${u.name}: left; call.member emptied ${JSON.stringify(out[u.name])}`);
    }
    return out;
  }
}

// ------------------------------------------------------------------ main

async function main() {
  const cfg = await readConfig('elementcall/run.mjs', parseConfig);
  if (!cfg) return 2;

  const run = new Run(cfg);
  const result = { ok: false, error: undefined, steps: [], pages: [] };
  let chrome;
  let files;
  let exitCode = 1;
  const timer = watchdog(cfg.timeoutMs + 30_000, result);

  const step = async (name, fn) => {
    const t0 = Date.now();
    const entry = { step: name, ok: false };
    result.steps.push(entry);
    log(`step ${name}`);
    try {
      entry.result = await fn();
      entry.ok = true;
    } finally {
      entry.ms = Date.now() - t0;
    }
  };

  try {
    files = await serveHost();
    log(`serving the widget host and Element Call at ${files.origin}`);
    chrome = await launch({ executablePath: cfg.chromium, headless: cfg.headless, profilePrefix: 'stoa-ec-' });
    await step('join', () => run.join(chrome.browser, files.origin));
    await step('media', () => run.media());
    if (cfg.holdMs > 0) {
      await step('hold', async () => {
        await sleep(Math.min(cfg.holdMs, Math.max(0, run.deadline - Date.now())));
        return run.media();
      });
    }
    if (cfg.hangup) await step('hangup', () => run.hangup());
    result.ok = true;
    exitCode = 0;
  } catch (e) {
    result.error = failureText(e, run.users, 4);
    exitCode = e instanceof ConfigError ? 2 : 1;
    log(`FAILED: ${result.error}`);
  } finally {
    for (const u of run.users) {
      if (!u.page) continue;
      await u.host().catch(() => {});
      if (!result.ok) await u.media().catch(() => {});
      result.pages.push({
        name: u.name,
        intent: u.intent,
        host: u.lastHost,
        tokens: u.tokens,
        websockets: u.websockets,
        requests: u.requests,
        media: u.lastMedia ? { tiles: u.lastMedia.tiles, peerConnections: u.lastMedia.peerConnections, playing: playing(u.lastMedia), elements: u.lastMedia.elements.length } : undefined,
        errors: u.errors,
      });
      await withTimeout(u.page.evaluate(() => window.ecHost?.stop()), 2000, 'host stop').catch(() => {});
    }
    result.missingFiles = files?.missing;
    await chrome?.close();
    files?.server.close();
    result.durationMs = Date.now() - started;
    clearTimeout(timer);
  }
  printReport(result);
  if (!result.ok) process.stderr.write(`elementcall/run.mjs: FAILED: ${result.error}\n`);
  return exitCode;
}

process.exitCode = await main();
