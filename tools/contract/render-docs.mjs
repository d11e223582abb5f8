// Renders the HTML documentation of schemas/asyncapi.yaml with the official AsyncAPI HTML
// template (@asyncapi/html-template through @asyncapi/generator 2, the last generator line
// that runs on Node.js 20).
//
//   node tools/contract/render-docs.mjs [schemas/asyncapi.yaml] [target/contract/html]
//
// One self-contained index.html (singleFile: the template's CSS and JavaScript inlined), so
// the page needs no server and no network: tools/check-contract.sh opens it from disk in a
// headless Chromium with the network off.
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import Generator from '@asyncapi/generator';

const here = dirname(fileURLToPath(import.meta.url));
const file = resolve(process.argv[2] ?? 'schemas/asyncapi.yaml');
const out = resolve(process.argv[3] ?? 'target/contract/html');

// The template by its path in node_modules, so the generator uses the version
// package-lock.json pins and never installs one itself (install: false).
const require = createRequire(join(here, 'package.json'));
const template = dirname(require.resolve('@asyncapi/html-template/package.json'));

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const generator = new Generator(template, out, {
  forceWrite: true,
  install: false,
  templateParams: { singleFile: 'true' },
});
await generator.generateFromFile(file);

const html = join(out, 'index.html');
const text = readFileSync(html, 'utf8');
// The page must not reach for the network: a stylesheet, script or font from a CDN would
// leave an offline reader (and the screenshot) with an unstyled or empty page.
const external = [...text.matchAll(/<(?:link|script|img)\b[^>]*\b(?:href|src)="(https?:[^"]+)"/g)].map(
  (m) => m[1],
);
if (external.length > 0) {
  console.error(`render-docs: ${html} loads from the network: ${external.join(', ')}`);
  process.exit(1);
}
console.log(`render-docs: ${html} (${text.length} bytes, self-contained)`);
