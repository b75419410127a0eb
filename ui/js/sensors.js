// The sensors page: per asset, a live chart of the sensors with the anomaly score and the events,
// the event list with the sensors that drove each event, the feed's status, and a "try a window"
// panel that scores a CSV file through POST /predict.
import { $, api, clearError, showError } from "./api.js";
import { SeriesChart, formatDuration, formatReading, formatTime, parseTime, sensorColour, timeText } from "./chart.js";
import { CsvError, parseSensorCsv } from "./csv.js";
import { addHistoryClasses } from "./history.js";

export const POLL_MS = 2000;
// the model listing is asked for again this often, and sooner (not more often than MODELS_RETRY_MS)
// when it does not explain what the feed shows: no model for the asset, or another version at work
const MODELS_REFRESH_MS = 60000;
const MODELS_RETRY_MS = 10000;
const MAX_ROWS = 20000;
const MAX_FILE_BYTES = 20 * 1024 * 1024;
const SENSOR_TEXTS = {
  unknown_class: "This model does not serve that asset: ",
  unknown_asset: "Nothing has been scored for this asset yet: ",
  bad_request: "The window was not accepted: ",
  payload_too_large: "The window is too large: ",
  sensors_unavailable: "Sensor results are not available from this deployment: ",
  unsupported_media_type: "This model does not take sensor windows: ",
};

const state = {
  models: [], // sensor kinds that serve something
  defaultKind: null,
  assets: new Map(), // asset → its /assets entry
  asset: "",
  wanted: "", // the asset named in the address (#sensors/<asset>), chosen once it is known
  limit: 2000,
  visible: false,
  timer: null,
  generation: 0,
  signature: null, // what the last series fetch saw of the selected asset
  series: null,
  events: [],
  selected: null,
  pendingZoom: null,
  hidden: new Map(), // asset → Set of hidden sensors
  chart: null,
  windowChart: null,
  busy: false,
  modelsAt: 0, // when the model listing was last had (Date.now())
  modelsLoading: false,
};

// ------------------------------------------------------------------------------------ helpers

/** x positions of labelled rows: times when every label is one and they increase, else row numbers. */
function positions(labels, count = labels ? labels.length : 0) {
  if (labels && labels.length) {
    const times = labels.map(parseTime);
    if (times.every((t, i) => t !== null && (i === 0 || t > times[i - 1]))) return { x: times, xKind: "time" };
  }
  return { x: Array.from({ length: count }, (_, i) => i + 1), xKind: "row" }; // rows counted from 1, as people count them
}

function eventSpan(event, xKind, x) {
  if (xKind === "row") {
    const a = typeof event.start_row === "number" ? event.start_row : Number(event.start);
    const b = typeof event.end_row === "number" ? event.end_row : Number(event.end);
    return [x[a] ?? a + 1, x[b] ?? b + 1];
  }
  const x0 = typeof event.start_s === "number" ? event.start_s * 1000 : parseTime(event.start);
  const x1 = typeof event.end_s === "number" ? event.end_s * 1000 : parseTime(event.end);
  return [x0, x1];
}

const eventKey = (event) => String(event.start);
const pct = (share) => `${Math.round(share * 100)} %`;

function sensorOrder() {
  if (state.series) return state.series.sensors;
  const model = servingModel(state.asset);
  return model ? model.classes[state.asset].sensors : [];
}

function colourOf(sensor) {
  const index = sensorOrder().indexOf(sensor);
  return index >= 0 ? sensorColour(index) : "#4a5568";
}

function hiddenSensors() {
  if (!state.hidden.has(state.asset)) state.hidden.set(state.asset, new Set());
  return state.hidden.get(state.asset);
}

/** The sensor models able to score `asset`, default kind first. */
function modelsFor(asset) {
  const serving = state.models.filter((m) => m.available && m.classes && m.classes[asset]);
  return serving.sort((a, b) => (b.kind === state.defaultKind) - (a.kind === state.defaultKind));
}

function servingModel(asset) { return modelsFor(asset)[0] || null; }

/** Sensor-share bars: one list item per sensor, its share as text and as a bar in the sensor's colour. */
function renderBars(list, items, withValues = false) {
  list.replaceChildren();
  for (const item of items) {
    const li = document.createElement("li");
    const name = document.createElement("span");
    name.className = "bar-name";
    name.textContent = item.sensor;
    name.title = item.sensor;
    const track = document.createElement("span");
    track.className = "bar-track";
    track.setAttribute("aria-hidden", "true");
    const fill = document.createElement("span");
    fill.className = "bar-fill";
    fill.style.width = Math.max(0, Math.min(100, item.share * 100)).toFixed(1) + "%";
    fill.style.background = colourOf(item.sensor);
    track.append(fill);
    const value = document.createElement("span");
    value.className = "bar-value";
    value.textContent = pct(item.share) + (withValues && item.value !== undefined ? ` · reading ${formatReading(item.value)}` : "");
    li.append(name, track, value);
    li.dataset.sensor = item.sensor;
    list.append(li);
  }
}

// ------------------------------------------------------------------------------------ models and assets

/** The /models listing: which sensor kinds serve which assets. */
export function setSensorModels(listing) {
  state.models = (listing.models || []).filter((m) => m.modality === "sensors");
  state.defaultKind = (listing.defaults && listing.defaults.sensors) || null;
  state.modelsAt = Date.now();
  fillAssets();
  renderModelLine();
  fillWindowModels();
}

function modelsStale(entry) {
  const age = Date.now() - state.modelsAt;
  if (age >= MODELS_REFRESH_MS) return true;
  if (age < MODELS_RETRY_MS || !state.asset) return false;
  const serving = servingModel(state.asset);
  if (!serving) return true; // approved since, or the listing could not reach the model then
  return Boolean(entry && entry.model && entry.model.kind === serving.kind && entry.model.version !== serving.version);
}

/** The model listing again, in the background (a slow listing never holds the live chart up). */
async function refreshModels() {
  if (state.modelsLoading) return;
  state.modelsLoading = true;
  try {
    setSensorModels(await api("/models"));
  } catch (error) {
    state.modelsAt = Date.now(); // tried: the next attempt waits its turn
  } finally {
    state.modelsLoading = false;
  }
}

function fillAssets() {
  const names = new Set(state.assets.keys());
  for (const model of state.models) if (model.available && model.classes) Object.keys(model.classes).forEach((a) => names.add(a));
  const sorted = [...names].sort();
  const select = $("asset-select");
  const current = sorted.includes(state.wanted) ? state.wanted : (state.asset || select.value);
  if (sorted.includes(state.wanted)) state.wanted = "";
  const existing = [...select.options].map((o) => o.value);
  if (existing.join("\n") !== sorted.join("\n")) {
    select.replaceChildren(...sorted.map((name) => new Option(name, name)));
    addHistoryClasses(sorted);
  }
  if (!sorted.length) {
    select.disabled = true;
    state.asset = "";
    $("asset-model").textContent = "";
    state.chart.setEmpty(state.models.some((m) => m.available)
      ? "No asset has a sensor model yet."
      : "No sensor model is deployed yet. Train one (ivadas pipeline run --model pca ...) and approve it to see machines here.");
    renderEvents();
    return;
  }
  select.disabled = false;
  // keep the choice; else the first asset with results; else the first one
  const withResults = sorted.find((a) => (state.assets.get(a) || {}).results);
  const chosen = sorted.includes(current) ? current : (withResults || sorted[0]);
  select.value = chosen;
  if (chosen !== state.asset) chooseAsset(chosen, false);
}

/** Show `asset`; `load`: fetch its readings now (not when called from a poll, which loads them next). */
function chooseAsset(asset, load = true) {
  state.asset = asset;
  state.series = null;
  state.events = [];
  state.selected = null;
  state.signature = null;
  state.pendingZoom = null;
  state.chart.resetZoom();
  state.chart.select(null);
  state.chart.setEmpty("Loading…");
  renderLegend();
  renderEvents();
  renderStatus();
  renderModelLine();
  fillWindowModels();
  $("try-result").hidden = true;
  clearError("try-error");
  if (state.visible && location.hash.startsWith("#sensors")) history.replaceState(null, "", "#sensors/" + encodeURIComponent(asset));
  if (load && state.visible) poll(true);
}

function renderModelLine() {
  if (!state.asset) { $("asset-model").textContent = ""; return; }
  const model = servingModel(state.asset);
  const entry = model && model.classes[state.asset];
  $("asset-model").textContent = model
    ? `Scored by ${model.kind} ${model.version} · ${entry.sensors.length} sensors · threshold ${Number(entry.threshold ?? 0.5).toFixed(2)}`
    : "No sensor model serves this asset now: its past results are shown.";
}

function renderStatus() {
  const entry = state.assets.get(state.asset);
  const set = (id, text, className = "") => { $(id).textContent = text; $(id).className = className; };
  if (!entry) {
    for (const id of ["status-last", "status-score", "status-results", "status-waiting", "status-failed"]) set(id, id === "status-results" ? "0" : "n/a");
    set("status-event", "nothing scored yet");
    $("status-failed-hint").hidden = true;
    return;
  }
  const ongoing = state.events.find((e) => e.ongoing);
  if (entry.ongoing_event) {
    set("status-event", ongoing ? `ongoing since ${timeText(ongoing.start)}` : "ongoing", "tag anomaly");
  } else {
    set("status-event", entry.results ? "none ongoing" : "nothing scored yet", entry.results ? "tag normal" : "");
  }
  set("status-last", entry.last_reading ? timeText(entry.last_reading) + " UTC" : "n/a");
  const threshold = state.series ? state.series.threshold : 0.5;
  if (entry.last_score === null || entry.last_score === undefined) set("status-score", "n/a");
  else set("status-score", `${entry.last_score.toFixed(3)} (threshold ${Number(threshold).toFixed(2)})`, entry.last_score >= threshold ? "bad-text" : "");
  set("status-results", String(entry.results));
  set("status-waiting", String(entry.waiting_files));
  set("status-failed", String(entry.failed_files), entry.failed_files ? "bad-text" : "");
  const hint = $("status-failed-hint");
  hint.hidden = !entry.failed_files;
  hint.textContent = entry.failed_files
    ? `${entry.failed_files} file${entry.failed_files > 1 ? "s" : ""} could not be scored. ${entry.failed_files > 1 ? "They are" : "It is"} kept under sensors/${state.asset}/failed/, each beside a .error.json saying why.`
    : "";
}

// ------------------------------------------------------------------------------------ polling

function signatureOf(entry) {
  return entry ? [entry.results, entry.last_reading, entry.waiting_files, entry.failed_files, entry.ongoing_event].join("|") : "none";
}

async function poll(force = false) {
  clearTimeout(state.timer);
  const generation = ++state.generation;
  try {
    const { assets } = await api("/assets");
    if (generation !== state.generation) return;
    state.assets = new Map(assets.map((entry) => [entry.asset, entry]));
    clearError("sensors-error");
    fillAssets();
    const entry = state.assets.get(state.asset);
    if (modelsStale(entry)) refreshModels();
    const signature = signatureOf(entry);
    if (state.asset && (force || signature !== state.signature)) {
      await loadSeries(generation, entry);
      state.signature = signature;
    }
    renderStatus();
    $("live-status").textContent = `Last checked ${new Date().toLocaleTimeString()} (this computer's clock).`;
  } catch (error) {
    if (generation !== state.generation) return;
    showError(error.status === 404 || error.status === 403
      ? { code: "sensors_unavailable", message: `this deployment does not serve /assets (HTTP ${error.status})` }
      : error, "sensors-error", SENSOR_TEXTS);
  } finally {
    if (generation === state.generation) schedule();
  }
}

function schedule() {
  clearTimeout(state.timer);
  if (state.visible && $("live").checked && !document.hidden) state.timer = setTimeout(() => poll(), POLL_MS);
}

async function loadSeries(generation, entry) {
  const asset = state.asset;
  if (!entry || !entry.results) {
    state.series = null;
    state.events = [];
    state.chart.setEmpty(`Nothing has been scored for ${asset} yet. Files dropped under sensors/${asset}/incoming/ are scored as they arrive; or try a window below.`);
    renderLegend();
    renderEvents();
    $("chart-summary").textContent = "";
    return;
  }
  const [series, listing] = await Promise.all([
    api(`/assets/${encodeURIComponent(asset)}/series?limit=${state.limit}`),
    api(`/assets/${encodeURIComponent(asset)}/events`),
  ]);
  if (generation !== state.generation || asset !== state.asset) return;
  state.series = series;
  state.events = listing.events;
  drawSeries();
  renderLegend();
  renderEvents();
  if (state.pendingZoom) {
    const key = state.pendingZoom;
    state.pendingZoom = null;
    zoomToEvent(key, false);
  }
}

function drawSeries() {
  const s = state.series;
  const { x, xKind } = positions(s.timestamps);
  const events = s.events.map((event) => {
    const [x0, x1] = eventSpan(event, xKind, x);
    return { key: eventKey(event), x0, x1, ongoing: event.ongoing };
  }).filter((e) => e.x0 !== null && e.x1 !== null);
  state.chart.setData({ x, xKind, labels: s.timestamps, sensors: s.sensors, values: s.values, scores: s.scores, threshold: s.threshold, events });
  state.chart.setHidden(hiddenSensors());
  const scored = s.scores.filter((v) => v !== null);
  const first = s.timestamps[0], last = s.timestamps[s.timestamps.length - 1];
  $("chart-summary").textContent = s.timestamps.length
    ? `${s.timestamps.length.toLocaleString()} readings of ${s.sensors.length} sensors from ${timeText(first)} to ${timeText(last)} UTC; ` +
      `${events.length} event${events.length === 1 ? "" : "s"} in this span; highest score ${scored.length ? Math.max(...scored).toFixed(3) : "n/a"}; ${s.model.kind} ${s.model.version}.`
    : "No readings yet.";
  $("chart-reset").disabled = state.chart.root.dataset.view !== "zoomed";
}

// ------------------------------------------------------------------------------------ legend and events

function renderLegend() {
  const container = $("legend-items");
  const sensors = sensorOrder();
  const hidden = hiddenSensors();
  container.replaceChildren();
  sensors.forEach((sensor, index) => {
    const label = document.createElement("label");
    label.className = "legend-item";
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = !hidden.has(sensor);
    box.dataset.sensor = sensor;
    box.addEventListener("change", () => {
      if (box.checked) hidden.delete(sensor); else hidden.add(sensor);
      state.chart.setHidden(hidden);
    });
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = sensorColour(index);
    swatch.setAttribute("aria-hidden", "true");
    label.append(box, swatch, sensor);
    container.append(label);
  });
}

function renderEvents() {
  const rows = $("event-rows");
  rows.replaceChildren();
  $("events-count").textContent = state.asset ? `(${state.events.length})` : "";
  if (!state.events.length) {
    const cell = rows.insertRow().insertCell();
    cell.colSpan = 5;
    cell.textContent = state.series ? "No events: no score has reached the threshold." : "No events yet.";
    return;
  }
  for (const event of state.events) {
    const key = eventKey(event);
    const row = rows.insertRow();
    row.dataset.key = key;
    const selected = key === state.selected;
    row.classList.toggle("selected", selected);
    const button = document.createElement("button");
    button.type = "button";
    button.className = "link";
    button.textContent = timeText(event.start);
    if (selected) button.setAttribute("aria-current", "true");
    button.setAttribute("aria-label", `Show the event from ${timeText(event.start)} to ${timeText(event.end)} in the chart`);
    button.addEventListener("click", () => selectEvent(key, true));
    row.insertCell().append(button);
    const end = row.insertCell();
    end.textContent = event.ongoing ? "" : timeText(event.end);
    if (event.ongoing) {
      const tag = document.createElement("span");
      tag.className = "tag anomaly";
      tag.textContent = "ongoing";
      end.append(tag);
    }
    const duration = event.duration_s ?? ((parseTime(event.end) - parseTime(event.start)) / 1000);
    row.insertCell().textContent = duration === 0 ? "one reading" : formatDuration(duration);
    const peak = row.insertCell();
    peak.textContent = Number(event.peak_score).toFixed(3);
    peak.title = `at ${timeText(event.peak_at)} UTC`;
    const list = document.createElement("ol");
    list.className = "bars compact";
    renderBars(list, event.top_sensors || []);
    row.insertCell().append(list);
  }
}

function selectEvent(key, fromList) {
  state.selected = key;
  state.chart.select(key);
  renderEvents();
  if (fromList) zoomToEvent(key, true);
  else {
    const row = [...$("event-rows").rows].find((r) => r.dataset.key === key);
    if (row) row.scrollIntoView({ block: "nearest" });
  }
}

/** Zoom the chart onto an event, loading older readings first when it lies before those shown. */
function zoomToEvent(key, allowLoad) {
  const event = state.events.find((e) => eventKey(e) === key);
  const s = state.series;
  if (!event || !s || !s.timestamps.length) return;
  const chart = state.chart;
  const { x, xKind } = positions(s.timestamps);
  const [x0, x1] = eventSpan(event, xKind, x);
  if (x0 === null || x1 === null) return;
  if (x0 < x[0]) {
    if (allowLoad && state.limit < MAX_ROWS) {
      state.limit = MAX_ROWS;
      $("rows-select").value = String(MAX_ROWS);
      state.pendingZoom = key;
      $("chart-summary").textContent = "Loading older readings for this event…";
      poll(true);
      return;
    }
    $("chart-summary").textContent = `This event (${timeText(event.start)}) is older than the ${s.timestamps.length.toLocaleString()} readings shown.`;
    return;
  }
  const step = x.length > 1 ? (x[x.length - 1] - x[0]) / (x.length - 1) : 1;
  const margin = Math.max((x1 - x0) * 1.5, step * 24);
  chart.zoomTo(Math.max(x[0], x0 - margin), Math.min(x[x.length - 1], x1 + margin));
  $("chart-reset").disabled = false;
  const panel = document.querySelector(".chart-panel");
  const box = panel.getBoundingClientRect();
  if (box.top < 0 || box.bottom > window.innerHeight + box.height / 2) panel.scrollIntoView({ block: "nearest" });
}

// ------------------------------------------------------------------------------------ try a window

function fillWindowModels() {
  const select = $("sensor-model-select");
  const previous = select.value;
  const models = modelsFor(state.asset);
  select.replaceChildren(...models.map((m) => new Option(`${m.kind} ${m.version}`, m.kind)));
  if (models.some((m) => m.kind === previous)) select.value = previous;
  select.disabled = !models.length;
  $("csv-choose").disabled = !models.length || state.busy;
  if (!models.length) select.add(new Option(state.asset ? `no model serves ${state.asset}` : "no sensor model", ""));
}

function setTryBusy(busy) {
  state.busy = busy;
  $("try-busy").hidden = !busy;
  document.querySelector(".try-panel").setAttribute("aria-busy", String(busy));
  $("csv-choose").disabled = busy || !modelsFor(state.asset).length;
}

async function tryWindow(file) {
  if (state.busy || !file) return;
  clearError("try-error");
  $("try-result").hidden = true;
  const asset = state.asset;
  const kind = $("sensor-model-select").value;
  if (!asset || !kind) { showError({ code: "bad_request", message: "choose an asset with a sensor model first." }, "try-error", SENSOR_TEXTS); return; }
  if (file.size > MAX_FILE_BYTES) {
    showError({ code: "payload_too_large", message: `${file.name} is ${(file.size / 1048576).toFixed(1)} MB; send a window of at most 10,000 rows.` }, "try-error", SENSOR_TEXTS);
    return;
  }
  setTryBusy(true);
  $("try-busy-text").textContent = `Scoring ${file.name}…`;
  try {
    let parsed;
    try {
      parsed = parseSensorCsv(await file.text());
    } catch (error) {
      if (error instanceof CsvError) throw { code: "csv", message: `${file.name}: ${error.message}.` };
      throw error;
    }
    const body = { class_name: asset, model: kind, window: parsed.window, sensors: parsed.sensors, outputs: ["contributions", "events", "scores"] };
    if (parsed.timestamps) body.timestamps = parsed.timestamps;
    const result = await api("/predict", { method: "POST", body: JSON.stringify(body) });
    showWindowResult(result, parsed, file.name);
  } catch (error) {
    showError(error, "try-error", SENSOR_TEXTS);
    $("try-error").dataset.file = file.name;
  } finally {
    setTryBusy(false);
  }
}

/** The scored window in a chart of its own: its readings, its scores and its events. */
function drawWindow(result, parsed) {
  const order = sensorOrder();
  const sensors = [...order.filter((s) => parsed.sensors.includes(s)), ...parsed.sensors.filter((s) => !order.includes(s))];
  const columns = sensors.map((s) => parsed.sensors.indexOf(s));
  const { x, xKind } = positions(parsed.timestamps, parsed.window.length);
  const rows = parsed.window.map((row) => columns.map((c) => row[c]));
  const events = (result.events || []).map((event) => {
    const [x0, x1] = eventSpan(event, xKind, x);
    return { key: eventKey(event), x0, x1, ongoing: event.ongoing };
  }).filter((e) => e.x0 !== null && e.x1 !== null);
  state.windowChart.resetZoom();
  state.windowChart.setData({ x, xKind, labels: parsed.timestamps, sensors, values: rows,
                              scores: result.scores || rows.map(() => null), threshold: result.threshold, events,
                              colours: sensors.map((s) => colourOf(s)) });
}

function showWindowResult(result, parsed, name) {
  const anomaly = result.is_anomaly;
  const verdict = $("try-verdict");
  verdict.className = "verdict " + (anomaly ? "anomaly" : "normal");
  verdict.textContent = anomaly ? "ANOMALY" : "NORMAL";
  verdict.dataset.verdict = anomaly ? "anomaly" : "normal";
  const peak = result.peak_at === null || result.peak_at === undefined ? "" : ` at ${typeof result.peak_at === "number" && !parsed.timestamps ? `row ${result.peak_at + 1}` : timeText(result.peak_at) + " UTC"}`;
  const events = result.events || [];
  const context = result.scored_rows !== undefined && result.scored_rows < result.rows ? ` (the first ${result.rows - result.scored_rows} fill the model's context)` : "";
  $("try-words").textContent = (anomaly
    ? `${result.class_name} was anomalous in ${name}: the score peaked at ${result.anomaly_score.toFixed(3)}${peak}, above the threshold ${result.threshold.toFixed(2)}; ${events.length} event${events.length === 1 ? "" : "s"}.`
    : `${result.class_name} looked normal in ${name}: the highest score was ${result.anomaly_score.toFixed(3)}${peak}, below the threshold ${result.threshold.toFixed(2)}.`) +
    ` ${result.rows} rows scored${context} by ${result.model.kind} ${result.model.version}.`;
  drawWindow(result, parsed);
  renderBars($("try-contributions"), result.contributions || [], true);
  const list = $("try-events");
  list.replaceChildren();
  for (const event of events) {
    const item = document.createElement("li");
    const head = document.createElement("p");
    const from = parsed.timestamps ? timeText(event.start) : `row ${Number(event.start) + 1}`;
    const to = parsed.timestamps ? timeText(event.end) : `row ${Number(event.end) + 1}`;
    const duration = event.duration_s !== undefined ? ` (${event.duration_s === 0 ? "one reading" : formatDuration(event.duration_s)})` : "";
    head.textContent = `${from} → ${to}${duration}, peak ${Number(event.peak_score).toFixed(3)}${event.ongoing ? ", still going at the window's end" : ""}`;
    const bars = document.createElement("ol");
    bars.className = "bars compact";
    renderBars(bars, event.top_sensors || []);
    item.append(head, bars);
    list.append(item);
  }
  if (!events.length) {
    const item = document.createElement("li");
    item.textContent = "None: no row reached the threshold.";
    list.append(item);
  }
  $("try-result").hidden = false;
  $("try-result").dataset.events = String(events.length);
}

// ------------------------------------------------------------------------------------ page

export function initSensors() {
  state.chart = new SeriesChart($("sensor-chart"), {
    label: "Sensor readings and anomaly score over time",
    onSelectEvent: (key) => selectEvent(key, false),
    onCursor: (text) => { $("chart-readout").textContent = text; },
  });
  state.windowChart = new SeriesChart($("window-chart"), { label: "The window's readings and anomaly score", sensorsHeight: 120, scoreHeight: 70 });
  const chartRoot = $("sensor-chart");
  new MutationObserver(() => { $("chart-reset").disabled = chartRoot.dataset.view !== "zoomed"; })
    .observe(chartRoot, { attributes: true, attributeFilter: ["data-view"] });
  $("chart-reset").addEventListener("click", () => state.chart.resetZoom());
  $("asset-select").addEventListener("change", () => chooseAsset($("asset-select").value));
  $("rows-select").addEventListener("change", () => { state.limit = Number($("rows-select").value); poll(true); });
  $("live").addEventListener("change", () => {
    if ($("live").checked) poll(true);
    else { clearTimeout(state.timer); $("live-status").textContent = "Live updates paused."; }
  });
  document.addEventListener("visibilitychange", () => { if (state.visible && !document.hidden && $("live").checked) poll(); });
  const input = $("csv-input");
  const choose = $("csv-choose");
  choose.addEventListener("click", () => { if (!state.busy) input.click(); });
  choose.addEventListener("dragover", (event) => { event.preventDefault(); choose.classList.add("dragover"); });
  choose.addEventListener("dragleave", () => choose.classList.remove("dragover"));
  choose.addEventListener("drop", (event) => {
    event.preventDefault();
    choose.classList.remove("dragover");
    tryWindow(event.dataTransfer.files[0]);
  });
  input.addEventListener("change", () => { tryWindow(input.files[0]); input.value = ""; });
  fillWindowModels();
}

/** The page is shown (`asset` from the address, #sensors/<asset>). */
export function showSensors(asset) {
  state.visible = true;
  if (asset && asset !== state.asset && [...$("asset-select").options].some((o) => o.value === asset)) {
    $("asset-select").value = asset;
    chooseAsset(asset);
    return;
  }
  if (asset && asset !== state.asset) state.wanted = asset;  // not known yet: chosen when /assets names it
  poll(true);
}

export function hideSensors() {
  state.visible = false;
  state.generation++;
  clearTimeout(state.timer);
}

