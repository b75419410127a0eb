// A time-series chart drawn by hand on <canvas>: the sensors on top (each scaled to its own range in
// view, so they share one axis), the anomaly score below on its own axis with the threshold line,
// events shaded across both. Hover or the arrow keys read a row; drag to zoom, double-click or
// Escape to see everything again; a click on a shaded event selects it.
//
// The chart states what it shows in data attributes of its root (rows, events, zoom, selected
// event and where it is drawn), so that people using assistive technology, and tests, can read it.

export const PALETTE = ["#1d4ed8", "#b45309", "#15803d", "#6d28d9", "#0f766e", "#c51b7d", "#525252", "#8c510a", "#0072b2", "#4d7c0f"];
export const sensorColour = (index) => PALETTE[index % PALETTE.length];

const INK = "#1b2430", MUTED = "#4a5568", GRID = "#e2e8f0", BAD = "#b42318";
const EVENT_FILL = "rgba(180, 35, 24, 0.13)", EVENT_SELECTED = "rgba(180, 35, 24, 0.24)";
const MIN_EVENT_PX = 3;
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const STEPS_S = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800];
const pad = (n) => String(n).padStart(2, "0");

/** "Mar 3, 20:02:30" in UTC (seconds only when they are not zero); row numbers as "row 12". */
export function formatTime(x, kind = "time", withSeconds = true) {
  if (kind === "row") return `row ${x}`;
  const d = new Date(x);
  if (Number.isNaN(d.getTime())) return String(x);
  const seconds = withSeconds && d.getUTCSeconds() ? ":" + pad(d.getUTCSeconds()) : "";
  return `${MONTHS[d.getUTCMonth()]} ${d.getUTCDate()}, ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}${seconds}`;
}

/** Epoch ms of a timestamp as the API reads it (ISO 8601 without a zone is UTC; numbers are epoch seconds). */
export function parseTime(value) {
  if (typeof value === "number") return value * 1000;
  let text = String(value).trim();
  const iso = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(Z|[+-]\d{2}:?\d{2})?$/i.exec(text);
  if (iso) text = `${iso[1]}T${iso[2]}${iso[3] || "Z"}`;
  else if (/^\d{4}-\d{2}-\d{2}$/.test(text)) text += "T00:00:00Z";
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? null : ms;
}

/** A timestamp as the API sent it, shown as formatTime does (the text itself when it is no time). */
export function timeText(value) {
  const t = parseTime(value);
  return t === null ? String(value) : formatTime(t);
}

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "n/a";
  if (seconds < 60) return `${Math.round(seconds)} s`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60), rest = minutes % 60;
  if (hours < 48) return rest ? `${hours} h ${rest} min` : `${hours} h`;
  const days = Math.floor(hours / 24), h = hours % 24;
  return h ? `${days} d ${h} h` : `${days} d`;
}

export function formatReading(value) {
  if (value === null || value === undefined) return "n/a";
  const size = Math.abs(value);
  if (size !== 0 && (size >= 1e6 || size < 1e-3)) return value.toExponential(3);
  return Number(value.toPrecision(6)).toString();
}

/** Index of the last x ≤ target in the sorted array xs (−1 before the first). */
function lastAtOrBefore(xs, target) {
  let lo = 0, hi = xs.length - 1, found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] <= target) { found = mid; lo = mid + 1; } else { hi = mid - 1; }
  }
  return found;
}

export class SeriesChart {
  /**
   * @param root an element to draw in (emptied); it becomes focusable and keyboard-operable
   * @param options { label, sensorsHeight, scoreHeight, onSelectEvent(key), onCursor(text) }
   */
  constructor(root, options = {}) {
    this.root = root;
    this.options = { sensorsHeight: 260, scoreHeight: 110, label: "sensor chart", ...options };
    this.data = null;
    this.hidden = new Set();
    this.view = null; // [x0, x1] when zoomed
    this.selected = null;
    this.cursor = null; // row index under the pointer or the keyboard cursor
    this.drag = null;
    root.classList.add("chart");
    root.replaceChildren();
    root.tabIndex = 0;
    root.setAttribute("role", "group");
    root.setAttribute("aria-roledescription", "chart");
    root.setAttribute("aria-label", this.options.label + ". Arrow keys read the rows, plus and minus zoom, Escape shows everything.");
    this.canvas = document.createElement("canvas");
    this.overlay = document.createElement("canvas");
    this.overlay.className = "chart-overlay";
    for (const c of [this.canvas, this.overlay]) c.setAttribute("aria-hidden", "true");
    this.tip = document.createElement("div");
    this.tip.className = "chart-tip";
    this.tip.hidden = true;
    this.tip.setAttribute("aria-hidden", "true");
    this.empty = document.createElement("p");
    this.empty.className = "chart-empty";
    this.empty.hidden = true;
    root.append(this.canvas, this.overlay, this.tip, this.empty);
    this.layout();
    this.listen();
    this.resizeObserver = new ResizeObserver(() => { if (this.layout()) this.draw(); });
    this.resizeObserver.observe(root);
  }

  // ------------------------------------------------------------------------------------ data

  /** data: { x: numbers (epoch ms or row numbers), xKind: "time"|"row", labels, sensors, values (rows × sensors),
   *  scores (number|null per row), threshold, events: [{key, x0, x1, ongoing}], colours (optional, per sensor) } */
  setData(data) {
    // the cursor stays on its reading when older rows drop out of the data
    const at = this.cursor !== null && this.data ? this.data.x[this.cursor] : null;
    this.data = data;
    if (at !== null) {
      const row = lastAtOrBefore(data.x, at);
      this.cursor = row >= 0 && data.x[row] === at ? row : null;
    }
    this.draw();
  }

  setEmpty(message) {
    this.data = null;
    this.empty.textContent = message;
    this.draw();
  }

  colour(index) { return (this.data && this.data.colours && this.data.colours[index]) || sensorColour(index); }

  setHidden(hidden) { this.hidden = new Set(hidden); this.draw(); }

  zoomTo(x0, x1) {
    if (!(x1 > x0)) return;
    this.view = [x0, x1];
    this.draw();
  }

  resetZoom() { this.view = null; this.draw(); }

  select(key) { this.selected = key; this.draw(); }

  extent() {
    const x = this.data.x;
    const first = x[0], last = x[x.length - 1];
    return last > first ? [first, last] : [first - 1, last + 1];
  }

  range() { return this.view || this.extent(); }

  // ---------------------------------------------------------------------------------- layout

  layout() {
    const width = Math.max(320, Math.floor(this.root.clientWidth || 600));
    const { sensorsHeight, scoreHeight } = this.options;
    const top = 10, gap = 26, axis = 26;
    const height = top + sensorsHeight + gap + scoreHeight + axis;
    if (this.size && this.size.width === width && this.size.height === height) return false;
    this.size = { width, height };
    this.plot = { left: 58, right: width - 14, sensorsTop: top, sensorsBottom: top + sensorsHeight,
                  scoreTop: top + sensorsHeight + gap, scoreBottom: top + sensorsHeight + gap + scoreHeight };
    const ratio = window.devicePixelRatio || 1;
    for (const c of [this.canvas, this.overlay]) {
      c.width = Math.round(width * ratio);
      c.height = Math.round(height * ratio);
      c.style.width = width + "px";
      c.style.height = height + "px";
      c.getContext("2d").setTransform(ratio, 0, 0, ratio, 0, 0);
    }
    this.root.style.height = height + "px";
    this.root.dataset.plot = JSON.stringify(this.plot); // where the plots are, in CSS pixels of the canvas
    return true;
  }

  toPx(x) {
    const [x0, x1] = this.range();
    return this.plot.left + ((x - x0) / (x1 - x0)) * (this.plot.right - this.plot.left);
  }

  fromPx(px) {
    const [x0, x1] = this.range();
    return x0 + ((px - this.plot.left) / (this.plot.right - this.plot.left)) * (x1 - x0);
  }

  /** First and last row index inside the view (one row either side, so lines reach the edges). */
  visibleRows() {
    const [x0, x1] = this.range();
    const xs = this.data.x;
    const first = Math.max(0, lastAtOrBefore(xs, x0));
    let last = lastAtOrBefore(xs, x1);
    if (last < xs.length - 1 && xs[last] < x1) last += 1;
    return [first, Math.max(first, last)];
  }

  // ---------------------------------------------------------------------------------- drawing

  draw() {
    this.layout();
    const ctx = this.canvas.getContext("2d");
    const { width, height } = this.size;
    ctx.fillStyle = "#ffffff"; // opaque: the chart reads (and copies) as it looks
    ctx.fillRect(0, 0, width, height);
    this.drawOverlay();
    const root = this.root;
    if (!this.data || !this.data.x.length) {
      this.empty.hidden = !this.empty.textContent;
      Object.assign(root.dataset, { rows: "0", totalRows: "0", events: "0", view: "all" });
      delete root.dataset.selected;
      this.drawFrames(ctx);
      return;
    }
    this.empty.hidden = true;
    const [first, last] = this.visibleRows();
    const [x0, x1] = this.range();
    const p = this.plot;
    this.drawFrames(ctx);
    // events first, under the lines
    const shaded = [];
    let selectedSpan = null;
    for (const event of this.data.events || []) {
      if (event.x1 < x0 || event.x0 > x1) continue;
      let a = this.toPx(Math.max(event.x0, x0)), b = this.toPx(Math.min(event.x1, x1));
      if (b - a < MIN_EVENT_PX) { const mid = (a + b) / 2; a = mid - MIN_EVENT_PX / 2; b = mid + MIN_EVENT_PX / 2; }
      const isSelected = event.key === this.selected;
      ctx.fillStyle = isSelected ? EVENT_SELECTED : EVENT_FILL;
      for (const [top, bottom] of [[p.sensorsTop, p.sensorsBottom], [p.scoreTop, p.scoreBottom]]) ctx.fillRect(a, top, b - a, bottom - top);
      if (isSelected) {
        ctx.strokeStyle = BAD;
        ctx.lineWidth = 2;
        for (const [top, bottom] of [[p.sensorsTop, p.sensorsBottom], [p.scoreTop, p.scoreBottom]]) ctx.strokeRect(a, top + 1, b - a, bottom - top - 2);
        selectedSpan = [a, b];
      }
      shaded.push(event.key);
    }
    this.drawSensors(ctx, first, last);
    this.drawScores(ctx, first, last);
    this.drawTimeAxis(ctx);
    const inView = this.data.x.filter((x) => x >= x0 && x <= x1).length;
    Object.assign(root.dataset, {
      rows: String(inView), totalRows: String(this.data.x.length), events: String(shaded.length),
      view: this.view ? "zoomed" : "all", visibleSensors: String(this.data.sensors.filter((s) => !this.hidden.has(s)).length),
    });
    if (this.selected !== null && this.selected !== undefined) {
      root.dataset.selected = this.selected;
      root.dataset.selectedDrawn = selectedSpan ? "true" : "false";
      if (selectedSpan) { root.dataset.selectedX0 = selectedSpan[0].toFixed(1); root.dataset.selectedX1 = selectedSpan[1].toFixed(1); }
    } else {
      for (const key of ["selected", "selectedDrawn", "selectedX0", "selectedX1"]) delete root.dataset[key];
    }
  }

  drawFrames(ctx) {
    const p = this.plot;
    ctx.font = "12px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    ctx.textAlign = "right";
    ctx.lineWidth = 1;
    // sensors: each scaled to its own range in view
    for (const [value, label] of [[0, "min"], [0.5, ""], [1, "max"]]) {
      const y = p.sensorsBottom - value * (p.sensorsBottom - p.sensorsTop);
      ctx.strokeStyle = GRID;
      ctx.beginPath(); ctx.moveTo(p.left, Math.round(y) + 0.5); ctx.lineTo(p.right, Math.round(y) + 0.5); ctx.stroke();
      ctx.fillStyle = MUTED;
      if (label) ctx.fillText(label, p.left - 6, y);
    }
    for (const value of [0, 0.5, 1]) {
      const y = p.scoreBottom - value * (p.scoreBottom - p.scoreTop);
      ctx.strokeStyle = GRID;
      ctx.beginPath(); ctx.moveTo(p.left, Math.round(y) + 0.5); ctx.lineTo(p.right, Math.round(y) + 0.5); ctx.stroke();
      ctx.fillStyle = MUTED;
      ctx.fillText(value.toFixed(1), p.left - 6, y);
    }
    ctx.save();
    ctx.translate(14, (p.scoreTop + p.scoreBottom) / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "center";
    ctx.fillStyle = INK;
    ctx.fillText("score", 0, 0);
    ctx.restore();
    ctx.save();
    ctx.translate(14, (p.sensorsTop + p.sensorsBottom) / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "center";
    ctx.fillStyle = INK;
    ctx.fillText("sensors (own range)", 0, 0);
    ctx.restore();
    ctx.strokeStyle = "#a0aec0";
    ctx.strokeRect(p.left + 0.5, p.sensorsTop + 0.5, p.right - p.left - 1, p.sensorsBottom - p.sensorsTop - 1);
    ctx.strokeRect(p.left + 0.5, p.scoreTop + 0.5, p.right - p.left - 1, p.scoreBottom - p.scoreTop - 1);
  }

  /** A polyline through (x, y) of rows first..last, at most two points per pixel column (min and max). */
  path(ctx, first, last, yOf) {
    const xs = this.data.x;
    let started = false, column = null, lo = 0, hi = 0, lastY = 0;
    const flush = () => {
      if (column === null) return;
      if (hi !== lo) { ctx.lineTo(column, lo); ctx.lineTo(column, hi); }
      ctx.lineTo(column, lastY);
    };
    for (let i = first; i <= last; i++) {
      const y = yOf(i);
      if (y === null) { flush(); column = null; started = false; continue; }
      const px = this.toPx(xs[i]);
      const col = Math.round(px);
      if (!started) { ctx.moveTo(px, y); started = true; column = col; lo = hi = lastY = y; continue; }
      if (col === column) { lo = Math.min(lo, y); hi = Math.max(hi, y); lastY = y; continue; }
      flush();
      column = col; lo = hi = lastY = y;
      ctx.lineTo(px, y);
    }
    flush();
  }

  sensorRange(s, first, last) {
    let lo = Infinity, hi = -Infinity;
    for (let i = first; i <= last; i++) {
      const v = this.data.values[i][s];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    return [lo, hi];
  }

  drawSensors(ctx, first, last) {
    const p = this.plot, span = p.sensorsBottom - p.sensorsTop - 8;
    ctx.save();
    ctx.beginPath(); ctx.rect(p.left, p.sensorsTop, p.right - p.left, p.sensorsBottom - p.sensorsTop); ctx.clip();
    ctx.lineWidth = 1.5;
    ctx.lineJoin = "round";
    this.data.sensors.forEach((sensor, s) => {
      if (this.hidden.has(sensor)) return;
      const [lo, hi] = this.sensorRange(s, first, last);
      const scale = hi > lo ? 1 / (hi - lo) : 0;
      ctx.strokeStyle = this.colour(s);
      ctx.beginPath();
      this.path(ctx, first, last, (i) => p.sensorsBottom - 4 - (scale ? (this.data.values[i][s] - lo) * scale : 0.5) * span);
      ctx.stroke();
    });
    ctx.restore();
  }

  drawScores(ctx, first, last) {
    const p = this.plot, h = p.scoreBottom - p.scoreTop;
    const yOf = (v) => p.scoreBottom - Math.min(Math.max(v, 0), 1) * h;
    const scores = this.data.scores;
    const threshold = this.data.threshold ?? 0.5;
    const ty = yOf(threshold);
    ctx.save();
    ctx.beginPath(); ctx.rect(p.left, p.scoreTop, p.right - p.left, h); ctx.clip();
    ctx.lineWidth = 1.5;
    ctx.strokeStyle = INK;
    ctx.beginPath();
    this.path(ctx, first, last, (i) => (scores[i] === null || scores[i] === undefined ? null : yOf(scores[i])));
    ctx.stroke();
    // the part above the threshold again, in red
    ctx.beginPath(); ctx.rect(p.left, p.scoreTop, p.right - p.left, ty - p.scoreTop); ctx.clip();
    ctx.strokeStyle = BAD;
    ctx.lineWidth = 2;
    ctx.beginPath();
    this.path(ctx, first, last, (i) => (scores[i] === null || scores[i] === undefined ? null : yOf(scores[i])));
    ctx.stroke();
    ctx.restore();
    ctx.save();
    ctx.strokeStyle = BAD;
    ctx.setLineDash([6, 4]);
    ctx.lineWidth = 1.5;
    ctx.beginPath(); ctx.moveTo(p.left, ty); ctx.lineTo(p.right, ty); ctx.stroke();
    ctx.restore();
    ctx.font = "12px system-ui, sans-serif";
    ctx.fillStyle = BAD;
    ctx.textAlign = "right";
    ctx.textBaseline = "bottom";
    ctx.fillText(`threshold ${threshold.toFixed(2)}`, p.right - 4, ty - 2);
  }

  drawTimeAxis(ctx) {
    const p = this.plot;
    const [x0, x1] = this.range();
    const kind = this.data.xKind;
    ctx.font = "12px system-ui, sans-serif";
    ctx.fillStyle = MUTED;
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const wanted = Math.max(2, Math.floor((p.right - p.left) / 110));
    let step;
    if (kind === "row") {
      const raw = (x1 - x0) / wanted;
      const magnitude = 10 ** Math.floor(Math.log10(Math.max(raw, 1)));
      step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) || magnitude * 10;
    } else {
      const raw = (x1 - x0) / 1000 / wanted;
      step = (STEPS_S.find((s) => s >= raw) || STEPS_S[STEPS_S.length - 1]) * 1000;
    }
    let previousDay = null;
    for (let t = Math.ceil(x0 / step) * step; t <= x1; t += step) {
      const px = this.toPx(t);
      ctx.strokeStyle = GRID;
      ctx.beginPath(); ctx.moveTo(Math.round(px) + 0.5, p.sensorsTop); ctx.lineTo(Math.round(px) + 0.5, p.sensorsBottom); ctx.stroke();
      ctx.beginPath(); ctx.moveTo(Math.round(px) + 0.5, p.scoreTop); ctx.lineTo(Math.round(px) + 0.5, p.scoreBottom + 4); ctx.stroke();
      let label;
      if (kind === "row") {
        label = String(t);
      } else {
        const d = new Date(t);
        const day = `${MONTHS[d.getUTCMonth()]} ${d.getUTCDate()}`;
        const clock = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}` + (step < 60000 ? ":" + pad(d.getUTCSeconds()) : "");
        label = day !== previousDay || step >= 86400000 ? (step >= 86400000 ? day : `${day} ${clock}`) : clock;
        previousDay = day;
      }
      ctx.fillText(label, px, p.scoreBottom + 6);
    }
  }

  // --------------------------------------------------------------------------- interaction

  drawOverlay() {
    const ctx = this.overlay.getContext("2d");
    const { width, height } = this.size;
    ctx.clearRect(0, 0, width, height);
    const p = this.plot;
    if (this.drag && Math.abs(this.drag.to - this.drag.from) > 2) {
      ctx.fillStyle = "rgba(26, 86, 219, 0.15)";
      ctx.strokeStyle = "#1a56db";
      const a = Math.min(this.drag.from, this.drag.to), b = Math.max(this.drag.from, this.drag.to);
      for (const [top, bottom] of [[p.sensorsTop, p.sensorsBottom], [p.scoreTop, p.scoreBottom]]) {
        ctx.fillRect(a, top, b - a, bottom - top);
        ctx.strokeRect(a + 0.5, top + 0.5, b - a - 1, bottom - top - 1);
      }
    }
    if (!this.data || this.cursor === null || this.cursor >= this.data.x.length) { this.tip.hidden = true; return; }
    const px = this.toPx(this.data.x[this.cursor]);
    if (px < p.left || px > p.right) { this.tip.hidden = true; return; }
    ctx.strokeStyle = INK;
    ctx.lineWidth = 1;
    ctx.setLineDash([3, 3]);
    ctx.beginPath();
    ctx.moveTo(Math.round(px) + 0.5, p.sensorsTop); ctx.lineTo(Math.round(px) + 0.5, p.sensorsBottom);
    ctx.moveTo(Math.round(px) + 0.5, p.scoreTop); ctx.lineTo(Math.round(px) + 0.5, p.scoreBottom);
    ctx.stroke();
    ctx.setLineDash([]);
    const score = this.data.scores[this.cursor];
    if (score !== null && score !== undefined) {
      ctx.fillStyle = score >= (this.data.threshold ?? 0.5) ? BAD : INK;
      ctx.beginPath();
      ctx.arc(px, p.scoreBottom - Math.min(Math.max(score, 0), 1) * (p.scoreBottom - p.scoreTop), 3.5, 0, 2 * Math.PI);
      ctx.fill();
    }
    this.renderTip(px);
  }

  readout(row) {
    const d = this.data;
    const score = d.scores[row];
    const when = d.xKind === "row" ? `row ${d.x[row]}` : formatTime(d.x[row]);
    const scoreText = score === null || score === undefined ? "no score (context not full)" : `score ${score.toFixed(3)}`;
    const readings = d.sensors.map((s, i) => [s, i]).filter(([s]) => !this.hidden.has(s)).map(([s, i]) => `${s} ${formatReading(d.values[row][i])}`);
    return { when, scoreText, readings, score, label: d.labels ? d.labels[row] : null };
  }

  renderTip(px) {
    const row = this.cursor;
    const { when, scoreText, score } = this.readout(row);
    const d = this.data;
    const tip = this.tip;
    tip.replaceChildren();
    const title = document.createElement("strong");
    title.textContent = when + (d.xKind === "time" ? " UTC" : "");
    const scoreLine = document.createElement("div");
    scoreLine.textContent = scoreText;
    if (score !== null && score !== undefined && score >= (d.threshold ?? 0.5)) scoreLine.className = "chart-tip-bad";
    tip.append(title, scoreLine);
    d.sensors.forEach((sensor, i) => {
      if (this.hidden.has(sensor)) return;
      const line = document.createElement("div");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = this.colour(i);
      line.append(swatch, `${sensor} ${formatReading(d.values[row][i])}`);
      tip.append(line);
    });
    tip.hidden = false;
    const width = tip.offsetWidth || 180;
    const left = px + 12 + width > this.size.width ? px - 12 - width : px + 12;
    tip.style.left = Math.max(0, left) + "px";
    tip.style.top = this.plot.sensorsTop + 6 + "px";
  }

  setCursor(row, announce = false) {
    this.cursor = row;
    this.drawOverlay();
    this.root.dataset.cursor = row === null ? "" : String(row);
    if (announce && row !== null && this.options.onCursor) {
      const { when, scoreText, readings } = this.readout(row);
      this.options.onCursor(`${when}: ${scoreText}; ${readings.join(", ")}`);
    }
  }

  nearestRow(px) {
    const xs = this.data.x;
    const target = this.fromPx(px);
    const i = lastAtOrBefore(xs, target);
    if (i < 0) return 0;
    if (i >= xs.length - 1) return xs.length - 1;
    return target - xs[i] <= xs[i + 1] - target ? i : i + 1;
  }

  inPlot(px, py) {
    const p = this.plot;
    return px >= p.left && px <= p.right && ((py >= p.sensorsTop && py <= p.sensorsBottom) || (py >= p.scoreTop && py <= p.scoreBottom));
  }

  eventAt(px) {
    const hits = (this.data.events || []).filter((e) => {
      let a = this.toPx(e.x0), b = this.toPx(e.x1);
      if (b - a < MIN_EVENT_PX + 4) { const mid = (a + b) / 2; a = mid - (MIN_EVENT_PX + 4) / 2; b = mid + (MIN_EVENT_PX + 4) / 2; }
      return px >= a && px <= b;
    });
    return hits.length ? hits[hits.length - 1] : null;
  }

  listen() {
    const position = (event) => {
      const box = this.canvas.getBoundingClientRect();
      return [event.clientX - box.left, event.clientY - box.top];
    };
    this.overlay.addEventListener("pointerdown", (event) => {
      if (!this.data || !this.data.x.length) return;
      const [px, py] = position(event);
      if (!this.inPlot(px, py)) return;
      this.drag = { from: px, to: px };
      this.overlay.setPointerCapture(event.pointerId);
    });
    this.overlay.addEventListener("pointermove", (event) => {
      if (!this.data || !this.data.x.length) return;
      const [px, py] = position(event);
      if (this.drag) {
        this.drag.to = Math.min(Math.max(px, this.plot.left), this.plot.right);
        this.drawOverlay();
      }
      if (this.inPlot(px, py) || this.drag) this.setCursor(this.nearestRow(px));
      else if (this.cursor !== null) this.setCursor(null);
    });
    this.overlay.addEventListener("pointerup", (event) => {
      if (!this.drag) return;
      const { from, to } = this.drag;
      this.drag = null;
      if (Math.abs(to - from) > 6) {
        const a = this.fromPx(Math.min(from, to)), b = this.fromPx(Math.max(from, to));
        const xs = this.data.x;
        // at least two rows in view
        if (lastAtOrBefore(xs, b) - lastAtOrBefore(xs, a) >= 1) this.zoomTo(a, b);
        else this.drawOverlay();
      } else {
        const hit = this.eventAt(position(event)[0]);
        if (hit && this.options.onSelectEvent) this.options.onSelectEvent(hit.key);
        this.drawOverlay();
      }
    });
    this.overlay.addEventListener("pointerleave", () => { if (!this.drag) this.setCursor(null); });
    this.overlay.addEventListener("dblclick", () => this.resetZoom());
    this.root.addEventListener("keydown", (event) => this.onKey(event));
    this.root.addEventListener("blur", () => this.setCursor(null));
  }

  onKey(event) {
    if (!this.data || !this.data.x.length) return;
    const [first, last] = this.visibleRows();
    const step = event.shiftKey ? 10 : 1;
    let row = this.cursor === null ? null : this.cursor;
    switch (event.key) {
      case "ArrowRight": row = row === null ? first : Math.min(last, row + step); break;
      case "ArrowLeft": row = row === null ? last : Math.max(first, row - step); break;
      case "Home": row = first; break;
      case "End": row = last; break;
      case "+": case "=": this.zoomAround(row, 0.5); event.preventDefault(); return;
      case "-": case "_": this.zoomAround(row, 2); event.preventDefault(); return;
      case "Escape": case "0": this.resetZoom(); event.preventDefault(); return;
      default: return;
    }
    event.preventDefault();
    this.setCursor(row, true);
  }

  zoomAround(row, factor) {
    const [x0, x1] = this.range();
    const [e0, e1] = this.extent();
    const centre = row === null ? (x0 + x1) / 2 : this.data.x[row];
    const half = Math.min(((x1 - x0) * factor) / 2, (e1 - e0) / 2);
    if (half * 2 >= e1 - e0) { this.resetZoom(); return; }
    let a = centre - half, b = centre + half;
    if (a < e0) { b += e0 - a; a = e0; }
    if (b > e1) { a -= b - e1; b = e1; }
    const xs = this.data.x;
    if (lastAtOrBefore(xs, b) - lastAtOrBefore(xs, a) < 1) return;
    this.zoomTo(a, b);
  }
}
