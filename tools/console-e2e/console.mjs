// The web console in a real browser: headless Debian chromium, driven by playwright-core.
//
//   CONSOLE_E2E_CREDENTIAL=... node tools/console-e2e/console.mjs --url http://127.0.0.1:PORT [--out DIR]
//
// Run by tools/console-e2e.sh against a live `handoff serve` with the console on (it sets
// everything up). The credential comes from the environment, never the command line.
// Walks the console as an operator would: the login page without a session, signing in,
// the board, from a hold on the board to that person's page, the two reports through the
// navigation, signing out. Every page is checked: its HTTP status, no script error or
// console error, its main heading, no request leaving the console's origin, and a
// screenshot (saved in the output directory) that is neither blank nor tiny. Exits 1 with
// a message naming the page on the first failure.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { chromium } from 'playwright-core';

const started = Date.now();

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const base = (arg('--url', process.env.CONSOLE_E2E_URL) || '').replace(/\/+$/, '');
const out = arg('--out', process.env.CONSOLE_E2E_OUT || 'target/console-e2e');
const credential = process.env.CONSOLE_E2E_CREDENTIAL || '';
const chromiumPath = process.env.CONSOLE_E2E_CHROMIUM || '/usr/bin/chromium';
// The board can be long (a row per open hold, offer and recent decision): board-top.png is
// its first MAX_HEIGHT pixels, for docs/console.png.
const MAX_HEIGHT = 1400;
const WIDTH = 1200;

if (!/^http:\/\/(127\.0\.0\.1|localhost|\[::1\]):\d+$/.test(base)) {
  fail('setup', `--url must be the console on this machine (http://127.0.0.1:PORT), not ${JSON.stringify(base)}`);
}
if (credential.length < 12) {
  fail('setup', 'CONSOLE_E2E_CREDENTIAL must hold the console credential (12 characters or more)');
}
mkdirSync(out, { recursive: true });

function fail(page, message) {
  console.error(`console-e2e: FAILED on the ${page} page: ${message}`);
  process.exit(1);
}

function check(page, ok, message) {
  if (!ok) throw new PageFailure(page, message);
}

class PageFailure extends Error {
  constructor(page, message) {
    super(message);
    this.page = page;
  }
}

// ---------------------------------------------------------------------------------------
// Screenshots: decode the PNG (8-bit greyscale, RGB or RGBA, not interlaced, as Chromium
// writes them) and count its distinct colours. A blank or half-rendered page has a handful.

function pngStats(buf) {
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (buf.length < 8 || sig.some((b, i) => buf[i] !== b)) throw new Error('not a PNG');
  let pos = 8;
  let width = 0, height = 0, depth = 0, colourType = 0, interlace = 0;
  const idat = [];
  while (pos + 8 <= buf.length) {
    const n = buf.readUInt32BE(pos);
    const kind = buf.toString('latin1', pos + 4, pos + 8);
    const body = buf.subarray(pos + 8, pos + 8 + n);
    pos += 12 + n;
    if (kind === 'IHDR') {
      width = body.readUInt32BE(0);
      height = body.readUInt32BE(4);
      depth = body[8];
      colourType = body[9];
      interlace = body[12];
    } else if (kind === 'IDAT') {
      idat.push(body);
    } else if (kind === 'IEND') {
      break;
    }
  }
  const channels = { 0: 1, 2: 3, 4: 2, 6: 4 }[colourType];
  if (depth !== 8 || !channels || interlace !== 0) {
    throw new Error(`unexpected PNG format (depth ${depth}, colour type ${colourType}, interlace ${interlace})`);
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  if (raw.length < height * (stride + 1)) throw new Error('truncated PNG data');
  let prev = Buffer.alloc(stride);
  let row = Buffer.alloc(stride);
  const colours = new Set();
  for (let y = 0; y < height; y++) {
    const at = y * (stride + 1);
    const filter = raw[at];
    const line = raw.subarray(at + 1, at + 1 + stride);
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? row[x - channels] : 0;
      const b = prev[x];
      const c = x >= channels ? prev[x - channels] : 0;
      let v = line[x];
      switch (filter) {
        case 0: break;
        case 1: v += a; break;
        case 2: v += b; break;
        case 3: v += (a + b) >> 1; break;
        case 4: {
          const p = a + b - c;
          const pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
          v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
          break;
        }
        default: throw new Error(`bad PNG filter ${filter} in row ${y}`);
      }
      row[x] = v & 0xff;
    }
    for (let x = 0; x < stride; x += channels) {
      let key = 0;
      for (let k = 0; k < channels; k++) key = key * 256 + row[x + k];
      colours.add(key);
    }
    [prev, row] = [row, prev];
  }
  return { width, height, colours: colours.size, bytes: buf.length };
}

// ---------------------------------------------------------------------------------------
// The walk.

const browser = await chromium.launch({
  executablePath: chromiumPath,
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
const context = await browser.newContext({ viewport: { width: WIDTH, height: 800 } });
const page = await context.newPage();
page.setDefaultTimeout(20_000);

// What went wrong in the page since the last check: script errors, console errors and
// requests that left the console's origin.
let problems = [];
// The status of the page's own document, which Chromium reports as a console error
// ("Failed to load resource: ... status of 401") when it is 4xx: expected on the login page.
let expectedStatus = 200;
page.on('pageerror', (e) => problems.push(`script error: ${e.message}`));
page.on('console', (m) => {
  if (m.type() !== 'error') return;
  const text = m.text();
  if (expectedStatus >= 400 && text.includes(`status of ${expectedStatus}`)) return;
  problems.push(`console error: ${text}`);
});
page.on('request', (r) => {
  const url = r.url();
  if (!url.startsWith(base + '/') && !url.startsWith('data:')) problems.push(`a request left the console: ${url}`);
});

const timings = [];
const shots = [];

/** Checks the page now shown and screenshots it as `${name}.png`. */
async function checkPage(name, response, { status, heading, fullPage = false, minText = 200 }) {
  check(name, response, 'no HTTP response for the page');
  check(name, response.status() === status, `HTTP status ${response.status()}, expected ${status} (${response.url()})`);
  const type = response.headers()['content-type'] || '';
  check(name, type.startsWith('text/html'), `content type ${JSON.stringify(type)}, expected text/html`);
  await page.waitForLoadState('load');
  const h1 = page.locator('h1').first();
  check(name, (await h1.count()) === 1 && (await h1.isVisible()), 'no visible main heading (h1)');
  const text = ((await h1.textContent()) || '').trim();
  check(name, heading instanceof RegExp ? heading.test(text) : text === heading,
    `main heading ${JSON.stringify(text)}, expected ${heading}`);
  const bodyText = ((await page.locator('body').innerText()) || '').trim();
  check(name, bodyText.length >= minText,
    `the page is (nearly) empty: ${bodyText.length} characters of text, expected ${minText} or more: ${JSON.stringify(bodyText.slice(0, 200))}`);

  const path = join(out, `${name}.png`);
  const png = await page.screenshot({ fullPage });
  writeFileSync(path, png);
  let stats;
  try {
    stats = pngStats(png);
  } catch (e) {
    check(name, false, `screenshot ${path} cannot be read: ${e.message}`);
  }
  check(name, stats.width >= 1000 && stats.height >= 600,
    `screenshot ${path} is ${stats.width}x${stats.height}, smaller than 1000x600`);
  check(name, stats.colours > 20,
    `screenshot ${path} looks blank: ${stats.colours} distinct colours (${stats.width}x${stats.height})`);
  shots.push(`${name}.png ${stats.width}x${stats.height} ${stats.colours} colours`);
  if (fullPage) {
    // The top of a long page, for a picture in the docs: at most MAX_HEIGHT pixels high.
    const top = await page.screenshot({
      fullPage: true,
      clip: { x: 0, y: 0, width: stats.width, height: Math.min(stats.height, MAX_HEIGHT) },
    });
    writeFileSync(join(out, `${name}-top.png`), top);
    const t = pngStats(top);
    check(name, t.colours > 20, `screenshot ${name}-top.png looks blank: ${t.colours} distinct colours`);
    shots.push(`${name}-top.png ${t.width}x${t.height} ${t.colours} colours`);
  }

  check(name, problems.length === 0, problems.join('; '));
  problems = [];
}

/** Runs one step, timing it. */
let current = 'setup';
async function step(name, fn) {
  current = name;
  const t = Date.now();
  await fn();
  timings.push(`${name} ${((Date.now() - t) / 1000).toFixed(1)}s`);
}

/** Clicks `target` and returns the response of the document it leads to (after redirects). */
async function follow(target) {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.request().isNavigationRequest() && r.request().frame() === page.mainFrame()
      && (r.status() < 300 || r.status() >= 400)),
    target.click(),
  ]);
  await page.waitForLoadState('load');
  return response;
}

/** The login form, as every page answers without a session. */
async function expectLoginForm(name) {
  check(name, (await page.locator('form.login input#credential[name="credential"][type="password"]').count()) === 1,
    'no credential field (input#credential, type password)');
  check(name, (await page.getByRole('button', { name: 'Sign in' }).count()) === 1, 'no "Sign in" button');
  const html = await page.content();
  const leak = html.match(/P-\d{4,}|\/person\b|county|fci-/);
  check(name, !leak, `the login page reveals data: ${leak && leak[0]}`);
  check(name, (await page.locator('nav.console').count()) === 0, 'the login page shows the navigation');
}

let person = '';
try {
  await step('login', async () => {
    expectedStatus = 401;
    const r = await page.goto(base + '/');
    await checkPage('login', r, { status: 401, heading: 'handoff console', minText: 20 });
    await expectLoginForm('login');
    expectedStatus = 200;
  });

  await step('board', async () => {
    await page.locator('input#credential').fill(credential);
    const r = await follow(page.getByRole('button', { name: 'Sign in' }));
    check('board', new URL(page.url()).pathname === '/' && r.status() === 200,
      `signing in led to ${page.url()} (HTTP ${r.status()}), not the board: was the credential refused?`);
    for (const s of ['#holds', '#offers', '#capacity', '#decisions', '#dead-letters']) {
      check('board', (await page.locator(`section${s}`).count()) === 1, `no section${s}`);
    }
    check('board', (await page.locator('nav.console').count()) === 1, 'no navigation (nav.console)');
    const role = (await page.locator('p#role').innerText()).trim();
    check('board', role.includes('the only instance (file journal)'), `p#role says ${JSON.stringify(role)}`);
    const holds = page.locator('section#holds table tbody tr');
    const n = await holds.count();
    check('board', n >= 1, 'the holds table has no row: no 48-hour hold is open (is the log dated up to now?)');
    const title = (await page.locator('section#holds h2').innerText()).trim();
    check('board', title.includes(`(${n})`), `the holds heading ${JSON.stringify(title)} does not count ${n} rows`);
    // Soonest ending first: the "hold until" column (the last) never decreases.
    const until = await holds.locator('td:last-child').allInnerTexts();
    const sorted = [...until].sort();
    check('board', until.join() === sorted.join(), `holds are not soonest ending first: ${until.join(', ')}`);
    check('board', !(await holds.first().innerText()).includes('overdue'), 'the first hold is overdue');
    const decisions = await page.locator('section#decisions table tbody tr').count();
    check('board', decisions >= 1, 'no decision on the board');
    await checkPage('board', r, { status: 200, heading: 'handoff: board', fullPage: true });
  });

  await step('person', async () => {
    const link = page.locator('section#holds table tbody tr').first().locator('a[href^="/person/"]');
    check('board', (await link.count()) === 1, 'the first hold row has no person link');
    person = ((await link.textContent()) || '').trim();
    check('board', /^[A-Z0-9][A-Z0-9-]{3,31}$/.test(person), `the first hold's person link reads ${JSON.stringify(person)}`);
    const r = await follow(link);
    const path = new URL(page.url()).pathname;
    check('person', path === `/person/${person}`, `the link led to ${path}, not /person/${person}`);
    await checkPage('person', r, { status: 200, heading: `Person ${person}` });
    const rows = page.locator('section#timeline table tbody tr');
    check('person', (await rows.count()) >= 1, 'the timeline has no row');
    // The hold that put the person on the board: a decision row naming handoff.hold and
    // R3.3, and the parties told of it.
    const holdRows = rows.filter({ has: page.locator('td:nth-child(3) > b', { hasText: /^handoff\.hold$/ }) });
    check('person', (await holdRows.count()) >= 1, 'no handoff.hold decision in the timeline');
    const hold = holdRows.last();
    check('person', (await hold.getAttribute('class')) === 'decision', 'the handoff.hold row is not a decision row');
    const what = await hold.locator('td').nth(2).innerText();
    check('person', what.includes('R3.3'), `the hold decision does not name rule R3.3: ${JSON.stringify(what)}`);
    const told = (await hold.locator('td').nth(3).innerText()).trim();
    check('person', /party\.ice/.test(told) && /party\.local\./.test(told),
      `the hold decision does not say ICE and the jail were told: told ${JSON.stringify(told)}`);
  });

  for (const [name, label, path, heading] of [
    ['ddor', 'DDOR report', '/reports/ddor', /Declined Detainer Outcome Report/],
    ['capacity', 'Capacity report', '/reports/capacity', /capacity|detention/i],
  ]) {
    await step(name, async () => {
      const link = page.locator('nav.console a', { hasText: label });
      check(name, (await link.count()) === 1, `no "${label}" link in the navigation`);
      const r = await follow(link);
      check(name, new URL(page.url()).pathname === path, `the "${label}" link led to ${page.url()}`);
      check(name, (await page.locator(`nav.console a.on[href="${path}"]`).count()) === 1,
        'the navigation does not mark this page as the one shown');
      check(name, (await page.locator('form.window input[name="from"]').count()) === 1, 'no window form');
      await checkPage(name, r, { status: 200, heading });
    });
  }

  await step('logout', async () => {
    const out = page.locator('nav.console form.out button', { hasText: 'Sign out' });
    check('logout', (await out.count()) === 1, 'no "Sign out" button');
    await follow(out);
    check('logout', new URL(page.url()).pathname === '/login', `signing out led to ${page.url()}`);
    check('logout', (await page.locator('input#credential').count()) === 1, 'no login form after signing out');
    expectedStatus = 401;
    for (const path of ['/', `/person/${person}`]) {
      const r = await page.goto(base + path);
      check('logout', r.status() === 401, `${path} after signing out: HTTP ${r.status()}, expected 401`);
      await expectLoginForm('logout');
    }
    check('logout', problems.length === 0, problems.join('; '));
  });
} catch (e) {
  await browser.close().catch(() => {});
  if (e instanceof PageFailure) fail(e.page, e.message);
  fail(current, e.stack || String(e));
}
const version = browser.version();
await browser.close();

console.log(`console-e2e: chromium ${version}: pages OK, followed hold of ${person}; `
  + `${timings.join(', ')}; ${((Date.now() - started) / 1000).toFixed(1)}s in all`);
for (const s of shots) console.log(`console-e2e:   ${join(out, s)}`);
