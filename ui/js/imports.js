// "Import a detector" on the life-cycle page (#train): a bring-your-own YOLO detector exported to ONNX,
// its names file and optionally a labelled YOLO set (a zip of images and .txt boxes) go straight to
// storage with upload forms; the API's import job checks, evaluates and registers it (routes_imports.py)
// and the page follows it: the evaluation, or the importer's reason for refusing it, then approval.
import { $, api, describeError, fmt } from "./api.js";
import { el, field, postForm, say } from "./lifecycle.js";

const ACTIVE = ["Uploading", "Queued", "Executing"];
const TEXTS = {
  upload_missing: "A file has not arrived: ",
  unsupported_media_type: "That file cannot be used here: ",
  not_an_image: "The labelled set was refused: ",
  unsafe_zip: "The labelled set was refused: ",
  zip_bomb: "The labelled set was refused: ",
  bad_zip: "The labelled set was refused: ",
  no_images: "The labelled set was refused: ",
  bad_name: "The product class name cannot be used: ",
  import_unavailable: "The import could not be started: ",
  import_limit_reached: "SageMaker cannot start the import now: ",
  import_job_exists: "The import could not be started: ",
};
const KEPT = "The files are kept: press Import detector to start it again without sending them again.";
// `pending`: an import whose files were all sent but which did not start (SageMaker refused it, or the
// request was refused): the same files chosen again start it again without sending them a second time.
// `sent`: the import whose files the last click sent.
const state = { timer: null, names: null, current: null, pending: null, sent: null };

function fail(boxId, error) { say(boxId, describeError(error, TEXTS), true); }

function build(main) {
  main.append(
    el("section", { class: "panel import-panel", "aria-labelledby": "import-title" },
      el("h2", { id: "import-title", text: "Import a detector" }),
      el("p", { class: "hint", text: "An object detector trained elsewhere (Ultralytics YOLOv8 or YOLO11 exported to ONNX, output [1, 4 + classes, anchors]). It is checked, evaluated on your labelled set if you give one, and registered as a detector version to review and approve." }),
      field("Detector (.onnx)", el("input", { id: "import-graph", type: "file", accept: ".onnx" })),
      field("Class names (data.yaml or one name per line)", el("input", { id: "import-names", type: "file", accept: ".yaml,.yml,.txt,.names" }),
        "Optional when the export stored its names in the graph."),
      el("fieldset", { id: "import-anomalous", class: "checks", hidden: "" }, el("legend", { text: "Anomalous classes (a box of one makes the image anomalous)" })),
      field("Anomalous classes", el("input", { id: "import-anomalous-text", type: "text", placeholder: "names or class ids, comma-separated", autocomplete: "off" }),
        "Choose a names file to pick them from a list."),
      field("Labelled set (.zip, optional)", el("input", { id: "import-labelled", type: "file", accept: ".zip,application/zip" }),
        "Images with their YOLO .txt boxes (images/ and labels/, or side by side): mAP@0.5, precision and recall per class before it is registered."),
      field("Product class", el("input", { id: "import-class", type: "text", placeholder: "e.g. switchboard", autocomplete: "off" }),
        "The class_name inspections of this product send."),
      el("button", { id: "import-start", type: "button", text: "Import detector" }),
      el("div", { class: "import-progress" }, el("progress", { id: "import-progress", max: "1", value: "0", hidden: "", "aria-label": "import progress" })),
      el("p", { id: "import-status", class: "hint", role: "status", "aria-live": "polite" }),
      el("div", { id: "import-result", "aria-live": "polite" }),
      el("div", { id: "import-approval", hidden: "" },
        field("Reason", el("textarea", { id: "import-reason", rows: "2", placeholder: "what you checked and why you decide so" })),
        el("div", { class: "buttons" }, el("button", { id: "import-approve", type: "button", text: "Approve" }),
          el("button", { id: "import-reject", type: "button", class: "secondary", text: "Reject" })),
        el("p", { id: "import-approval-status", class: "hint", role: "status", "aria-live": "polite" }))));
}

// ---------------------------------------------------------------------------------- class names

function unquote(text) {
  const t = text.trim();
  return /^(['"]).*\1$/.test(t) ? t.slice(1, -1) : t;
}

// The names of a data.yaml (`names:` as a list or as `id: name`, block or flow style) or of a file
// with one name per line: enough to offer them as choices; the import itself reads the file again.
export function parseNames(text, filename) {
  if (!/\.ya?ml$/i.test(filename)) return text.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  const lines = text.split(/\r?\n/);
  const start = lines.findIndex((l) => /^names\s*:/.test(l));
  if (start < 0) return null;
  const inline = lines[start].replace(/^names\s*:/, "").trim();
  if (inline.startsWith("[")) return inline.replace(/^\[|\]\s*$/g, "").split(",").map(unquote).filter(Boolean);
  if (inline.startsWith("{")) {
    return inline.replace(/^\{|\}\s*$/g, "").split(",").map((p) => p.split(":")).filter((p) => p.length > 1)
      .sort((a, b) => Number(a[0]) - Number(b[0])).map((p) => unquote(p.slice(1).join(":")));
  }
  if (inline) return null;
  const names = [];
  for (const line of lines.slice(start + 1)) {
    if (!line.trim() || line.trim().startsWith("#")) continue;
    if (!/^\s/.test(line)) break;  // the next top-level key
    const item = /^\s+-\s*(.*)$/.exec(line) || /^\s+\d+\s*:\s*(.*)$/.exec(line);
    if (!item) return null;
    names.push(unquote(item[1]));
  }
  return names.length ? names : null;
}

async function readNames() {
  const file = $("import-names").files[0];
  const box = $("import-anomalous");
  for (const label of box.querySelectorAll("label")) label.remove();
  state.names = null;
  if (file) {
    try { state.names = parseNames(await file.text(), file.name); } catch (error) { state.names = null; }
  }
  const listed = Array.isArray(state.names) && state.names.length > 0;
  box.hidden = !listed;
  $("import-anomalous-text").closest(".field").hidden = listed;
  if (!listed) {
    if (file) say("import-status", `The names in ${file.name} could not be listed here; type the anomalous classes instead.`);
    return;
  }
  state.names.forEach((name, index) => {
    const input = el("input", { type: "checkbox", value: name, id: `import-anomalous-${index}`, "data-name": name });
    box.append(el("label", { for: input.id, class: "check" }, input, ` ${name}`));
  });
  say("import-status", `${state.names.length} classes in ${file.name}: tick the anomalous ones.`);
}

function chosenAnomalous() {
  if (!$("import-anomalous").hidden) return [...$("import-anomalous").querySelectorAll("input:checked")].map((i) => i.value);
  return $("import-anomalous-text").value.split(",").map((s) => s.trim()).filter(Boolean);
}

// --------------------------------------------------------------------------------------- import

async function startImport() {
  const graph = $("import-graph").files[0];
  const names = $("import-names").files[0];
  const labelled = $("import-labelled").files[0];
  const className = $("import-class").value.trim();
  const anomalous = chosenAnomalous();
  if (!graph) { say("import-status", "Choose the detector's .onnx file first.", true); return; }
  if (!anomalous.length) { say("import-status", "Choose at least one anomalous class.", true); return; }
  if (!className) { say("import-status", "Name the product class the detector inspects.", true); return; }
  const files = Object.fromEntries(Object.entries({ graph, names, labelled }).filter(([, file]) => file));
  const chosen = signature(files);
  $("import-start").disabled = true;
  $("import-result").innerHTML = "";
  $("import-approval").hidden = true;
  showProgress(0);
  let sent = null;  // the import whose files have all arrived
  try {
    if (state.pending && state.pending.files === chosen) {
      sent = state.pending.id;
      say("import-status", "Starting the import again with the files already sent…");
      showProgress(0.3);
    } else {
      sent = await upload(files);
    }
    state.sent = { id: sent, files: chosen };
    state.pending = null;
    const record = await api("/models/import", { method: "POST", body: JSON.stringify({ import_id: sent, class_name: className, anomalous_classes: anomalous }) });
    follow(record.id);
  } catch (error) {
    $("import-progress").hidden = true;
    fail("import-status", error);
    if (sent) await keepForRetry(sent, chosen, error);
  } finally {
    $("import-start").disabled = false;
  }
}

function signature(files) {
  return JSON.stringify(Object.entries(files).map(([role, file]) => [role, file.name, file.size, file.lastModified]));
}

// Upload forms for the chosen files, each file sent to its form; the import's id once all have arrived.
async function upload(files) {
  const request = Object.fromEntries(Object.entries(files).map(([role, file]) => [role, { filename: file.name, size: file.size }]));
  const started = await api("/models/import/uploads", { method: "POST", body: JSON.stringify(request) });
  const entries = Object.entries(files);
  for (const [index, [role, file]] of entries.entries()) {
    say("import-status", `Uploading ${file.name} (${index + 1} of ${entries.length})…`);
    await postForm(started.targets[role], file);
    showProgress(((index + 1) / entries.length) * 0.3);
  }
  return started.import_id;
}

// An import that did not start but may be started again (never started, or its start refused by
// SageMaker: `retryable`) keeps its files; the page says so and the next click reuses them.
async function keepForRetry(id, chosen, error) {
  let record;
  try { record = await api(`/models/imports/${id}`); } catch (err) { return; }
  if (record.status === "Queued") { follow(id); return; }  // the start did not answer: the API finds out whether it ran
  if (record.status !== "Uploading" && !record.retryable) return;
  state.pending = { id, files: chosen };
  say("import-status", `${describeError(error, TEXTS)} ${KEPT}`, true);
}

function showProgress(value) {
  const bar = $("import-progress");
  bar.hidden = false;
  bar.value = value;
}

async function follow(id) {
  clearTimeout(state.timer);
  let record;
  try {
    record = await api(`/models/imports/${id}`);
  } catch (error) {
    fail("import-status", error);
    return;
  }
  state.current = record;
  $("import-result").dataset.status = record.status;
  if (ACTIVE.includes(record.status)) {
    showProgress(record.status === "Executing" ? 0.6 : 0.4);
    say("import-status", record.status === "Executing"
      ? `Checking the detector${record.files.labelled ? " and evaluating it on the labelled set" : ""}…`
      : "Waiting for the import to start…");
    state.timer = setTimeout(() => follow(id), 1000);
    return;
  }
  $("import-progress").hidden = true;
  if (record.status === "Failed") {
    if (record.retryable && state.sent && state.sent.id === id) state.pending = state.sent;
    say("import-status", `The detector was not imported: ${record.failure_reason}${record.retryable ? ` ${KEPT}` : ""}`, true);
    $("import-result").append(el("p", { class: "error", id: "import-failure", text: record.failure_reason }));
    return;
  }
  say("import-status", `Imported: ${record.registered_version} (${record.version_status}).`);
  showResult(record);
}

function showResult(record) {
  const box = $("import-result");
  const d = record.detector;
  box.append(el("p", { id: "import-version", text: `${record.registered_version}: ${d.names.length} classes, anomalous: ${d.anomalous_classes.join(", ")}; input ${d.input_size}; serves class ${d.classes.join(", ")}.` }));
  const evaluation = record.evaluation;
  if (evaluation) {
    box.append(el("p", { id: "import-map", text: `mAP@0.5 ${fmt(evaluation.mean.map50)} on ${evaluation.images} labelled images (${evaluation.anomalous_images} anomalous); precision and recall at confidence ${evaluation.confidence_cut}.` }));
    const rows = Object.entries(evaluation.labels).map(([name, m]) => el("tr", { "data-label": name },
      ...[name, fmt(m.ap50), fmt(m.precision), fmt(m.recall), String(m.instances)].map((t) => el("td", { text: t }))));
    box.append(el("table", { class: "table metrics", id: "import-evaluation" },
      el("thead", {}, el("tr", {}, ...["Class", "AP@0.5", "Precision", "Recall", "Boxes"].map((t) => el("th", { scope: "col", text: t })))),
      el("tbody", {}, ...rows)));
  } else {
    box.append(el("p", { class: "hint", text: "No labelled set was given: review it with a trial detection before approving." }));
  }
  $("import-approval").hidden = false;
  $("import-approval-status").textContent = "";
}

async function decide(decision) {
  const record = state.current;
  if (!record || !record.registered_version) return;
  const reason = $("import-reason").value.trim();
  if (reason.length < 3) { say("import-approval-status", "Say why (at least a few words): the registry keeps the reason.", true); return; }
  const number = record.registered_version.split("/").pop();
  try {
    const answer = await api(`/versions/detector/${number}/approval`, { method: "POST", body: JSON.stringify({ decision, reason, by: "browser" }) });
    say("import-approval-status", `${answer.version.id} is ${answer.version.status}.`);
    $("import-approval-status").dataset.status = answer.version.status;
  } catch (error) {
    fail("import-approval-status", error);
  }
}

// ----------------------------------------------------------------------------------------- page

export function initImports(main) {
  build(main);
  $("import-names").addEventListener("change", readNames);
  $("import-start").addEventListener("click", startImport);
  $("import-approve").addEventListener("click", () => decide("approve"));
  $("import-reject").addEventListener("click", () => decide("reject"));
}

export function hideImports() { clearTimeout(state.timer); }
