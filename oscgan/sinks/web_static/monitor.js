// oscgan web monitor: builds controls from GET /api/params, sets values with POST /api/set,
// follows remote changes through the OSCQuery WebSocket (LISTEN, binary OSC) and polls /health.
'use strict';

(() => {
  const VECTOR_PREVIEW = 8;      // vector elements shown as sliders; the rest via randomise/reset
  const TOUCH_HOLD_MS = 600;     // ignore remote updates to a control this long after the user moved it
  const HEALTH_MS = 1000;

  const controls = new Map();    // path -> {spec, set(value)}  (vector elements: "latent.z.3")
  const specsByAddress = new Map();
  const touched = new Map();     // path -> performance.now() of the last user input
  const inflight = new Set();
  const pending = new Map();
  let ws = null;

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- formatting

  function fmt(value, kind) {
    if (value === null || value === undefined) return '–';
    if (kind === 'int') return String(Math.round(value));
    if (typeof value !== 'number') return String(value);
    const a = Math.abs(value);
    return a >= 1000 ? value.toFixed(0) : a >= 100 ? value.toFixed(1) : value.toFixed(3);
  }

  function niceStep(min, max) {
    const span = max - min;
    if (!(span > 0)) return 0.001;
    return Math.pow(10, Math.floor(Math.log10(span / 1000)));
  }

  function toast(text) {
    const el = $('toast');
    el.textContent = text;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { el.textContent = ''; }, 4000);
  }

  // ---------------------------------------------------------------- sending

  async function send(path, value) {
    touched.set(path, performance.now());
    if (inflight.has(path)) { pending.set(path, value); return; }  // latest wins per path
    inflight.add(path);
    try {
      const r = await fetch('/api/set', {
        method: 'POST',
        headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({path, value}),
      });
      const body = await r.json().catch(() => ({}));
      if (!r.ok) toast(body.error || `set ${path} failed (${r.status})`);
      else if (body.clamped) toast(`${path} clamped to ${fmt(body.value)}`);
    } catch (err) {
      toast(`set ${path}: ${err}`);
    } finally {
      inflight.delete(path);
      if (pending.has(path)) {
        const next = pending.get(path);
        pending.delete(path);
        send(path, next);
      }
    }
  }

  // ---------------------------------------------------------------- controls

  function row(path, labelText, title) {
    const div = document.createElement('div');
    div.className = 'param';
    div.dataset.path = path;
    const label = document.createElement('label');
    label.textContent = labelText;
    label.title = title || path;
    div.append(label, learnButton(path));
    return div;
  }

  // MIDI/OSC learn: arm it for this parameter, then move a control on the controller.
  function learnButton(path) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'learn';
    b.textContent = 'L';
    b.title = `learn: bind the next moving MIDI control or OSC address to ${path}`;
    b.dataset.learn = path;
    b.addEventListener('click', async () => {
      try {
        const r = await fetch('/api/learn', {
          method: 'POST',
          headers: {'Content-Type': 'application/json'},
          body: JSON.stringify({target: path}),
        });
        const body = await r.json().catch(() => ({}));
        toast(r.ok ? `learning ${body.armed}: move a control now` : (body.error || `learn failed (${r.status})`));
      } catch (err) {
        toast(`learn ${path}: ${err}`);
      }
    });
    return b;
  }

  function numberControl(path, label, spec, kind, value, title) {
    const div = row(path, label, title);
    const readout = document.createElement('span');
    readout.className = 'readout';
    // A slider only where it can hit every value: seeds (0..2^31) get a number field instead.
    const bounded = spec.min !== null && spec.max !== null && (kind !== 'int' || spec.max - spec.min <= 4096);
    const input = document.createElement('input');
    input.dataset.path = path;
    if (bounded) {
      input.type = 'range';
      input.min = spec.min;
      input.max = spec.max;
      input.step = kind === 'int' ? 1 : niceStep(spec.min, spec.max);
    } else {
      input.type = 'number';
      input.step = kind === 'int' ? 1 : 'any';
      if (spec.min !== null) input.min = spec.min;
      if (spec.max !== null) input.max = spec.max;
    }
    input.value = value;
    readout.textContent = fmt(value, kind);
    const parse = () => (kind === 'int' ? parseInt(input.value, 10) : parseFloat(input.value));
    input.addEventListener('input', () => {
      const v = parse();
      if (Number.isNaN(v)) return;
      readout.textContent = fmt(v, kind);
      if (bounded) send(path, v);  // number fields send on change (typing "0." is not a value)
      else touched.set(path, performance.now());
    });
    input.addEventListener('change', () => {
      const v = parse();
      if (!Number.isNaN(v)) send(path, v);
    });
    div.append(input, readout);
    controls.set(path, {
      spec,
      set(v) { input.value = v; readout.textContent = fmt(v, kind); },
    });
    return div;
  }

  function boolControl(spec, value) {
    const div = row(spec.path, shortName(spec), spec.description);
    const input = document.createElement('input');
    input.type = 'checkbox';
    input.dataset.path = spec.path;
    input.checked = !!value;
    input.addEventListener('change', () => send(spec.path, input.checked));
    div.append(input, document.createElement('span'));
    controls.set(spec.path, { spec, set(v) { input.checked = !!v; } });
    return div;
  }

  function enumControl(spec, value) {
    const div = row(spec.path, shortName(spec), spec.description);
    const select = document.createElement('select');
    select.dataset.path = spec.path;
    for (const choice of spec.choices) {
      const opt = document.createElement('option');
      opt.value = opt.textContent = choice;
      select.append(opt);
    }
    select.value = value;
    select.addEventListener('change', () => send(spec.path, select.value));
    div.append(select, document.createElement('span'));
    controls.set(spec.path, { spec, set(v) { select.value = v; } });
    return div;
  }

  function gaussian() {
    let u = 0;
    while (u === 0) u = Math.random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * Math.random());
  }

  function randomVector(spec) {
    const n = spec.length;
    const lo = spec.min, hi = spec.max;
    const uniform = lo !== null && hi !== null && lo >= 0;  // e.g. weights; latents are normal
    const out = [];
    for (let i = 0; i < n; i++) {
      let v = uniform ? lo + Math.random() * (hi - lo) : gaussian();
      if (lo !== null) v = Math.max(lo, v);
      if (hi !== null) v = Math.min(hi, v);
      out.push(spec.element_kind === 'int' ? Math.round(v) : v);
    }
    return out;
  }

  function vectorControl(spec, value) {
    const div = document.createElement('div');
    div.className = 'param vector';
    div.dataset.path = spec.path;
    const details = document.createElement('details');
    const summary = document.createElement('summary');
    summary.textContent = `${shortName(spec)} [${spec.length}]`;
    summary.title = spec.description || spec.path;
    const tools = document.createElement('div');
    tools.className = 'vector-tools';
    const rnd = document.createElement('button');
    rnd.type = 'button';
    rnd.textContent = 'randomise';
    rnd.dataset.path = spec.path;
    rnd.dataset.action = 'randomise';
    rnd.addEventListener('click', () => {
      const v = randomVector(spec);
      updateValue(spec.path, v);
      send(spec.path, v);
    });
    const reset = document.createElement('button');
    reset.type = 'button';
    reset.textContent = 'reset';
    reset.addEventListener('click', () => {
      updateValue(spec.path, spec.default);
      send(spec.path, spec.default);
    });
    tools.append(rnd, reset);
    const elements = document.createElement('div');
    elements.className = 'vector-elements';
    const values = Array.isArray(value) ? value : [];
    const shown = Math.min(VECTOR_PREVIEW, spec.length);
    for (let i = 0; i < shown; i++) {
      const kind = spec.element_kind === 'int' ? 'int' : 'float';
      const elementSpec = {...spec, kind, path: `${spec.path}.${i}`};
      elements.append(numberControl(elementSpec.path, `[${i}]`, elementSpec, kind, values[i] ?? 0));
    }
    if (spec.length > shown) {
      const more = document.createElement('div');
      more.className = 'readout';
      more.textContent = `… ${spec.length - shown} more (OSC ${spec.osc_address})`;
      elements.append(more);
    }
    details.append(summary, tools, elements);
    div.append(details);
    controls.set(spec.path, {
      spec,
      set(v) {
        if (!Array.isArray(v)) return;
        for (let i = 0; i < shown; i++) {
          const c = controls.get(`${spec.path}.${i}`);
          if (c && !recentlyTouched(`${spec.path}.${i}`)) c.set(v[i]);
        }
      },
    });
    return div;
  }

  function shortName(spec) {
    const parts = spec.path.split('.');
    return parts.length > 1 ? parts.slice(1).join('.') : spec.path;
  }

  function controlFor(spec) {
    switch (spec.kind) {
      case 'float':
      case 'int':
        return numberControl(spec.path, shortName(spec), spec, spec.kind, spec.value, spec.description);
      case 'bool': return boolControl(spec, spec.value);
      case 'enum': return enumControl(spec, spec.value);
      case 'vector': return vectorControl(spec, spec.value);
      default: return row(spec.path, `${spec.path} (${spec.kind})`, spec.description);
    }
  }

  function build(specs) {
    const groups = new Map();
    for (const spec of specs) {
      const g = spec.group || spec.path.split('.')[0] || 'general';
      if (!groups.has(g)) groups.set(g, []);
      groups.get(g).push(spec);
      specsByAddress.set(spec.osc_address, spec);
    }
    const root = $('groups');
    root.replaceChildren();
    for (const [name, list] of groups) {
      const details = document.createElement('details');
      details.className = 'group';
      details.open = true;
      const summary = document.createElement('summary');
      summary.textContent = name;
      details.append(summary);
      for (const spec of list) details.append(controlFor(spec));
      root.append(details);
    }
  }

  function recentlyTouched(path) {
    const t = touched.get(path);
    return t !== undefined && performance.now() - t < TOUCH_HOLD_MS;
  }

  const deferred = new Map();  // path -> remote value that arrived while the user held the control

  function updateValue(path, value) {
    const c = controls.get(path);
    if (!c) return;
    if (!recentlyTouched(path)) { c.set(value); return; }
    // Apply it once the user lets go, so the control never stays stale.
    const first = !deferred.has(path);
    deferred.set(path, value);
    if (first) {
      const retry = () => {
        if (recentlyTouched(path)) { setTimeout(retry, TOUCH_HOLD_MS); return; }
        const v = deferred.get(path);
        deferred.delete(path);
        c.set(v);
      };
      setTimeout(retry, TOUCH_HOLD_MS);
    }
  }

  function applyFilter() {
    const q = $('filter').value.trim().toLowerCase();
    for (const el of document.querySelectorAll('#groups > details > .param')) {
      el.classList.toggle('hidden', q !== '' && !el.dataset.path.toLowerCase().includes(q));
    }
  }

  // ---------------------------------------------------------------- OSCQuery WebSocket (LISTEN)

  function readString(view, offset) {
    let end = offset;
    while (end < view.byteLength && view.getUint8(end) !== 0) end++;
    const bytes = new Uint8Array(view.buffer, view.byteOffset + offset, end - offset);
    return [new TextDecoder().decode(bytes), (end + 4) & ~3];
  }

  function decodeOsc(buffer) {
    const view = new DataView(buffer);
    let [address, off] = readString(view, 0);
    let tags;
    [tags, off] = readString(view, off);
    const args = [];
    for (const t of tags.slice(1)) {
      if (t === 'f') { args.push(view.getFloat32(off)); off += 4; }
      else if (t === 'i') { args.push(view.getInt32(off)); off += 4; }
      else if (t === 'd') { args.push(view.getFloat64(off)); off += 8; }
      else if (t === 'h') { args.push(Number(view.getBigInt64(off))); off += 8; }
      else if (t === 's' || t === 'S') { let s; [s, off] = readString(view, off); args.push(s); }
      else if (t === 'T') args.push(true);
      else if (t === 'F') args.push(false);
      else if (t === 'N') args.push(null);
      else throw new Error(`unsupported OSC type tag ${t}`);
    }
    return {address, args};
  }

  function connectFeed() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    ws = new WebSocket(`${proto}//${location.host}/`);
    ws.binaryType = 'arraybuffer';
    ws.addEventListener('open', () => {
      $('conn').classList.add('on');
      for (const address of specsByAddress.keys()) {
        ws.send(JSON.stringify({COMMAND: 'LISTEN', DATA: address}));
      }
    });
    ws.addEventListener('message', (ev) => {
      if (typeof ev.data === 'string') return;  // PATH_CHANGED etc.: not used by this page
      try {
        const {address, args} = decodeOsc(ev.data);
        const spec = specsByAddress.get(address);
        if (spec) updateValue(spec.path, spec.kind === 'vector' ? args : args[0]);
      } catch (err) {
        console.warn('bad OSC packet from server', err);
      }
    });
    ws.addEventListener('close', () => {
      $('conn').classList.remove('on');
      setTimeout(connectFeed, 1000);
    });
  }

  // ---------------------------------------------------------------- health + output

  function pick(obj, ...keys) {
    for (const k of keys) if (obj[k] !== undefined && obj[k] !== null) return obj[k];
    return undefined;
  }

  async function pollHealth() {
    try {
      const r = await fetch('/health', {cache: 'no-store'});
      const h = await r.json();
      const fps = pick(h, 'fps');
      const rms = pick(h, 'render_ms');
      $('stat-fps').textContent = fps === undefined ? '–' : Number(fps).toFixed(1);
      $('stat-render').textContent = rms === undefined ? '–' : Number(rms).toFixed(1);
      $('stat-frames').textContent = pick(h, 'frames') ?? (h.web && h.web.frame_index !== null ? h.web.frame_index + 1 : '–');
      $('stat-dropped').textContent = pick(h, 'dropped') ?? '–';
      $('stat-errors').textContent = pick(h, 'errors') ?? '–';
      const model = pick(h, 'model');
      $('stat-model').textContent = model === undefined ? '' : (typeof model === 'string' ? model : JSON.stringify(model));
      const up = pick(h, 'uptime', 'uptime_s') ?? (h.web && h.web.uptime_s);
      $('stat-uptime').textContent = up === undefined ? '' : `up ${Math.floor(up / 60)}m${String(Math.floor(up % 60)).padStart(2, '0')}s`;
      if (h.web && h.web.frame_index !== null) $('nosignal').classList.add('hidden');
      const mapErr = $('mapping-error');
      mapErr.textContent = h.mapping_error ? `mapping error (previous mappings keep running): ${h.mapping_error}` : '';
      mapErr.classList.toggle('hidden', !h.mapping_error);
    } catch (err) {
      $('stat-fps').textContent = '–';
    }
  }

  function setupOutput() {
    const img = $('out');
    img.addEventListener('load', () => $('nosignal').classList.add('hidden'));
    img.addEventListener('error', () => {
      $('nosignal').classList.remove('hidden');
      setTimeout(() => { img.src = `/stream.mjpg?r=${Date.now()}`; }, 1000);
    });
    const full = () => (document.fullscreenElement ? document.exitFullscreen() : img.requestFullscreen());
    $('btn-fullscreen').addEventListener('click', full);
    document.addEventListener('keydown', (ev) => {
      const tag = (ev.target && ev.target.tagName) || '';
      if (ev.key === 'f' && !['INPUT', 'SELECT', 'TEXTAREA'].includes(tag)) full();
    });
  }

  async function main() {
    setupOutput();
    $('filter').addEventListener('input', applyFilter);
    pollHealth();
    setInterval(pollHealth, HEALTH_MS);
    try {
      const r = await fetch('/api/params', {cache: 'no-store'});
      build(await r.json());
      document.body.dataset.ready = '1';
    } catch (err) {
      toast(`could not load parameters: ${err}`);
      return;
    }
    connectFeed();
  }

  main();
})();
