// demo.test.mjs - the demo page in headless Chromium against a live advjpgd.
//
// Starts advjpgd (env ADVJPGD) with the tiny model of tests/specs/tiny.json
// (random weights), a --data-root of generated images and --job-batch 1, opens
// the page the daemon serves at "/", and checks what the page shows against
// what the test computes or fetches itself:
//   - the single-image half: an image picked with the keyboard, the five panels
//     (labels, probabilities, images) against the /attack JSON for the same
//     image, the true-class marks, and the amplified perturbation views pixel
//     by pixel against the test's own PNG decoding of the crops;
//   - the evaluation half: an upload with a labels file (progress, Table 1
//     against /result, top-1 against the test's count over /rows, Figure 3
//     and Figure 4 shown at the width they need, the five downloads against
//     the server's files and the result), a data-set job canceled while it
//     runs and a queued one canceled from the job list, the job list's columns
//     against GET /jobs, the server's errors in words;
//   - a daemon with a bearer token (the page asks for it, keeps it, sends it
//     with the figures and downloads), and "cannot reach the server".
// Screenshots (light, dark, phone width) go next to env SCREENSHOT (default
// tests/browser/demo.png): demo.png, demo-evaluate.png, demo-dark.png,
// demo-phone.png, demo-phone-evaluate.png.
//
// Run: node --test demo.test.mjs (see run.sh). Chromium: /usr/bin/chromium or
// env CHROMIUM; never downloaded.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
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
const EPS = 5;
const QUALITY = 60;
const TRUTH = 3; // the true class typed into the single-image half

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

const SPEC = JSON.parse(fs.readFileSync(path.resolve(here, '../specs/tiny.json'), 'utf8'));

/** 20714 little-endian float32 in [-0.1, 0.1): conv 8x3x3x3 + 8, fc 10x(8*16*16) + 10. */
function weights() {
  const n = 8 * 3 * 3 * 3 + 8 + 10 * 8 * 16 * 16 + 10;
  assert.equal(n, 20714);
  const buf = Buffer.alloc(4 * n);
  const r = rng(11);
  for (let i = 0; i < n; i++) buf.writeFloatLE((r() * 2 - 1) * 0.1, 4 * i);
  return buf;
}

/** A W x H RGB picture: smooth colour fields with a disc; k varies it. */
function picture(W, H, k = 0) {
  const px = Buffer.alloc(W * H * 3);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const i = 3 * (y * W + x);
      const d = Math.hypot(x - W * (0.5 + 0.04 * k), y - H * 0.5);
      if (d < H * (0.3 - 0.02 * k)) {
        px[i] = 232 - 30 * k; px[i + 1] = 176; px[i + 2] = 48 + 25 * k;
      } else {
        px[i] = 128 + 127 * Math.sin(x / (23 + 3 * k)) * Math.cos(y / 31);
        px[i + 1] = 128 + 127 * Math.sin((x + y) / (40 - 4 * k));
        px[i + 2] = (255 * ((x * y + 13 * k) % 97)) / 97;
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

/**
 * Decodes an 8-bit, non-interlaced PNG (grey, RGB, grey+alpha or RGBA) to
 * { width, height, rgb } with 3 bytes a pixel: the test's own reading of the
 * crops the server sends, independent of the browser's.
 */
function decodePng(buf) {
  assert.ok(buf.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])), 'a PNG');
  let W = 0, H = 0, channels = 0;
  const idat = [];
  for (let o = 8; o < buf.length;) {
    const len = buf.readUInt32BE(o);
    const type = buf.toString('latin1', o + 4, o + 8);
    const data = buf.subarray(o + 8, o + 8 + len);
    if (type === 'IHDR') {
      W = data.readUInt32BE(0);
      H = data.readUInt32BE(4);
      assert.equal(data[8], 8, 'bit depth 8');
      assert.equal(data[12], 0, 'not interlaced');
      channels = { 0: 1, 2: 3, 4: 2, 6: 4 }[data[9]];
      assert.ok(channels, 'colour type ' + data[9]);
    } else if (type === 'IDAT') {
      idat.push(data);
    }
    o += 12 + len;
  }
  const raw = zlib.inflateSync(Buffer.concat(idat));
  const stride = W * channels;
  const img = Buffer.alloc(H * stride);
  for (let y = 0; y < H; y++) {
    const f = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? img[y * stride + i - channels] : 0;
      const b = y > 0 ? img[(y - 1) * stride + i] : 0;
      const c = y > 0 && i >= channels ? img[(y - 1) * stride + i - channels] : 0;
      const p = a + b - c;
      const pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
      const pred = [0, a, b, (a + b) >> 1, pa <= pb && pa <= pc ? a : pb <= pc ? b : c][f];
      assert.ok(pred !== undefined, 'PNG filter ' + f);
      img[y * stride + i] = (line[i] + pred) & 0xff;
    }
  }
  const rgb = Buffer.alloc(W * H * 3);
  for (let i = 0; i < W * H; i++) {
    for (let c = 0; c < 3; c++) rgb[3 * i + c] = img[i * channels + (channels < 3 ? 0 : c)];
  }
  return { width: W, height: H, rgb };
}

/** Splits CSV text (RFC 4180, LF lines) into rows of fields. */
function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') {
        quoted = false;
      } else {
        field += ch;
      }
    } else if (ch === '"') {
      quoted = true;
    } else if (ch === ',') {
      row.push(field);
      field = '';
    } else if (ch === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else if (ch !== '\r') {
      field += ch;
    }
  }
  if (field || row.length) rows.push([...row, field]);
  return rows;
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

/** The page's origin: the daemon's own, which must serve the page at "/". */
async function pageOrigin(daemon) {
  const origin = `http://127.0.0.1:${daemon.port}`;
  const root = await fetch(origin + '/');
  await root.arrayBuffer();
  assert.equal(root.status, 200, 'advjpgd serves the page at /');
  return origin;
}

/** The path of a second screenshot next to SCREENSHOT: demo.png -> demo-NAME.png. */
function screenshotVariant(name) {
  const ext = path.extname(SCREENSHOT);
  return SCREENSHOT.slice(0, SCREENSHOT.length - ext.length) + '-' + name + (ext || '.png');
}

// ---------------------------------------------------------------- the test

const UPLOADS = 6; // images of the upload evaluation
const BIG = 600; // images of the data-set job that is canceled while it runs

/** What the page must show for a probability (3 decimals) or a missing one. */
const shownP = (p) => (typeof p === 'number' ? p.toFixed(3) : '\u2013');

/** A local "YYYY-MM-DD HH:MM" of an ISO time, computed here (the page's own is in app.js). */
function localMinute(iso) {
  const d = new Date(iso);
  const p2 = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p2(d.getMonth() + 1)}-${p2(d.getDate())} ${p2(d.getHours())}:${p2(d.getMinutes())}`;
}

describe('demo page', { skip, timeout: 240000 }, () => {
  let tmp, daemon, origin, context, page;
  let tokenDaemon;
  let jpeg, jpegType;
  const uploads = []; // { file, truth }
  let attackAnswer = null; // the /attack answer the panels were checked against
  let upload = null; // the upload job: { id, job, result, rowsText }
  const pageErrors = [];

  /** GET of the daemon's API from the test itself (not through the page). */
  const apiGet = async (p, as = 'json') => {
    const r = await fetch(origin + p);
    assert.equal(r.status, 200, p);
    return as === 'json' ? r.json() : as === 'text' ? r.text() : Buffer.from(await r.arrayBuffer());
  };

  /** Clicks a download link and resolves to the saved file's name and bytes. */
  async function downloadOf(p, selector) {
    const [dl] = await Promise.all([p.waitForEvent('download'), p.click(selector)]);
    const file = await dl.path();
    return { name: dl.suggestedFilename(), bytes: fs.readFileSync(file) };
  }

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

    // the upload set: PPM and PNG of different pictures, with a labels file
    fs.mkdirSync(path.join(tmp, 'up'));
    const lines = [];
    for (let k = 0; k < UPLOADS; k++) {
      const [w, h] = [64 + 8 * k, 48 + 4 * k];
      const name = k % 2 ? `up${k}.png` : `up${k}.ppm`;
      const file = path.join(tmp, 'up', name);
      fs.writeFileSync(file, k % 2 ? png(w, h, picture(w, h, k)) : ppm(w, h, picture(w, h, k)));
      uploads.push({ file, truth: (3 * k + 1) % SPEC.classes });
      lines.push(`${name}\t${(3 * k + 1) % SPEC.classes}`);
    }
    fs.writeFileSync(path.join(tmp, 'labels.txt'), lines.join('\n') + '\n');

    // the data root: a folder of BIG large images (one file, hard-linked), slow enough to cancel
    const big = path.join(tmp, 'data', 'big');
    fs.mkdirSync(big, { recursive: true });
    const [BW, BH] = [1600, 1200];
    const bigSrc = path.join(tmp, 'big.ppm');
    fs.writeFileSync(bigSrc, ppm(BW, BH, picture(BW, BH, 2)));
    let one = path.join(tmp, 'big.jpg');
    if (spawnSync('cjpeg', ['-quality', '90', '-outfile', one, bigSrc]).status !== 0) one = bigSrc;
    for (let i = 0; i < BIG; i++) {
      fs.linkSync(one, path.join(big, `b${String(i).padStart(4, '0')}${path.extname(one)}`));
    }

    daemon = await startDaemon(tmp, 'plain', ['--data-root', path.join(tmp, 'data'), '--job-batch', '1']);
    origin = await pageOrigin(daemon);

    const userDataDir = fs.mkdtempSync(path.join(tmp, 'chromium-'));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      acceptDownloads: true,
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
    for (const file of ['index.html', 'app.js']) {
      assert.doesNotMatch(fs.readFileSync(path.join(webDir, file), 'utf8'), /has no \/(evaluate|jobs) yet/,
        file + ' still says an endpoint is missing');
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
    await page.fill('#truth', String(TRUTH));
    assert.equal(await page.inputValue('#eps'), String(EPS));
    assert.equal(await page.textContent('#quality-out'), String(QUALITY));

    await page.focus('#file');
    const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.keyboard.press('Enter')]);
    await chooser.setFiles(jpeg);
    await page.waitForFunction(() => document.querySelectorAll('#panels .panel img').length === 5 &&
      /^Done/.test(document.querySelector('#attack-status').textContent) &&
      document.querySelectorAll('#pert-views canvas').length === 3, null, { timeout: 60000 });

    const q = new URLSearchParams({ eps: String(EPS), quality: String(QUALITY), seed: '1', images: '1', top_k: '5' });
    const r = await fetch(`${origin}/attack?${q}`, {
      method: 'POST', body: fs.readFileSync(jpeg), headers: { 'Content-Type': jpegType },
    });
    assert.equal(r.status, 200);
    const want = await r.json();
    const byName = new Map(want.results.map((x) => [x.transform, x]));
    const names = ['x', 'JPG(x)', `Adv${EPS}(x)`, `JPG(Adv${EPS}(x))`, `JPGnoise(Adv${EPS}(x))`];

    const shown = await page.$$eval('#panels .panel', (panels) => panels.map((p) => ({
      transform: p.dataset.transform,
      label: p.dataset.label,
      topLabelProb: p.querySelector('.tlp-value').dataset.prob,
      topLabelProbText: p.querySelector('.tlp-value').textContent,
      predicted: p.querySelector('.pred-label').textContent,
      predictedIndex: p.querySelector('.pred-label').dataset.index,
      correct: p.querySelector('.truth-mark') && p.querySelector('.truth-mark').dataset.correct,
      img: p.querySelector('img').getAttribute('src'),
      alt: p.querySelector('img').getAttribute('alt'),
      bars: Array.from(p.querySelectorAll('.bar')).map((b) => ({
        index: b.dataset.index, prob: b.dataset.prob, lx: b.classList.contains('is-lx'),
        outside: b.classList.contains('is-outside'), truth: !!b.querySelector('.truth-tag'),
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
      assert.equal(s.correct, String(w.label === TRUTH), s.transform + ' right or wrong');
      assert.equal(s.img, 'data:image/png;base64,' + want.images[s.transform], s.transform + ' image');
      assert.ok(s.alt && s.alt.includes(s.transform), s.transform + ' alt');
      const inTop = s.bars.filter((b) => !b.outside);
      assert.deepEqual(inTop.map((b) => Number(b.index)), w.top.map((t) => t.index), s.transform + ' top-5');
      assert.deepEqual(inTop.map((b) => Number(b.prob)), w.top.map((t) => t.prob), s.transform + ' top-5 p');
      assert.deepEqual(inTop.map((b) => b.value), w.top.map((t) => t.prob.toFixed(3)), s.transform + ' text');
      assert.deepEqual(inTop.map((b) => b.name), w.top.map((t) => t.label || 'class ' + t.index));
      assert.deepEqual(inTop.map((b) => b.truth), w.top.map((t) => t.index === TRUTH), s.transform + ' true tag');
      // l_x is marked in every panel: in the top 5, or on an extra row with p(l_x)
      const lx = s.bars.filter((b) => b.lx);
      assert.equal(lx.length, 1, s.transform + ' one l_x bar');
      assert.equal(Number(lx[0].index), want.label, s.transform + ' l_x bar index');
      assert.equal(Number(lx[0].prob), w.top_label_prob, s.transform + ' l_x bar p');
      assert.equal(lx[0].outside, !w.top.some((t) => t.index === want.label), s.transform + ' l_x row');
    }
    const summary = await page.textContent('#summary');
    assert.match(summary, new RegExp('class ' + want.label));
    const right = names.filter((n) => byName.get(n).label === TRUTH).length;
    assert.match(summary, new RegExp(`${right} of 5 panels right`));
    attackAnswer = want;
  });

  it('shows the perturbation amplified, pixel by pixel as the test decodes the crops', async () => {
    const want = attackAnswer;
    assert.ok(want, 'the attack above ran');
    const names = ['x', 'JPG(x)', `Adv${EPS}(x)`, `JPG(Adv${EPS}(x))`];
    const px = Object.fromEntries(names.map((n) => [n, decodePng(Buffer.from(want.images[n], 'base64'))]));
    const adv = `Adv${EPS}(x)`;
    const jadv = `JPG(${adv})`;
    const pairs = [[adv, 'x'], [jadv, 'JPG(x)'], [jadv, adv]];
    const views = async () => page.$$eval('#pert-views .pert-view', (figs) => figs.map((f) => {
      const c = f.querySelector('canvas');
      return { a: f.dataset.a, b: f.dataset.b, linf: Number(f.dataset.linf), stats: f.querySelector('.pert-stats').textContent,
        w: c.width, h: c.height, data: Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data) };
    }));
    const expectView = (v, [a, b], gain, signed) => {
      const A = px[a];
      const B = px[b];
      assert.deepEqual([v.a, v.b, v.w, v.h], [a, b, A.width, A.height], 'view ' + a + ' - ' + b);
      let linf = 0;
      let bad = 0;
      for (let i = 0; i < A.width * A.height; i++) {
        for (let c = 0; c < 3; c++) {
          const d = A.rgb[3 * i + c] - B.rgb[3 * i + c];
          linf = Math.max(linf, Math.abs(d));
          const want = Math.max(0, Math.min(255, signed ? 128 + gain * d : gain * Math.abs(d)));
          if (v.data[4 * i + c] !== want) bad++;
        }
        if (v.data[4 * i + 3] !== 255) bad++;
      }
      assert.equal(bad, 0, `${a} - ${b}: ${bad} pixel values differ from |a - b| x ${gain}`);
      assert.equal(v.linf, linf, a + ' - ' + b + ' L-inf');
      assert.match(v.stats, new RegExp(`^largest ${linf} levels`));
      return linf;
    };
    let got = await views();
    assert.equal(got.length, 3);
    got.forEach((v, i) => expectView(v, pairs[i], 10, false));
    // FGSM moves each channel by eps at most, and by eps where nothing clips
    assert.equal(got[0].linf, EPS, 'the attack moves pixels by eps');
    await page.selectOption('#pert-mode', 'signed');
    await page.fill('#pert-gain', '20');
    got = await views();
    got.forEach((v, i) => expectView(v, pairs[i], 20, true));
    await page.selectOption('#pert-mode', 'abs');
    await page.fill('#pert-gain', '10');

    fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    console.log('# screenshot: ' + SCREENSHOT);
  });

  it('shows the server\'s error in words', async () => {
    const r = await fetch(`${origin}/attack?eps=${EPS}&quality=${QUALITY}&seed=1&images=1&top_k=5`, {
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
    assert.equal(await page.isHidden('#perturbation'), true, 'no stale perturbation');

    // a bad eps is caught in the page, in words
    await page.fill('#eps', '300');
    await page.click('#attack-run');
    assert.match(await page.textContent('#attack-error'), /from 1 to 255/);
    assert.equal(await page.getAttribute('#eps', 'aria-invalid'), 'true');
    await page.fill('#eps', String(EPS));
  });

  it('offers the attack menu in both halves: steps only for the iterative ones, EOT qualities only for EOT', async () => {
    for (const prefix of ['atk-', 'eval-atk-']) {
      const kinds = await page.$$eval(`#${prefix}attack option`, (os) => os.map((o) => o.value));
      assert.deepEqual(kinds, ['fgsm', 'bim', 'pgd', 'll'], prefix);
      assert.deepEqual(await page.$$eval(`#${prefix}adaptive option`, (os) => os.map((o) => o.value)),
        ['none', 'bpda', 'eot'], prefix);
      assert.equal(await page.inputValue(`#${prefix}attack`), 'fgsm', prefix + ' the paper by default');
      assert.equal(await page.isDisabled(`#${prefix}steps`), true, prefix + ' no steps for FGSM');
      assert.equal(await page.isDisabled(`#${prefix}adaptive`), true, prefix + ' FGSM is not adaptive');
      await page.selectOption(`#${prefix}attack`, 'bim');
      assert.equal(await page.isDisabled(`#${prefix}steps`), false, prefix + ' steps for BIM');
      assert.equal(await page.isVisible(`#${prefix}eot`), false, prefix + ' no EOT qualities');
      await page.selectOption(`#${prefix}adaptive`, 'eot');
      assert.equal(await page.isVisible(`#${prefix}eot`), true, prefix + ' EOT qualities for EOT');
      await page.selectOption(`#${prefix}adaptive`, 'none');
      await page.selectOption(`#${prefix}attack`, 'fgsm');
    }
  });

  it('shows an adaptive attack\'s result with its threat model and the perturbation\'s size', async () => {
    await page.selectOption('#atk-attack', 'pgd');
    await page.fill('#atk-steps', '3');
    await page.selectOption('#atk-adaptive', 'bpda');
    await page.fill('#eps', String(EPS));
    // a copy of the image (the test before chose a broken file, and the last test chooses
    // the image again, which must be a change); choosing a file attacks
    const copy = path.join(tmp, 'adaptive.jpg');
    fs.copyFileSync(jpeg, copy);
    await page.setInputFiles('#file', copy);
    await page.waitForFunction(() => /^Done/.test(document.querySelector('#attack-status').textContent) &&
      document.querySelector('#attack-threat') &&
      /BPDA/.test(document.querySelector('#attack-threat').textContent), null, { timeout: 60000 });
    const q = new URLSearchParams({ eps: String(EPS), quality: await page.inputValue('#quality'), seed: '1',
      images: '1', top_k: '5', attack: 'pgd', steps: '3', step_size: '1', adaptive: 'bpda' });
    const r = await fetch(`${origin}/attack?${q}`, {
      method: 'POST', body: fs.readFileSync(jpeg), headers: { 'Content-Type': jpegType },
    });
    assert.equal(r.status, 200);
    const want = await r.json();
    assert.match(want.threat_model, /^adaptive: BPDA through JPG_q at q=/);
    const adv = want.results.find((x) => x.transform === `Adv${EPS}(x)`);
    const threat = await page.textContent('#attack-threat');
    assert.ok(threat.includes(want.threat_model), `"${threat}" shows the threat model`);
    assert.ok(threat.includes('PGD-3') && threat.includes('adaptive: BPDA'), threat);
    assert.ok(threat.includes(`L\u221e ${adv.linf}, L2 ${adv.l2.toFixed(1)}, PSNR ${adv.psnr.toFixed(1)} dB`), threat);
    const img = await page.$eval(`#panels .panel[data-transform="Adv${EPS}(x)"] img`, (e) => e.getAttribute('src'));
    assert.equal(img, 'data:image/png;base64,' + want.images[`Adv${EPS}(x)`], 'the adaptive attack\'s image');
    await page.selectOption('#atk-adaptive', 'none');
    await page.selectOption('#atk-attack', 'fgsm');
  });

  it('says why a data set is refused, in the server\'s words', async () => {
    const body = { dataset: 'no-such-set', eps: [1, 5, 10], quality: 75, limit: 100 };
    const r = await fetch(origin + '/evaluate', {
      method: 'POST', body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' },
    });
    const answer = await r.json();
    assert.equal(r.status, 400, JSON.stringify(answer));
    await page.fill('#dataset', body.dataset);
    await page.click('#eval-run');
    await page.waitForSelector('#eval-error:not([hidden])');
    const text = await page.textContent('#eval-error');
    assert.ok(text.startsWith('Error 400 (bad request): '), text);
    assert.ok(text.includes(answer.error), text);
  });

  it('evaluates uploaded images with a labels file: the job, its progress and parameters', async () => {
    await page.check('input[name="source"][value="upload"]');
    assert.equal(await page.isVisible('#eval-files'), true);
    assert.equal(await page.isVisible('#dataset'), false);
    await page.setInputFiles('#eval-files', uploads.map((u) => u.file));
    await page.setInputFiles('#eval-labels', path.join(tmp, 'labels.txt'));
    await page.fill('#eval-eps', '1,5');
    await page.fill('#eval-quality', '75');
    await page.check('#eval-dct'); // the DCT analysis: its heat maps shown with the figures
    await page.click('#eval-run');
    await page.waitForFunction(() => document.querySelectorAll('#result-table tbody tr').length > 0 &&
      document.querySelector('#fig3').naturalWidth > 0 && document.querySelector('#fig4').naturalWidth > 0 &&
      document.querySelector('#figdct').naturalWidth > 0,
    null, { timeout: 60000 });
    assert.equal(await page.isVisible('#figdct'), true, 'the DCT heat maps are shown');
    // the figure options: Figure 3's axis for confident models, the eps of Figure 4 and the maps
    assert.deepEqual(await page.$$eval('#fig3-axis option', (o) => o.map((x) => x.value)), ['linear', 'log1mp', 'logit']);
    assert.deepEqual(await page.$$eval('#fig-eps option', (o) => o.map((x) => x.value)), ['1', '5']);
    const before = await page.getAttribute('#fig3', 'src');
    await page.selectOption('#fig3-axis', 'log1mp');
    await page.waitForFunction((b) => document.querySelector('#fig3').src !== b &&
      document.querySelector('#fig3').naturalWidth > 0, before, { timeout: 20000 });
    await page.selectOption('#fig3-axis', 'linear');
    const id = await page.textContent('#job-id');
    assert.match(id, /^[0-9a-f]{16}$/);

    const job = await apiGet('/jobs/' + id);
    assert.equal(job.status, 'done');
    assert.equal(job.total, UPLOADS);
    assert.equal(await page.getAttribute('#job-state', 'data-state'), 'done');
    assert.equal(await page.$eval('#job-progress', (e) => [e.value, e.max].join('/')), `${UPLOADS}/${UPLOADS}`);
    assert.match(await page.textContent('#job-text'), new RegExp(`${UPLOADS} of ${UPLOADS} images`));
    const meta = await page.textContent('#job-meta');
    assert.equal(job.dct, true, 'the upload asked for the DCT analysis');
    for (const bit of ['uploaded images', 'model tiny', '\u03b5 1, 5', 'quality 75', 'DCT analysis', 'labels from ']) {
      assert.ok(meta.includes(bit), `job meta "${meta}" lacks "${bit}"`);
    }
    upload = { id, job };
  });

  it('shows the upload\'s Table 1: the server\'s numbers, top-1 as counted from the rows', async () => {
    assert.ok(upload, 'the upload evaluation above ran');
    const { id } = upload;

    // Table 1: the server's table, and top-1 counted here from the rows and the labels
    const result = await apiGet(`/jobs/${id}/result`);
    const rowsText = await apiGet(`/jobs/${id}/rows`, 'text');
    const csv = parseCsv(rowsText);
    const header = csv[0];
    const body = csv.slice(1);
    assert.equal(body.length, UPLOADS);
    const truthOf = new Map(uploads.map((u) => [path.basename(u.file), u.truth]));
    for (const line of body) assert.equal(Number(line[header.indexOf('truth')]), truthOf.get(line[0]), line[0]);
    const shownRows = await page.$$eval('#result-table tbody tr', (trs) => trs.map((tr) =>
      Array.from(tr.children).map((c) => (c.querySelector('span') || c).textContent.trim())));
    assert.deepEqual(shownRows.map((r) => r[0]), result.table.map((t) => t.transform));
    for (const [i, t] of result.table.entries()) {
      const col = header.indexOf(t.transform + ':label');
      assert.ok(col > 0, t.transform + ' in the rows');
      const top1 = body.filter((l) => Number(l[col]) === truthOf.get(l[0])).length / body.length;
      const mean = body.reduce((s, l) => s + Number(l[header.indexOf(t.transform + ':prob')]), 0) / body.length;
      assert.equal(shownRows[i][1], top1.toFixed(3), t.transform + ' top-1 (counted from the rows)');
      assert.equal(shownRows[i][2], shownP(t.mean_top_label_prob), t.transform + ' mean');
      assert.ok(Math.abs(mean - t.mean_top_label_prob) < 1e-6, t.transform + ' mean from the rows');
    }
    assert.equal(shownRows[0][3], '0.58', 'the paper beside');
    assert.equal(await page.isHidden('#result-note'), true, 'no "top-1 needs labels" note');
    Object.assign(upload, { result, rowsText });
  });

  it('shows Figure 3 readable and Figure 4 across the whole width', async () => {
    assert.ok(upload, 'the upload evaluation above ran');

    // the figures: Figure 4 across the whole results width, Figure 3 readable
    const sizes = await page.evaluate(() => {
      const w = (s) => document.querySelector(s).getBoundingClientRect().width;
      return { results: w('#results'), fig3: w('#fig3'), fig4: w('#fig4'),
        fig4h: document.querySelector('#fig4').getBoundingClientRect().height,
        n4: [document.querySelector('#fig4').naturalWidth, document.querySelector('#fig4').naturalHeight] };
    });
    assert.ok(sizes.fig4 >= 0.95 * sizes.results, `Figure 4 ${sizes.fig4}px of ${sizes.results}px`);
    assert.ok(Math.abs(sizes.fig4h / sizes.fig4 - sizes.n4[1] / sizes.n4[0]) < 0.02, 'Figure 4 keeps its aspect');
    assert.ok(sizes.fig3 >= 600, `Figure 3 ${sizes.fig3}px wide`);
  });

  it('downloads the rows, Table 1, the result and the figures as the server has them', async () => {
    assert.ok(upload && upload.result, 'the upload evaluation above ran');
    const { id, result, rowsText } = upload;

    // the downloads, against the server's own files and answers
    const rowsDl = await downloadOf(page, '[data-download="rows"]');
    assert.equal(rowsDl.name, `rows-${id}.csv`);
    assert.ok(rowsDl.bytes.equals(Buffer.from(rowsText)), 'rows download = GET /rows');
    for (const f of ['figure3', 'figure4']) {
      const dl = await downloadOf(page, `[data-download="${f}"]`);
      assert.equal(dl.name, `${f}-${id}.svg`);
      assert.ok(dl.bytes.equals(await apiGet(`/jobs/${id}/${f}.svg`, 'buffer')), f + ' download = GET ' + f + '.svg');
    }
    const resDl = await downloadOf(page, '[data-download="result"]');
    assert.deepEqual(JSON.parse(resDl.bytes.toString()), result, 'result download = GET /result');
    const tableDl = await downloadOf(page, '[data-download="table"]');
    assert.equal(tableDl.name, `table-${id}.csv`);
    const tcsv = parseCsv(tableDl.bytes.toString());
    const th = tcsv[0];
    assert.deepEqual(th.slice(0, 5), ['transform', 'eps', 'n', 'top1', 'mean_top_label_prob']);
    assert.deepEqual(tcsv.slice(1).map((l) => l[0]), result.table.map((t) => t.transform));
    for (const [i, t] of result.table.entries()) {
      const l = tcsv[i + 1];
      assert.equal(l[1], t.eps === undefined ? '' : String(t.eps));
      assert.equal(Number(l[2]), result.n);
      assert.equal(Number(l[3]), t.top1, t.transform + ' top1 in table.csv');
      assert.equal(Number(l[4]), t.mean_top_label_prob, t.transform + ' mean in table.csv');
      for (const k of ['median', 'q1', 'q3', 'outliers']) {
        assert.equal(Number(l[th.indexOf('box_' + k)]), t.box[k], `${t.transform} box ${k} in table.csv`);
      }
    }
  });

  it('lists the job with its source, eps, quality, model and date, as GET /jobs has them', async () => {
    assert.ok(upload, 'the upload evaluation above ran');
    const { id, job } = upload;

    // the job list: one row per job, the columns from GET /jobs
    await page.click('#jobs-refresh');
    await page.waitForSelector(`#jobs-list tr[data-id="${id}"]`);
    const cells = await page.$$eval(`#jobs-list tr[data-id="${id}"] td`, (tds) => tds.map((t) => t.textContent.trim()));
    assert.deepEqual(cells.slice(0, 8), [id, 'done', `${UPLOADS} / ${UPLOADS}`, 'uploaded images', '1, 5', '75',
      'tiny', localMinute(job.created)]);
    assert.equal(await page.$$eval(`#jobs-list tr[data-id="${id}"] button`, (b) => b.map((x) => x.textContent).join()),
      'Show,Delete', 'an ended job has Delete, no Cancel');

    await page.screenshot({ path: screenshotVariant('evaluate'), fullPage: true });
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.screenshot({ path: screenshotVariant('dark'), fullPage: true });
    await page.emulateMedia({ colorScheme: 'light' });
  });

  it('shows a quality grid: intervals in the cells, the paired tests, the quality curve', async () => {
    await page.check('input[name="source"][value="upload"]');
    await page.setInputFiles('#eval-files', uploads.map((u) => u.file));
    await page.setInputFiles('#eval-labels', path.join(tmp, 'labels.txt'));
    await page.fill('#eval-eps', '1,5');
    await page.fill('#eval-quality', '50, 75');
    const before = await page.textContent('#job-id');
    await page.click('#eval-run');
    await page.waitForFunction((old) => document.querySelector('#job-id').textContent !== old &&
      document.querySelector('#fig3').naturalWidth > 0 && document.querySelector('#figq').naturalWidth > 0 &&
      document.querySelectorAll('#tests-table tbody tr').length > 0, before, { timeout: 60000 });
    const id = await page.textContent('#job-id');
    const result = await apiGet(`/jobs/${id}/result`);
    assert.deepEqual(result.quality, [50, 75]);
    const names = result.table.map((t) => t.transform);
    assert.ok(names.includes('JPG50(Adv5(x))') && names.includes('JPGnoise75(Adv1(x))'), names.join());
    // every cell shows its value and, under it, the server's 95% interval
    const cells = await page.$$eval('#result-table tbody tr', (trs) => trs.map((tr) =>
      Array.from(tr.querySelectorAll('td')).slice(0, 2).map((td) =>
        Array.from(td.querySelectorAll('span')).map((s) => s.textContent))));
    assert.equal(cells.length, result.table.length);
    const iv = (ci) => `[${ci[0].toFixed(3)}, ${ci[1].toFixed(3)}]`;
    for (const [i, t] of result.table.entries()) {
      assert.deepEqual(cells[i][0], [t.top1.toFixed(3), iv(t.top1_ci)], t.transform + ' top-1 and interval');
      assert.deepEqual(cells[i][1], [t.mean_top_label_prob.toFixed(3), iv(t.mean_top_label_prob_ci)],
        t.transform + ' mean and interval');
      assert.ok(t.top1_ci[0] <= t.top1 && t.top1 <= t.top1_ci[1], t.transform + ' top-1 inside its interval');
    }
    // the tests table: one row per pair of the result, the counts as the server has them
    const tests = await page.$$eval('#tests-table tbody tr', (trs) => trs.map((tr) =>
      Array.from(tr.children).map((c) => c.textContent.trim())));
    assert.equal(tests.length, result.tests.length);
    for (const [i, t] of result.tests.entries()) {
      assert.deepEqual(tests[i].slice(0, 4), [t.a, t.b, String(t.right_to_wrong), String(t.wrong_to_right)]);
      assert.ok(Math.abs(Number(tests[i][5]) - t.wilcoxon.p) <= 5e-3 * Math.max(t.wilcoxon.p, 1e-3), t.a + ' vs ' + t.b);
    }
    assert.equal(await page.isVisible('#figq'), true, 'the quality curve is shown');
    const dl = await downloadOf(page, '[data-download="quality"]');
    assert.ok(dl.bytes.equals(await apiGet(`/jobs/${id}/quality.svg`, 'buffer')), 'quality.svg download');
    await page.click('#jobs-refresh');
    await page.waitForSelector(`#jobs-list tr[data-id="${id}"]`);
    const row = await page.$$eval(`#jobs-list tr[data-id="${id}"] td`, (tds) => tds.map((t) => t.textContent.trim()));
    assert.deepEqual(row.slice(3, 6), ['uploaded images', '1, 5', '50, 75'], 'the job list shows the grid');
  });

  it('shows an adaptive job\'s rows beside its non-adaptive twin\'s, by their display names', async () => {
    await page.check('input[name="source"][value="upload"]');
    await page.setInputFiles('#eval-files', uploads.map((u) => u.file));
    await page.setInputFiles('#eval-labels', path.join(tmp, 'labels.txt'));
    await page.fill('#eval-eps', '1');
    await page.fill('#eval-quality', '75');
    await page.selectOption('#eval-atk-attack', 'pgd');
    await page.fill('#eval-atk-steps', '2');
    await page.selectOption('#eval-atk-adaptive', 'bpda');
    await page.click('#eval-run');
    await page.waitForFunction(() => /BPDA-PGD-2/.test(document.querySelector('#result-table tbody').textContent) &&
      /PGD-2/.test(document.querySelector('#tests-table tbody').textContent), null, { timeout: 60000 });
    const id = await page.textContent('#job-id');
    const result = await apiGet(`/jobs/${id}/result`);
    const shownRows = await page.$$eval('#result-table tbody tr th', (ths) => ths.map((t) => t.textContent.trim()));
    assert.deepEqual(shownRows, result.table.map((t) => t.display_name));
    assert.ok(shownRows.includes('JPG(Adv1(x)) BPDA-PGD-2') && shownRows.includes('JPG(Adv1(x)) PGD-2'),
      shownRows.join());
    const tests = await page.$$eval('#tests-table tbody tr', (trs) => trs.map((tr) =>
      Array.from(tr.children).slice(0, 2).map((c) => c.textContent.trim()).join(' vs ')));
    assert.ok(tests.includes('JPG(Adv1(x)) PGD-2 vs JPG(Adv1(x)) BPDA-PGD-2'), tests.join('; '));
    await page.selectOption('#eval-atk-adaptive', 'none');
    await page.selectOption('#eval-atk-attack', 'fgsm');
  });

  it('cancels a running data-set job, and a queued one from the job list', async () => {
    await page.check('input[name="source"][value="dataset"]');
    await page.fill('#dataset', 'big');
    await page.fill('#limit', '');
    await page.fill('#eval-eps', '1');
    const before = await page.textContent('#job-id');
    await page.click('#eval-run');
    await page.waitForFunction((id) => document.querySelector('#job-id').textContent !== id &&
      document.querySelector('#job-state').dataset.state === 'running' &&
      document.querySelector('#job-progress').value > 0, before, { timeout: 60000 }).catch(async (e) => {
      const state = await page.evaluate(() => ['#job-id', '#job-state', '#job-text', '#eval-error']
        .map((s) => s + ': ' + document.querySelector(s).textContent).join('; '));
      throw new Error('the data-set job never ran: ' + state + ' (' + e.message + ')');
    });
    const running = await page.textContent('#job-id');
    // a second job waits behind it
    const r = await fetch(origin + '/evaluate', { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ dataset: 'big', eps: [1], quality: 50 }) });
    assert.equal(r.status, 202);
    const queued = (await r.json()).id;
    await page.click('#jobs-refresh');
    const row = `#jobs-list tr[data-id="${queued}"]`;
    await page.waitForSelector(row);
    const cells = await page.$$eval(`${row} td`, (tds) => tds.map((t) => t.textContent.trim()));
    assert.deepEqual(cells.slice(0, 7), [queued, 'queued', `0 / ${BIG}`, 'big', '1', '50', 'tiny']);
    assert.equal(await page.textContent(`#jobs-list tr[data-id="${running}"] td:nth-child(4)`), 'big');

    await page.click(`${row} button:has-text("Cancel")`);
    await page.waitForSelector(`${row}[data-status="canceled"]`);
    assert.equal((await apiGet('/jobs/' + queued)).status, 'canceled');

    assert.equal(await page.isVisible('#job-cancel'), true);
    await page.click('#job-cancel');
    await page.waitForFunction(() => document.querySelector('#job-state').dataset.state === 'canceled');
    const st = await apiGet('/jobs/' + running);
    assert.equal(st.status, 'canceled');
    assert.ok(st.done < BIG, `canceled after ${st.done} of ${BIG}`);
    assert.match(await page.textContent('#job-text'), /canceled/);
    assert.doesNotMatch(await page.textContent('#job-text'), /left/, 'no ETA after a cancel');
    assert.equal(await page.isHidden('#job-cancel'), true);
    await page.waitForSelector(`#jobs-list tr[data-id="${running}"][data-status="canceled"]`);

    // an ended job is deleted from the list, with its files, once confirmed
    page.once('dialog', (d) => d.dismiss());
    await page.click(`${row} button:has-text("Delete")`);
    await page.click('#jobs-refresh');
    await page.waitForSelector(row);
    assert.equal((await apiGet('/jobs/' + queued)).status, 'canceled', 'a dismissed Delete keeps the job');
    page.once('dialog', (d) => d.accept());
    await page.click(`${row} button:has-text("Delete")`);
    await page.waitForSelector(row, { state: 'detached' });
    assert.equal((await fetch(origin + '/jobs/' + queued)).status, 404, 'the deleted job is gone');
  });

  it('fits a phone\'s width', async () => {
    const p = await context.newPage();
    p.on('pageerror', (e) => pageErrors.push(e.message));
    try {
      await p.setViewportSize({ width: 390, height: 844 });
      await p.goto(origin + '/');
      await p.waitForFunction(() => document.querySelector('#model-name').textContent === 'tiny');
      await p.setInputFiles('#file', jpeg);
      await p.waitForFunction(() => document.querySelectorAll('#panels .panel img').length === 5 &&
        document.querySelectorAll('#pert-views canvas').length === 3, null, { timeout: 60000 });
      const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `the page is ${overflow}px wider than the phone`);
      await p.screenshot({ path: screenshotVariant('phone'), fullPage: true });
      // the job this browser watched last comes back with its results
      await p.waitForFunction(() => !document.querySelector('#job').hidden);
      await p.click('#jobs-list tr button:has-text("Show") >> nth=-1'); // the oldest: the upload
      await p.waitForFunction(() => document.querySelector('#fig4').naturalWidth > 0, null, { timeout: 30000 });
      const wide = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(wide <= 0, `with results the page is ${wide}px wider than the phone`);
      await p.screenshot({ path: screenshotVariant('phone-evaluate'), fullPage: true });
    } finally {
      await p.close();
    }
  });

  it('works with a bearer token', async () => {
    const TOKEN = 's3cret-token';
    tokenDaemon = await startDaemon(tmp, 'token', ['--token', TOKEN]);
    const tokenOrigin = await pageOrigin(tokenDaemon);
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
      await p.waitForFunction(() => document.querySelectorAll('#panels .panel img').length === 5,
        null, { timeout: 60000 });
      // an evaluation: every call, figures and downloads too, carries the token
      await p.check('input[name="source"][value="upload"]');
      await p.setInputFiles('#eval-files', uploads.slice(0, 2).map((u) => u.file));
      await p.click('#eval-run');
      await p.waitForFunction(() => document.querySelector('#fig3').naturalWidth > 0 &&
        document.querySelector('#fig4').naturalWidth > 0, null, { timeout: 60000 });
      assert.equal(await p.isVisible('#result-note'), true, 'top-1 without labels is explained');
      assert.match(await p.textContent('#result-note'), /labels/);
      const dl = await downloadOf(p, '[data-download="rows"]');
      assert.equal(parseCsv(dl.bytes.toString()).length, 3, 'header and two rows');
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
    await page.setInputFiles('#file', jpeg);
    await page.waitForSelector('#attack-error:not([hidden])');
    assert.match(await page.textContent('#attack-error'), /Cannot reach the server/);
  });

  it('raised no script errors', () => {
    assert.deepEqual(pageErrors.filter((e) => !/Failed to load resource/.test(e)), []);
  });
});
