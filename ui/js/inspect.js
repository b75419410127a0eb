// The inspection page: choose class and model, drop images, read the verdict, heatmap and regions.
import { $, api, clearError, showError as show } from "./api.js";
import { feedbackButtons } from "./feedback.js";
import { addHistoryClasses, refreshHistory } from "./history.js";
import { renderModelCards } from "./models.js";

const MAX_IMAGE_BYTES = 4400000;
const IMAGE_TEXTS = {
  payload_too_large: "The image is too large. Send an image of at most 4.4 MB.",
  unsupported_media_type: "That file is not an image IVADAS can read. Send a PNG, JPEG, BMP or TIFF.",
  unknown_class: "This model does not know that product class: ",
};
const state = { models: [], results: [], current: -1, busy: false, rejudgeTimer: null };

function showError(error) { show(error, "error", IMAGE_TEXTS); }

function setBusy(busy, text) {
  state.busy = busy;
  $("busy").hidden = !busy;
  $("busy-text").textContent = text || "Inspecting…";
  document.querySelector(".controls").setAttribute("aria-busy", String(busy));
  for (const id of ["class-select", "model-select", "file-input", "dropzone"]) $(id).disabled = busy;
}

/** The /models listing: the image kinds and their classes for this page, every kind for the model panel. */
export function loadModels(listing) {
  // this page inspects images: the sensor kinds have their own page; kinds never deployed are not offered
  state.models = listing.models.filter((m) => (m.modality || "image") === "image" && (m.available || m.deployed !== false));
  const modelSelect = $("model-select");
  modelSelect.innerHTML = "";
  for (const model of state.models) {
    const option = new Option(model.kind + (model.available ? "" : " (unavailable)"), model.kind);
    option.disabled = !model.available;
    modelSelect.add(option);
  }
  const defaultKind = (listing.defaults && listing.defaults.image) || listing.default;
  const preferred = state.models.find((m) => m.available && m.kind === defaultKind) || state.models.find((m) => m.available);
  if (preferred) modelSelect.value = preferred.kind;
  fillClasses();
  renderModelCards(listing.models.filter((m) => m.available || m.deployed !== false));
}

function selectedModel() { return state.models.find((m) => m.kind === $("model-select").value); }

function fillClasses() {
  const model = selectedModel();
  const classSelect = $("class-select");
  const previous = classSelect.value;
  classSelect.innerHTML = "";
  const classes = model && model.classes ? Object.keys(model.classes).sort() : [];
  for (const name of classes) classSelect.add(new Option(name, name));
  if (classes.includes(previous)) classSelect.value = previous;
  $("model-version").textContent = model ? (model.available ? `Serving ${model.version}` : `Unavailable: ${model.reason}`) : "";
  addHistoryClasses(classes);
}

function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function inspectFiles(files) {
  if (state.busy || !files.length) return;
  clearError();
  const className = $("class-select").value;
  if (!className) { showError({ code: "bad_request", message: "choose a product class first." }); return; }
  setBusy(true);
  try {
    for (const [index, file] of [...files].entries()) {
      $("busy-text").textContent = files.length > 1 ? `Inspecting ${index + 1} of ${files.length}…` : "Inspecting…";
      await inspectFile(file, className);
    }
  } finally {
    setBusy(false);
    refreshHistory();
  }
}

async function inspectFile(file, className) {
  const dataUrl = await readAsDataUrl(file);
  const entry = { name: file.name, dataUrl, className, model: $("model-select").value, result: null, error: null };
  if (file.size > MAX_IMAGE_BYTES) {
    entry.error = { code: "payload_too_large", message: "" };
  } else {
    try {
      entry.result = await requestVerdict(entry, Number($("threshold").value));
    } catch (error) {
      entry.error = error;
    }
  }
  state.results.push(entry);
  showResult(state.results.length - 1);
}

// What the page draws, of what the chosen kind offers: a heatmap and regions, or labelled detections.
const DRAWN_OUTPUTS = ["heatmap", "regions", "detections"];

function requestVerdict(entry, threshold) {
  const model = state.models.find((m) => m.kind === entry.model);
  const offered = (model && model.outputs) || ["heatmap", "regions"];
  const body = { class_name: entry.className, model: entry.model, image_base64: entry.dataUrl.split(",")[1],
                 outputs: DRAWN_OUTPUTS.filter((o) => offered.includes(o)), threshold };
  return api("/predict", { method: "POST", body: JSON.stringify(body) });
}

function showResult(index) {
  state.current = index;
  renderThumbnails();
  const entry = state.results[index];
  if (entry.error) {
    showError(entry.error);
    $("result").hidden = true;
    $("empty-result").hidden = false;
    $("empty-result").textContent = `${entry.name}: not inspected.`;
    return;
  }
  clearError();
  $("empty-result").hidden = true;
  $("result").hidden = false;
  $("photo").src = entry.dataUrl;
  $("photo").alt = `inspected image ${entry.name}`;
  const heatmap = entry.result.heatmap_png_base64;
  $("heatmap").hidden = !heatmap;
  if (heatmap) $("heatmap").src = "data:image/png;base64," + heatmap; else $("heatmap").removeAttribute("src");
  $("photo").onload = () => renderJudgement();
  renderJudgement();
  showFeedback(entry);
}

// Right or wrong: the verified image joins the class's dataset for the next training.
function showFeedback(entry) {
  let bar = $("verdict-feedback");
  if (!bar) {
    bar = document.createElement("div");
    bar.id = "verdict-feedback";
    bar.className = "feedback-bar";
    $("result").append(bar);
  }
  bar.innerHTML = "";
  if (!entry.result || !entry.result.request_id) return;
  bar.append("Was this verdict right? ",
    feedbackButtons({ request_id: entry.result.request_id }, () => entry.dataUrl.split(",")[1]));
}

function renderThumbnails() {
  const container = $("thumbnails");
  container.innerHTML = "";
  state.results.forEach((entry, index) => {
    const button = document.createElement("button");
    button.type = "button";
    button.setAttribute("role", "listitem");
    const verdict = entry.error ? "failed" : (isAnomaly(entry) ? "anomaly" : "normal");
    button.className = "thumb " + verdict;
    button.setAttribute("aria-label", `${entry.name}: ${verdict}`);
    button.setAttribute("aria-current", String(index === state.current));
    const img = document.createElement("img");
    img.src = entry.dataUrl;
    img.alt = "";
    button.append(img);
    button.addEventListener("click", () => showResult(index));
    container.append(button);
  });
}

function threshold() { return Number($("threshold").value); }

function isAnomaly(entry) { return entry.result.anomaly_score >= threshold(); }

function renderJudgement() {
  const entry = state.results[state.current];
  if (!entry || !entry.result) return;
  const result = entry.result;
  const anomaly = isAnomaly(entry);
  const verdict = $("verdict");
  verdict.className = "verdict " + (anomaly ? "anomaly" : "normal");
  verdict.textContent = anomaly ? "ANOMALY" : "NORMAL";
  verdict.dataset.verdict = anomaly ? "anomaly" : "normal";
  $("gauge-fill").style.width = (result.anomaly_score * 100).toFixed(1) + "%";
  $("gauge-fill").className = "gauge-fill" + (anomaly ? " anomaly" : "");
  $("gauge-threshold").style.left = `calc(${(threshold() * 100).toFixed(1)}% - 1px)`;
  $("score-text").textContent = `score ${result.anomaly_score.toFixed(3)} vs threshold ${threshold().toFixed(2)} · ${result.model.kind} ${result.model.version}`;
  $("heatmap").style.opacity = $("opacity").value;
  drawRegions(result);
  renderThumbnails();
}

function visibleRegions(result) { return (result.regions || []).filter((r) => r.score >= threshold()); }

function visibleDetections(result) { return (result.detections || []).filter((d) => d.confidence >= threshold()); }

function drawRegions(result) {
  if (result.detections) { drawDetections(result); return; }
  const photo = $("photo");
  const canvas = $("boxes");
  const width = photo.naturalWidth || 1, height = photo.naturalHeight || 1;
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, width, height);
  const regions = visibleRegions(result);
  context.lineWidth = Math.max(2, Math.round(width / 200));
  context.strokeStyle = "#ff1744";
  context.fillStyle = "#ff1744";
  context.font = `${Math.max(12, Math.round(width / 30))}px sans-serif`;
  for (const region of regions) {
    const [x0, y0, x1, y1] = region.box;
    context.strokeRect(x0, y0, x1 - x0, y1 - y0);
    context.fillText(region.score.toFixed(2), x0 + 3, Math.max(y0 - 4, 12));
  }
  canvas.dataset.boxes = String(regions.length);
  canvas.dataset.labels = "";
  $("regions-text").textContent = regions.length
    ? `${regions.length} region${regions.length > 1 ? "s" : ""} above the threshold: ` + regions.map((r) => `[${r.box.join(", ")}] ${r.score.toFixed(2)}`).join("; ")
    : "No region above the threshold.";
}

// A detector's boxes, labelled with class and confidence: red for the classes that make an image
// anomalous, green for the others. The threshold is the confidence cut.
function drawDetections(result) {
  const photo = $("photo");
  const canvas = $("boxes");
  const width = photo.naturalWidth || 1, height = photo.naturalHeight || 1;
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, width, height);
  const detections = visibleDetections(result);
  const size = Math.max(12, Math.round(width / 40));
  context.lineWidth = Math.max(2, Math.round(width / 250));
  context.font = `${size}px sans-serif`;
  context.textBaseline = "top";
  const placed = [];  // labels already drawn: a label that would cover one moves down a line
  for (const detection of detections) {
    const [x0, y0, x1, y1] = detection.box;
    const colour = detection.anomalous ? "#ff1744" : "#00c853";
    const text = `${detection.label} ${detection.confidence.toFixed(2)}`;
    context.strokeStyle = colour;
    context.strokeRect(x0, y0, x1 - x0, y1 - y0);
    const labelWidth = context.measureText(text).width + 6;
    let top = y0 - size - 4 >= 0 ? y0 - size - 4 : y0;  // above the box, or inside it at the image's top
    while (placed.some((p) => x0 < p.x + p.w && p.x < x0 + labelWidth && top < p.y + size + 4 && p.y < top + size + 4)) {
      top += size + 4;
    }
    placed.push({ x: x0, y: top, w: labelWidth });
    context.fillStyle = colour;
    context.fillRect(x0, top, labelWidth, size + 4);
    context.fillStyle = "#000";
    context.fillText(text, x0 + 3, top + 2);
  }
  canvas.dataset.boxes = String(detections.length);
  canvas.dataset.labels = detections.map((d) => d.label).join("|");
  $("regions-text").textContent = detections.length
    ? `${detections.length} detection${detections.length > 1 ? "s" : ""} at or above the confidence threshold: `
      + detections.map((d) => `${d.label}${d.anomalous ? " (anomalous)" : ""} ${d.confidence.toFixed(2)} [${d.box.map((v) => Math.round(v)).join(", ")}]`).join("; ")
    : "No detection at or above the confidence threshold.";
}

// Regions were computed at the request's threshold: a higher threshold only filters them on the
// client; a lower one may reveal regions the server did not return, so ask again (debounced).
function onThresholdChange() {
  $("threshold-value").textContent = threshold().toFixed(2);
  const entry = state.results[state.current];
  if (!entry || !entry.result) return;
  renderJudgement();
  if (threshold() < entry.result.threshold) {
    clearTimeout(state.rejudgeTimer);
    state.rejudgeTimer = setTimeout(async () => {
      try {
        setBusy(true, "Re-judging…");
        entry.result = await requestVerdict(entry, threshold());
        renderJudgement();
      } catch (error) {
        showError(error);
      } finally {
        setBusy(false);
      }
    }, 400);
  }
}


export function initInspect() {
  const dropzone = $("dropzone");
  const input = $("file-input");
  dropzone.addEventListener("click", () => { if (!state.busy) input.click(); });  // a button: Enter and Space click it
  dropzone.addEventListener("dragover", (event) => { event.preventDefault(); dropzone.classList.add("dragover"); });
  dropzone.addEventListener("dragleave", () => dropzone.classList.remove("dragover"));
  dropzone.addEventListener("drop", (event) => {
    event.preventDefault();
    dropzone.classList.remove("dragover");
    inspectFiles([...event.dataTransfer.files]);
  });
  input.addEventListener("change", () => { inspectFiles([...input.files]); input.value = ""; });
  $("model-select").addEventListener("change", fillClasses);
  $("threshold").addEventListener("input", onThresholdChange);
  $("opacity").addEventListener("input", () => {
    $("opacity-value").textContent = Math.round($("opacity").value * 100) + "%";
    $("heatmap").style.opacity = $("opacity").value;
  });
}
