/* maxrf viewer: maps and spectra side by side (plain JavaScript + canvas, no library).
 *
 * State a test (or a curious user) can read: window.maxrf.lastSpectrum (the spectrum shown,
 * as returned by /api/spectrum), window.maxrf.currentMap (the map shown, values as a
 * Float32Array), window.maxrf.ready. Actions: selectPixel(row, col), selectRegion(r0, c0,
 * r1, c1), selectWindow(lo, hi), showMap(key); helpers pixelToClient(row, col) and
 * energyToClient(e) give page coordinates for real mouse events.
 */
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const dpr = () => window.devicePixelRatio || 1;

  const state = {
    info: null, spectra: null, spectrum: null, map: null, view: "linear", cmap: "element", limits: "full",
    zoom: null, window: null, extra: [], hidden: new Set(), mapSel: null,
    seq: { spectrum: 0, map: 0 },
  };
  const maxrf = {
    ready: false, lastSpectrum: null, currentMap: null, error: null,
  };
  window.maxrf = maxrf;

  // ------------------------------------------------------------------ helpers
  async function api(path) {
    const r = await fetch(path, { cache: "no-store" });
    let body;
    try { body = await r.json(); } catch (e) { body = { error: r.statusText }; }
    if (!r.ok) throw new Error(body.error || r.statusText);
    return body;
  }

  function setStatus(text, kind) {
    const el = $("status");
    el.textContent = text;
    el.className = kind || "";
  }

  function fmt(v, digits) {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    digits = digits || 3;
    if (v === 0) return "0";
    const a = Math.abs(v);
    if (a >= 1e-3 && a < 1e6) {
      const d = Math.max(0, digits - 1 - Math.floor(Math.log10(a)));
      return v.toFixed(Math.min(d, 6));
    }
    return v.toExponential(digits - 1);
  }

  function niceTicks(lo, hi, n) {
    if (!(hi > lo)) return [lo];
    const raw = (hi - lo) / Math.max(1, n);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
    const out = [];
    for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + 1e-9 * step; v += step) out.push(+v.toFixed(10));
    return out;
  }

  function decodeMap(m) {
    const bin = atob(m.data);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new Float32Array(bytes.buffer);
  }

  function hexToRgb(hex) {
    const n = parseInt(hex.slice(1), 16);
    return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
  }

  // ------------------------------------------------------------------ colour maps
  const VIRIDIS = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779",
                   "#6ece58", "#b5de2b", "#fde725"].map(hexToRgb);

  function lutFrom(stops) {
    const lut = new Uint8ClampedArray(256 * 3);
    for (let i = 0; i < 256; i++) {
      const t = (i / 255) * (stops.length - 1);
      const k = Math.min(stops.length - 2, Math.floor(t));
      const f = t - k;
      for (let c = 0; c < 3; c++) lut[i * 3 + c] = stops[k][c] + (stops[k + 1][c] - stops[k][c]) * f;
    }
    return lut;
  }

  function lutFor(map) {
    if (state.cmap === "viridis") return lutFrom(VIRIDIS);
    if (state.cmap === "gray") return lutFrom([[0, 0, 0], [255, 255, 255]]);
    if (map.color) {  // black -> the element's colour -> a light tint (as in the report)
      const rgb = hexToRgb(map.color);
      return lutFrom([[0, 0, 0], rgb, rgb.map((c) => 0.35 * c + 0.65 * 255)]);
    }
    return lutFrom(VIRIDIS);
  }

  // value -> 0..1 for the chosen contrast; also the colour bar ticks
  function scaler(map, view) {
    const v = map.values;
    const finite = [];
    for (let i = 0; i < v.length; i++) if (isFinite(v[i])) finite.push(v[i]);
    if (!finite.length) return { f: () => 0, ticks: [] };
    let lo = Infinity, hi = -Infinity;
    for (const x of finite) { if (x < lo) lo = x; if (x > hi) hi = x; }
    if (view === "equalised") {
      const sorted = Float64Array.from(finite).sort();
      const n = sorted.length;
      const rank = (x) => {  // fraction of values <= x (binary search)
        let a = 0, b = n;
        while (a < b) { const m = (a + b) >> 1; if (sorted[m] <= x) a = m + 1; else b = m; }
        return a / n;
      };
      const q = (p) => sorted[Math.min(n - 1, Math.floor(p * (n - 1) + 0.5))];
      const ticks = [];
      const seen = new Set();
      for (const p of [0, 0.5, 1]) {
        const label = fmt(q(p), 3);
        if (!seen.has(label)) { seen.add(label); ticks.push([p, label]); }
      }
      const r0 = rank(sorted[0]);
      return { f: (x) => (r0 >= 1 ? 0 : (rank(x) - r0) / (1 - r0)), ticks };
    }
    let vmin = Math.min(0, lo);
    let vmax = hi > vmin ? hi : vmin + 1;
    if (state.limits !== "full") {  // colour limits at percentiles of the map (p, 100 - p)
      const p = Number(state.limits);
      const sorted = Float64Array.from(finite).sort();
      const q = (f) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.round(f * (sorted.length - 1))))];
      vmin = q(p / 100); vmax = q(1 - p / 100);
      if (!(vmax > vmin)) vmax = vmin + 1;
    }
    const ticks = niceTicks(vmin, vmax, 4).filter((t) => t >= vmin && t <= vmax)
      .map((t) => [(t - vmin) / (vmax - vmin), fmt(t, 3)]);
    return { f: (x) => (x - vmin) / (vmax - vmin), ticks };
  }

  // ------------------------------------------------------------------ map panel
  const mapCanvas = () => $("map-canvas");
  let mapImage = null;   // offscreen canvas at one pixel per scan pixel
  let mapDrag = null;

  function renderMapImage() {
    const m = state.map;
    if (!m) { mapImage = null; return; }
    const [h, w] = m.shape;
    const lut = lutFor(m);
    const sc = scaler(m, state.view);
    const off = document.createElement("canvas");
    off.width = w; off.height = h;
    const ctx = off.getContext("2d");
    const img = ctx.createImageData(w, h);
    const v = m.values;
    for (let i = 0; i < v.length; i++) {
      const o = i * 4;
      if (!isFinite(v[i])) { img.data[o] = img.data[o + 1] = img.data[o + 2] = 217; img.data[o + 3] = 255; continue; }
      const k = Math.max(0, Math.min(255, Math.round(sc.f(v[i]) * 255)));
      img.data[o] = lut[k * 3]; img.data[o + 1] = lut[k * 3 + 1]; img.data[o + 2] = lut[k * 3 + 2]; img.data[o + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    mapImage = off;
    drawColorbar(lut, sc.ticks, m.units + (state.view === "equalised" ? " (equalised, middle tick = median)" : ""));
  }

  function drawColorbar(lut, ticks, units) {
    const c = $("colorbar");
    const ctx = c.getContext("2d");
    const img = ctx.createImageData(256, 14);
    for (let x = 0; x < 256; x++) for (let y = 0; y < 14; y++) {
      const o = (y * 256 + x) * 4;
      img.data[o] = lut[x * 3]; img.data[o + 1] = lut[x * 3 + 1]; img.data[o + 2] = lut[x * 3 + 2]; img.data[o + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    const box = $("colorbar-ticks");
    box.textContent = "";
    for (const [f, label] of ticks) {
      const s = document.createElement("span");
      s.textContent = label;
      s.style.left = (256 * f) + "px";
      box.appendChild(s);
    }
    $("colorbar-units").textContent = units || "";
  }

  function layoutMap() {
    const c = mapCanvas();
    const m = state.map;
    if (!m || !mapImage) { c.width = c.height = 0; c.style.width = c.style.height = "0px"; return; }
    const [h, w] = m.shape;
    const avail = Math.max(200, $("map-wrap").clientWidth);
    const maxH = Math.max(240, window.innerHeight - 330);
    const scale = Math.min(avail / w, maxH / h);
    const cw = Math.max(1, Math.floor(w * scale)), ch = Math.max(1, Math.floor(h * scale));
    c.style.width = cw + "px"; c.style.height = ch + "px";
    c.width = Math.round(cw * dpr()); c.height = Math.round(ch * dpr());
    drawScaleBar(cw, w);
    drawMap();
  }

  // a round length (1, 2 or 5 x 10^k mm) of about a fifth of the span (as the report's bar)
  function niceLength(spanMm) {
    const target = spanMm / 5;
    const k = Math.pow(10, Math.floor(Math.log10(target)));
    return [1, 2, 5, 10].map((m) => m * k).reduce((a, b) => (Math.abs(b - target) < Math.abs(a - target) ? b : a));
  }

  // physical scale under the map when the pixel size is known (header or --pixel-size-mm)
  function drawScaleBar(cssWidth, widthPixels) {
    const box = $("scalebar");
    const px = state.info && state.info.pixel_size_mm;
    if (!px || !cssWidth) { box.hidden = true; maxrf.scaleBar = null; return; }
    const span = widthPixels * px, length = niceLength(span);
    const barPx = cssWidth * length / span;
    const label = length >= 1 ? `${+length.toPrecision(6)} mm` : `${+(length * 1000).toPrecision(6)} µm`;
    box.style.width = cssWidth + "px";
    $("scalebar-bar").style.width = barPx.toFixed(1) + "px";
    $("scalebar-label").textContent = label;
    box.dataset.scalebarMm = String(length);
    box.hidden = false;
    maxrf.scaleBar = { mm: length, cssPx: barPx, label: label };
  }

  function drawMap() {
    const c = mapCanvas();
    const m = state.map;
    if (!m || !mapImage || !c.width) return;
    const ctx = c.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.clearRect(0, 0, c.width, c.height);
    ctx.drawImage(mapImage, 0, 0, c.width, c.height);
    const [h, w] = m.shape;
    const sx = c.width / w, sy = c.height / h;
    drawSegmentation(ctx, sx, sy);
    let sel = state.mapSel;
    if (mapDrag) sel = dragRegion(mapDrag);
    if (sel) {
      const x = sel.c0 * sx, y = sel.r0 * sy, ww = (sel.c1 - sel.c0) * sx, hh = (sel.r1 - sel.r0) * sy;
      ctx.lineWidth = 3 * dpr(); ctx.strokeStyle = "rgba(0,0,0,0.85)"; ctx.strokeRect(x, y, ww, hh);
      ctx.lineWidth = 1.5 * dpr(); ctx.strokeStyle = "#ffffff"; ctx.strokeRect(x, y, ww, hh);
      if (sel.r1 - sel.r0 === 1 && sel.c1 - sel.c0 === 1 && sx < 12) {  // small pixels: a crosshair too
        const cx = x + ww / 2, cy = y + hh / 2, r = 10 * dpr();
        ctx.beginPath(); ctx.moveTo(cx - r, cy); ctx.lineTo(cx - ww, cy); ctx.moveTo(cx + ww, cy); ctx.lineTo(cx + r, cy);
        ctx.moveTo(cx, cy - r); ctx.lineTo(cx, cy - hh); ctx.moveTo(cx, cy + hh); ctx.lineTo(cx, cy + r); ctx.stroke();
      }
    }
  }

  // segmentation overlay (layer "segmentation"): strokes tinted, particles circled
  let segImage = null;
  async function loadSegmentation() {
    const seg = await api("/api/segmentation");
    if (!seg.computed) return;
    const cls = decodeMap(seg.classes);
    const [h, w] = seg.classes.shape;
    const off = document.createElement("canvas");
    off.width = w; off.height = h;
    const img = off.getContext("2d").createImageData(w, h);
    for (let i = 0; i < cls.length; i++) {
      if (cls[i] === 1) { img.data.set([30, 150, 255, 115], i * 4); }
    }
    off.getContext("2d").putImageData(img, 0, 0);
    segImage = off;
    state.seg = seg;
    maxrf.segmentation = { element: seg.element, particles: seg.particles.length };
    $("seg-label").hidden = false;
    $("show-seg").addEventListener("change", drawMap);
  }

  function drawSegmentation(ctx, sx, sy) {
    if (!segImage || !$("show-seg").checked) return;
    ctx.drawImage(segImage, 0, 0, ctx.canvas.width, ctx.canvas.height);
    ctx.lineWidth = 1.5 * dpr(); ctx.strokeStyle = "#ff2020";
    for (const p of state.seg.particles) {
      const r = (Math.sqrt(p.area / Math.PI) + 1) * sx;
      ctx.beginPath();
      ctx.arc((p.col_weighted + 0.5) * sx, (p.row_weighted + 0.5) * sy, Math.max(r, 4 * dpr()), 0, 2 * Math.PI);
      ctx.stroke();
    }
  }

  function eventPixel(e) {
    const m = state.map;
    const rect = mapCanvas().getBoundingClientRect();
    const [h, w] = m.shape;
    const col = Math.floor(((e.clientX - rect.left) / rect.width) * w);
    const row = Math.floor(((e.clientY - rect.top) / rect.height) * h);
    return { row: Math.max(0, Math.min(h - 1, row)), col: Math.max(0, Math.min(w - 1, col)),
             inside: row >= 0 && row < h && col >= 0 && col < w };
  }

  function dragRegion(d) {
    return { r0: Math.min(d.a.row, d.b.row), c0: Math.min(d.a.col, d.b.col),
             r1: Math.max(d.a.row, d.b.row) + 1, c1: Math.max(d.a.col, d.b.col) + 1 };
  }

  function mapHover(e) {
    const m = state.map;
    if (!m || mapDrag) return;
    const p = eventPixel(e);
    if (!p.inside) return;
    const v = m.values[p.row * m.shape[1] + p.col];
    $("map-hover").textContent = `row ${p.row}, column ${p.col}: ${fmt(v, 4)} ${m.units}`;
  }

  function installMapMouse() {
    const c = mapCanvas();
    c.addEventListener("mousedown", (e) => {
      if (!state.map || e.button !== 0) return;
      e.preventDefault();
      const p = eventPixel(e);
      mapDrag = { a: p, b: p };
      drawMap();
    });
    c.addEventListener("mousemove", mapHover);
    window.addEventListener("mousemove", (e) => {
      if (!mapDrag) return;
      mapDrag.b = eventPixel(e);
      const r = dragRegion(mapDrag);
      $("map-hover").textContent = `region rows ${r.r0}–${r.r1 - 1}, columns ${r.c0}–${r.c1 - 1} ` +
        `(${(r.r1 - r.r0) * (r.c1 - r.c0)} pixels)`;
      drawMap();
    });
    window.addEventListener("mouseup", () => {
      if (!mapDrag) return;
      const r = dragRegion(mapDrag);
      mapDrag = null;
      if (r.r1 - r.r0 === 1 && r.c1 - r.c0 === 1) selectPixel(r.r0, r.c0);
      else selectRegion(r.r0, r.c0, r.r1, r.c1);
    });
  }

  function setMap(desc, values) {
    state.map = Object.assign({}, desc, { values });
    maxrf.currentMap = { key: desc.key, label: desc.label, layer: desc.layer, shape: desc.shape,
                         lo_channel: desc.lo_channel, hi_channel: desc.hi_channel, values };
    $("map-title").textContent = desc.layer === "window"
      ? `Energy window ${desc.label}` : `${desc.label}${desc.layer === "peak_maps" ? " (peak map)" : " (element map)"}`;
    $("map-empty").hidden = true;
    const a = $("map-png");
    const q = desc.layer === "window" ? `/api/window?lo=${desc.lo_channel}&hi=${desc.hi_channel}`
      : `/api/map?name=${encodeURIComponent(desc.key)}`;
    a.href = `${q}&format=png&view=${state.view}`;
    a.download = `${(state.info ? state.info.name : "map")}_${desc.label.replace(/[^A-Za-z0-9.]+/g, "_")}.png`;
    a.hidden = false;
    renderMapImage();
    layoutMap();
  }

  async function showMap(key) {
    const seq = ++state.seq.map;
    setStatus(`Loading map ${key}…`, "busy");
    try {
      const m = await api(`/api/map?name=${encodeURIComponent(key)}`);
      if (seq !== state.seq.map) return;
      setMap(m, decodeMap(m));
      $("map-select").value = key;
      setStatus(`Map ${m.label}: ${m.shape[0]} × ${m.shape[1]} pixels, ${fmt(m.min)} – ${fmt(m.max)} ${m.units}.`);
    } catch (err) { fail(err); }
  }

  // a window in the spectrum's units (keV, or channels without a calibration)
  async function selectWindow(lo, hi) {
    if (hi < lo) [lo, hi] = [hi, lo];
    const unit = state.info.unit;
    const q = unit === "keV" ? `lo_keV=${lo.toFixed(6)}&hi_keV=${hi.toFixed(6)}`
      : `lo=${Math.max(0, Math.round(lo))}&hi=${Math.max(0, Math.round(hi))}`;
    return loadWindow(q, lo, hi);
  }

  // a window in channels (inclusive)
  async function selectChannels(lo, hi) {
    const E = state.spectra.energies;
    return loadWindow(`lo=${lo}&hi=${hi}`, E[lo], E[hi]);
  }

  async function loadWindow(q, lo, hi) {
    const seq = ++state.seq.map;
    const unit = state.info.unit;
    state.window = [lo, hi];
    drawSpectrum();
    setStatus(`Computing the map of ${fmt(lo)}–${fmt(hi)} ${unit} (one pass over the cube)…`, "busy");
    try {
      const m = await api(`/api/window?${q}`);
      if (seq !== state.seq.map) return;
      const e = state.spectra.energies;
      state.window = [e[m.lo_channel], e[m.hi_channel]];
      setMap(m, decodeMap(m));
      addWindowOption(m);
      drawSpectrum();
      setStatus(`Map of ${m.label} (channels ${m.lo_channel}–${m.hi_channel}): ${fmt(m.min)} – ${fmt(m.max)} counts.`);
    } catch (err) { fail(err); }
  }

  function addWindowOption(m) {
    let group = $("window-group");
    const sel = $("map-select");
    if (!group) {
      group = document.createElement("optgroup");
      group.id = "window-group";
      group.label = "Energy windows (drag on the spectrum)";
      sel.appendChild(group);
    }
    const value = `window:${m.lo_channel}:${m.hi_channel}`;
    if (![...group.children].some((o) => o.value === value)) {
      const o = document.createElement("option");
      o.value = value; o.textContent = m.label;
      group.appendChild(o);
    }
    sel.value = value;
  }

  // ------------------------------------------------------------------ spectra
  async function selectPixel(row, col) {
    state.mapSel = { r0: row, c0: col, r1: row + 1, c1: col + 1 };
    drawMap();
    return loadSpectrum(`row=${row}&col=${col}`, `Pixel row ${row}, column ${col}`);
  }

  async function selectRegion(r0, c0, r1, c1) {
    state.mapSel = { r0, c0, r1, c1 };
    drawMap();
    return loadSpectrum(`r0=${r0}&c0=${c0}&r1=${r1}&c1=${c1}`,
      `Region rows ${r0}–${r1 - 1}, columns ${c0}–${c1 - 1} (mean of ${(r1 - r0) * (c1 - c0)} pixels)`);
  }

  async function loadSpectrum(query, title) {
    const seq = ++state.seq.spectrum;
    setStatus(`Reading the spectrum of ${title.toLowerCase()}…`, "busy");
    try {
      const s = await api(`/api/spectrum?${query}`);
      if (seq !== state.seq.spectrum) return;
      s.title = title;
      state.spectrum = s;
      maxrf.lastSpectrum = s;
      $("spectrum-title").textContent = title;
      $("save-csv").disabled = false;
      drawSpectrum();
      setStatus(`${title}: ${fmt(s.total, 4)} ${s.kind === "pixel" ? "counts in total" : "counts per pixel in total"}.`);
    } catch (err) { fail(err); }
  }

  const spec = { ml: 64, mr: 14, mt: 44, mb: 40 };
  let specDrag = null;
  let specGeom = null;

  function visibleMarkers() {
    const out = [];
    for (const m of state.info.markers) if (!state.hidden.has(m.element || "instrument")) out.push(m);
    for (const m of state.extra) if (!state.hidden.has(m.element)) out.push(m);
    return out;
  }

  function drawSpectrum() {
    const c = $("spectrum-canvas");
    const cssW = c.clientWidth, cssH = c.clientHeight;
    if (!cssW || !state.spectra) return;
    c.width = Math.round(cssW * dpr()); c.height = Math.round(cssH * dpr());
    const ctx = c.getContext("2d");
    ctx.setTransform(dpr(), 0, 0, dpr(), 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);
    const E = state.spectra.energies;
    const n = E.length;
    const [x0, x1] = state.zoom || [E[0], E[n - 1]];
    const pw = cssW - spec.ml - spec.mr, ph = cssH - spec.mt - spec.mb;
    const log = $("log-scale").checked;
    const series = [];
    if ($("show-max").checked) series.push({ y: state.spectra.max, color: "#d9a3a3", label: "max spectrum", w: 1 });
    if ($("show-sum").checked) series.push({ y: state.spectra.sum, color: "#8796ab", label: "sum spectrum (mean per pixel)", w: 1.2 });
    if (state.spectrum) series.push({ y: state.spectrum.counts, color: "#1f4e8c",
      label: state.spectrum.kind === "pixel" ? "selected pixel" : "selected region (mean)", w: 1.6 });
    let i0 = 0, i1 = n - 1;
    while (i0 < n - 1 && E[i0] < x0) i0++;
    while (i1 > 0 && E[i1] > x1) i1--;
    let ymax = 0, ypos = Infinity;
    for (const s of series) for (let i = i0; i <= i1; i++) {
      const v = s.y[i];
      if (v > ymax) ymax = v;
      if (v > 0 && v < ypos) ypos = v;
    }
    if (!(ymax > 0)) ymax = 1;
    let ty, yticks, ylabels;
    if (log) {
      const lo = Math.floor(Math.log10(Math.max(isFinite(ypos) ? ypos : ymax * 1e-3, ymax * 1e-5)));
      const hi = Math.max(lo + 1, Math.ceil(Math.log10(ymax * 1.1)));
      ty = (v) => spec.mt + ph * (1 - (Math.log10(Math.max(v, Math.pow(10, lo))) - lo) / (hi - lo));
      yticks = []; for (let k = lo; k <= hi; k++) yticks.push(Math.pow(10, k));
      ylabels = yticks.map((v) => (v >= 1e-2 && v <= 1e5 ? String(+v.toPrecision(3)) : v.toExponential(0)));
    } else {
      const top = ymax * 1.05;
      ty = (v) => spec.mt + ph * (1 - Math.max(0, v) / top);
      yticks = niceTicks(0, top, 5);
      ylabels = yticks.map((v) => fmt(v, 3));
    }
    const tx = (x) => spec.ml + (pw * (x - x0)) / (x1 - x0);
    specGeom = { x0, x1, pw, ph, tx, fromX: (px) => x0 + ((px - spec.ml) / pw) * (x1 - x0) };
    // frame, grid, ticks
    ctx.fillStyle = "#fff"; ctx.fillRect(spec.ml, spec.mt, pw, ph);
    ctx.font = "11px system-ui, sans-serif"; ctx.fillStyle = "#444"; ctx.strokeStyle = "#eceff3"; ctx.lineWidth = 1;
    ctx.textAlign = "center";
    for (const v of niceTicks(x0, x1, Math.max(4, Math.floor(pw / 80)))) {
      const px = tx(v);
      ctx.beginPath(); ctx.moveTo(px, spec.mt); ctx.lineTo(px, spec.mt + ph); ctx.stroke();
      ctx.fillText(String(+v.toPrecision(6)), px, spec.mt + ph + 14);
    }
    ctx.textAlign = "right";
    yticks.forEach((v, k) => {
      const py = ty(v);
      if (py < spec.mt - 0.5 || py > spec.mt + ph + 0.5) return;
      ctx.beginPath(); ctx.moveTo(spec.ml, py); ctx.lineTo(spec.ml + pw, py); ctx.stroke();
      ctx.fillText(ylabels[k], spec.ml - 5, py + 4);
    });
    ctx.font = "12.5px system-ui, sans-serif"; ctx.fillStyle = "#222"; ctx.textAlign = "center";
    ctx.fillText(state.info.unit === "keV" ? "energy (keV)" : "channel (no energy calibration)", spec.ml + pw / 2, cssH - 6);
    ctx.save(); ctx.translate(14, spec.mt + ph / 2); ctx.rotate(-Math.PI / 2);
    ctx.fillText("counts per channel" + (log ? " (log)" : ""), 0, 0); ctx.restore();
    ctx.save();
    ctx.beginPath(); ctx.rect(spec.ml, spec.mt - 40, pw, ph + 40); ctx.clip();
    // the mapped energy window
    const win = specDrag ? [specGeom.fromX(specDrag.a), specGeom.fromX(specDrag.b)].sort((a, b) => a - b) : state.window;
    if (win) {
      ctx.fillStyle = specDrag ? "rgba(240,180,41,0.30)" : "rgba(240,180,41,0.22)";
      const a = tx(win[0]), b = tx(win[1]);
      ctx.fillRect(Math.min(a, b), spec.mt, Math.max(1.5, Math.abs(b - a)), ph);
    }
    // line markers
    const rows = [-1e9, -1e9, -1e9];
    ctx.font = "bold 12px system-ui, sans-serif";
    for (const m of visibleMarkers().sort((a, b) => a.keV - b.keV)) {
      if (state.info.unit !== "keV" || m.keV < x0 || m.keV > x1) continue;
      const px = tx(m.keV);
      ctx.strokeStyle = m.color; ctx.globalAlpha = 0.8; ctx.lineWidth = m.main ? 1.3 : 0.9;
      ctx.setLineDash(m.main ? [] : [3, 3]);
      ctx.beginPath(); ctx.moveTo(px, spec.mt); ctx.lineTo(px, spec.mt + ph); ctx.stroke();
      ctx.setLineDash([]); ctx.globalAlpha = 1;
      const text = m.main ? (m.text || m.element || m.label) : (state.zoom ? m.label : null);
      if (text) {
        const w = ctx.measureText(text).width + 6;
        let r = rows.findIndex((end) => px - w / 2 > end);
        if (r < 0) r = rows.indexOf(Math.min(...rows));
        rows[r] = px + w / 2;
        ctx.fillStyle = m.color; ctx.textAlign = "center";
        ctx.fillText(text, px, spec.mt - 6 - 13 * r);
      }
    }
    // data
    for (const s of series) {
      ctx.strokeStyle = s.color; ctx.lineWidth = s.w; ctx.lineJoin = "round";
      ctx.beginPath();
      let started = false;
      const step = Math.max(1, Math.floor((i1 - i0) / (pw * 2)));
      for (let i = Math.max(0, i0 - 1); i <= Math.min(n - 1, i1 + 1); i += step) {
        let v = s.y[i];
        if (step > 1) for (let k = 1; k < step && i + k < n; k++) v = Math.max(v, s.y[i + k]);
        const px = tx(E[i]), py = ty(v);
        if (!started) { ctx.moveTo(px, py); started = true; } else ctx.lineTo(px, py);
      }
      ctx.stroke();
    }
    ctx.restore();
    ctx.strokeStyle = "#999"; ctx.lineWidth = 1; ctx.strokeRect(spec.ml + 0.5, spec.mt + 0.5, pw, ph);
    // legend (on a white box so the data does not hide it)
    let lx = spec.ml + 10;
    ctx.font = "12px system-ui, sans-serif"; ctx.textAlign = "left";
    const legendW = series.reduce((acc, s) => acc + 34 + ctx.measureText(s.label).width, 0);
    ctx.fillStyle = "rgba(255,255,255,0.88)";
    ctx.fillRect(spec.ml + 4, spec.mt + 3, legendW, 19);
    for (const s of series) {
      ctx.strokeStyle = s.color; ctx.lineWidth = 3;
      ctx.beginPath(); ctx.moveTo(lx, spec.mt + 12); ctx.lineTo(lx + 16, spec.mt + 12); ctx.stroke();
      ctx.fillStyle = "#222"; ctx.fillText(s.label, lx + 20, spec.mt + 16);
      lx += 34 + ctx.measureText(s.label).width;
    }
  }

  function spectrumHover(e) {
    if (!specGeom || !state.spectra) return;
    const rect = $("spectrum-canvas").getBoundingClientRect();
    const x = specGeom.fromX(e.clientX - rect.left);
    const E = state.spectra.energies;
    if (x < E[0] || x > E[E.length - 1]) return;
    let i = 0, j = E.length - 1;  // nearest channel
    while (j - i > 1) { const m = (i + j) >> 1; if (E[m] <= x) i = m; else j = m; }
    const k = Math.abs(E[i] - x) <= Math.abs(E[j] - x) ? i : j;
    const unit = state.info.unit;
    let text = `${unit === "keV" ? E[k].toFixed(3) + " keV" : "channel " + k} (channel ${k}): ` +
      `sum ${fmt(state.spectra.sum[k])}, max ${fmt(state.spectra.max[k])}`;
    if (state.spectrum) text += `, selected ${fmt(state.spectrum.counts[k], 4)}`;
    const near = visibleMarkers().filter((m) => Math.abs(m.keV - E[k]) < 0.08).map((m) => m.label);
    if (near.length) text += ` — near ${near.join(", ")}`;
    $("spectrum-hover").textContent = text;
  }

  function installSpectrumMouse() {
    const c = $("spectrum-canvas");
    const localX = (e) => e.clientX - c.getBoundingClientRect().left;
    c.addEventListener("mousedown", (e) => {
      if (e.button !== 0 || !specGeom) return;
      e.preventDefault();
      const x = Math.max(spec.ml, Math.min(spec.ml + specGeom.pw, localX(e)));
      specDrag = { a: x, b: x };
    });
    c.addEventListener("mousemove", spectrumHover);
    window.addEventListener("mousemove", (e) => {
      if (!specDrag) return;
      specDrag.b = Math.max(spec.ml, Math.min(spec.ml + specGeom.pw, localX(e)));
      drawSpectrum();
    });
    window.addEventListener("mouseup", () => {
      if (!specDrag) return;
      const d = specDrag;
      specDrag = null;
      if (Math.abs(d.b - d.a) < 4) { drawSpectrum(); return; }
      const lo = specGeom.fromX(Math.min(d.a, d.b)), hi = specGeom.fromX(Math.max(d.a, d.b));
      selectWindow(lo, hi);
    });
    c.addEventListener("wheel", (e) => {
      if (!specGeom) return;
      e.preventDefault();
      const E = state.spectra.energies;
      const full = [E[0], E[E.length - 1]];
      const [a, b] = state.zoom || full;
      const x = Math.max(a, Math.min(b, specGeom.fromX(localX(e))));
      const f = e.deltaY > 0 ? 1.25 : 0.8;
      let lo = x - (x - a) * f, hi = x + (b - x) * f;
      const minSpan = 8 * (E[1] - E[0]);
      if (hi - lo < minSpan) { lo = x - minSpan / 2; hi = x + minSpan / 2; }
      lo = Math.max(full[0], lo); hi = Math.min(full[1], hi);
      state.zoom = (lo <= full[0] && hi >= full[1]) ? null : [lo, hi];
      drawSpectrum();
    }, { passive: false });
    c.addEventListener("dblclick", () => { state.zoom = null; drawSpectrum(); });
  }

  // ------------------------------------------------------------------ elements
  function renderChips() {
    const box = $("element-chips");
    box.textContent = "";
    const seen = new Map();
    for (const m of state.info.markers) {
      const key = m.element || "instrument";
      const label = m.element ? (m.text || m.element) : "instrument peaks";
      if (!seen.has(key)) seen.set(key, { color: m.color, label, extra: false });
    }
    for (const m of state.extra) if (!seen.has(m.element)) seen.set(m.element, { color: m.color, label: m.element, extra: true });
    if (!seen.size) {
      const s = document.createElement("span");
      s.className = "hint";
      s.textContent = state.info.unit === "keV" ? "none identified yet (run maxrf identify) — add one:" : "no energy calibration";
      box.appendChild(s);
    }
    for (const [key, d] of seen) {
      const chip = document.createElement("span");
      chip.className = "chip" + (state.hidden.has(key) ? " off" : "");
      chip.title = "show or hide these lines";
      chip.dataset.element = key;
      const dot = document.createElement("span");
      dot.className = "dot"; dot.style.background = d.color;
      chip.appendChild(dot);
      chip.appendChild(document.createTextNode(d.label + (d.extra ? " (added)" : "")));
      chip.addEventListener("click", () => {
        if (state.hidden.has(key)) state.hidden.delete(key); else state.hidden.add(key);
        renderChips(); drawSpectrum();
      });
      box.appendChild(chip);
    }
  }

  async function addElement(symbol) {
    try {
      const r = await api(`/api/lines?element=${encodeURIComponent(symbol)}`);
      state.extra = state.extra.filter((m) => m.element !== r.element);
      r.lines.forEach((ln, i) => state.extra.push({ element: r.element, label: `${r.element} ${ln.line}`, keV: ln.keV,
        color: r.color, main: i === 0, kind: "element" }));
      state.hidden.delete(r.element);
      renderChips(); drawSpectrum();
      setStatus(`${r.element} lines: ${r.lines.map((l) => `${l.line} ${l.keV.toFixed(2)} keV`).join(", ") || "none excited"}.`);
    } catch (err) { fail(err); }
  }

  // ------------------------------------------------------------------ start-up
  function fail(err) {
    maxrf.error = String(err && err.message ? err.message : err);
    setStatus("Error: " + maxrf.error, "error");
  }

  function fillMapSelect() {
    const sel = $("map-select");
    sel.textContent = "";
    const groups = { element_maps: "Element maps", peak_maps: "Peak maps" };
    const statuses = Object.fromEntries(state.info.layers.map((l) => [l.name, l]));
    for (const [layer, title] of Object.entries(groups)) {
      const g = document.createElement("optgroup");
      g.label = title;
      const maps = state.info.maps.filter((m) => m.layer === layer);
      for (const m of maps) {
        const o = document.createElement("option");
        o.value = m.key;
        o.textContent = m.label + (m.keV ? ` (${m.keV.toFixed(2)} keV)` : "");
        g.appendChild(o);
      }
      if (!maps.length) {
        const o = document.createElement("option");
        o.disabled = true;
        const st = statuses[layer];
        o.textContent = st && st.state !== "computed" ? `${st.state} — run ${st.command}` : "none";
        g.appendChild(o);
      }
      sel.appendChild(g);
    }
  }

  function showNotices() {
    const missing = state.info.layers.filter((l) => l.state !== "computed");
    const box = $("notices");
    if (!missing.length) { box.hidden = true; return; }
    box.textContent = "";
    box.appendChild(document.createTextNode("Not available yet: "));
    missing.forEach((l, i) => {
      if (i) box.appendChild(document.createTextNode("; "));
      box.appendChild(document.createTextNode(`${l.description} (${l.state} — run `));
      const code = document.createElement("code");
      code.textContent = l.command;
      box.appendChild(code);
      box.appendChild(document.createTextNode(")"));
    });
    box.appendChild(document.createTextNode("."));
    box.hidden = false;
  }

  // present elements as found, possible ones apart and marked "?" (never as if present)
  function elementsText(elements) {
    const of = (st) => elements.filter((e) => (e.status || "").toLowerCase() === st).map((e) => e.element);
    const present = of("present"), possible = of("possible");
    return (present.length ? ` · elements: ${present.join(", ")}` : "") +
      (possible.length ? ` · possible: ${possible.map((e) => e + "?").join(", ")}` : "");
  }

  // ------------------------------------------------------------------ photo (maxrf register)
  async function setupPhoto() {
    const reg = await api("/api/registration");
    maxrf.registration = reg;
    if (!reg.registered) return;
    const panel = document.createElement("section");
    panel.className = "panel"; panel.id = "photo-panel"; panel.setAttribute("aria-label", "photo");
    const head = document.createElement("h2");
    head.textContent = `Photograph — registration ${reg.quality} (${reg.method}); click to see the spectrum beneath`;
    panel.appendChild(head);
    if (!reg.photo_readable) {
      const p = document.createElement("p"); p.className = "empty"; p.textContent = `Photo not readable: ${reg.photo_error}`;
      panel.appendChild(p); document.querySelector("main").appendChild(panel); return;
    }
    const bar = document.createElement("div"); bar.className = "toolbar";
    const label = document.createElement("label"); label.textContent = "map opacity ";
    const op = document.createElement("input"); op.type = "range"; op.min = 0; op.max = 100; op.value = 60; op.id = "photo-opacity";
    label.appendChild(op); bar.appendChild(label); panel.appendChild(bar);
    const wrap = document.createElement("div"); wrap.id = "photo-wrap";
    wrap.style.position = "relative"; wrap.style.display = "inline-block"; wrap.style.maxWidth = "100%";
    const img = document.createElement("img"); img.id = "photo-img"; img.src = "/api/photo"; img.alt = "photograph";
    img.style.display = "block"; img.style.maxWidth = "100%"; img.setAttribute("data-testid", "photo");
    const ov = document.createElement("img"); ov.id = "photo-map"; ov.alt = "";
    ov.style.position = "absolute"; ov.style.left = "0"; ov.style.top = "0"; ov.style.width = "100%";
    ov.style.pointerEvents = "none"; ov.style.opacity = op.value / 100;
    wrap.appendChild(img); wrap.appendChild(ov); panel.appendChild(wrap);
    document.querySelector("main").appendChild(panel);
    op.addEventListener("input", () => { ov.style.opacity = op.value / 100; });
    const showOverlay = (key) => {
      ov.hidden = !key || key.startsWith("window:");
      if (!ov.hidden) ov.src = `/api/photo_overlay?name=${encodeURIComponent(key)}`;
    };
    $("map-select").addEventListener("change", (e) => showOverlay(e.target.value));
    if (state.info.maps.length) showOverlay(state.info.maps[0].key);
    img.addEventListener("click", async (e) => {
      const x = (e.offsetX / img.clientWidth) * reg.display_width - 0.5;
      const y = (e.offsetY / img.clientHeight) * reg.display_height - 0.5;
      const p = await api(`/api/photo_pixel?x=${x.toFixed(2)}&y=${y.toFixed(2)}`);
      maxrf.photoPixel = p;
      if (p.inside) await selectPixel(p.row, p.col);
      else setStatus("That point of the photo lies outside the scanned area.");
    });
  }

  async function start() {
    try {
      const [info, spectra] = await Promise.all([api("/api/info"), api("/api/spectra")]);
      state.info = info; state.spectra = spectra;
      maxrf.info = info;
      document.title = `maxrf viewer — ${info.name}`;
      $("scan-name").textContent = info.name;
      const [h, w, c] = info.shape;
      $("scan-sub").textContent = `${h} × ${w} pixels · ${c} channels` +
        (info.unit === "keV" ? ` · ${info.energy_range[0].toFixed(2)} – ${info.energy_range[1].toFixed(2)} keV`
          : " · no energy calibration (run maxrf calibrate)") +
        elementsText(info.elements);
      fillMapSelect();
      showNotices();
      renderChips();
      installMapMouse();
      installSpectrumMouse();
      $("map-select").addEventListener("change", (e) => {
        const v = e.target.value;
        if (v.startsWith("window:")) {
          const [, lo, hi] = v.split(":").map(Number);
          selectChannels(lo, hi);
        } else showMap(v);
      });
      $("contrast").addEventListener("change", (e) => {
        state.view = e.target.value;
        if (state.map) setMap(state.map, state.map.values);
      });
      for (const [id, key] of [["cmap", "cmap"], ["limits", "limits"]]) {  // colours, colour limits
        $(id).addEventListener("change", (e) => {
          state[key] = e.target.value;
          if (state.map) setMap(state.map, state.map.values);
        });
      }
      for (const id of ["log-scale", "show-max", "show-sum"]) $(id).addEventListener("change", drawSpectrum);
      $("reset-zoom").addEventListener("click", () => { state.zoom = null; drawSpectrum(); });
      $("save-csv").addEventListener("click", saveCsv);
      $("add-element").addEventListener("submit", (e) => {
        e.preventDefault();
        const v = $("element-input").value.trim();
        if (v) addElement(v);
      });
      window.addEventListener("resize", () => { layoutMap(); drawSpectrum(); });
      drawSpectrum();
      if (info.layers.some((l) => l.name === "segmentation" && l.state === "computed")) {
        try { await loadSegmentation(); } catch (err) { setStatus(`Segmentation not shown: ${err}`, "error"); }
      }
      if (info.maps.length) await showMap(info.maps[0].key);
      else {
        const empty = $("map-empty");
        empty.textContent = "No element or peak maps computed yet (run maxrf maps). " +
          "Drag across an energy range of the spectrum to map it now.";
        empty.hidden = false;
        setStatus("Ready. Drag across the spectrum to make a map.");
      }
      await setupPhoto();
      maxrf.ready = true;
    } catch (err) { fail(err); }
  }

  function saveCsv() {
    const s = state.spectrum;
    if (!s) return;
    const E = state.spectra.energies;
    const lines = [`# ${s.title}; ${s.units}`, `${state.info.unit === "keV" ? "energy_keV" : "channel"},counts`];
    for (let i = 0; i < E.length; i++) lines.push(`${E[i]},${s.counts[i]}`);
    const blob = new Blob([lines.join("\n") + "\n"], { type: "text/csv" });
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = `${state.info.name}_${s.kind === "pixel" ? `r${s.row}_c${s.col}` : `r${s.r0}-${s.r1}_c${s.c0}-${s.c1}`}.csv`;
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  }

  // ------------------------------------------------------------------ public hooks
  maxrf.selectPixel = selectPixel;
  maxrf.selectRegion = selectRegion;
  maxrf.selectWindow = selectWindow;
  maxrf.selectChannels = selectChannels;
  maxrf.showMap = showMap;
  maxrf.pixelToClient = (row, col) => {
    if (!state.map) return null;
    const r = mapCanvas().getBoundingClientRect();
    const [h, w] = state.map.shape;
    return { x: r.left + ((col + 0.5) / w) * r.width, y: r.top + ((row + 0.5) / h) * r.height };
  };
  maxrf.energyToClient = (e) => {
    if (!specGeom) return null;
    const r = $("spectrum-canvas").getBoundingClientRect();
    return { x: r.left + specGeom.tx(e), y: r.top + spec.mt + specGeom.ph / 2 };
  };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
