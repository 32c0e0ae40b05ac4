// Bundles e2e/page.ts with livekit-client into e2e/dist/page.js.
// Used by the Makefile and by browser_test.go; run from anywhere.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const dir = path.dirname(fileURLToPath(import.meta.url));

await build({
  entryPoints: [path.join(dir, 'page.ts')],
  outfile: path.join(dir, 'dist', 'page.js'),
  bundle: true,
  format: 'iife',
  platform: 'browser',
  target: 'chrome120',
  sourcemap: 'linked',
  logLevel: 'warning',
});
