// app.js - behaviour of the advjpgd demo page (see the comment in index.html).
//
// Plain modern JavaScript for the browsers of today, no modules, no build
// step, no dependencies. Every request goes to the page's own origin through
// api(), which adds the bearer token and turns every failure into an ApiError
// whose message is fit to show to a person. Text that comes from the server
// (class names, error messages, file names) is only ever set with textContent.
'use strict';

(function () {
  // ------------------------------------------------------------------ basics

  const $ = (sel, root) => (root || document).querySelector(sel);
  const TOKEN_KEY = 'advjpg.token';
  const JOB_KEY = 'advjpg.job';
  const POLL_MS = 1000;

  // The paper's Table 1 (OverFeat, ImageNet 2012 validation, 50,000 images).
  const PAPER = {
    'x': [0.58, 0.61],
    'Adv1(x)': [0.23, 0.13],
    'Adv5(x)': [0.11, 0.04],
    'Adv10(x)': [0.09, 0.04],
    'JPG(Adv1(x))': [0.48, 0.41],
    'JPG(Adv5(x))': [0.26, 0.17],
    'JPG(Adv10(x))': [0.17, 0.04],
    'JPGnoise(Adv1(x))': [0.07, 0.06],
  };

  const STATUS_TEXT = {
    400: 'bad request', 401: 'token needed', 403: 'forbidden', 404: 'not found',
    405: 'method not allowed', 406: 'not acceptable', 409: 'conflict',
    413: 'too large', 415: 'unsupported type', 429: 'too many requests',
    500: 'server error', 502: 'bad gateway', 503: 'busy or loading', 504: 'timeout',
  };

  let token = '';
  try {
    token = localStorage.getItem(TOKEN_KEY) || '';
  } catch (e) {
    token = ''; // storage disabled: the token lives for this page only
  }

  /** An HTTP or network failure: status 0 means the server was not reached. */
  class ApiError extends Error {
    constructor(message, status, retryAfter) {
      super(message);
      this.status = status;
      this.retryAfter = retryAfter || null;
    }
  }

  /**
   * Calls the API on this origin. opts: method, body (FormData, Blob or a
   * string), type (Content-Type), as ('json' | 'blob' | 'text'). Resolves to
   * the parsed answer; rejects with an ApiError.
   */
  async function api(path, opts) {
    const o = opts || {};
    const headers = new Headers();
    if (token) headers.set('Authorization', 'Bearer ' + token);
    if (o.type) headers.set('Content-Type', o.type);
    const as = o.as || 'json';
    if (as === 'json') headers.set('Accept', 'application/json');
    let resp;
    try {
      resp = await fetch(path, {
        method: o.method || 'GET', body: o.body, headers: headers, cache: 'no-store',
      });
    } catch (e) {
      throw new ApiError('cannot reach the server at ' + location.origin, 0);
    }
    if (!resp.ok) {
      let text = '';
      try {
        text = await resp.text();
      } catch (e) {
        text = '';
      }
      let msg = '';
      try {
        const j = JSON.parse(text);
        if (j && typeof j.error === 'string') msg = j.error;
      } catch (e) {
        msg = '';
      }
      if (!msg) msg = text.trim().slice(0, 300) || resp.statusText || 'no message';
      throw new ApiError(msg, resp.status, resp.headers.get('Retry-After'));
    }
    try {
      if (as === 'blob') return await resp.blob();
      if (as === 'text') return await resp.text();
      return await resp.json();
    } catch (e) {
      throw new ApiError('the answer to ' + path + ' could not be read (' + e.message + ')',
        resp.status);
    }
  }

  /** Words for an error, for a person: status, meaning, the server's message, a hint. */
  function describe(err) {
    if (!(err instanceof ApiError)) return 'Something went wrong in this page: ' + err;
    if (err.status === 0) {
      return 'Cannot reach the server (' + location.origin + '). Is advjpgd still running?';
    }
    let s = 'Error ' + err.status;
    if (STATUS_TEXT[err.status]) s += ' (' + STATUS_TEXT[err.status] + ')';
    s += ': ' + err.message;
    if (err.status === 401) s += '. Enter the server\'s token at the top of the page.';
    else if (err.status === 503 && err.retryAfter) {
      s += '. Try again in ' + err.retryAfter + ' s.';
    }
    return s;
  }

  function showError(el, err) {
    if (!err) {
      el.hidden = true;
      el.textContent = '';
      return;
    }
    el.textContent = typeof err === 'string' ? err : describe(err);
    el.hidden = false;
  }

  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === null || v === undefined || v === false) continue;
        if (k === 'text') e.textContent = v;
        else if (k === 'class') e.className = v;
        else if (k === 'dataset') Object.assign(e.dataset, v);
        else e.setAttribute(k, v === true ? '' : String(v));
      }
    }
    for (const c of children || []) {
      if (c !== null && c !== undefined) e.append(c);
    }
    return e;
  }

  const fmtP = (p) => (typeof p === 'number' ? p.toFixed(3) : '\u2013');
  /** A job's quality: one number, or a grid's list. */
  const fmtQuality = (q) => (Array.isArray(q) ? q.join(', ') : String(q));
  /** A p-value: 3 significant digits, small ones in e-notation. */
  const fmtPval = (p) => (typeof p !== 'number' ? '\u2013' : p < 1e-3 ? p.toExponential(1) : p.toPrecision(3));
  const fmtInt = (n) => Number(n).toLocaleString('en-US');

  function fmtDuration(s) {
    if (typeof s !== 'number' || !isFinite(s) || s < 0) return '';
    s = Math.round(s);
    if (s < 60) return s + ' s';
    const m = Math.floor(s / 60);
    if (m < 60) return m + ' min ' + (s % 60) + ' s';
    return Math.floor(m / 60) + ' h ' + (m % 60) + ' min';
  }

  /** A class for display: its name when the model has labels, else "class N". */
  function className(entry) {
    if (entry && typeof entry.name === 'string' && entry.name) return entry.name;
    return 'class ' + (entry ? entry.index : '?');
  }

  // ------------------------------------------------------------------ server, model, token

  async function checkHealth() {
    const badge = $('#health');
    try {
      await api('/health');
      badge.dataset.state = 'ok';
      badge.textContent = 'server ready';
    } catch (e) {
      if (e.status === 503) {
        badge.dataset.state = 'busy';
        badge.textContent = 'server loading or busy';
      } else if (e.status === 0) {
        badge.dataset.state = 'down';
        badge.textContent = 'cannot reach the server';
      } else {
        badge.dataset.state = 'down';
        badge.textContent = 'server error ' + e.status;
      }
    }
  }

  let modelClasses = 0; // classes of the loaded model, 0 while unknown

  async function loadModel() {
    const errEl = $('#model-error');
    try {
      const m = await api('/models');
      modelClasses = Number(m.classes) || 0;
      if (modelClasses) $('#truth').max = String(modelClasses - 1);
      $('#model-name').textContent = m.name || '?';
      const inSize = m.input_size ? m.input_size + '\u00d7' + m.input_size : '?';
      $('#model-input').textContent = inSize + (m.scale_size ? ' (from ' + m.scale_size + ')' : '');
      $('#model-classes').textContent = m.classes ? fmtInt(m.classes) : '?';
      $('#model-params').textContent = m.parameters ? fmtInt(m.parameters) : '?';
      showError(errEl, null);
    } catch (e) {
      for (const id of ['#model-name', '#model-input', '#model-classes', '#model-params']) {
        $(id).textContent = '\u2013';
      }
      showError(errEl, 'Model information unavailable. ' + describe(e));
    }
  }

  function setupToken() {
    const input = $('#token');
    input.value = token;
    const save = (value) => {
      token = value.trim();
      try {
        if (token) localStorage.setItem(TOKEN_KEY, token);
        else localStorage.removeItem(TOKEN_KEY);
      } catch (e) {
        // storage disabled: keep it in memory
      }
      loadModel();
      refreshJobs();
    };
    $('#token-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      save(input.value);
    });
    $('#token-clear').addEventListener('click', () => {
      input.value = '';
      save('');
    });
  }

  // ------------------------------------------------------------------ attack one image

  let chosenFile = null;
  let previewUrl = null;
  let attackSeq = 0;

  function chooseFile(file) {
    if (!file) return;
    chosenFile = file;
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = URL.createObjectURL(file);
    const img = $('#drop-preview');
    img.hidden = false;
    img.src = previewUrl;
    img.alt = 'the chosen image, ' + file.name;
    $('#drop-title').textContent = file.name + ' (' + fmtInt(Math.ceil(file.size / 1024)) +
      ' KB): drop or choose another';
    $('#attack-run').disabled = false;
    runAttack();
  }

  function setupDrop() {
    const drop = $('#drop');
    const input = $('#file');
    // The browser cannot show every image the server reads (PPM), nor a broken one.
    $('#drop-preview').addEventListener('error', (ev) => {
      ev.target.hidden = true;
    });
    input.addEventListener('change', () => chooseFile(input.files[0]));
    // Space opens the chooser natively; Chromium does not always do it for
    // Enter, so Enter opens it here, once.
    input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.repeat) {
        ev.preventDefault();
        input.click();
      }
    });
    for (const type of ['dragenter', 'dragover']) {
      drop.addEventListener(type, (ev) => {
        ev.preventDefault();
        drop.classList.add('is-over');
      });
    }
    for (const type of ['dragleave', 'dragend']) {
      drop.addEventListener(type, () => drop.classList.remove('is-over'));
    }
    drop.addEventListener('drop', (ev) => {
      ev.preventDefault();
      drop.classList.remove('is-over');
      const f = ev.dataTransfer && ev.dataTransfer.files[0];
      if (f) chooseFile(f);
    });
    // A drop that misses the zone must not navigate away from the page.
    window.addEventListener('dragover', (ev) => ev.preventDefault());
    window.addEventListener('drop', (ev) => ev.preventDefault());
    // Pasting an image works too.
    window.addEventListener('paste', (ev) => {
      const items = ev.clipboardData ? Array.from(ev.clipboardData.files) : [];
      const f = items.find((x) => x.type.startsWith('image/'));
      if (f) chooseFile(f);
    });
  }

  /** The Content-Type to send a file with: what the browser says, else from its name. */
  function imageType(file) {
    if (file.type) return file.type;
    const n = file.name.toLowerCase();
    if (n.endsWith('.png')) return 'image/png';
    if (n.endsWith('.ppm') || n.endsWith('.pnm')) return 'image/x-portable-pixmap';
    return 'image/jpeg';
  }

  function readInt(input, lo, hi, what) {
    const v = Number(input.value);
    if (!Number.isInteger(v) || v < lo || v > hi) {
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      throw new Error(what + ' must be a whole number from ' + lo + ' to ' + hi +
        ' (got "' + input.value + '")');
    }
    input.removeAttribute('aria-invalid');
    return v;
  }

  function setupControls() {
    const eps = $('#eps');
    const chips = document.querySelectorAll('.presets .chip');
    const syncChips = () => {
      for (const c of chips) c.setAttribute('aria-pressed', String(c.dataset.eps === eps.value));
    };
    for (const c of chips) {
      c.addEventListener('click', () => {
        eps.value = c.dataset.eps;
        syncChips();
        if (chosenFile) runAttack();
      });
    }
    eps.addEventListener('input', syncChips);
    for (const input of document.querySelectorAll('input')) {
      input.addEventListener('input', () => input.removeAttribute('aria-invalid'));
    }
    const q = $('#quality');
    const qOut = $('#quality-out');
    q.addEventListener('input', () => {
      qOut.value = q.value;
      qOut.textContent = q.value;
    });
    q.addEventListener('change', () => {
      if (chosenFile) runAttack();
    });
    $('#attack-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      runAttack();
    });
  }

  // ------------------------------------------------------------------ the attack menu

  const ATTACK_NAMES = { fgsm: 'FGSM', bim: 'BIM', pgd: 'PGD', ll: 'iterative least-likely class' };

  /**
   * The menu of one form (ids prefixed 'atk-' or 'eval-atk-') as the
   * parameters it sets, numbers as numbers; the server's defaults (FGSM,
   * non-adaptive) are left out, so the request is the paper's unless asked.
   */
  function attackParams(prefix) {
    const f = (n) => $('#' + prefix + n);
    const kind = f('attack').value;
    if (kind === 'fgsm') return {};
    const p = {
      attack: kind,
      steps: readInt(f('steps'), 1, 10000, 'The number of steps'),
      step_size: readInt(f('step-size'), 1, 255, 'The step size'),
    };
    const adaptive = f('adaptive').value;
    if (adaptive !== 'none') p.adaptive = adaptive;
    if (adaptive === 'eot') p.eot_qualities = parseIntList(f('eot').value, 1, 100, 'EOT quality');
    return p;
  }

  /** The menu's parameters as query strings' values (a list as "50,75"). */
  function attackQuery(p) {
    const q = {};
    for (const [k, v] of Object.entries(p)) q[k] = Array.isArray(v) ? v.join(',') : String(v);
    return q;
  }

  /**
   * The attack menu, written once in index.html's <template>, into each
   * data-attack-menu placeholder: its ids, label fors and aria-describedby
   * prefixed with the placeholder's value ('atk-'), the fieldset's id
   * prefix + 'menu', data-class added to its classes.
   */
  function buildAttackMenus() {
    const tmpl = $('#attack-menu-template');
    for (const slot of document.querySelectorAll('[data-attack-menu]')) {
      const prefix = slot.dataset.attackMenu;
      const menu = tmpl.content.firstElementChild.cloneNode(true);
      menu.id = prefix + 'menu';
      if (slot.dataset.class) menu.classList.add(...slot.dataset.class.split(' '));
      for (const e of menu.querySelectorAll('[id]')) e.id = prefix + e.id;
      for (const e of menu.querySelectorAll('label[for]')) e.htmlFor = prefix + e.htmlFor;
      for (const e of menu.querySelectorAll('[aria-describedby]')) {
        e.setAttribute('aria-describedby', prefix + e.getAttribute('aria-describedby'));
      }
      slot.replaceWith(menu);
    }
  }

  /** Steps, step size and the threat model only for the iterative attacks; EOT's qualities only for EOT. */
  function setupAttackMenu(prefix) {
    const f = (n) => $('#' + prefix + n);
    const sync = () => {
      const iterative = f('attack').value !== 'fgsm';
      for (const n of ['steps', 'step-size', 'adaptive']) f(n).disabled = !iterative;
      f('eot').closest('.attack-eot').hidden = !(iterative && f('adaptive').value === 'eot');
    };
    f('attack').addEventListener('change', sync);
    f('adaptive').addEventListener('change', sync);
    sync();
  }

  /** "PGD-10 (step 1), adaptive: BPDA" from a result's (or a job's) attack fields. */
  function attackLabel(a) {
    if (!a || !a.attack) return 'FGSM';
    let s = ATTACK_NAMES[a.attack] || a.attack;
    if (a.steps) s += '-' + a.steps + ' (step ' + a.step_size + ')';
    if (a.adaptive && a.adaptive !== 'none') s += ', adaptive: ' + a.adaptive.toUpperCase();
    return s;
  }

  /** "L∞ 5, L2 223.9, PSNR 36.0 dB" of a result's or a table row's norms. */
  function normsText(r) {
    if (!r || typeof r.l2 !== 'number') return '';
    return 'L∞ ' + r.linf + ', L2 ' + r.l2.toFixed(1) + ', PSNR ' +
      (typeof r.psnr === 'number' ? r.psnr.toFixed(1) + ' dB' : '∞');
  }

  async function runAttack() {
    const errEl = $('#attack-error');
    const status = $('#attack-status');
    if (!chosenFile) {
      showError(errEl, 'Choose an image first.');
      return;
    }
    let eps, quality, seed, truth, menu;
    try {
      menu = attackParams('atk-');
      eps = readInt($('#eps'), 1, 255, '\u03b5');
      quality = readInt($('#quality'), 1, 100, 'The JPEG quality');
      seed = readInt($('#seed'), 0, 4294967295, 'The seed');
      truth = readTruth();
    } catch (e) {
      showError(errEl, e.message);
      return;
    }
    const seq = ++attackSeq;
    const run = $('#attack-run');
    run.disabled = true;
    $('#panels').setAttribute('aria-busy', 'true');
    status.textContent = 'Attacking with \u03b5 = ' + eps + ', JPEG quality ' + quality + '\u2026';
    showError(errEl, null);
    const t0 = performance.now();
    try {
      const q = new URLSearchParams({
        eps: String(eps), quality: String(quality), seed: String(seed), images: '1', top_k: '5',
        ...attackQuery(menu),
      });
      const res = await api('/attack?' + q, {
        method: 'POST', body: chosenFile, type: imageType(chosenFile),
      });
      if (seq !== attackSeq) return; // a newer request is under way
      renderAttack(res, eps, quality, truth);
      const ms = Math.round(performance.now() - t0);
      status.textContent = 'Done in ' + ms + ' ms: ' + res.width + '\u00d7' + res.height +
        ' image, ' + res.input_size + '\u00d7' + res.input_size + ' crop, \u03b5 = ' + eps +
        ', quality ' + quality + '.';
    } catch (e) {
      if (seq !== attackSeq) return;
      status.textContent = '';
      // The panels of an earlier image would be mistaken for this one's.
      $('#panels').textContent = '';
      $('#summary').hidden = true;
      $('#perturbation').hidden = true;
      showError(errEl, describe(e));
    } finally {
      if (seq === attackSeq) {
        run.disabled = false;
        $('#panels').removeAttribute('aria-busy');
      }
    }
  }

  /** The five panels the page shows, for one eps, in order. */
  function panelSpecs(eps, res) {
    return [
      { name: 'x', title: 'x', sub: 'the clean crop' },
      { name: 'JPG(x)', title: 'JPG(x)', sub: 'the clean crop as JPEG: JPEG\u2019s own effect' },
      { name: 'Adv' + eps + '(x)', title: 'Adv\u03b5(x)', sub: 'after ' + attackLabel(res) + ', \u03b5 = ' + eps },
      { name: 'JPG(Adv' + eps + '(x))', title: 'JPG(Adv\u03b5(x))', sub: 'the attack, re-compressed as JPEG' },
      { name: 'JPGnoise(Adv' + eps + '(x))', title: 'JPGnoise(Adv\u03b5(x))', sub: 'control: JPEG\u2019s change, shuffled' },
    ];
  }

  /** Title with the epsilon written as a subscript: Adv<sub>ε</sub>(x). */
  function titleNode(title) {
    const h = el('h3', { class: 'panel-title' });
    const parts = title.split('\u03b5');
    parts.forEach((p, i) => {
      h.append(p);
      if (i < parts.length - 1) h.append(el('sub', { text: '\u03b5' }));
    });
    return h;
  }

  /** The true class typed in, or null when the field is empty. */
  function readTruth() {
    const input = $('#truth');
    if (!input.value.trim()) {
      input.removeAttribute('aria-invalid');
      return null;
    }
    return readInt(input, 0, modelClasses ? modelClasses - 1 : 1e6, 'The true class');
  }

  function renderAttack(res, eps, quality, truth) {
    const panels = $('#panels');
    panels.textContent = '';
    const byName = new Map((res.results || []).map((r) => [r.transform, r]));
    const lx = res.label;
    const clean = byName.get('x');
    const lxEntry = clean && (clean.top || []).find((t) => t.index === lx);
    const lxName = className(lxEntry || { index: lx });

    for (const spec of panelSpecs(eps, res)) {
      const r = byName.get(spec.name);
      if (!r) {
        panels.append(el('article', { class: 'panel panel-missing' }, [
          titleNode(spec.title),
          el('p', { class: 'hint', text: 'The server sent no result for ' + spec.name + '.' }),
        ]));
        continue;
      }
      panels.append(renderPanel(spec, r, res, lx, lxName, truth));
    }
    renderSummary(byName, eps, quality, lx, lxName, truth, res);
    renderPerturbation(res, eps);
  }

  function renderPanel(spec, r, res, lx, lxName, truth) {
    const png = res.images && res.images[spec.name];
    const top = r.top || [];
    const predicted = className(top.find((t) => t.index === r.label) || { index: r.label });
    const kept = r.label === lx;
    const alt = spec.name + ' (' + spec.sub + '): classified as ' + predicted + ' with p = ' +
      fmtP(r.prob) + '; p(l_x) = ' + fmtP(r.top_label_prob);
    const figure = el('figure', { class: 'panel-image' }, [
      png ? el('img', { src: 'data:image/png;base64,' + png, alt: alt, width: res.input_size,
        height: res.input_size, decoding: 'async' })
        : el('p', { class: 'hint', text: 'no image (the server sent none)' }),
    ]);

    const list = el('ol', { class: 'bars', 'aria-label': 'top ' + top.length + ' classes of ' + spec.name });
    let lxShown = false;
    for (const t of top) {
      const isLx = t.index === lx;
      lxShown = lxShown || isLx;
      list.append(barRow(t, isLx, false, t.index === truth));
    }
    if (!lxShown && typeof r.top_label_prob === 'number') {
      // l_x fell out of the top k: still show where it went.
      list.append(barRow({ index: lx, label: lxName, prob: r.top_label_prob }, true, true));
    }

    const tlp = el('p', { class: 'tlp' }, [
      el('span', { class: 'tlp-name' }, ['p(l', el('sub', { text: 'x' }), ' | f(x))']),
      el('strong', { class: 'tlp-value', text: fmtP(r.top_label_prob),
        dataset: { prob: String(r.top_label_prob) } }),
    ]);
    const meter = el('div', { class: 'tlp-meter', 'aria-hidden': 'true' }, [
      el('span', { class: 'tlp-fill' }),
    ]);
    meter.firstChild.style.width = pct(r.top_label_prob);

    const pred = el('p', { class: 'pred ' + (kept ? 'is-kept' : 'is-changed') }, [
      el('span', { class: 'pred-mark', 'aria-hidden': 'true', text: kept ? '\u2713' : '\u2717' }),
      ' top class: ',
      el('strong', { class: 'pred-label', text: predicted, dataset: { index: String(r.label) } }),
      kept ? ' (= l\u2093)' : ' (\u2260 l\u2093)',
    ]);
    const right = truth === null ? null : r.label === truth;
    const verdict = right === null ? null : el('p', {
      class: 'truth-mark ' + (right ? 'is-right' : 'is-wrong'), dataset: { correct: String(right) },
    }, [right ? '\u2713 right: the true class' : '\u2717 wrong: the true class is ' +
      className(top.find((t) => t.index === truth) || { index: truth })]);

    return el('article', {
      class: 'panel ' + (kept ? 'is-kept' : 'is-changed'),
      dataset: { transform: spec.name, label: String(r.label), topLabelProb: String(r.top_label_prob) },
      'aria-label': spec.name,
    }, [
      el('header', { class: 'panel-head' }, [titleNode(spec.title),
        el('p', { class: 'panel-sub', text: spec.sub })]),
      figure, tlp, meter, el('div', { class: 'preds' }, [pred, verdict]), list,
    ]);
  }

  const pct = (p) => (Math.max(0, Math.min(1, Number(p) || 0)) * 100).toFixed(1) + '%';

  function barRow(t, isLx, outside, isTruth) {
    const fill = el('span', { class: 'bar-fill' });
    fill.style.width = pct(t.prob);
    return el('li', {
      class: 'bar' + (isLx ? ' is-lx' : '') + (outside ? ' is-outside' : ''),
      dataset: { index: String(t.index), prob: String(t.prob) },
    }, [
      el('span', { class: 'bar-name' }, [
        el('span', { class: 'bar-label', text: className(t) }),
        isLx ? el('span', { class: 'lx-tag', title: 'the clean image\u2019s top class', text: 'l\u2093' }) : null,
        isTruth ? el('span', { class: 'truth-tag', title: 'the true class', text: 'true' }) : null,
      ]),
      el('span', { class: 'bar-track', 'aria-hidden': 'true' }, [fill]),
      el('span', { class: 'bar-value', text: fmtP(t.prob) }),
    ]);
  }

  function renderSummary(byName, eps, quality, lx, lxName, truth, res) {
    const box = $('#summary');
    const get = (n) => byName.get(n);
    const x = get('x');
    const jx = get('JPG(x)');
    const adv = get('Adv' + eps + '(x)');
    const jadv = get('JPG(Adv' + eps + '(x))');
    const nadv = get('JPGnoise(Adv' + eps + '(x))');
    box.textContent = '';
    if (!x || !adv || !jadv) {
      box.hidden = true;
      return;
    }
    const name = (r) => className((r.top || []).find((t) => t.index === r.label) || { index: r.label });
    const parts = [];
    parts.push(el('span', {}, ['The clean crop is ', el('strong', { text: lxName }),
      ' (l', el('sub', { text: 'x' }), ') with p = ' + fmtP(x.top_label_prob) + '.']));
    parts.push(adv.label === lx
      ? ' The attack at \u03b5 = ' + eps + ' keeps it but lowers p(l\u2093) to ' + fmtP(adv.top_label_prob) + '.'
      : ' The attack at \u03b5 = ' + eps + ' turns it into ' + name(adv) + ' (p(l\u2093) = ' +
        fmtP(adv.top_label_prob) + ').');
    parts.push(jadv.label === lx
      ? ' JPEG at quality ' + quality + (adv.label === lx ? ' keeps ' : ' brings back ') + lxName +
        ' (p(l\u2093) = ' + fmtP(jadv.top_label_prob) + ').'
      : ' JPEG at quality ' + quality + ' does not undo it: ' + name(jadv) + ' (p(l\u2093) = ' +
        fmtP(jadv.top_label_prob) + ').');
    if (nadv) {
      parts.push(' JPEG noise gives ' + name(nadv) + ' (p(l\u2093) = ' + fmtP(nadv.top_label_prob) + ').');
    }
    if (jx) parts.push(' For reference, JPG(x) alone: p(l\u2093) = ' + fmtP(jx.top_label_prob) + '.');
    if (truth !== null) {
      const right = [x, jx, adv, jadv, nadv].filter((r) => r && r.label === truth).length;
      const all = [x, jx, adv, jadv, nadv].filter((r) => r).length;
      parts.push(' True class: ' + (truth === lx ? lxName : 'class ' + truth) + ', ' + right +
        ' of ' + all + ' panels right.');
    }
    box.append(el('p', {}, parts));
    box.append(el('p', { class: 'threat', id: 'attack-threat' }, [
      el('strong', { text: attackLabel(res) + '. ' }), 'Threat model: ' + (res.threat_model || '') +
        '. Perturbation Adv' + eps + '(x) \u2212 x: ' + normsText(adv) + '.',
    ]));
    box.hidden = false;
  }

  // ------------------------------------------------------------------ the perturbation, amplified

  // The decoded crops of the last attack, kept so that a new gain or mode
  // redraws without decoding again: { eps, pixels: Map(name -> ImageData) }.
  let pert = null;
  let pertSeq = 0;

  /** The differences shown, each a - b, for one eps. */
  function pertSpecs(eps) {
    const adv = 'Adv' + eps + '(x)';
    const jadv = 'JPG(' + adv + ')';
    return [
      { a: adv, b: 'x', title: 'Adv\u03b5(x) \u2212 x', sub: 'the attack' },
      { a: jadv, b: 'JPG(x)', title: 'JPG(Adv\u03b5(x)) \u2212 JPG(x)', sub: 'what JPEG leaves of the attack' },
      { a: jadv, b: adv, title: 'JPG(Adv\u03b5(x)) \u2212 Adv\u03b5(x)', sub: 'JPEG\u2019s change (JPGnoise shuffles it)' },
    ];
  }

  /** A base64 PNG as ImageData (exact pixel values: no colour conversion). */
  async function decodePng(b64) {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const bmp = await createImageBitmap(new Blob([bytes], { type: 'image/png' }),
      { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
    const c = document.createElement('canvas');
    c.width = bmp.width;
    c.height = bmp.height;
    const ctx = c.getContext('2d', { willReadFrequently: true });
    ctx.drawImage(bmp, 0, 0);
    bmp.close();
    return ctx.getImageData(0, 0, c.width, c.height);
  }

  async function renderPerturbation(res, eps) {
    const box = $('#perturbation');
    const seq = ++pertSeq;
    const images = res.images || {};
    const names = new Set(pertSpecs(eps).flatMap((d) => [d.a, d.b]));
    if (![...names].every((n) => images[n])) {
      box.hidden = true;
      return;
    }
    try {
      const pixels = new Map();
      for (const n of names) pixels.set(n, await decodePng(images[n]));
      if (seq !== pertSeq) return;
      pert = { eps: eps, pixels: pixels };
      drawPerturbation();
      box.hidden = false;
    } catch (e) {
      box.hidden = true; // a browser that cannot decode them: no view, the panels stay
    }
  }

  /**
   * Draws |a - b| x gain (mode "abs") or 128 + (a - b) x gain ("signed") per
   * channel, clipped to 0..255, with the difference's L-inf and RMS in levels.
   */
  function drawPerturbation() {
    if (!pert) return;
    const gainIn = $('#pert-gain');
    const gain = Number(gainIn.value) >= 1 ? Math.min(255, Number(gainIn.value)) : 10;
    const signed = $('#pert-mode').value === 'signed';
    const views = $('#pert-views');
    views.textContent = '';
    for (const d of pertSpecs(pert.eps)) {
      const A = pert.pixels.get(d.a);
      const B = pert.pixels.get(d.b);
      if (A.width !== B.width || A.height !== B.height) continue;
      const out = new ImageData(A.width, A.height);
      let linf = 0;
      let sq = 0;
      for (let i = 0; i < A.data.length; i += 4) {
        for (let c = 0; c < 3; c++) {
          const diff = A.data[i + c] - B.data[i + c];
          linf = Math.max(linf, Math.abs(diff));
          sq += diff * diff;
          const v = signed ? 128 + diff * gain : Math.abs(diff) * gain;
          out.data[i + c] = Math.max(0, Math.min(255, v));
        }
        out.data[i + 3] = 255;
      }
      const rms = Math.sqrt(sq / (3 * A.width * A.height));
      const canvas = el('canvas', { width: A.width, height: A.height, role: 'img',
        'aria-label': d.a + ' minus ' + d.b + ', amplified ' + gain + ' times (' +
          (signed ? 'signed' : 'absolute') + '); largest difference ' + linf + ' levels' });
      canvas.getContext('2d').putImageData(out, 0, 0);
      views.append(el('figure', { class: 'pert-view', dataset: { a: d.a, b: d.b, linf: String(linf),
        rms: rms.toFixed(3), gain: String(gain), mode: signed ? 'signed' : 'abs' } }, [
        canvas,
        el('figcaption', {}, [titleNode(d.title), el('span', { class: 'hint', text: d.sub }),
          el('span', { class: 'pert-stats', text: 'largest ' + linf + ' levels \u00b7 RMS ' +
            rms.toFixed(2) })]),
      ]));
    }
  }

  function setupPerturbation() {
    $('#pert-gain').addEventListener('input', drawPerturbation);
    $('#pert-mode').addEventListener('change', drawPerturbation);
  }

  // ------------------------------------------------------------------ evaluation jobs

  let pollTimer = null;
  let currentJob = null;
  let currentResult = null; // the /result answer of the job shown
  const figureUrls = {};
  const ACTIVE = new Set(['queued', 'running']);

  function source() {
    return document.querySelector('input[name="source"]:checked').value;
  }

  function setupEval() {
    for (const r of document.querySelectorAll('input[name="source"]')) {
      r.addEventListener('change', () => {
        for (const box of document.querySelectorAll('.source-fields')) {
          box.hidden = box.dataset.source !== source();
        }
      });
    }
    $('#eval-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      startEvaluation();
    });
    $('#job-cancel').addEventListener('click', () => cancelJob(currentJob));
    $('#fig3-axis').addEventListener('change', () => currentJob && showFigure(currentJob, '#fig3', 'figure3.svg'));
    $('#fig-eps').addEventListener('change', () => {
      if (!currentJob) return;
      showFigure(currentJob, '#fig4', 'figure4.svg');
      if (currentDct) showFigure(currentJob, '#figdct', 'dct.svg');
    });
    $('#jobs-refresh').addEventListener('click', refreshJobs);
    $('#jobs').addEventListener('toggle', () => {
      if ($('#jobs').open) refreshJobs();
    });
    for (const a of document.querySelectorAll('[data-download]')) {
      a.addEventListener('click', (ev) => {
        ev.preventDefault();
        download(a.dataset.download);
      });
    }
  }

  /** A comma-separated list of whole numbers lo..hi (what names them; example after "value"). */
  function parseIntList(text, lo, hi, what, example) {
    const parts = text.split(',').map((s) => s.trim()).filter((s) => s);
    if (!parts.length) throw new Error('Give at least one ' + what + ' value' + (example || '') + '.');
    return parts.map((s) => {
      const v = Number(s);
      if (!Number.isInteger(v) || v < lo || v > hi) {
        throw new Error('Each ' + what + ' must be a whole number from ' + lo + ' to ' + hi +
          ' (got "' + s + '").');
      }
      return v;
    });
  }

  function parseEpsList(text) {
    return parseIntList(text, 1, 255, '\u03b5', ', e.g. 1,5,10');
  }

  /** A JPEG quality or a grid of them ("75", "50,75,90"): distinct integers 1..100. */
  function parseQualityList(text) {
    const parts = text.split(',').map((s) => s.trim()).filter((s) => s);
    if (!parts.length || parts.length > 16) throw new Error('Give 1 to 16 JPEG qualities, e.g. 75 or 50,75,90.');
    const qs = parts.map((s) => {
      const v = Number(s);
      if (!Number.isInteger(v) || v < 1 || v > 100) {
        throw new Error('Each JPEG quality must be a whole number from 1 to 100 (got "' + s + '").');
      }
      return v;
    });
    if (new Set(qs).size !== qs.length) throw new Error('Each JPEG quality once, please.');
    return qs;
  }

  /**
   * Builds the POST /evaluate request. A server-side data set goes as JSON
   * (the contract's body); an upload goes as multipart/form-data with one
   * "image" field per file and an optional "labels" field, the parameters in
   * the query string, as for /attack.
   */
  function evaluationRequest() {
    const eps = parseEpsList($('#eval-eps').value);
    const qs = parseQualityList($('#eval-quality').value);
    const quality = qs.length === 1 ? qs[0] : qs;
    const menu = attackParams('eval-atk-');
    if (source() === 'dataset') {
      const dataset = $('#dataset').value.trim();
      if (!dataset) {
        $('#dataset').focus();
        throw new Error('Name a data set folder under the server\'s --data-root, or upload images.');
      }
      const body = { dataset: dataset, eps: eps, quality: quality };
      if (Object.keys(menu).length) body.attack = menu;
      const gt = $('#ground-truth').value.trim();
      if (gt) body.ground_truth = gt;
      const labels = $('#ds-labels').value.trim();
      if (labels) body.labels = labels;
      if ($('#limit').value.trim()) body.limit = readInt($('#limit'), 1, 1e9, 'The limit');
      if ($('#eval-dct').checked) body.dct = true;
      return { path: '/evaluate', body: JSON.stringify(body), type: 'application/json' };
    }
    const files = Array.from($('#eval-files').files);
    if (!files.length) {
      $('#eval-files').focus();
      throw new Error('Choose one or more images to upload.');
    }
    const form = new FormData();
    for (const f of files) form.append('image', f, f.name);
    const labels = $('#eval-labels').files[0];
    if (labels) form.append('labels', labels, labels.name);
    const q = new URLSearchParams({ eps: eps.join(','), quality: qs.join(','), ...attackQuery(menu) });
    if ($('#eval-dct').checked) q.set('dct', '1');
    return { path: '/evaluate?' + q, body: form, type: null };
  }

  async function startEvaluation() {
    const errEl = $('#eval-error');
    let req;
    try {
      req = evaluationRequest();
    } catch (e) {
      showError(errEl, e.message);
      return;
    }
    showError(errEl, null);
    const btn = $('#eval-run');
    btn.disabled = true;
    try {
      const job = await api(req.path, { method: 'POST', body: req.body, type: req.type });
      if (!job || !job.id) throw new ApiError('the server started no job (no "id" in its answer)', 200);
      watchJob(job.id, job);
      refreshJobs();
    } catch (e) {
      showError(errEl, e instanceof ApiError ? describe(e) : e.message);
    } finally {
      btn.disabled = false;
    }
  }

  function watchJob(id, first) {
    clearTimeout(pollTimer);
    currentJob = id;
    currentResult = null;
    try {
      localStorage.setItem(JOB_KEY, id);
    } catch (e) {
      // not remembered across reloads
    }
    $('#job').hidden = false;
    $('#results').hidden = true;
    $('#job-id').textContent = id;
    $('#job-meta').textContent = '';
    if (first) renderJob(first);
    poll();
  }

  async function poll() {
    const id = currentJob;
    if (!id) return;
    try {
      const st = await api('/jobs/' + encodeURIComponent(id));
      if (id !== currentJob) return;
      showError($('#eval-error'), null);
      renderJob(st);
      if (!ACTIVE.has(st.status)) {
        refreshJobs(); // the list shows the new state too
        if (st.status === 'done') loadResult(id, st);
        return;
      }
    } catch (e) {
      if (id !== currentJob) return;
      showError($('#eval-error'), 'Job ' + id + ': ' + describe(e));
      if (e.status === 404 || e.status === 401) return; // gone, or needs a token: stop
    }
    pollTimer = setTimeout(poll, POLL_MS);
  }

  /** Where a job's images come from, in words. */
  const jobSource = (j) => (j.dataset ? j.dataset : j.upload ? 'uploaded images' : '\u2013');
  const jobModel = (j) => (j.model && j.model.name ? j.model.name : '\u2013');

  /** An ISO 8601 time as a short local date and time ("2026-12-01 13:02"). */
  function fmtDate(iso) {
    const d = new Date(iso);
    if (!iso || isNaN(d)) return '\u2013';
    const p2 = (n) => String(n).padStart(2, '0');
    return d.getFullYear() + '-' + p2(d.getMonth() + 1) + '-' + p2(d.getDate()) + ' ' +
      p2(d.getHours()) + ':' + p2(d.getMinutes());
  }

  function renderJob(st) {
    const state = st.status || 'queued';
    const badge = $('#job-state');
    badge.dataset.state = state;
    badge.textContent = state;
    const bar = $('#job-progress');
    const done = Number(st.done) || 0;
    const total = Number(st.total) || 0;
    if (total > 0) {
      bar.max = total;
      bar.value = Math.min(done, total);
    } else if (state === 'done') {
      bar.max = 1;
      bar.value = 1;
    } else {
      bar.removeAttribute('value'); // indeterminate
    }
    const bits = [];
    if (total > 0) bits.push(fmtInt(done) + ' of ' + fmtInt(total) + ' images');
    if (st.skipped) bits.push(fmtInt(st.skipped) + ' unreadable');
    if (typeof st.images_per_s === 'number' && st.images_per_s > 0) {
      bits.push(st.images_per_s.toFixed(1) + ' images/s');
    }
    if (ACTIVE.has(state) && typeof st.eta_s === 'number') {
      bits.push('about ' + fmtDuration(st.eta_s) + ' left');
    }
    if (state === 'failed') bits.push('failed' + (st.error ? ': ' + st.error : ''));
    if (state === 'canceled') bits.push('canceled');
    $('#job-text').textContent = bits.join(' \u00b7 ');
    if (st.created) {
      const meta = [jobSource(st), 'model ' + jobModel(st)];
      if (Array.isArray(st.eps)) meta.push('\u03b5 ' + st.eps.join(', '));
      if (st.quality !== undefined) meta.push('quality ' + fmtQuality(st.quality));
      if (st.attack) meta.push(attackLabel(st.attack));
      if (st.dct) meta.push('DCT analysis');
      if (st.labels || st.ground_truth) meta.push('labels from ' + (st.ground_truth || st.labels));
      else meta.push('no labels (no top-1)');
      meta.push('created ' + fmtDate(st.created));
      $('#job-meta').textContent = meta.join(' \u00b7 ');
    }
    $('#job-cancel').hidden = !ACTIVE.has(state);
  }

  async function cancelJob(id) {
    if (!id) return;
    try {
      const st = await api('/jobs/' + encodeURIComponent(id), { method: 'DELETE' });
      if (id === currentJob && st && st.status) renderJob(st);
    } catch (e) {
      showError($('#eval-error'), 'Could not cancel job ' + id + ': ' + describe(e));
    }
    refreshJobs();
  }

  /** Removes an ended job and its files on the server (DELETE /jobs/{id}?purge=1), once confirmed. */
  async function deleteJob(id) {
    if (!id || !window.confirm('Delete job ' + id + ' and its files (rows, result, figures)?')) return;
    try {
      await api('/jobs/' + encodeURIComponent(id) + '?purge=1', { method: 'DELETE' });
    } catch (e) {
      showError($('#jobs-error'), 'Could not delete job ' + id + ': ' + describe(e));
    }
    refreshJobs();
  }

  /** The figure URLs with the options chosen on the page (axis, eps). */
  function figureName(name) {
    const q = new URLSearchParams();
    if (name === 'figure3.svg' && $('#fig3-axis').value !== 'linear') q.set('axis', $('#fig3-axis').value);
    if ((name === 'figure4.svg' || name === 'dct.svg') && $('#fig-eps').value) q.set('eps', $('#fig-eps').value);
    return q.toString() ? name + '?' + q : name;
  }

  // Figures come through fetch (not a plain <img src>) so that the bearer
  // token goes with them; the picture is shown from a blob: URL.
  async function showFigure(id, imgId, name) {
    const img = $(imgId);
    try {
      const blob = await fetchJobFile(id, figureName(name));
      if (id !== currentJob) return;
      if (figureUrls[imgId]) URL.revokeObjectURL(figureUrls[imgId]);
      figureUrls[imgId] = URL.createObjectURL(blob);
      img.src = figureUrls[imgId];
      img.closest('figure').hidden = false;
    } catch (e) {
      img.closest('figure').hidden = true;
      showError($('#eval-error'), name + ': ' + describe(e));
    }
  }

  let currentDct = false; // the job shown has the DCT analysis

  async function loadResult(id, st) {
    const dct = Boolean(st && st.dct);
    const errEl = $('#eval-error');
    try {
      const res = await api('/jobs/' + encodeURIComponent(id) + '/result');
      if (id !== currentJob) return;
      currentResult = res;
      renderTable(res);
      renderTests(res);
      $('#results').hidden = false;
    } catch (e) {
      showError(errEl, 'Job ' + id + ' result: ' + describe(e));
      return;
    }
    currentDct = dct;
    $('[data-download="dct"]').hidden = !dct;
    $('.figdct').hidden = true;
    const eps = (st && Array.isArray(st.eps) ? st.eps : []).slice().sort((a, b) => a - b);
    $('#fig-eps').replaceChildren(...eps.map((e) => el('option', { value: String(e), text: String(e) })));
    const figs = [['#fig3', 'figure3.svg'], ['#fig4', 'figure4.svg']];
    $('#figq').closest('figure').hidden = true;
    if (Array.isArray(currentResult.quality)) figs.push(['#figq', 'quality.svg']); // the grid's curve
    if (dct) figs.push(['#figdct', 'dct.svg']);
    for (const [imgId, name] of figs) await showFigure(id, imgId, name);
  }

  /** A file of a job (rows, figures) as a Blob of the right type. */
  async function fetchJobFile(id, name) {
    const blob = await api('/jobs/' + encodeURIComponent(id) + '/' + name, { as: 'blob' });
    const file = name.split('?')[0];
    const type = file.endsWith('.svg') ? 'image/svg+xml' : file === 'rows' ? 'text/csv' : blob.type;
    return blob.type === type ? blob : new Blob([blob], { type: type });
  }

  // The paper's columns and the box statistics, in the table download.
  const BOX_KEYS = ['min', 'q1', 'median', 'q3', 'max', 'mean', 'whisker_low', 'whisker_high',
    'outliers', 'outliers_low', 'outliers_high'];

  // The perturbations' sizes of the adversarial rows, appended to the table download.
  const NORM_KEYS = ['linf', 'l2', 'psnr'];

  /** A CSV field: quoted when it holds a comma, a quote or a line break (RFC 4180). */
  const csvField = (v) => {
    const s = v === null || v === undefined ? '' : String(v);
    return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  };

  /** Table 1 of a /result answer as CSV: one line per transform, the paper's figures beside. */
  function tableCsv(res) {
    const head = ['transform', 'eps', 'n', 'top1', 'mean_top_label_prob']
      .concat(BOX_KEYS.map((k) => 'box_' + k), ['paper_top1', 'paper_mean_top_label_prob'],
        NORM_KEYS, ['attack', 'adaptive', 'steps', 'step_size']);
    const lines = [head.join(',')];
    for (const row of res.table || []) {
      const paper = PAPER[row.transform] || [null, null];
      const box = row.box || {};
      lines.push([row.transform, row.eps, res.n, row.top1, row.mean_top_label_prob]
        .concat(BOX_KEYS.map((k) => box[k]), paper, NORM_KEYS.map((k) => row[k]),
          [row.attack, row.adaptive, row.steps, row.step_size]).map(csvField).join(','));
    }
    return lines.join('\n') + '\n';
  }

  /** Saves one of the job's files: fetched with the token, then handed to the browser. */
  async function download(what) {
    const id = currentJob;
    if (!id) return;
    const errEl = $('#eval-error');
    let blob;
    let name;
    try {
      if (what === 'table' || what === 'result') {
        if (!currentResult) throw new Error('no result loaded yet');
        blob = what === 'table'
          ? new Blob([tableCsv(currentResult)], { type: 'text/csv' })
          : new Blob([JSON.stringify(currentResult, null, 2) + '\n'], { type: 'application/json' });
        name = what + '-' + id + (what === 'table' ? '.csv' : '.json');
      } else {
        const file = what === 'rows' ? 'rows' : what + '.svg';
        blob = await fetchJobFile(id, file);
        name = what + '-' + id + (what === 'rows' ? '.csv' : '.svg');
      }
    } catch (e) {
      showError(errEl, 'Download of ' + what + ': ' + (e instanceof ApiError ? describe(e) : e.message));
      return;
    }
    const url = URL.createObjectURL(blob);
    const a = el('a', { href: url, download: name, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  }

  /** A cell's value and, when there is one, its 95% interval under it. */
  function withInterval(text, ci) {
    const parts = [el('span', { text: text })];
    if (Array.isArray(ci) && ci.length === 2) {
      parts.push(el('span', { class: 'ci', title: '95% bootstrap interval',
        text: '[' + ci[0].toFixed(3) + ', ' + ci[1].toFixed(3) + ']' }));
    }
    return parts;
  }

  /** The result's paired tests (McNemar, Wilcoxon) as the tests table's rows. */
  function renderTests(res) {
    const tbody = $('#tests-table tbody');
    tbody.textContent = '';
    const tests = res.tests || [];
    $('#tests-table').closest('.table-wrap').hidden = !tests.length;
    // the transforms by their display names, as the table shows them
    const shown = new Map((res.table || []).map((r) => [r.transform, r.display_name || r.transform]));
    for (const t of tests) {
      const w = t.wilcoxon || {};
      tbody.append(el('tr', { dataset: { pair: t.pair } }, [
        el('td', {}, [el('code', { text: shown.get(t.a) || t.a })]),
        el('td', {}, [el('code', { text: shown.get(t.b) || t.b })]),
        el('td', { class: 'num', text: t.right_to_wrong === null ? '\u2013' : String(t.right_to_wrong) }),
        el('td', { class: 'num', text: t.wrong_to_right === null ? '\u2013' : String(t.wrong_to_right) }),
        el('td', { class: 'num', text: fmtPval(t.mcnemar_p) }),
        el('td', { class: 'num', text: fmtPval(w.p) }),
      ]));
    }
  }

  function renderTable(res) {
    const tbody = $('#result-table tbody');
    tbody.textContent = '';
    const n = res.n !== undefined ? fmtInt(res.n) + ' images' : '';
    const cap = $('#result-table caption');
    cap.dataset.n = n;
    let anyTop1 = false;
    for (const row of res.table || []) {
      const paper = PAPER[row.transform];
      const hasTop1 = typeof row.top1 === 'number';
      anyTop1 = anyTop1 || hasTop1;
      const tr = el('tr', { dataset: { transform: row.transform } }, [
        // the display name: an adaptive job's own rows say their attack beside its twin's
        el('th', { scope: 'row' }, [el('code', { text: row.display_name || row.transform })]),
        el('td', { class: 'num', title: hasTop1 ? null : 'no labels: no top-1' },
          withInterval(hasTop1 ? fmtP(row.top1) : '\u2013', row.top1_ci)),
        el('td', { class: 'num' }, withInterval(fmtP(row.mean_top_label_prob), row.mean_top_label_prob_ci)),
        el('td', { class: 'num paper', text: paper ? paper[0].toFixed(2) : '' }),
        el('td', { class: 'num paper', text: paper ? paper[1].toFixed(2) : '' }),
        el('td', { class: 'num', text: row.linf === undefined || row.linf === null ? '' : String(row.linf) }),
        el('td', { class: 'num', text: typeof row.l2 === 'number' ? row.l2.toFixed(1) : '' }),
        el('td', { class: 'num', text: typeof row.psnr === 'number' ? row.psnr.toFixed(1) : '' }),
      ]);
      tbody.append(tr);
    }
    const note = $('#result-note');
    note.textContent = anyTop1 ? '' : 'Top-1 needs the images\u2019 true classes: upload a labels ' +
      'file with the images, or name a ground truth or labels file for a data set.';
    note.hidden = anyTop1;
    const threat = $('#result-threat');
    threat.textContent = '';
    threat.append(el('strong', { text: attackLabel(res.attack) + '. ' }),
      'Threat model: ' + (res.threat_model || 'non-adaptive (the paper)') + '.');
    threat.hidden = false;
    $('#job-text').textContent += n ? ' \u00b7 result over ' + n : '';
  }

  async function refreshJobs() {
    const list = $('#jobs-list');
    const errEl = $('#jobs-error');
    if (!$('#jobs').open) return;
    try {
      const res = await api('/jobs');
      const jobs = (Array.isArray(res) ? res : res.jobs || []).slice().reverse(); // newest first
      list.textContent = '';
      showError(errEl, null);
      if (!jobs.length) {
        list.append(el('tr', {}, [el('td', { colspan: 9, class: 'hint', text: 'no jobs yet' })]));
      }
      for (const j of jobs) list.append(jobRow(j));
    } catch (e) {
      list.textContent = '';
      showError(errEl, describe(e));
    }
  }

  function jobRow(j) {
    const show = el('button', { type: 'button', class: 'btn btn-small', text: 'Show',
      'aria-label': 'show job ' + j.id });
    show.addEventListener('click', () => watchJob(j.id));
    const actions = [show];
    if (ACTIVE.has(j.status)) {
      const cancel = el('button', { type: 'button', class: 'btn btn-small btn-danger', text: 'Cancel',
        'aria-label': 'cancel job ' + j.id });
      cancel.addEventListener('click', () => cancelJob(j.id));
      actions.push(cancel);
    } else {
      const del = el('button', { type: 'button', class: 'btn btn-small btn-danger', text: 'Delete',
        'aria-label': 'delete job ' + j.id + ' and its files' });
      del.addEventListener('click', () => deleteJob(j.id));
      actions.push(del);
    }
    const progress = j.total ? fmtInt(j.done || 0) + ' / ' + fmtInt(j.total) : '\u2013';
    return el('tr', { dataset: { id: j.id, status: j.status || '' },
      class: j.id === currentJob ? 'is-current' : null }, [
      el('td', { dataset: { label: 'job' } }, [el('code', { text: j.id, title: j.id })]),
      el('td', { dataset: { label: 'status' } }, [el('span', { class: 'badge', dataset: { state: j.status || '' },
        text: j.status || '?' })]),
      el('td', { class: 'num', dataset: { label: 'images' }, text: progress }),
      el('td', { class: 'job-src', dataset: { label: 'from' }, text: jobSource(j) }),
      el('td', { dataset: { label: '\u03b5' }, text: Array.isArray(j.eps) ? j.eps.join(', ') : '\u2013' }),
      el('td', { class: 'num', dataset: { label: 'quality' },
        text: j.quality !== undefined ? fmtQuality(j.quality) : '\u2013' }),
      el('td', { dataset: { label: 'model' }, text: jobModel(j) }),
      el('td', { dataset: { label: 'created' }, text: fmtDate(j.created), title: j.created || '' }),
      el('td', { class: 'job-actions' }, actions),
    ]);
  }

  // ------------------------------------------------------------------ start

  function start() {
    buildAttackMenus(); // first: the forms' setup reads the menus
    setupToken();
    setupDrop();
    setupControls();
    setupPerturbation();
    setupEval();
    setupAttackMenu('atk-');
    setupAttackMenu('eval-atk-');
    checkHealth();
    loadModel();
    setInterval(checkHealth, 15000);
    refreshJobs();
    let lastJob = null;
    try {
      lastJob = localStorage.getItem(JOB_KEY);
    } catch (e) {
      lastJob = null;
    }
    if (lastJob) {
      // Reattach quietly to the last job; forget it if the server does not know it.
      api('/jobs/' + encodeURIComponent(lastJob)).then((st) => watchJob(lastJob, st), () => {
        try {
          localStorage.removeItem(JOB_KEY);
        } catch (e) {
          // nothing to forget
        }
      });
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
