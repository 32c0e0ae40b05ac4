// The Node side of package nodetest: what Stoa's three browser drivers
// (web/e2e/run.mjs, web/app/test/meeting.mjs, web/elementcall/run.mjs)
// share. They launch Debian's Chromium the same way through playwright-core,
// log the same way on stderr, read their JSON config the same way and report
// a bad one the same way; nodetest.go runs them and reads their stdout.
//
// playwright-core resolves from web/node_modules, as for the drivers.

import { chromium } from 'playwright-core';
import { createServer } from 'node:http';
import { createReadStream, existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** When the driver started (this module loads first); log times count from it. */
export const started = Date.now();

/** A check failed: its message is the report's whole error. */
export class CheckError extends Error {}

/** The config is bad or a file is missing: exit status 2. */
export class ConfigError extends Error {}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Seconds since start, one decimal. */
export const secs = () => ((Date.now() - started) / 1000).toFixed(1);

/** Writes msg, redacted, on stderr with the time since start. */
export function log(msg) {
  process.stderr.write(`[${secs().padStart(5)}s] ${redact(msg)}\n`);
}

/**
 * Hides what pages and Chromium log that grants access (tokens in URLs and
 * bodies, JWTs, a meeting's E2EE key in the link fragment) and shortens
 * join_request blobs, so that logs and reports can be shared.
 */
export function redact(s) {
  return String(s)
    .replace(/(access_token=)[^&\s'"]+/g, '$1<redacted>')
    .replace(/("access_token"\s*:\s*")[^"]+/g, '$1<redacted>')
    .replace(/(#key=)[^\s'"]+/g, '$1<redacted>')
    .replace(/(join_request=)([^&\s'"]{16})[^&\s'"]+/g, '$1$2…')
    .replace(/(eyJ[A-Za-z0-9_-]{8})[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/g, '$1…<jwt>');
}

/** Rejects with a CheckError when p does not settle within ms. */
export function withTimeout(p, ms, what) {
  let timer;
  return Promise.race([
    p,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new CheckError(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Calls fn (async, returning {done, detail}) every intervalMs until it
 * returns done, and returns that result. After ms it throws a CheckError
 * with the last detail.
 */
export async function until(what, ms, fn, intervalMs = 250) {
  const deadline = Date.now() + ms;
  let detail = '';
  for (;;) {
    const r = await fn();
    if (r.done) return r;
    detail = r.detail ?? detail;
    if (Date.now() >= deadline) throw new CheckError(`timed out after ${ms} ms waiting for ${what}: ${detail}`);
    await sleep(Math.min(intervalMs, Math.max(0, deadline - Date.now())));
  }
}

// ------------------------------------------------------------ config and report

/**
 * Reads the driver's config, checks it with parse (which throws a
 * ConfigError or returns the config to use) and checks that its Chromium
 * is installed. On a failure it reports it, on stderr after script and as
 * the JSON report {ok: false, error}, and returns undefined: the driver
 * then exits 2 without starting anything.
 */
export async function readConfig(script, parse) {
  try {
    const cfg = parse(await readInput());
    if (!existsSync(cfg.chromium)) {
      throw new ConfigError(`${cfg.chromium} not found: install it with "apt-get install -y chromium" (or make -C web deps)`);
    }
    return cfg;
  } catch (e) {
    process.stderr.write(`${script}: ${e.message}\n`);
    printReport({ ok: false, error: e.message });
    return undefined;
  }
}

/**
 * The config's JSON: on stdin (how nodetest.Run passes it, or "-" on
 * argv), or for runs by hand the JSON itself or a file named on argv.
 */
async function readInput() {
  const arg = process.argv[2];
  let text;
  if (arg === undefined || arg === '-') {
    if (process.stdin.isTTY) throw new ConfigError('no config: pass JSON or a file on argv, or JSON on stdin');
    const chunks = [];
    for await (const c of process.stdin) chunks.push(c);
    text = Buffer.concat(chunks).toString('utf8');
  } else if (arg.trimStart().startsWith('{')) {
    text = arg;
  } else {
    text = await readFile(arg, 'utf8').catch((e) => {
      throw new ConfigError(`reading ${arg}: ${e.message}`);
    });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`config is not JSON: ${e.message}`);
  }
}

/** Writes the run's one JSON report on stdout, where the Go test reads it. */
export function printReport(report) {
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

/**
 * The report's error for e: a check's or the config's message as it is,
 * anything else (a bug, a Playwright timeout) with its stack; then the last
 * n errors of each page, from pages: [{name, errors}].
 */
export function failureText(e, pages, n = 3) {
  let text = e instanceof CheckError || e instanceof ConfigError ? e.message : (e?.stack ?? String(e));
  const recent = pages.filter((p) => p.errors.length).map((p) => `${p.name}: ${p.errors.slice(-n).join(' | ')}`);
  if (recent.length) text += `\n  recent page errors:\n  ${recent.join('\n  ')}`;
  return text;
}

/**
 * The last resort if something hangs that no await bounds (a stuck browser
 * close): after ms, report (with an error) is printed and node exits 1;
 * Playwright kills the browser on exit. The timer does not keep node
 * alive; clear it when the run ends.
 */
export function watchdog(ms, report) {
  const timer = setTimeout(() => {
    log(`watchdog: still running ${ms} ms after start, exiting`);
    report.error ??= `watchdog: the run did not finish within ${ms} ms`;
    printReport(report);
    process.exit(1);
  }, ms);
  timer.unref();
  return timer;
}

// ------------------------------------------------------- Chromium and pages

// Playwright 1.65's own --disable-features list (chromiumSwitches.ts).
// Chromium honours only the last --disable-features flag, and ours comes
// after Playwright's, so it has to repeat Playwright's list.
const PLAYWRIGHT_DISABLED_FEATURES = [
  'AvoidUnnecessaryBeforeUnloadCheckSync',
  'DestroyProfileOnBrowserClose',
  'HttpsUpgrades',
  'HttpsFirstBalancedModeAutoEnable',
  'LensOverlay',
  'MediaRouter',
  'PaintHolding',
  'ThirdPartyStoragePartitioning',
  'AvoidCorsURLLoaderRestartOnRedirect',
  'TcpPortRandomizationWin',
  'OptimizationHints',
  'NetworkTimeServiceQuerying',
  'AimEnabled',
  'PreconnectToSearch',
  'msForceBrowserSignIn',
  'msEdgeUpdateLaunchServicesPreferredVersion',
];

// Ours: real host addresses in ICE candidates instead of mDNS names (the
// server could not resolve them, and resolving multicasts to 224.0.0.251).
const OUR_DISABLED_FEATURES = ['WebRtcHideLocalIpsWithMdns'];

/** Chromium's flags (TESTENV.md): loopback only, fake devices, audio that plays. */
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-default-apps',
  '--disable-renderer-backgrounding',
  '--disable-background-timer-throttling',
  '--disable-backgrounding-occluded-windows',
  // Synthetic camera (a moving pattern) and microphone (a beep), no prompt.
  // With the fake UI, getDisplayMedia returns a fake 1280x720 "screen" (no
  // picker) when a page calls it from a user gesture.
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
  // Remote audio plays without a user gesture, so it is decoded.
  '--autoplay-policy=no-user-gesture-required',
  `--disable-features=${[...PLAYWRIGHT_DISABLED_FEATURES, ...OUR_DISABLED_FEATURES].join(',')}`,
  // Anything Chromium fetches by itself goes to a dead proxy; the pages and
  // the servers under test are on loopback and bypass it.
  '--proxy-server=http://127.0.0.1:9',
  '--proxy-bypass-list=127.0.0.1;localhost;[::1]',
];

/**
 * Launches the Chromium at executablePath with a fresh profile in a
 * temporary directory named after profilePrefix. Returns {browser, close};
 * close closes the browser (giving up after 10 s) and removes the profile,
 * and never throws.
 */
export async function launch({ executablePath, headless = true, profilePrefix }) {
  const profile = await mkdtemp(path.join(tmpdir(), profilePrefix));
  const removeProfile = () => rm(profile, { recursive: true, force: true }).catch(() => {});
  let browser;
  try {
    browser = await chromium.launch({
      executablePath,
      headless,
      args: CHROMIUM_ARGS,
      // Playwright mutes audio in headless mode; the checks look at received audio.
      ignoreDefaultArgs: ['--mute-audio'],
      timeout: 30_000,
      // Chromium writes its own state under HOME and XDG dirs besides the profile.
      env: { ...process.env, HOME: profile, XDG_CONFIG_HOME: profile, XDG_CACHE_HOME: profile },
    });
  } catch (e) {
    await removeProfile();
    throw e;
  }
  log(`launched ${executablePath} ${browser.version()}`);
  const close = async () => {
    await withTimeout(browser.close(), 10_000, 'browser.close').catch((e) => log(`closing the browser: ${e.message}`));
    await removeProfile();
  };
  return { browser, close };
}

/**
 * Appends text to errors, a page's console errors and uncaught exceptions
 * for the report: stamped with the time, redacted and cut to width; beyond
 * max the oldest go.
 */
export function keepError(errors, text, max = 30, width = 400) {
  errors.push(`[${secs()}s] ${redact(text).slice(0, width)}`);
  if (errors.length > max) errors.shift();
}

/**
 * Logs a page's uncaught exceptions and its crash under name, and hands a
 * line for each to note, which keeps it for the report.
 */
export function watchErrors(page, name, note) {
  page.on('pageerror', (e) => {
    log(`${name} pageerror: ${e.message}`);
    note(`uncaught: ${e.message}`);
  });
  page.on('crash', () => {
    log(`${name} page crashed`);
    note('page crashed');
  });
}

// --------------------------------------------------------------- file server

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
  '.woff': 'font/woff',
  '.ogg': 'audio/ogg',
  '.mp3': 'audio/mpeg',
  '.tflite': 'application/octet-stream',
  '.binarypb': 'application/octet-stream',
};

/**
 * Serves files on 127.0.0.1, on a free port, to GET and HEAD, uncached:
 * resolve(pathname) names the file for a URL path, or returns undefined.
 * Returns {server, origin, missing}; missing collects the paths asked for
 * and not found.
 */
export async function serveFiles(resolve) {
  const missing = [];
  const server = createServer(async (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405).end();
      return;
    }
    const { pathname } = new URL(req.url, 'http://x');
    // Chromium asks for it by itself; a 404 would only add a console error.
    if (pathname === '/favicon.ico') {
      res.writeHead(204).end();
      return;
    }
    let file;
    try {
      file = resolve(pathname);
    } catch {
      // A malformed escape in the path (decodeURIComponent); not found.
    }
    const st = file ? await stat(file).catch(() => undefined) : undefined;
    if (!st?.isFile()) {
      missing.push(pathname);
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
      return;
    }
    res.writeHead(200, {
      'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream',
      'Content-Length': st.size,
      'Cache-Control': 'no-store',
    });
    if (req.method === 'HEAD') res.end();
    else createReadStream(file).pipe(res);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return { server, origin: `http://127.0.0.1:${server.address().port}`, missing };
}
