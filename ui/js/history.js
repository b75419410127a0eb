// The inspection history: newest first, filtered by class (or asset) and verdict. Images and sensor
// windows share the log; a sensor record says what an engineer looks for (rows, events, the sensors
// that drove the score), an image record where its score came from.
import { $, api, showError } from "./api.js";
import { timeText } from "./chart.js";
import { feedbackButtons } from "./feedback.js";

const modalities = new Map(); // model kind → "image" | "sensors"

export function setKindModalities(models) {
  for (const model of models || []) modalities.set(model.kind, model.modality || "image");
}

// Only a sample of normal verdicts keeps its image (keepNormalImagesPercent on AWS): without it
// there is nothing to add to a dataset, so the verdict is verified on the inspect page instead.
function imageNotKept() {
  const hint = document.createElement("span");
  hint.className = "hint";
  hint.textContent = "image not kept: verify it on the inspect page";
  return hint;
}

function isSensorRecord(item) {
  const known = modalities.get(item.model_kind);
  if (known) return known === "sensors";
  return Boolean(item.detail && ("rows" in item.detail || "events" in item.detail));
}

function sensorDetails(item) {
  const detail = item.detail || {};
  const events = detail.events || [];
  const parts = [];
  const source = item.request_id && item.request_id.startsWith("feed-") ? "feed file" : "window";
  parts.push(detail.rows !== undefined ? `${source} of ${detail.rows} rows` : source);
  parts.push(`${events.length} event${events.length === 1 ? "" : "s"}`);
  if (detail.peak_at !== undefined && detail.peak_at !== null) {
    // a window without timestamps reports its peak as a row (at most 10,000); with them, as a time
    const row = typeof detail.peak_at === "number" && detail.peak_at < 1e6;
    parts.push(`peak ${row ? `row ${detail.peak_at + 1}` : timeText(detail.peak_at) + " UTC"}`);
  }
  const top = (detail.contributions || []).slice(0, 3).map((c) => `${c.sensor} ${Math.round(c.share * 100)} %`);
  const cell = document.createElement("span");
  cell.textContent = parts.join(" · ");
  if (top.length) {
    const sensors = document.createElement("span");
    sensors.className = "hint history-top";
    sensors.textContent = "top sensors: " + top.join(", ");
    cell.append(document.createElement("br"), sensors);
  }
  return cell;
}

export async function refreshHistory() {
  const params = new URLSearchParams({ limit: "25" });
  if ($("history-class").value) params.set("class_name", $("history-class").value);
  if ($("history-verdict").value) params.set("verdict", $("history-verdict").value);
  try {
    const { inspections } = await api("/inspections?" + params.toString());
    const rows = $("history-rows");
    rows.innerHTML = "";
    for (const item of inspections) {
      const sensors = isSensorRecord(item);
      const row = rows.insertRow();
      row.dataset.modality = sensors ? "sensors" : "image";
      row.insertCell().textContent = new Date(item.timestamp).toLocaleString();
      row.insertCell().textContent = item.class_name;
      row.insertCell().textContent = `${item.model_kind} ${item.model_version}`;
      row.insertCell().textContent = Number(item.anomaly_score).toFixed(3);
      const tag = document.createElement("span");
      tag.className = "tag " + (item.is_anomaly ? "anomaly" : "normal");
      tag.textContent = item.is_anomaly ? "anomaly" : "normal";
      row.insertCell().append(tag);
      const details = row.insertCell();
      if (sensors) details.append(sensorDetails(item));
      else if (item.image_key) details.append("image ", feedbackButtons({ request_id: item.request_id, timestamp: item.timestamp }));
      else details.append(imageNotKept());
    }
    if (!inspections.length) {
      const cell = rows.insertRow().insertCell();
      cell.colSpan = 6;
      cell.textContent = "No inspections yet.";
    }
  } catch (error) {
    showError(error);
  }
}

export function addHistoryClasses(classes) {
  const historyClass = $("history-class");
  const known = new Set([...historyClass.options].map((o) => o.value));
  for (const name of classes) if (!known.has(name)) historyClass.add(new Option(name, name));
}

export function initHistory() {
  $("history-refresh").addEventListener("click", refreshHistory);
  $("history-class").addEventListener("change", refreshHistory);
  $("history-verdict").addEventListener("change", refreshHistory);
}
