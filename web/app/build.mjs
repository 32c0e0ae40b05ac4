// Bundles the meeting page (app/src/main.ts with livekit-client, and
// app/meeting.css) and livekit-client's E2EE worker into web/dist/, with
// content hashes in the file names, and writes dist/index.html pointing at
// them. web/embed.go embeds dist/; web/handler.go serves it.
//
// Usage: node app/build.mjs (from anywhere). Prints the files and sizes.
import { build } from 'esbuild';
import { createRequire } from 'node:module';
import { readFile, readdir, rm, writeFile, mkdir } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const app = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(app, '..', 'dist');
const require = createRequire(import.meta.url);

// Browsers the page supports: those with insertable streams or
// RTCRtpScriptTransform for E2EE, and ES2020.
const target = ['chrome111', 'firefox117', 'safari16.4'];

await mkdir(dist, { recursive: true });
// Old hashed bundles go; the committed placeholder (README.txt) stays.
for (const f of await readdir(dist)) {
  if (f !== 'README.txt') await rm(path.join(dist, f), { recursive: true, force: true });
}

const common = {
  bundle: true,
  minify: true,
  platform: 'browser',
  target,
  outdir: dist,
  entryNames: '[name]-[hash]',
  metafile: true,
  legalComments: 'none',
  logLevel: 'warning',
};

const page = await build({
  ...common,
  entryPoints: [
    { in: path.join(app, 'src', 'main.ts'), out: 'meeting' },
    { in: path.join(app, 'meeting.css'), out: 'meeting' },
  ],
  format: 'esm',
});

// A classic worker script: the page starts it with new Worker(url).
const worker = await build({
  ...common,
  entryPoints: [{ in: require.resolve('livekit-client/e2ee-worker'), out: 'e2ee-worker' }],
  format: 'iife',
});

const outputs = [...Object.keys(page.metafile.outputs), ...Object.keys(worker.metafile.outputs)].map((f) =>
  path.basename(f),
);
const find = (re) => {
  const f = outputs.find((o) => re.test(o));
  if (!f) throw new Error(`build produced no file matching ${re}: ${outputs.join(', ')}`);
  return f;
};
const names = {
  JS: find(/^meeting-\w+\.js$/),
  CSS: find(/^meeting-\w+\.css$/),
  E2EE_WORKER: find(/^e2ee-worker-\w+\.js$/),
};

const template = await readFile(path.join(app, 'index.html'), 'utf8');
const html = template.replace(/\{\{(\w+)\}\}/g, (m, k) => {
  if (!(k in names)) throw new Error(`index.html: unknown placeholder ${m}`);
  return names[k];
});
await writeFile(path.join(dist, 'index.html'), html);

let total = 0;
let totalGz = 0;
const lines = [];
for (const f of ['index.html', ...Object.values(names)]) {
  const b = await readFile(path.join(dist, f));
  const gz = gzipSync(b, { level: 9 }).length;
  total += b.length;
  totalGz += gz;
  lines.push(`  ${f.padEnd(32)} ${(b.length / 1024).toFixed(1).padStart(7)} KiB  gzip ${(gz / 1024).toFixed(1).padStart(6)} KiB`);
}
console.log(`web/dist:\n${lines.join('\n')}\n  ${'total'.padEnd(32)} ${(total / 1024).toFixed(1).padStart(7)} KiB  gzip ${(totalGz / 1024).toFixed(1).padStart(6)} KiB`);
