#!/usr/bin/env node
// Drives Stoa's meeting page (web/app) in headless Chromium with fake
// devices, against a running `stoa serve`, the way guests use it: open a
// meeting link, enter a name, join, click and type. web/meeting_test.go
// starts the server, creates the links with `stoa link create` and runs
// this script; it can also be run by hand against any Stoa.
//
// Usage: node app/test/meeting.mjs '<json config>'   (or a file, or stdin)
//
// Config:
//   {
//     "scenario": "meeting" | "e2ee" | "refused" | "viewonly",
//     "links": {...},                     // meeting links; see each scenario
//     "artifacts": "/tmp/dir",            // screenshots go here (optional)
//     "chromium": "/usr/bin/chromium",
//     "timeoutMs": 180000                 // the whole run
//   }
// Scenarios:
//   meeting   links.main. Alice and Bob join; each decodes the other's video
//             and audio; Alice shares her screen (key s) and Bob sees it
//             large; Alice mutes (button) and Bob sees it; Bob raises his
//             hand (key h) and chats, and Alice gets both; Carol joins, the
//             three-person call is photographed; Carol leaves and the
//             others' grids shrink. Bob's signalling is cut once (banner,
//             resume). Screenshots: prejoin.png, call.png, call-phone.png.
//   e2ee      links.e2ee (with #key=...), links.e2eeNoKey (the same link
//             without its fragment). Alice and Bob join and decode each
//             other; the badge shows; a chat message (encrypted data
//             channel) arrives; they stay links.holdMs (default 5000) so a
//             subscriber outside the browser sees enough frames. A page
//             opened without the key shows the missing-key failure.
//   refused   links.expired, links.revoked, links.tampered, links.main:
//             each refused link shows its failure page; links.main with the
//             API unreachable shows "cannot be reached"; with camera and
//             microphone denied the pre-join screen says so and still joins.
//   viewonly  links.main, links.viewonly. Alice publishes; Vic joins
//             view-only: no device choice, no publish controls, decodes
//             Alice, can chat and raise a hand; Alice sees Vic without media.
//
// Output: progress on stderr; one JSON report on stdout
// ({ok, error, scenario, steps: [{name, ok, ms, detail}], screenshots}).
// Exit status 0 when every check passed, 1 when one failed, 2 for a bad
// config. The browser is always closed.

import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { CheckError, ConfigError, failureText, printReport, readConfig, watchdog } from '../../internal/nodetest/browser.mjs';
import { launch, watchErrors } from '../../internal/nodetest/browser.mjs';
import { log, sleep, started, until } from '../../internal/nodetest/browser.mjs';

// ------------------------------------------------------------------- config

/** Checks the config and fills in its defaults; see the comment at the top. */
function parseConfig(cfg) {
  const need = {
    meeting: ['main'],
    e2ee: ['e2ee', 'e2eeNoKey'],
    refused: ['expired', 'revoked', 'tampered', 'main'],
    viewonly: ['main', 'viewonly'],
  }[cfg.scenario];
  if (!need) throw new ConfigError(`unknown scenario ${JSON.stringify(cfg.scenario)}`);
  for (const k of need) {
    if (typeof cfg.links?.[k] !== 'string' || !/^https?:\/\/[^/]+\/j\//.test(cfg.links[k])) {
      throw new ConfigError(`scenario ${cfg.scenario} needs links.${k}, a meeting link (http://host/j/...)`);
    }
  }
  return {
    scenario: cfg.scenario,
    links: cfg.links,
    artifacts: cfg.artifacts,
    chromium: cfg.chromium ?? '/usr/bin/chromium',
    timeoutMs: cfg.timeoutMs ?? 180_000,
    holdMs: cfg.links.holdMs ?? cfg.holdMs ?? 5000,
  };
}

// ---------------------------------------------------------------- a guest

// Runs in every page before its scripts: records RTCPeerConnections (for
// getStats) and what the live region announces.
function initScript() {
  window.__pcs = [];
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Native {
    constructor(...args) {
      super(...args);
      window.__pcs.push(this);
    }
  };
  window.__sockets = [];
  const NativeWS = window.WebSocket;
  window.WebSocket = class extends NativeWS {
    constructor(...args) {
      super(...args);
      window.__sockets.push(this);
    }
  };
  window.__announced = [];
  document.addEventListener('DOMContentLoaded', () => {
    const region = document.getElementById('announcer');
    if (!region) return;
    new MutationObserver(() => {
      const t = region.textContent.trim();
      if (t) window.__announced.push(t);
    }).observe(region, { childList: true, characterData: true, subtree: true });
  });
}

// Runs in the page: what each remote track has decoded so far, keyed
// "identity/source", matched through the tiles' <video> and the <audio>
// elements the page attaches tracks to.
async function pageStats() {
  const byTrack = new Map();
  for (const v of document.querySelectorAll('.tile video')) {
    const tile = v.closest('.tile');
    const t = v.srcObject?.getVideoTracks?.()[0];
    if (t && !tile.classList.contains('local')) byTrack.set(t.id, `${tile.dataset.identity}/${tile.dataset.source}`);
  }
  for (const a of document.querySelectorAll('#audio-sink audio')) {
    const t = a.srcObject?.getAudioTracks?.()[0];
    if (t) byTrack.set(t.id, `${a.dataset.identity}/${a.dataset.source}`);
  }
  const out = {};
  for (const pc of window.__pcs) {
    if (pc.connectionState === 'closed') continue;
    const report = await pc.getStats();
    for (const s of report.values()) {
      if (s.type !== 'inbound-rtp') continue;
      const key = byTrack.get(s.trackIdentifier);
      if (!key) continue;
      const e = (out[key] ??= { frames: 0, samples: 0, packets: 0, width: 0, height: 0 });
      e.frames += s.framesDecoded ?? 0;
      e.samples += s.totalSamplesReceived ?? 0;
      e.packets += s.packetsReceived ?? 0;
      e.width = Math.max(e.width, s.frameWidth ?? 0);
      e.height = Math.max(e.height, s.frameHeight ?? 0);
    }
  }
  return out;
}

class Guest {
  constructor(run, name) {
    this.run = run;
    this.name = name;
    this.errors = [];
  }

  /** Opens url in a new context. deny: camera and microphone are refused. */
  async open(url, { deny = false, blockAPI = false } = {}) {
    this.context = await this.run.browser.newContext({
      permissions: deny ? [] : ['camera', 'microphone'],
      viewport: { width: 1280, height: 720 },
    });
    this.page = await this.context.newPage();
    this.page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') {
        log(`${this.name} console.${m.type()}: ${m.text().slice(0, 400)}`);
        if (m.type() === 'error') this.errors.push(m.text().slice(0, 300));
      }
    });
    watchErrors(this.page, this.name, (text) => this.errors.push(text));
    await this.page.addInitScript(initScript);
    if (deny) {
      // The fake UI grants every request; refuse them as a user would.
      await this.page.addInitScript(() => {
        const refuse = () => Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
        navigator.mediaDevices.getUserMedia = refuse;
      });
    }
    if (blockAPI) await this.page.route('**/api/links/**', (r) => r.abort('connectionrefused'));
    await this.page.goto(url, { timeout: 20_000, waitUntil: 'domcontentloaded' });
  }

  async eval(fn, arg) {
    return this.page.evaluate(fn, arg);
  }

  screen() {
    return this.eval(() => document.body.dataset.screen ?? 'loading');
  }

  async waitScreen(name, ms = 20_000) {
    await until(`${this.name} to show the ${name} screen`, ms, async () => {
      const s = await this.screen();
      if (s === 'failure' && name !== 'failure') {
        const f = await this.failure();
        throw new CheckError(`${this.name} shows a failure instead of ${name}: ${f.code}: ${f.title}: ${f.text}`);
      }
      return { done: s === name, detail: `screen ${s}` };
    });
  }

  failure() {
    return this.eval(() => ({
      code: document.getElementById('failure').dataset.failure,
      title: document.getElementById('failure-title').textContent,
      text: document.getElementById('failure-text').textContent,
      hint: document.getElementById('failure-hint').textContent,
      focused: document.activeElement?.id,
    }));
  }

  /** Waits for the pre-join screen, enters the name and joins. */
  async join({ expectDevices = true } = {}) {
    await this.waitScreen('prejoin');
    if (expectDevices) {
      await until(`${this.name}'s camera preview and microphone`, 15_000, async () => {
        const s = await this.eval(() => ({
          camera: document.getElementById('prejoin').dataset.camera,
          mic: document.getElementById('prejoin').dataset.mic,
          playing: (() => {
            const v = document.getElementById('preview-video');
            return v.videoWidth > 0 && !v.paused;
          })(),
        }));
        return { done: s.camera === 'on' && s.mic === 'on' && s.playing, detail: JSON.stringify(s) };
      });
    }
    await this.page.fill('#name', this.name);
    await this.page.click('#join');
    await this.waitScreen('call');
  }

  tiles() {
    return this.eval(() =>
      [...document.querySelectorAll('.tile')].map((t) => {
        const r = t.getBoundingClientRect();
        return {
          identity: t.dataset.identity,
          source: t.dataset.source,
          local: t.classList.contains('local'),
          inFocus: !!t.closest('#focus'),
          name: t.querySelector('.name')?.textContent,
          muted: t.dataset.muted,
          video: t.dataset.video,
          hand: t.dataset.hand,
          label: t.getAttribute('aria-label'),
          width: Math.round(r.width),
          height: Math.round(r.height),
        };
      }),
    );
  }

  async identity() {
    const t = (await this.tiles()).find((x) => x.local && x.source === 'camera');
    if (!t) throw new CheckError(`${this.name} has no tile of its own`);
    return t.identity;
  }

  stats() {
    return this.eval(pageStats);
  }

  announced() {
    return this.eval(() => window.__announced.slice());
  }

  async shot(file) {
    if (!this.run.cfg.artifacts) return;
    const p = path.join(this.run.cfg.artifacts, file);
    await this.page.screenshot({ path: p, timeout: 15_000 });
    this.run.report.screenshots.push(p);
    log(`screenshot ${p}`);
  }

  async close() {
    await this.context?.close().catch(() => {});
  }
}

// ------------------------------------------------------------------ checks

/**
 * Waits until every guest decodes video (frames) and audio (samples) from
 * each of its peers, growing between two samples a second apart.
 * peers: [[guest, [identity, ...]], ...]; sources: what to check.
 */
async function media(peers, sources = ['camera', 'microphone'], ms = 40_000) {
  let prev;
  const r = await until('decoded video and audio from every peer', ms, async () => {
    const cur = await Promise.all(peers.map(([g]) => g.stats()));
    if (!prev) {
      prev = cur;
      return { done: false, detail: 'first sample' };
    }
    const missing = [];
    const flows = [];
    peers.forEach(([g, ids], i) => {
      for (const id of ids) {
        for (const src of sources) {
          const key = `${id}/${src}`;
          const a = prev[i][key];
          const b = cur[i][key];
          const field = src === 'microphone' || src === 'screen_share_audio' ? 'samples' : 'frames';
          if (!b) missing.push(`${g.name} <- ${key}: no track attached`);
          else if (!(a && b[field] > a[field])) missing.push(`${g.name} <- ${key}: ${field} ${a?.[field] ?? 0} -> ${b[field]} (packets ${b.packets})`);
          else flows.push(`${g.name} <- ${key}: ${field} +${b[field] - a[field]}${b.width ? ` ${b.width}x${b.height}` : ''}`);
        }
      }
    });
    prev = cur;
    return { done: missing.length === 0, detail: missing.join('; '), flows };
  }, 1000);
  return r.flows;
}

async function tileOf(g, identity, source = 'camera') {
  return (await g.tiles()).find((t) => t.identity === identity && t.source === source);
}

async function waitTile(g, what, identity, source, pred, ms = 15_000) {
  return until(`${g.name}: ${what}`, ms, async () => {
    const t = await tileOf(g, identity, source);
    return { done: !!t && pred(t), detail: JSON.stringify(t ?? null) };
  });
}

async function waitCount(g, n, ms = 20_000) {
  await until(`${g.name} to show ${n} participants`, ms, async () => {
    const tiles = (await g.tiles()).filter((t) => t.source === 'camera');
    return { done: tiles.length === n, detail: `${tiles.length} tiles: ${tiles.map((t) => t.name).join(', ')}` };
  });
}

async function waitAnnounced(g, re, ms = 10_000) {
  await until(`${g.name} to announce ${re}`, ms, async () => {
    const a = await g.announced();
    return { done: a.some((t) => re.test(t)), detail: JSON.stringify(a.slice(-8)) };
  });
}

// --------------------------------------------------------------- scenarios

const scenarios = {
  async meeting(run) {
    const { links } = run.cfg;
    const alice = run.guest('Alice');
    const bob = run.guest('Bob');

    await run.step('pre-join screen', async () => {
      await alice.open(links.main);
      await alice.waitScreen('prejoin');
      await until('the microphone level meter to move', 15_000, async () => {
        const level = await alice.eval(() => Number(document.querySelector('.level').dataset.level ?? 0));
        return { done: level > 0.02, detail: `level ${level}` };
      });
      const s = await alice.eval(() => ({
        cameras: document.getElementById('camera-select').options.length,
        mics: document.getElementById('mic-select').options.length,
        room: document.getElementById('prejoin-room').textContent,
        focused: document.activeElement?.id,
      }));
      if (s.cameras < 1 || s.mics < 1) throw new CheckError(`device lists: ${JSON.stringify(s)}`);
      if (s.focused !== 'name') throw new CheckError(`focus starts on ${s.focused}, not the name field`);
      await alice.page.fill('#name', 'Alice');
      await alice.shot('prejoin.png');
      return s;
    });

    let ids;
    await run.step('Alice and Bob join', async () => {
      await alice.join();
      await bob.open(links.main);
      await bob.join();
      await waitCount(alice, 2);
      await waitCount(bob, 2);
      ids = { alice: await alice.identity(), bob: await bob.identity() };
      await waitAnnounced(alice, /Bob joined/);
      return ids;
    });

    await run.step('each decodes the other', () =>
      media([
        [alice, [ids.bob]],
        [bob, [ids.alice]],
      ]),
    );

    await run.step('Alice shares her screen (key s); Bob sees it large', async () => {
      await alice.page.keyboard.press('s');
      await until("Alice's share button to show sharing", 15_000, async () => {
        const on = await alice.eval(() => document.getElementById('btn-share').dataset.on);
        return { done: on === 'true', detail: `data-on ${on}` };
      });
      const t = (await waitTile(bob, "Alice's screen in the focus area", ids.alice, 'screen_share', (t) => t.inFocus && t.video === 'on')).detail;
      const flows = await media([[bob, [ids.alice]]], ['screen_share'], 20_000);
      const screen = await tileOf(bob, ids.alice, 'screen_share');
      const cam = await tileOf(bob, ids.bob, 'camera');
      if (!(screen.width > 2 * cam.width && screen.height > 2 * cam.height)) {
        throw new CheckError(`the screen share is not shown large: screen ${screen.width}x${screen.height}, a camera tile ${cam.width}x${cam.height}`);
      }
      const layout = await bob.eval(() => document.getElementById('stage').dataset.layout);
      if (layout !== 'focus') throw new CheckError(`Bob's stage layout is ${layout}, not focus`);
      await waitAnnounced(bob, /Alice is sharing their screen/);
      return { flows, screen: `${screen.width}x${screen.height}`, camera: `${cam.width}x${cam.height}`, tile: t };
    });

    await run.step('Alice mutes (button); Bob sees it', async () => {
      await alice.page.click('#btn-mic');
      await waitTile(bob, 'Alice muted', ids.alice, 'camera', (t) => t.muted === 'true' && /microphone muted/.test(t.label));
      await waitAnnounced(alice, /Microphone muted/);
      const label = await alice.eval(() => document.getElementById('btn-mic').textContent);
      if (label !== 'Unmute') throw new CheckError(`Alice's mic button says ${label}, not Unmute`);
      await alice.page.keyboard.press('m');
      await waitTile(bob, 'Alice unmuted (key m)', ids.alice, 'camera', (t) => t.muted === 'false');
      return 'muted and unmuted';
    });

    await run.step('Alice stops sharing; the grid comes back', async () => {
      await alice.page.click('#btn-share');
      await until("Bob's stage to return to the grid", 15_000, async () => {
        const layout = await bob.eval(() => document.getElementById('stage').dataset.layout);
        return { done: layout === 'grid', detail: layout };
      });
    });

    await run.step('Bob raises his hand (key h); Alice sees it', async () => {
      await bob.page.keyboard.press('h');
      await waitTile(alice, "Bob's hand", ids.bob, 'camera', (t) => t.hand === 'true');
      await waitAnnounced(alice, /Bob raised their hand/);
      const first = await alice.eval(() => document.querySelector('#people li')?.dataset.identity);
      if (first !== ids.bob) throw new CheckError(`the participant list does not put the raised hand first: ${first}`);
    });

    await run.step('Bob chats (key c, Enter); Alice gets it', async () => {
      await bob.page.keyboard.press('c');
      const focused = await bob.eval(() => document.activeElement?.id);
      if (focused !== 'chat-input') throw new CheckError(`opening the chat focused ${focused}, not the input`);
      await bob.page.keyboard.type('Hello from Bob <b>not bold</b>');
      await bob.page.keyboard.press('Enter');
      await until('the message at Alice', 10_000, async () => {
        const s = await alice.eval(() => ({
          texts: [...document.querySelectorAll('#chat-log .text')].map((e) => e.textContent),
          bold: document.querySelectorAll('#chat-log b').length,
          unread: document.getElementById('btn-chat').dataset.unread,
        }));
        return { done: s.texts.includes('Hello from Bob <b>not bold</b>') && s.bold === 0 && s.unread === '1', detail: JSON.stringify(s) };
      });
      await waitAnnounced(alice, /Bob says: Hello from Bob/);
    });

    await run.step("Bob's signalling drops: banner, then back", async () => {
      // As in web/e2e/run.mjs: offline blocks new WebSockets (not WebRTC's
      // UDP), and closing the open one makes the SDK resume.
      await bob.context.setOffline(true);
      const closed = await bob.eval(() => {
        const open = window.__sockets.filter((ws) => ws.readyState === WebSocket.OPEN);
        open.forEach((ws) => ws.close());
        return open.length;
      });
      if (closed === 0) throw new CheckError('Bob had no open WebSocket');
      await until("Bob's reconnecting banner", 10_000, async () => {
        const s = await bob.eval(() => ({ banner: !document.getElementById('banner').hidden, state: document.getElementById('call').dataset.reconnecting }));
        return { done: s.banner && s.state === 'true', detail: JSON.stringify(s) };
      });
      await sleep(2000);
      await bob.context.setOffline(false);
      await until("Bob's banner to go", 30_000, async () => {
        const hidden = await bob.eval(() => document.getElementById('banner').hidden);
        return { done: hidden, detail: 'banner shown' };
      });
      await waitAnnounced(bob, /Reconnecting/);
      await waitAnnounced(bob, /^Reconnected|\. Reconnected/);
      await waitCount(alice, 2);
      return media([
        [alice, [ids.bob]],
        [bob, [ids.alice]],
      ]);
    });

    const carol = run.guest('Carol');
    await run.step('Carol joins: a three-person call', async () => {
      await carol.open(links.main);
      await carol.join();
      for (const g of [alice, bob, carol]) await waitCount(g, 3);
      ids.carol = await carol.identity();
      const flows = await media([
        [alice, [ids.carol]],
        [carol, [ids.alice, ids.bob]],
      ]);
      await alice.page.keyboard.press('c'); // the chat, with Bob's message, in the picture
      await until('every tile to show video', 10_000, async () => {
        const t = (await alice.tiles()).filter((x) => x.source === 'camera');
        return { done: t.every((x) => x.video === 'on'), detail: JSON.stringify(t.map((x) => [x.name, x.video])) };
      });
      await sleep(1000); // let the remote videos paint a frame
      await alice.shot('call.png');
      // The same call on a phone: nothing wider than the screen. (Escape
      // closes Bob's chat, so the picture shows the grid.)
      await bob.page.keyboard.press('Escape');
      await bob.page.setViewportSize({ width: 390, height: 844 });
      await sleep(800);
      const phone = await bob.eval(() => ({
        scrollWidth: document.documentElement.scrollWidth,
        controls: [...document.querySelectorAll('.controls button')].filter((b) => !b.hidden).map((b) => Math.round(b.getBoundingClientRect().right)),
      }));
      if (phone.scrollWidth > 390 || phone.controls.some((r) => r > 390)) throw new CheckError(`the call overflows a phone screen: ${JSON.stringify(phone)}`);
      await bob.shot('call-phone.png');
      await bob.page.setViewportSize({ width: 1280, height: 720 });
      return flows;
    });

    await run.step('Carol leaves; the grids shrink', async () => {
      await carol.page.click('#btn-leave');
      await carol.waitScreen('left');
      await waitCount(alice, 2);
      await waitCount(bob, 2);
      await waitAnnounced(alice, /Carol left/);
    });

    await run.step('accessibility: labels and announcements', async () => {
      const unlabeled = await alice.eval(() =>
        [...document.querySelectorAll('#call button')]
          .filter((b) => !b.hidden && b.offsetParent !== null)
          .filter((b) => !(b.getAttribute('aria-label') || b.textContent.trim()))
          .map((b) => b.id || b.outerHTML.slice(0, 60)),
      );
      if (unlabeled.length) throw new CheckError(`buttons without a label: ${unlabeled.join(', ')}`);
      const a = await alice.announced();
      for (const re of [/You joined/, /Bob joined/, /Microphone muted/, /Carol joined/, /Carol left/]) {
        if (!a.some((t) => re.test(t))) throw new CheckError(`Alice's page never announced ${re}: ${JSON.stringify(a)}`);
      }
      return a;
    });
  },

  async e2ee(run) {
    const { links } = run.cfg;
    const alice = run.guest('Alice');
    const bob = run.guest('Bob');
    let ids;
    await run.step('Alice and Bob join the encrypted meeting', async () => {
      await alice.open(links.e2ee);
      await alice.waitScreen('prejoin');
      const badge = await alice.eval(() => !document.getElementById('prejoin-e2ee').hidden);
      if (!badge) throw new CheckError('the pre-join screen does not say the meeting is encrypted');
      await alice.join();
      await bob.open(links.e2ee);
      await bob.join();
      await waitCount(alice, 2);
      await waitCount(bob, 2);
      ids = { alice: await alice.identity(), bob: await bob.identity() };
      return ids;
    });
    await run.step('each decodes (decrypts) the other', async () => {
      const flows = await media([
        [alice, [ids.bob]],
        [bob, [ids.alice]],
      ]);
      for (const g of [alice, bob]) {
        const badge = await g.eval(() => !document.getElementById('call-e2ee').hidden);
        if (!badge) throw new CheckError(`${g.name}'s call does not show the encryption badge`);
      }
      return flows;
    });
    await run.step('an encrypted chat message arrives', async () => {
      await alice.page.keyboard.press('c');
      await alice.page.keyboard.type('secret hello');
      await alice.page.keyboard.press('Enter');
      await until('the message at Bob', 10_000, async () => {
        const texts = await bob.eval(() => [...document.querySelectorAll('#chat-log .text')].map((e) => e.textContent));
        return { done: texts.includes('secret hello'), detail: JSON.stringify(texts) };
      });
    });
    await run.step(`both stay ${run.cfg.holdMs} ms, media still decoded`, async () => {
      await sleep(run.cfg.holdMs);
      return media([
        [alice, [ids.bob]],
        [bob, [ids.alice]],
      ]);
    });
    await run.step('the link without its key is refused', async () => {
      const g = run.guest('Nokey');
      await g.open(links.e2eeNoKey);
      await g.waitScreen('failure');
      const f = await g.failure();
      if (f.code !== 'e2ee_key_missing') throw new CheckError(`failure ${JSON.stringify(f)}, want e2ee_key_missing`);
      await g.shot('e2ee-no-key.png');
      await g.close();
      return f;
    });
  },

  async refused(run) {
    const { links } = run.cfg;
    const cases = [
      ['expired', links.expired, 'link_expired', /expired/i],
      ['revoked', links.revoked, 'link_revoked', /withdrawn/i],
      ['tampered', links.tampered, 'link_not_found', /does not work/i],
    ];
    for (const [name, url, code, title] of cases) {
      await run.step(`${name} link`, async () => {
        const g = run.guest(name);
        await g.open(url);
        await g.waitScreen('failure');
        const f = await g.failure();
        if (f.code !== code || !title.test(f.title)) throw new CheckError(`failure ${JSON.stringify(f)}, want ${code} ${title}`);
        if (f.focused !== 'failure-title') throw new CheckError(`focus is on ${f.focused}, not the failure's heading`);
        await waitAnnounced(g, title);
        await g.shot(`refused-${name}.png`);
        await g.close();
        return f;
      });
    }
    await run.step('server unreachable', async () => {
      const g = run.guest('offline');
      await g.open(links.main, { blockAPI: true });
      await g.waitScreen('failure');
      const f = await g.failure();
      if (f.code !== 'unreachable') throw new CheckError(`failure ${JSON.stringify(f)}, want unreachable`);
      const retry = await g.eval(() => !document.getElementById('failure-retry').hidden);
      if (!retry) throw new CheckError('no "Try again" button for an unreachable server');
      await g.close();
      return f;
    });
    await run.step('camera and microphone denied', async () => {
      const g = run.guest('Denied');
      await g.open(links.main, { deny: true });
      await g.waitScreen('prejoin');
      const s = (
        await until('the pre-join screen to explain the denial', 15_000, async () => {
          const s = await g.eval(() => ({
            error: document.getElementById('device-error').textContent,
            hidden: document.getElementById('device-error').hidden,
            camera: document.getElementById('prejoin').dataset.camera,
          }));
          return { done: !s.hidden && /denied/.test(s.error), detail: JSON.stringify(s), s };
        })
      ).s;
      await g.shot('prejoin-denied.png');
      await g.join({ expectDevices: false });
      await g.close();
      return s;
    });
  },

  async viewonly(run) {
    const { links } = run.cfg;
    const alice = run.guest('Alice');
    const vic = run.guest('Vic');
    let ids;
    await run.step('Alice joins; Vic joins view-only', async () => {
      await alice.open(links.main);
      await alice.join();
      await vic.open(links.viewonly);
      await vic.waitScreen('prejoin');
      const pre = await vic.eval(() => ({
        devices: !document.getElementById('devices').hidden,
        badge: !document.getElementById('prejoin-viewonly').hidden,
      }));
      if (pre.devices || !pre.badge) throw new CheckError(`view-only pre-join screen: ${JSON.stringify(pre)}`);
      await vic.join({ expectDevices: false });
      await waitCount(alice, 2);
      await waitCount(vic, 2);
      ids = { alice: await alice.identity(), vic: await vic.identity() };
      return ids;
    });
    await run.step('Vic has no publish controls', async () => {
      const c = await vic.eval(() =>
        Object.fromEntries(['btn-mic', 'btn-camera', 'btn-share', 'btn-hand', 'btn-chat', 'btn-leave'].map((id) => [id, !document.getElementById(id).hidden])),
      );
      if (c['btn-mic'] || c['btn-camera'] || c['btn-share'] || !c['btn-hand'] || !c['btn-chat'] || !c['btn-leave']) {
        throw new CheckError(`view-only controls: ${JSON.stringify(c)}`);
      }
      // The shortcuts do nothing either.
      await vic.page.keyboard.press('v');
      await vic.page.keyboard.press('m');
      await sleep(1500);
      const t = await tileOf(alice, ids.vic);
      if (t.video !== 'off' || t.muted !== 'true') throw new CheckError(`Alice sees Vic with media: ${JSON.stringify(t)}`);
      return c;
    });
    await run.step('Vic decodes Alice', () => media([[vic, [ids.alice]]]));
    await run.step('the server refuses a publish from Vic', async () => {
      // What a modified client would do: lift the SDK's own permission
      // check and publish the microphone anyway. The server must answer the
      // AddTrackRequest with NOT_ALLOWED and never announce a track.
      const r = await vic.eval(async () => {
        const { room } = window.stoaMeeting;
        const answers = [];
        room.engine.on('signalRequestResponse', (resp) =>
          answers.push({ request: resp.request?.case, reason: resp.reason, message: resp.message }),
        );
        const perm = room.localParticipant.permissions;
        const before = { canPublish: perm?.canPublish, canPublishData: perm?.canPublishData };
        perm.canPublish = true;
        perm.canPublishSources = [];
        const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
        let error = '';
        try {
          await room.localParticipant.publishTrack(stream.getAudioTracks()[0], { source: 'microphone' });
        } catch (e) {
          error = String(e?.message ?? e);
        }
        stream.getTracks().forEach((t) => t.stop());
        return { before, answers, error };
      });
      if (r.before.canPublish !== false) throw new CheckError(`Vic's token allows publishing: ${JSON.stringify(r.before)}`);
      // RequestResponse.Reason NOT_ALLOWED is 2 (livekit_rtc.proto).
      const refused = r.answers.find((a) => a.request === 'addTrack' && a.reason === 2);
      if (!refused) throw new CheckError(`the server did not refuse the AddTrackRequest: ${JSON.stringify(r)}`);
      if (!r.error) throw new CheckError('publishTrack succeeded');
      const t = await tileOf(alice, ids.vic);
      const people = await alice.eval((id) => document.querySelector(`#people li[data-identity="${id}"]`)?.textContent, ids.vic);
      if (t.video !== 'off' || t.muted !== 'true') throw new CheckError(`Alice sees media from Vic: ${JSON.stringify(t)}`);
      return { refused, error: r.error, people };
    });
    await run.step('Vic raises a hand and chats', async () => {
      await vic.page.keyboard.press('h');
      await waitTile(alice, "Vic's hand", ids.vic, 'camera', (t) => t.hand === 'true');
      await vic.page.keyboard.press('c');
      await vic.page.keyboard.type('a question from Vic');
      await vic.page.keyboard.press('Enter');
      await until('the message at Alice', 10_000, async () => {
        const texts = await alice.eval(() => [...document.querySelectorAll('#chat-log .text')].map((e) => e.textContent));
        return { done: texts.includes('a question from Vic'), detail: JSON.stringify(texts) };
      });
    });
  },
};

// ------------------------------------------------------------------- main

class Run {
  constructor(cfg) {
    this.cfg = cfg;
    this.guests = [];
    this.report = { ok: false, scenario: cfg.scenario, steps: [], screenshots: [] };
  }

  guest(name) {
    const g = new Guest(this, name);
    this.guests.push(g);
    return g;
  }

  async step(name, fn) {
    const t0 = Date.now();
    log(`step: ${name}`);
    const entry = { name, ok: false };
    this.report.steps.push(entry);
    try {
      entry.detail = await fn();
      entry.ok = true;
      const detail = entry.detail === undefined ? '' : ` ${JSON.stringify(entry.detail).slice(0, 600)}`;
      log(`ok: ${name} (${Date.now() - t0} ms)${detail}`);
    } finally {
      entry.ms = Date.now() - t0;
    }
  }
}

async function main() {
  const cfg = await readConfig('meeting.mjs', parseConfig);
  if (!cfg) return 2;
  const run = new Run(cfg);
  const { report } = run;
  const timer = watchdog(cfg.timeoutMs, report);

  let chrome;
  let code = 1;
  try {
    if (cfg.artifacts) await mkdir(cfg.artifacts, { recursive: true });
    chrome = await launch({ executablePath: cfg.chromium, profilePrefix: 'stoa-meeting-' });
    run.browser = chrome.browser;
    log(`scenario ${cfg.scenario}`);
    await scenarios[cfg.scenario](run);
    const errors = run.guests.flatMap((g) => g.errors.filter((e) => !/Failed to load resource/.test(e)).map((e) => `${g.name}: ${e}`));
    report.pageErrors = errors;
    report.ok = true;
    code = 0;
  } catch (e) {
    report.error = failureText(e, run.guests);
    for (const g of run.guests) {
      if (g.page && !g.page.isClosed()) await g.shot(`failed-${g.name}.png`).catch(() => {});
    }
    log(`FAILED: ${report.error}`);
  } finally {
    for (const g of run.guests) await g.close();
    await chrome?.close();
    report.durationMs = Date.now() - started;
    clearTimeout(timer);
  }
  printReport(report);
  return code;
}

process.exitCode = await main();
