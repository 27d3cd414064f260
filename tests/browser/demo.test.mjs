// demo.test.mjs - the demo page in headless Chromium against a live advjpgd.
//
// Starts advjpgd (env ADVJPGD) with a tiny random model, opens the page, picks
// an image with the keyboard (Enter on the drop zone's file input), waits for
// the four panels and checks every label and probability shown against the
// /attack JSON for the same image and parameters; then the accessibility
// basics, the server's errors in words, the evaluation form, and "cannot reach
// the server". Saves a screenshot of the panels to env SCREENSHOT (default
// tests/browser/demo.png).
//
// The page is loaded from the daemon's own "/" when it serves it. A daemon
// that answers 404 there (the embedded page not wired yet) gets a small
// static server in front of it, serving server/web/ and passing every other
// path to the daemon, so the page still runs against the real API on one
// origin; set ADVJPG_WEB_EMBEDDED=1 to make that a failure instead.
//
// Run: node --test demo.test.mjs (see run.sh). Chromium: /usr/bin/chromium or
// env CHROMIUM; never downloaded.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const webDir = path.resolve(here, '../../server/web');
const ADVJPGD = process.env.ADVJPGD || '';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SCREENSHOT = path.resolve(process.env.SCREENSHOT || path.join(here, 'demo.png'));
const REQUIRE_EMBEDDED = process.env.ADVJPG_WEB_EMBEDDED === '1';
const EPS = 5;
const QUALITY = 60;

const skip = !ADVJPGD ? 'ADVJPGD is not set' : !fs.existsSync(CHROMIUM) ? 'no ' + CHROMIUM : false;

// ---------------------------------------------------------------- inputs

/** Deterministic pseudo-random numbers in [0, 1) (mulberry32). */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SPEC = {
  name: 'tiny', channels: 3, input_size: 32, scale_size: 36,
  mean: 118.380948, std: 61.896913, classes: 10,
  layers: [
    { type: 'conv', out: 8, kernel: 3, stride: 1, pad: 1 },
    { type: 'relu' },
    { type: 'maxpool', kernel: 2, stride: 2 },
    { type: 'fc', out: 10 },
  ],
};

/** 20714 little-endian float32 in [-0.1, 0.1): conv 8x3x3x3 + 8, fc 10x(8*16*16) + 10. */
function weights() {
  const n = 8 * 3 * 3 * 3 + 8 + 10 * 8 * 16 * 16 + 10;
  assert.equal(n, 20714);
  const buf = Buffer.alloc(4 * n);
  const r = rng(11);
  for (let i = 0; i < n; i++) buf.writeFloatLE((r() * 2 - 1) * 0.1, 4 * i);
  return buf;
}

/** A W x H RGB picture: smooth colour fields with a disc. */
function picture(W, H) {
  const px = Buffer.alloc(W * H * 3);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const i = 3 * (y * W + x);
      const d = Math.hypot(x - W * 0.5, y - H * 0.5);
      if (d < H * 0.3) {
        px[i] = 232; px[i + 1] = 176; px[i + 2] = 48;
      } else {
        px[i] = 128 + 127 * Math.sin(x / 23) * Math.cos(y / 31);
        px[i + 1] = 128 + 127 * Math.sin((x + y) / 40);
        px[i + 2] = (255 * ((x * y) % 97)) / 97;
      }
    }
  }
  return px;
}

function ppm(W, H, px) {
  return Buffer.concat([Buffer.from(`P6\n${W} ${H}\n255\n`), px]);
}

function png(W, H, px) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b) => {
    let c = 0xffffffff;
    for (const v of b) c = crcTable[(c ^ v) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(W, 0);
  ihdr.writeUInt32BE(H, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const raw = Buffer.concat(Array.from({ length: H }, (_, y) =>
    Buffer.concat([Buffer.from([0]), px.subarray(y * W * 3, (y + 1) * W * 3)])));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

// ---------------------------------------------------------------- processes

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Starts advjpgd on 127.0.0.1:0 with the tiny model in `dir` and `args`;
 * resolves to { proc, port, logFile } once /health is 200.
 */
async function startDaemon(dir, name, args) {
  const portFile = path.join(dir, name + '.port');
  const logFile = path.join(dir, name + '.log');
  fs.writeFileSync(path.join(dir, 'empty.conf'), '');
  const log = fs.openSync(logFile, 'w');
  const proc = spawn(ADVJPGD, [
    '--config', path.join(dir, 'empty.conf'), '--listen', '127.0.0.1:0', '--port-file', portFile,
    '--model', path.join(dir, 'spec.json'), '--weights', path.join(dir, 'w.bin'),
    '--jobs-dir', path.join(dir, 'jobs-' + name), ...(args || []),
  ], { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  let exited = null;
  proc.on('exit', (code, sig) => { exited = sig || code; });
  const failed = (why) => new Error(why + '; advjpgd log:\n' + fs.readFileSync(logFile, 'utf8'));
  for (let i = 0; ; i++) {
    if (exited !== null) throw failed('advjpgd exited (' + exited + ')');
    if (i > 600) throw failed('advjpgd wrote no port file in 60 s');
    if (fs.existsSync(portFile) && fs.readFileSync(portFile, 'utf8').trim()) break;
    await sleep(100);
  }
  const port = Number(fs.readFileSync(portFile, 'utf8').trim());
  for (let i = 0; ; i++) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/health`);
      if (r.status === 200) break;
    } catch (e) {
      // not yet
    }
    if (i > 300) throw failed('advjpgd never became healthy');
    await sleep(100);
  }
  return { proc, port, logFile };
}

function stopProcess(proc) {
  return new Promise((resolve) => {
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return resolve();
    proc.once('exit', () => resolve());
    proc.kill('SIGTERM');
    setTimeout(() => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    }, 5000).unref();
  });
}

/**
 * The stand-in for the daemon's "/" while it does not serve the page: serves
 * server/web/ and passes everything else to the daemon. Resolves to the server.
 */
function startFrontProxy(upstreamPort) {
  const types = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
    '.css': 'text/css; charset=utf-8' };
  const server = http.createServer((req, res) => {
    const p = req.url.split('?')[0];
    const file = p === '/' ? 'index.html' : p.slice(1);
    if ((req.method === 'GET' || req.method === 'HEAD') && Object.hasOwn(types, path.extname(file)) &&
        !file.includes('/') && fs.existsSync(path.join(webDir, file))) {
      res.writeHead(200, { 'Content-Type': types[path.extname(file)], 'Cache-Control': 'no-cache' });
      return res.end(fs.readFileSync(path.join(webDir, file)));
    }
    const up = http.request({ host: '127.0.0.1', port: upstreamPort, path: req.url, method: req.method,
      headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => {
      // the daemon is gone: drop the connection, as the daemon itself would be unreachable
      req.socket.destroy();
    });
    req.pipe(up);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/**
 * Where the page of `daemon` is: the daemon itself when it serves "/", else
 * a front proxy (returned too, to be closed).
 */
let embedded = null; // whether the first daemon served "/" itself
async function pageOrigin(daemon) {
  const apiOrigin = `http://127.0.0.1:${daemon.port}`;
  const root = await fetch(apiOrigin + '/');
  await root.arrayBuffer();
  if (embedded === null) embedded = root.status === 200;
  if (root.status === 200) return { origin: apiOrigin, front: null };
  assert.ok(!REQUIRE_EMBEDDED, `advjpgd answers ${root.status} for / (ADVJPG_WEB_EMBEDDED=1)`);
  // A daemon that serves the page must serve it to everyone: the token is
  // typed into the page, so the page cannot need it.
  assert.ok(!embedded, `advjpgd answers ${root.status} for / with --token: the page and its ` +
    'files must be served without the token');
  console.log(`# advjpgd answers ${root.status} for /: serving server/web/ from the test`);
  const front = await startFrontProxy(daemon.port);
  return { origin: `http://127.0.0.1:${front.address().port}`, front };
}

function closeFront(front) {
  if (front) {
    front.closeAllConnections();
    front.close();
  }
}

/** The path of a second screenshot next to SCREENSHOT: demo.png -> demo-NAME.png. */
function screenshotVariant(name) {
  const ext = path.extname(SCREENSHOT);
  return SCREENSHOT.slice(0, SCREENSHOT.length - ext.length) + '-' + name + (ext || '.png');
}

// ---------------------------------------------------------------- the test

describe('demo page', { skip, timeout: 180000 }, () => {
  let tmp, daemon, front, origin, apiOrigin, context, page;
  let tokenDaemon, tokenFront;
  let jpeg, jpegType;
  const pageErrors = [];

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'advjpg-browser-'));
    fs.writeFileSync(path.join(tmp, 'spec.json'), JSON.stringify(SPEC));
    fs.writeFileSync(path.join(tmp, 'w.bin'), weights());
    const W = 320;
    const H = 240;
    const px = picture(W, H);
    fs.writeFileSync(path.join(tmp, 'pic.ppm'), ppm(W, H, px));
    const cj = spawnSync('cjpeg', ['-quality', '92', '-outfile', path.join(tmp, 'pic.jpg'),
      path.join(tmp, 'pic.ppm')]);
    if (cj.status === 0) {
      jpeg = path.join(tmp, 'pic.jpg');
      jpegType = 'image/jpeg';
    } else {
      jpeg = path.join(tmp, 'pic.png'); // no cjpeg (libjpeg-turbo-progs): a PNG then
      fs.writeFileSync(jpeg, png(W, H, px));
      jpegType = 'image/png';
    }
    fs.writeFileSync(path.join(tmp, 'broken.jpg'),
      Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.from('not really a jpeg'.repeat(8))]));

    daemon = await startDaemon(tmp, 'plain');
    apiOrigin = `http://127.0.0.1:${daemon.port}`;
    ({ origin, front } = await pageOrigin(daemon));

    const userDataDir = fs.mkdtempSync(path.join(tmp, 'chromium-'));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1280, height: 900 },
    });
    page = context.pages()[0] || (await context.newPage());
    // Intercept file choosers from the start: Playwright turns interception on
    // without waiting for it, so a listener added just before the key press
    // can miss the chooser it opens.
    page.on('filechooser', () => {});
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') pageErrors.push('console: ' + m.text());
    });
  });

  after(async () => {
    if (context) await context.close().catch(() => {});
    closeFront(front);
    closeFront(tokenFront);
    if (daemon) await stopProcess(daemon.proc);
    if (tokenDaemon) await stopProcess(tokenDaemon.proc);
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('serves the three files as they are in server/web, not cached', async () => {
    for (const [p, file, type] of [['/', 'index.html', 'text/html'], ['/index.html', 'index.html', 'text/html'],
      ['/app.js', 'app.js', 'javascript'], ['/style.css', 'style.css', 'text/css']]) {
      const r = await fetch(origin + p);
      assert.equal(r.status, 200, p);
      assert.match(r.headers.get('content-type') || '', new RegExp(type), p);
      assert.match(r.headers.get('cache-control') || '', /no-cache/, p);
      assert.ok(Buffer.from(await r.arrayBuffer()).equals(fs.readFileSync(path.join(webDir, file))), p);
    }
  });

  it('shows the model at the top', async () => {
    await page.goto(origin + '/');
    await page.waitForFunction(() => document.querySelector('#model-name').textContent === 'tiny');
    assert.equal(await page.textContent('#model-input'), '32\u00d732 (from 36)');
    assert.equal(await page.textContent('#model-classes'), '10');
    assert.equal(await page.textContent('#model-params'), '20,714');
    await page.waitForFunction(() => document.querySelector('#health').dataset.state === 'ok');
  });

  it('labels every control and gives every image alt text', async () => {
    const unlabeled = await page.$$eval('input, select, textarea, progress, output', (els) =>
      els.filter((e) => e.type !== 'hidden' && e.tagName !== 'OUTPUT' &&
        !(e.labels && e.labels.length) && !e.getAttribute('aria-label') &&
        !e.getAttribute('aria-labelledby')).map((e) => e.id || e.outerHTML));
    assert.deepEqual(unlabeled, []);
    const noAlt = await page.$$eval('img', (els) => els.filter((e) => !e.hasAttribute('alt')).map((e) => e.id));
    assert.deepEqual(noAlt, []);
    // the drop zone's file input can take the keyboard focus
    await page.focus('#file');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'file');
  });

  it('attacks an image picked with the keyboard and shows exactly what /attack says', async () => {
    await page.click(`.presets .chip[data-eps="${EPS}"]`);
    await page.$eval('#quality', (e, q) => {
      e.value = String(q);
      e.dispatchEvent(new Event('input', { bubbles: true }));
    }, QUALITY);
    assert.equal(await page.inputValue('#eps'), String(EPS));
    assert.equal(await page.textContent('#quality-out'), String(QUALITY));

    await page.focus('#file');
    const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.keyboard.press('Enter')]);
    await chooser.setFiles(jpeg);
    await page.waitForFunction(() => document.querySelectorAll('#panels .panel img').length === 4 &&
      /^Done/.test(document.querySelector('#attack-status').textContent), null, { timeout: 60000 });

    const q = new URLSearchParams({ eps: String(EPS), quality: String(QUALITY), seed: '1', images: '1', top_k: '5' });
    const r = await fetch(`${apiOrigin}/attack?${q}`, {
      method: 'POST', body: fs.readFileSync(jpeg), headers: { 'Content-Type': jpegType },
    });
    assert.equal(r.status, 200);
    const want = await r.json();
    const byName = new Map(want.results.map((x) => [x.transform, x]));
    const names = ['x', `Adv${EPS}(x)`, `JPG(Adv${EPS}(x))`, `JPGnoise(Adv${EPS}(x))`];

    const shown = await page.$$eval('#panels .panel', (panels) => panels.map((p) => ({
      transform: p.dataset.transform,
      label: p.dataset.label,
      topLabelProb: p.querySelector('.tlp-value').dataset.prob,
      topLabelProbText: p.querySelector('.tlp-value').textContent,
      predicted: p.querySelector('.pred-label').textContent,
      predictedIndex: p.querySelector('.pred-label').dataset.index,
      img: p.querySelector('img').getAttribute('src'),
      alt: p.querySelector('img').getAttribute('alt'),
      bars: Array.from(p.querySelectorAll('.bar')).map((b) => ({
        index: b.dataset.index, prob: b.dataset.prob, lx: b.classList.contains('is-lx'),
        outside: b.classList.contains('is-outside'),
        name: b.querySelector('.bar-label').textContent, value: b.querySelector('.bar-value').textContent,
      })),
    })));
    assert.deepEqual(shown.map((s) => s.transform), names);
    for (const s of shown) {
      const w = byName.get(s.transform);
      assert.ok(w, s.transform);
      assert.equal(s.label, String(w.label), s.transform + ' label');
      assert.equal(s.predictedIndex, String(w.label), s.transform + ' predicted');
      assert.equal(s.predicted, 'class ' + w.label, s.transform + ' predicted name');
      assert.equal(Number(s.topLabelProb), w.top_label_prob, s.transform + ' p(l_x)');
      assert.equal(s.topLabelProbText, w.top_label_prob.toFixed(3), s.transform + ' p(l_x) text');
      assert.equal(s.img, 'data:image/png;base64,' + want.images[s.transform], s.transform + ' image');
      assert.ok(s.alt && s.alt.includes(s.transform), s.transform + ' alt');
      const inTop = s.bars.filter((b) => !b.outside);
      assert.deepEqual(inTop.map((b) => Number(b.index)), w.top.map((t) => t.index), s.transform + ' top-5');
      assert.deepEqual(inTop.map((b) => Number(b.prob)), w.top.map((t) => t.prob), s.transform + ' top-5 p');
      assert.deepEqual(inTop.map((b) => b.value), w.top.map((t) => t.prob.toFixed(3)), s.transform + ' text');
      assert.deepEqual(inTop.map((b) => b.name), w.top.map((t) => t.label || 'class ' + t.index));
      // l_x is marked in every panel: in the top 5, or on an extra row with p(l_x)
      const lx = s.bars.filter((b) => b.lx);
      assert.equal(lx.length, 1, s.transform + ' one l_x bar');
      assert.equal(Number(lx[0].index), want.label, s.transform + ' l_x bar index');
      assert.equal(Number(lx[0].prob), w.top_label_prob, s.transform + ' l_x bar p');
      assert.equal(lx[0].outside, !w.top.some((t) => t.index === want.label), s.transform + ' l_x row');
    }
    assert.match(await page.textContent('#summary'), new RegExp('class ' + want.label));

    fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    console.log('# screenshot: ' + SCREENSHOT);
  });

  it('shows the server\'s error in words', async () => {
    const r = await fetch(`${apiOrigin}/attack?eps=${EPS}&quality=${QUALITY}&seed=1&images=1&top_k=5`, {
      method: 'POST', body: fs.readFileSync(path.join(tmp, 'broken.jpg')), headers: { 'Content-Type': 'image/jpeg' },
    });
    const want = { status: r.status, error: (await r.json()).error };
    assert.ok(want.status >= 400 && want.error, JSON.stringify(want));
    await page.setInputFiles('#file', path.join(tmp, 'broken.jpg'));
    await page.waitForSelector('#attack-error:not([hidden])');
    const text = await page.textContent('#attack-error');
    assert.ok(text.startsWith(`Error ${want.status}`), text);
    assert.ok(text.includes(want.error), text);
    assert.equal(await page.$$eval('#panels .panel', (p) => p.length), 0, 'no stale panels');

    // a bad eps is caught in the page, in words
    await page.fill('#eps', '300');
    await page.click('#attack-run');
    assert.match(await page.textContent('#attack-error'), /from 1 to 255/);
    assert.equal(await page.getAttribute('#eps', 'aria-invalid'), 'true');
    await page.fill('#eps', String(EPS));
  });

  it('starts an evaluation or says why not, as the server does', async () => {
    const body = { dataset: 'no-such-set', eps: [1, 5, 10], quality: 75, limit: 100 };
    const r = await fetch(apiOrigin + '/evaluate', {
      method: 'POST', body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' },
    });
    const answer = await r.json().catch(() => ({}));
    await page.fill('#dataset', body.dataset);
    await page.click('#eval-run');
    if (r.ok) {
      // a server that accepts it: the job appears with a progress bar
      await page.waitForSelector('#job:not([hidden])');
      await page.waitForFunction(() => document.querySelector('#job-id').textContent !== '');
    } else {
      await page.waitForSelector('#eval-error:not([hidden])');
      const text = await page.textContent('#eval-error');
      if (r.status === 404) assert.match(text, /no \/evaluate yet/);
      assert.ok(text.includes(`Error ${r.status}`), text);
      assert.ok(text.includes(answer.error), text);
    }
  });

  it('runs an evaluation job: progress, Table 1, figures (contract-shaped answers)', async () => {
    // /evaluate and /jobs are answered here, in the shapes of docs/api.md, so
    // that the page's job flow is tested whatever the daemon has yet.
    const TOKEN = 'eval-token';
    const seen = [];
    let polls = 0;
    const json = (route, status, obj, headers) => route.fulfill({ status, contentType: 'application/json',
      headers: headers || {}, body: JSON.stringify(obj) });
    const box = { min: 0.1, q1: 0.2, median: 0.3, q3: 0.5, max: 0.9, mean: 0.35,
      whisker_low: 0.1, whisker_high: 0.9, outliers: [] };
    const table = [['x', 0.75, 0.61], ['JPG(x)', 0.75, 0.58], ['Adv1(x)', 0.25, 0.13],
      ['JPG(Adv1(x))', 0.5, 0.41], ['JPGnoise(Adv1(x))', null, 0.06]]
      .map(([t, top1, m]) => ({ transform: t, top1, mean_top_label_prob: m, box }));
    const svg = (title) => `<svg xmlns="http://www.w3.org/2000/svg" width="640" height="400" viewBox="0 0 640 400">
      <rect width="640" height="400" fill="#fff"/><text x="20" y="40" font-size="24">${title}</text>
      <rect x="60" y="120" width="80" height="160" fill="none" stroke="#333"/></svg>`;
    await page.route(/\/(evaluate|jobs)(\/|\?|$)/, async (route) => {
      const req = route.request();
      const u = new URL(req.url());
      seen.push({ method: req.method(), path: u.pathname, search: u.search,
        auth: await req.headerValue('authorization'), type: await req.headerValue('content-type'),
        body: req.postDataBuffer() });
      if (u.pathname === '/evaluate') {
        return json(route, 202, { id: 'job1', status: 'queued' }, { Location: '/jobs/job1' });
      }
      if (u.pathname === '/jobs/job1') {
        polls++;
        const done = Math.min(4, polls - 1);
        const status = polls === 1 ? 'queued' : done < 4 ? 'running' : 'done';
        return json(route, 200, { id: 'job1', status, done, total: 4, images_per_s: 3.5,
          eta_s: (4 - done) / 3.5 });
      }
      if (u.pathname === '/jobs/job1/result') {
        return json(route, 200, { n: 4, eps: [1], quality: 75, seed: 1, table });
      }
      if (u.pathname.startsWith('/jobs/job1/figure')) {
        return route.fulfill({ status: 200, contentType: 'image/svg+xml',
          body: svg(u.pathname.includes('3') ? 'Figure 3' : 'Figure 4') });
      }
      if (u.pathname === '/jobs') return json(route, 200, { jobs: [{ id: 'job1', status: 'done', done: 4, total: 4 }] });
      return json(route, 404, { error: 'no such job' });
    });
    try {
      await page.fill('#token', TOKEN);
      await page.click('#token-form button[type="submit"]');
      await page.check('input[name="source"][value="upload"]');
      assert.equal(await page.isVisible('#eval-files'), true);
      assert.equal(await page.isVisible('#dataset'), false);
      await page.setInputFiles('#eval-files', [jpeg, path.join(tmp, 'pic.ppm')]);
      await page.fill('#eval-eps', '1');
      await page.click('#eval-run');
      await page.waitForFunction(() => document.querySelectorAll('#result-table tbody tr').length === 5 &&
        document.querySelector('#fig3').naturalWidth > 0 && document.querySelector('#fig4').naturalWidth > 0,
      null, { timeout: 30000 });

      const post = seen.find((r) => r.path === '/evaluate');
      assert.equal(post.method, 'POST');
      assert.match(post.type, /^multipart\/form-data; boundary=/);
      const body = post.body.toString('latin1');
      assert.equal(body.split('name="image"').length - 1, 2, 'two image fields');
      assert.deepEqual(Object.fromEntries(new URLSearchParams(post.search)), { eps: '1', quality: '75' });
      for (const r of seen) assert.equal(r.auth, 'Bearer ' + TOKEN, r.path + ' carries the token');
      assert.ok(seen.some((r) => r.path === '/jobs/job1/figure3.svg'));

      assert.equal(await page.textContent('#job-id'), 'job1');
      assert.equal(await page.getAttribute('#job-state', 'data-state'), 'done');
      assert.equal(await page.$eval('#job-progress', (e) => [e.value, e.max].join('/')), '4/4');
      assert.match(await page.textContent('#job-text'), /4 of 4 images/);
      const rows = await page.$$eval('#result-table tbody tr', (trs) => trs.map((tr) =>
        Array.from(tr.children).map((c) => c.textContent.trim())));
      assert.deepEqual(rows, [
        ['x', '0.750', '0.610', '0.58', '0.61'],
        ['JPG(x)', '0.750', '0.580', '', ''],
        ['Adv1(x)', '0.250', '0.130', '0.23', '0.13'],
        ['JPG(Adv1(x))', '0.500', '0.410', '0.48', '0.41'],
        ['JPGnoise(Adv1(x))', '\u2013', '0.060', '0.07', '0.06'],
      ]);
      for (const id of ['#fig3', '#fig4']) assert.ok((await page.getAttribute(id, 'alt')).length > 20);
      await page.screenshot({ path: screenshotVariant('evaluate'), fullPage: true });
    } finally {
      await page.unrouteAll({ behavior: 'ignoreErrors' });
      await page.fill('#token', '');
      await page.click('#token-clear');
      await page.evaluate(() => localStorage.removeItem('advjpg.job'));
    }
  });

  it('works with a bearer token', async () => {
    const TOKEN = 's3cret-token';
    tokenDaemon = await startDaemon(tmp, 'token', ['--token', TOKEN]);
    let tokenOrigin;
    ({ origin: tokenOrigin, front: tokenFront } = await pageOrigin(tokenDaemon));
    const p = await context.newPage();
    p.on('pageerror', (e) => pageErrors.push(e.message));
    try {
      await p.goto(tokenOrigin + '/');
      // without the token: the 401 in words, with the hint
      await p.waitForSelector('#model-error:not([hidden])');
      const err = await p.textContent('#model-error');
      assert.match(err, /Error 401/);
      assert.match(err, /token/);
      await p.fill('#token', TOKEN);
      await p.press('#token', 'Enter');
      await p.waitForFunction(() => document.querySelector('#model-name').textContent === 'tiny');
      assert.equal(await p.isHidden('#model-error'), true);
      assert.equal(await p.evaluate(() => localStorage.getItem('advjpg.token')), TOKEN);
      await p.setInputFiles('#file', jpeg);
      await p.waitForFunction(() => document.querySelectorAll('#panels .panel img').length === 4,
        null, { timeout: 60000 });
      // kept across a reload
      await p.reload();
      await p.waitForFunction(() => document.querySelector('#model-name').textContent === 'tiny');
      assert.equal(await p.inputValue('#token'), TOKEN);
      // a wrong token: the server's words
      await p.fill('#token', 'wrong');
      await p.press('#token', 'Enter');
      await p.waitForSelector('#model-error:not([hidden])');
      assert.match(await p.textContent('#model-error'), /Error 401 \(token needed\): wrong bearer token/);
    } finally {
      await p.close();
    }
  });

  it('says so when it cannot reach the server', async () => {
    await stopProcess(daemon.proc);
    closeFront(front);
    await page.setInputFiles('#file', jpeg);
    await page.waitForSelector('#attack-error:not([hidden])');
    assert.match(await page.textContent('#attack-error'), /Cannot reach the server/);
  });

  it('raised no script errors', () => {
    assert.deepEqual(pageErrors.filter((e) => !/Failed to load resource/.test(e)), []);
  });
});
