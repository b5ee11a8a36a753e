// The offcast dashboard: plain browser JavaScript over the public HTTP API
// (/v1/*, /metrics), no build step. With api.token set, the token typed once is
// kept in this tab's sessionStorage and sent as a bearer header.

const TOKEN_KEY = 'offcast.token';
const $ = (id) => document.getElementById(id);

// ---------- API ----------
class Unauthorized extends Error {}

function authHeaders() {
  const t = sessionStorage.getItem(TOKEN_KEY);
  return t ? { authorization: `Bearer ${t}` } : {};
}

async function api(method, path, body) {
  const init = { method, headers: { ...authHeaders() } };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if (res.status === 401) throw new Unauthorized();
  const text = await res.text();
  const data = text && (res.headers.get('content-type') ?? '').includes('json') ? JSON.parse(text) : text;
  if (!res.ok) throw new Error(data && data.message ? `${data.code}: ${data.message}` : `${res.status} ${res.statusText}`);
  return data;
}

// ---------- helpers ----------
function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else e[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function bytes(n) {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${n.toFixed(n < 10 ? 1 : 0)} ${u[i]}`;
}
function bitrate(bps) {
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(2)} Mb/s`;
  if (bps >= 1e3) return `${(bps / 1e3).toFixed(1)} kb/s`;
  return `${Math.round(bps)} b/s`;
}
function clock(ms) {
  const s = Math.max(0, ms) / 1000;
  const m = Math.floor(s / 60);
  return `${m}:${(s % 60).toFixed(1).padStart(4, '0')}`;
}
function showError(target, err) {
  target.textContent = err ? String(err.message ?? err) : '';
}

// ---------- token ----------
let needToken = false;
function askToken(message) {
  needToken = true;
  $('token-form').hidden = false;
  $('main').hidden = true;
  $('token-error').textContent = message ?? '';
  $('status').textContent = 'token needed';
  $('token').focus();
}
$('token-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $('token').value);
  $('token').value = '';
  needToken = false;
  $('token-form').hidden = true;
  $('main').hidden = false;
  refreshAll(true);
});

// ---------- metrics ----------
function parseMetrics(text) {
  const values = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})? (\S+)/.exec(line);
    if (m) values.set(m[1] + (m[2] ?? ''), Number(m[3]));
  }
  return values;
}
function buckets(values, name) {
  const out = [];
  for (const [k, v] of values) {
    const m = new RegExp(`^${name}_bucket\\{.*le="([^"]+)"`).exec(k);
    if (m) out.push([m[1] === '+Inf' ? Infinity : Number(m[1]), v]);
  }
  return out.sort((a, b) => a[0] - b[0]);
}
function quantile(now, before, q) {
  const counts = now.map(([le, c], i) => [le, c - (before?.[i]?.[1] ?? 0)]);
  const total = counts.length ? counts[counts.length - 1][1] : 0;
  if (total <= 0) return null;
  for (const [le, c] of counts) if (c >= q * total) return le;
  return Infinity;
}

let lastLateness = null;
const latenessHistory = [];
function drawSpark(svg, values) {
  const line = svg.querySelector('polyline');
  const w = 160;
  const h = 28;
  const finite = values.filter((v) => v !== null && Number.isFinite(v));
  const max = Math.max(1e-6, ...finite);
  const step = values.length > 1 ? w / (values.length - 1) : w;
  line.setAttribute(
    'points',
    values.map((v, i) => `${(i * step).toFixed(1)},${(h - 2 - ((v === null ? 0 : Math.min(v, max)) / max) * (h - 4)).toFixed(1)}`).join(' '),
  );
}

async function refreshMetrics() {
  const text = await fetch('/metrics', { headers: authHeaders() }).then((r) => {
    if (r.status === 401) throw new Unauthorized();
    return r.text();
  });
  const v = parseMetrics(text);
  // Cache
  const used = v.get('offcast_cache_bytes') ?? 0;
  const max = v.get('offcast_cache_max_bytes') ?? 0;
  const hits = v.get('offcast_cache_hits_total') ?? 0;
  const misses = v.get('offcast_cache_misses_total') ?? 0;
  $('cache-bar').style.width = max > 0 ? `${Math.min(100, (100 * used) / max).toFixed(1)}%` : '0';
  $('cache-text').textContent =
    `${bytes(used)} of ${bytes(max)} (cache.maxBytes), ${v.get('offcast_cache_entries') ?? 0} entries; ` +
    `hit rate ${hits + misses > 0 ? ((100 * hits) / (hits + misses)).toFixed(0) + '%' : '–'} (${hits} hits, ${misses} misses, ${v.get('offcast_cache_evictions_total') ?? 0} evictions)`;
  // Send lateness, server-wide (the API has no per-session figure)
  const b = buckets(v, 'offcast_send_lateness_seconds');
  const q = quantile(b, lastLateness, 0.99);
  lastLateness = b;
  latenessHistory.push(q === Infinity ? null : q);
  if (latenessHistory.length > 60) latenessHistory.shift();
  drawSpark($('lateness-spark'), latenessHistory);
  $('lateness-value').textContent = q === null ? '–' : q === Infinity ? 'over the top bucket' : `≤ ${+(q * 1000).toFixed(3)} ms`;
}

// ---------- sessions ----------
const previous = new Map(); // id -> {at, packets, bytes}
const lateness = new Map(); // id -> {counts, history}: the session's cumulative send-lateness counts at the last poll, and p99 per poll

// A session's send lateness: its play tracks' histograms (ms bounds; counts per bucket, the last above them all) summed.
function sessionLateness(s) {
  let out = null;
  for (const t of s.tracks ?? []) {
    const h = t.stats?.lateness;
    if (!h) continue;
    if (out === null) out = { buckets: h.buckets, counts: [...h.counts] };
    else if (out.counts.length === h.counts.length) h.counts.forEach((c, i) => (out.counts[i] += c));
  }
  return out;
}
// p99 (a bucket bound, ms; Infinity above the top) of the sends between two polls, or null without any.
function latenessP99(h, before) {
  const same = before && before.length === h.counts.length && h.counts.every((c, i) => c >= before[i]);
  const d = h.counts.map((c, i) => c - (same ? before[i] : 0));
  const total = d.reduce((a, b) => a + b, 0);
  if (total <= 0) return null;
  let seen = 0;
  for (let i = 0; i < h.buckets.length; i++) if ((seen += d[i]) >= 0.99 * total) return h.buckets[i];
  return Infinity;
}
function latenessCell(s) {
  const td = el('td', { class: 'num late' });
  const h = sessionLateness(s);
  if (h === null) {
    td.textContent = '–';
    return td;
  }
  const st = lateness.get(s.id) ?? { counts: null, history: [] };
  const q = latenessP99(h, st.counts);
  if (st.counts === null || h.counts.some((c, i) => c !== st.counts[i])) {
    st.history.push(q === Infinity ? null : q);
    if (st.history.length > 30) st.history.shift();
  }
  st.counts = h.counts;
  lateness.set(s.id, st);
  td.innerHTML = '<svg class="spark" width="80" height="20" viewBox="0 0 160 28" preserveAspectRatio="none"><polyline points=""/></svg> <b></b>';
  drawSpark(td.querySelector('svg'), st.history);
  const last = st.history[st.history.length - 1];
  td.querySelector('b').textContent = last === undefined || last === null ? '–' : `≤ ${last} ms`;
  td.title = 'send lateness p99 of this session, per poll';
  return td;
}

function totals(s) {
  let packets = 0;
  let octets = 0;
  let lost = 0;
  let loss = null;
  let jitter = null;
  for (const t of s.tracks ?? []) {
    const st = t.stats ?? {};
    packets += st.packets ?? 0;
    octets += st.octets ?? st.bytes ?? 0;
    if (st.rtcp) {
      loss = Math.max(loss ?? 0, st.rtcp.fractionLost);
      jitter = Math.max(jitter ?? 0, st.rtcp.jitterMs);
    }
    if (st.lost !== undefined) lost += st.lost;
    if (st.jitterMs !== undefined) jitter = Math.max(jitter ?? 0, st.jitterMs);
  }
  if (s.mode === 'record' && packets + lost > 0) loss = lost / (packets + lost);
  return { packets, octets, loss, jitter };
}

async function control(id, body, errTarget) {
  try {
    await api('PATCH', `/v1/sessions/${encodeURIComponent(id)}`, body);
    await refreshSessions();
  } catch (err) {
    if (err instanceof Unauthorized) return askToken();
    showError(errTarget, err);
  }
}

async function refreshSessions() {
  const { sessions } = await api('GET', '/v1/sessions');
  const now = performance.now();
  const body = $('sessions').tBodies[0];
  body.replaceChildren();
  for (const id of lateness.keys()) if (!sessions.some((s) => s.id === id)) lateness.delete(id);
  for (const s of sessions) {
    const t = totals(s);
    const prev = previous.get(s.id);
    previous.set(s.id, { at: now, packets: t.packets, octets: t.octets });
    const dt = prev ? (now - prev.at) / 1000 : 0;
    const live = s.state === 'playing' || s.state === 'recording';
    const pps = prev && dt > 0 && live ? (t.packets - prev.packets) / dt : null;
    const bps = prev && dt > 0 && live ? ((t.octets - prev.octets) * 8) / dt : null;
    const err = el('span', { class: 'error' });
    const actions = el('td', { class: 'actions' });
    if (s.mode === 'play' && (s.state === 'playing' || s.state === 'paused')) {
      if (s.state === 'playing') actions.append(el('button', { textContent: 'Pause', onclick: () => control(s.id, { state: 'paused' }, err) }));
      else actions.append(el('button', { textContent: 'Resume', onclick: () => control(s.id, { state: 'playing' }, err) }));
      const seek = el('input', { class: 'seek', type: 'number', min: 0, step: 100, placeholder: 'ms' });
      actions.append(seek, el('button', { textContent: 'Seek', onclick: () => seek.value !== '' && control(s.id, { positionMs: Number(seek.value) }, err) }));
    }
    if (s.state !== 'ended' && s.state !== 'failed') {
      actions.append(
        el('button', {
          class: 'danger',
          textContent: 'Stop',
          onclick: async () => {
            try {
              await api('DELETE', `/v1/sessions/${encodeURIComponent(s.id)}`);
              await Promise.all([refreshSessions(), refreshRecordings()]);
            } catch (e) {
              if (e instanceof Unauthorized) return askToken();
              showError(err, e);
            }
          },
        }),
      );
    }
    actions.append(err);
    const dest = s.destination ? `${s.destination.host}:${s.destination.port}` : (s.tracks ?? []).map((k) => `:${k.port}`).join(' ');
    body.append(
      el(
        'tr',
        { dataset: { id: s.id, state: s.state } },
        el('td', { title: s.id, textContent: s.id.slice(0, 8) }),
        el('td', { textContent: s.mode }),
        el('td', { textContent: s.media ?? s.name ?? (s.live ? `live ${s.live.slice(0, 8)}` : '') }),
        el('td', { textContent: dest }),
        el('td', { class: `state-${s.state}`, textContent: s.state }),
        el('td', { class: 'num', textContent: s.positionMs !== undefined ? clock(s.positionMs) : s.durationMs !== undefined ? clock(s.durationMs) : '' }),
        el('td', { class: 'num packets', textContent: String(t.packets) }),
        el('td', { class: 'num', textContent: pps === null ? '–' : String(Math.round(pps)) }),
        el('td', { class: 'num', textContent: bps === null ? '–' : bitrate(bps) }),
        el('td', { class: 'num', textContent: t.loss === null ? '–' : `${(t.loss * 100).toFixed(1)}%` }),
        el('td', { class: 'num', textContent: t.jitter === null ? '–' : `${t.jitter.toFixed(1)} ms` }),
        latenessCell(s),
        actions,
      ),
    );
  }
  $('no-sessions').hidden = sessions.length > 0;
}

$('play-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  showError($('play-error'), null);
  try {
    await api('POST', '/v1/sessions', {
      mode: 'play',
      media: $('play-media').value,
      destination: { host: $('play-host').value.trim(), port: Number($('play-port').value) },
      loop: $('play-loop').checked,
    });
    await refreshSessions();
  } catch (err) {
    if (err instanceof Unauthorized) return askToken();
    showError($('play-error'), err);
  }
});

// ---------- media ----------
const probes = new Map(); // name|modified -> probe
async function refreshMedia() {
  const { media } = await api('GET', '/v1/media');
  const select = $('play-media');
  const chosen = select.value;
  select.replaceChildren(...media.map((m) => el('option', { value: m.name, textContent: m.name })));
  if (media.some((m) => m.name === chosen)) select.value = chosen;
  const body = $('media').tBodies[0];
  const rows = [];
  for (const m of media) {
    const key = `${m.name}|${m.modified}`;
    let p = probes.get(key);
    if (p === undefined) {
      p = await api('GET', `/v1/media/${encodeURIComponent(m.name)}`).catch((e) => {
        if (e instanceof Unauthorized) throw e;
        return { error: e.message };
      });
      probes.set(key, p);
    }
    const tracks = p.error
      ? p.error
      : (p.tracks ?? [])
          .map(
            (t) =>
              `${t.kind} ${t.codec} ${t.clockRate} Hz${t.channels ? ` ${t.channels} ch` : ''}${t.width ? ` ${t.width}x${t.height}` : ''}${t.supported ? '' : ' (not playable)'}`,
          )
          .join('; ');
    rows.push(
      el(
        'tr',
        { dataset: { name: m.name } },
        el('td', { textContent: m.name }),
        el('td', { textContent: p.format ?? (m.recording ? 'recording' : '') }),
        el('td', { class: 'num', textContent: bytes(m.bytes) }),
        el('td', { class: 'num', textContent: p.durationMs !== undefined ? clock(p.durationMs) : '' }),
        el('td', { textContent: tracks }),
        el(
          'td',
          {},
          el('button', {
            textContent: 'Play',
            onclick: () => {
              select.value = m.name;
              $('play-port').focus();
            },
          }),
        ),
      ),
    );
  }
  body.replaceChildren(...rows);
}

function upload(file) {
  const bar = el('div');
  const text = el('span', { class: 'muted', textContent: `${file.name}: 0%` });
  const row = el('div', { class: 'upload', dataset: { name: file.name } }, el('div', { class: 'bar' }, bar), text);
  $('uploads').append(row);
  const xhr = new XMLHttpRequest();
  xhr.open('PUT', `/v1/media/${encodeURIComponent(file.name)}`);
  for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
  xhr.setRequestHeader('content-type', 'application/octet-stream');
  const started = performance.now();
  xhr.upload.onprogress = (e) => {
    if (!e.lengthComputable) return;
    const pct = (100 * e.loaded) / e.total;
    const rate = e.loaded / Math.max(0.001, (performance.now() - started) / 1000);
    bar.style.width = `${pct}%`;
    text.textContent = `${file.name}: ${pct.toFixed(0)}% of ${bytes(e.total)}, ${bytes(rate)}/s`;
  };
  xhr.onload = () => {
    if (xhr.status === 401) return askToken();
    let msg = '';
    try {
      msg = JSON.parse(xhr.responseText).message ?? '';
    } catch {}
    if (xhr.status >= 200 && xhr.status < 300) {
      bar.style.width = '100%';
      text.textContent = `${file.name}: uploaded (${bytes(file.size)})`;
      row.dataset.done = 'true';
      refreshMedia().catch(() => {});
    } else {
      text.textContent = `${file.name}: ${xhr.status} ${msg}`;
      text.className = 'error';
      row.dataset.done = 'error';
    }
  };
  xhr.onerror = () => {
    text.textContent = `${file.name}: upload failed (connection)`;
    text.className = 'error';
    row.dataset.done = 'error';
  };
  xhr.send(file);
}

const drop = $('drop');
drop.addEventListener('dragover', (e) => {
  e.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  for (const f of e.dataTransfer.files) upload(f);
});
$('file').addEventListener('change', (e) => {
  for (const f of e.target.files) upload(f);
  e.target.value = '';
});

// ---------- recordings ----------
async function download(ev) {
  // With a token, a plain link can't carry the header: fetch it, then save the blob.
  if (!sessionStorage.getItem(TOKEN_KEY)) return;
  ev.preventDefault();
  const a = ev.currentTarget;
  const res = await fetch(a.href, { headers: authHeaders() });
  if (!res.ok) return;
  const url = URL.createObjectURL(await res.blob());
  const tmp = el('a', { href: url, download: a.download });
  document.body.append(tmp);
  tmp.click();
  tmp.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function refreshRecordings() {
  const { recordings } = await api('GET', '/v1/recordings');
  const body = $('recordings').tBodies[0];
  body.replaceChildren(
    ...recordings.map((r) => {
      const links = el('td');
      for (const t of r.tracks ?? []) {
        const base = `/v1/recordings/${encodeURIComponent(r.name)}/tracks/${t.index}`;
        links.append(
          el('a', { href: base, download: `${r.name}-${t.file ?? t.index}`, textContent: `${t.kind} ${t.codec}`, onclick: download }),
          ' (',
          el('a', { href: `${base}/rtpdump`, download: `${r.name}-${t.index}.rtpdump`, textContent: 'rtpdump', onclick: download }),
          ') ',
        );
      }
      return el(
        'tr',
        { dataset: { name: r.name } },
        el('td', { textContent: r.name }),
        el('td', { class: `state-${r.state}`, textContent: r.state }),
        el('td', { class: 'num', textContent: clock(r.durationMs ?? 0) }),
        el('td', { textContent: (r.createdAt ?? '').replace('T', ' ').slice(0, 19) }),
        links,
      );
    }),
  );
  $('no-recordings').hidden = recordings.length > 0;
}

// ---------- refresh loop ----------
let ticks = 0;
async function refreshAll(everything = false) {
  try {
    const slow = everything || ticks % 5 === 0;
    await Promise.all([refreshSessions(), refreshMetrics(), slow ? refreshMedia() : null, slow ? refreshRecordings() : null]);
    $('status').textContent = `updated ${new Date().toLocaleTimeString()}`;
    $('status').className = 'muted';
  } catch (err) {
    if (err instanceof Unauthorized) {
      const had = sessionStorage.getItem(TOKEN_KEY);
      sessionStorage.removeItem(TOKEN_KEY);
      return askToken(had ? 'That token was refused.' : '');
    }
    $('status').textContent = `error: ${err.message}`;
    $('status').className = 'error';
  }
}

async function loop() {
  if (!needToken) await refreshAll();
  ticks++;
  setTimeout(loop, 1000);
}
loop();
