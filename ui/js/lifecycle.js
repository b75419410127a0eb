// The model life cycle page (#train): datasets per class (a zip or single images, uploaded straight to
// storage with upload forms), trainings with live progress, the evaluation report, approval with a
// reason, trial detections, and how many verified images wait for the next training.
import { $, api, describeError, fmt } from "./api.js";
import { feedbackButtons, onVerified } from "./feedback.js";
import { hideImports, initImports } from "./imports.js";
import { loadModels } from "./inspect.js";

const ACTIVE = ["Queued", "Executing", "Stopping"];
const TEXTS = {
  too_few_images: "Not enough images to train: ",
  training_running: "A training of this class is already running: ",
  training_failed: "This training failed, so there is nothing to approve: ",
  zip_bomb: "The zip was refused: ",
  unsafe_zip: "The zip was refused: ",
  upload_refused: "The upload was refused: ",
  trial_limit_reached: "SageMaker cannot start the trial now: ",
  trial_unavailable: "The trial could not be started: ",
  trial_job_exists: "The trial could not be started: ",
};
const state = { classes: [], kinds: [], selected: null, trainingTimer: null, trialTimer: null, selectedClass: null };

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

export function field(label, control, hint) {
  const id = control.id;
  return el("div", { class: "field" }, el("label", { for: id, text: label }), control, ...(hint ? [el("p", { class: "hint", text: hint })] : []));
}

export function say(boxId, text, isError = false) {
  const box = $(boxId);
  box.textContent = text;
  box.className = isError ? "error" : "hint";
  box.hidden = !text;
}

function fail(boxId, error) { say(boxId, describeError(error, TEXTS), true); }

// ------------------------------------------------------------------------------------- layout

function build(main) {
  main.append(
    el("section", { class: "panel datasets-panel", "aria-labelledby": "datasets-title" },
      el("h2", { id: "datasets-title", text: "Datasets" }),
      el("table", { class: "table", id: "dataset-table" },
        el("thead", {}, el("tr", {}, ...["Class", "Training (good)", "Test good", "Test anomalous", "Verified, waiting", ""].map((t) => el("th", { scope: "col", text: t })))),
        el("tbody", { id: "dataset-rows" })),
      el("h3", { text: "Add a zip" }),
      el("p", { class: "hint", text: "An MVTec-layout zip (<class>/train/good, <class>/test/<defect>, <class>/ground_truth/<defect>), or a folder of good images. Classes come from the folders or a YAML names list; name the class for a zip of one class." }),
      field("Class (for a zip of one class)", el("input", { id: "zip-class", type: "text", placeholder: "e.g. tiles", autocomplete: "off" })),
      field("Zip file", el("input", { id: "zip-file", type: "file", accept: ".zip,application/zip" })),
      el("button", { id: "zip-upload", type: "button", text: "Upload zip" }),
      el("h3", { text: "Add images" }),
      field("Class", el("input", { id: "image-class", type: "text", list: "known-classes", autocomplete: "off" })),
      el("datalist", { id: "known-classes" }),
      field("Label", (() => { const s = el("select", { id: "image-label" }); s.add(new Option("good", "good")); s.add(new Option("anomalous", "anomalous")); return s; })()),
      field("Defect type (anomalous images)", el("input", { id: "image-defect", type: "text", placeholder: "optional, e.g. scratch" })),
      field("Images", el("input", { id: "image-files", type: "file", multiple: "", accept: "image/png,image/jpeg,image/bmp,image/tiff,image/webp" })),
      el("button", { id: "image-upload", type: "button", text: "Add images" }),
      el("p", { id: "dataset-status", class: "hint", role: "status", "aria-live": "polite" }),
      el("h3", { id: "dataset-images-title", text: "Images" }),
      el("div", { id: "dataset-images", class: "image-grid", "aria-labelledby": "dataset-images-title" })),
    el("section", { class: "panel trainings-panel", "aria-labelledby": "trainings-title" },
      el("h2", { id: "trainings-title", text: "Training" }),
      el("fieldset", { id: "train-classes", class: "checks" }, el("legend", { text: "Classes" })),
      field("Model kind", el("select", { id: "train-kind" })),
      field("Settings", el("input", { id: "train-settings", type: "text", placeholder: "backbone=resnet18, image_size=224" }),
        "The kind's settings as name=value pairs; empty: its defaults."),
      field("Quality gate", el("input", { id: "train-gate", type: "number", min: "0", max: "1", step: "0.01", placeholder: "0.9" }),
        "The mean evaluation metric (image AUROC) a version must reach to be registered."),
      el("button", { id: "train-start", type: "button", text: "Start training" }),
      el("p", { id: "train-status", class: "hint", role: "status", "aria-live": "polite" }),
      el("table", { class: "table" },
        el("thead", {}, el("tr", {}, ...["Started", "Classes", "Kind", "Status", "Progress"].map((t) => el("th", { scope: "col", text: t })))),
        el("tbody", { id: "training-rows" })),
      el("div", { id: "training-detail", "aria-live": "polite" })),
    el("section", { class: "panel report-panel", "aria-labelledby": "report-title" },
      el("h2", { id: "report-title", text: "Evaluation report" }),
      el("div", { id: "report", class: "empty", text: "Choose a finished training to read its report." }),
      el("div", { id: "approval", hidden: "" },
        field("Reason", el("textarea", { id: "approval-reason", rows: "2", placeholder: "what you checked and why you decide so" })),
        el("div", { class: "buttons" }, el("button", { id: "approve", type: "button", text: "Approve" }), el("button", { id: "reject", type: "button", class: "secondary", text: "Reject" })),
        el("p", { id: "approval-status", class: "hint", role: "status", "aria-live": "polite" }))),
    el("section", { class: "panel trial-panel", "aria-labelledby": "trial-title" },
      el("h2", { id: "trial-title", text: "Trial detection" }),
      el("p", { class: "hint", text: "Run a version, approved or not, on new images before deciding on it." }),
      field("Version", el("select", { id: "trial-version" })),
      field("Class", el("select", { id: "trial-class" })),
      field("Images", el("input", { id: "trial-files", type: "file", multiple: "", accept: "image/png,image/jpeg,image/bmp,image/tiff,image/webp" })),
      el("button", { id: "trial-start", type: "button", text: "Run trial" }),
      el("p", { id: "trial-status", class: "hint", role: "status", "aria-live": "polite" }),
      el("div", { id: "trial-results", class: "image-grid" })),
  );
}

// ------------------------------------------------------------------------------------ datasets

async function refreshDatasets() {
  try {
    const listing = await api("/datasets");
    state.classes = listing.classes;
    const rows = $("dataset-rows");
    rows.innerHTML = "";
    for (const c of listing.classes) {
      const view = el("button", { type: "button", class: "link", text: "View" });
      view.addEventListener("click", () => showImages(c.class_name));
      const row = el("tr", { "data-class": c.class_name },
        el("td", { text: c.class_name }), el("td", { text: String(c.train_good) }), el("td", { text: String(c.test_good) }),
        el("td", { text: String(c.test_anomalous) }), el("td", { class: "pending", text: String(c.verified_pending) }), el("td", {}, view));
      if (c.train_good < c.min_good_images) row.title = `needs at least ${c.min_good_images} good training images`;
      rows.append(row);
    }
    if (!listing.classes.length) rows.append(el("tr", {}, el("td", { colspan: "6", text: "No datasets yet: add a zip or images." })));
    $("known-classes").innerHTML = "";
    for (const c of listing.classes) $("known-classes").append(el("option", { value: c.class_name }));
    renderClassChecks();
  } catch (error) {
    fail("dataset-status", error);
  }
}

async function showImages(className) {
  state.selectedClass = className;
  $("dataset-images-title").textContent = `Images of ${className}`;
  const grid = $("dataset-images");
  grid.innerHTML = "";
  try {
    const described = await api(`/datasets/${encodeURIComponent(className)}`);
    for (const image of described.images_list.slice(0, 40)) grid.append(imageTile(className, image));
    if (described.images_list.length > 40) grid.append(el("p", { class: "hint", text: `and ${described.images_list.length - 40} more` }));
  } catch (error) {
    fail("dataset-status", error);
  }
}

function imageTile(className, image, caption) {
  const picture = el("img", { alt: `${className} ${image.label} image`, loading: "lazy" });
  api(`/datasets/${encodeURIComponent(className)}/images/${image.id || image.image_id}`)
    .then((preview) => { if (preview.image_base64) picture.src = `data:${preview.content_type};base64,${preview.image_base64}`; })
    .catch(() => { picture.alt = "preview unavailable"; });
  const label = caption || `${image.split}/${image.defect}${image.verified ? " · verified" : ""}`;
  const tile = el("figure", { class: "tile" }, picture, el("figcaption", { class: "hint", text: label }));
  if (image.id) {
    const remove = el("button", { type: "button", class: "link", text: "Remove", "aria-label": `remove image ${image.id.slice(0, 8)}` });
    remove.addEventListener("click", async () => {
      try {
        await api(`/datasets/${encodeURIComponent(className)}/images/${image.id}`, { method: "DELETE" });
        tile.remove();
        refreshDatasets();
      } catch (error) { fail("dataset-status", error); }
    });
    tile.append(remove);
  }
  return tile;
}

export async function postForm(target, file) {
  const form = new FormData();
  for (const [key, value] of Object.entries(target.fields)) form.append(key, value);
  form.append("file", file);
  let response;
  try {
    response = await fetch(target.url, { method: "POST", body: form });
  } catch (err) {
    throw { code: "network", message: "The upload could not reach storage." };
  }
  if (!response.ok) {
    const text = await response.text();
    const message = (/<Message>([^<]*)<\/Message>/.exec(text) || [])[1] || response.statusText;
    throw { code: "upload_refused", message };
  }
}

async function upload(request, file) {
  const started = await api("/datasets/uploads", { method: "POST", body: JSON.stringify({ ...request, filename: file.name, size: file.size }) });
  await postForm(started.targets.file, file);
  return api(`/datasets/uploads/${started.upload_id}/complete`, { method: "POST" });
}

async function uploadZip() {
  const file = $("zip-file").files[0];
  if (!file) { say("dataset-status", "Choose a zip file first.", true); return; }
  const request = { type: "zip" };
  if ($("zip-class").value.trim()) request.class_name = $("zip-class").value.trim();
  $("zip-upload").disabled = true;
  say("dataset-status", `Uploading ${file.name}…`);
  try {
    const result = await upload(request, file);
    const parts = Object.entries(result.classes).map(([name, c]) => `${name}: ${c.added} added${c.duplicates ? `, ${c.duplicates} already there` : ""}`);
    say("dataset-status", `Uploaded ${file.name}. ${parts.join("; ")}.`);
    $("zip-file").value = "";
    await refreshDatasets();
  } catch (error) {
    fail("dataset-status", error);
  } finally {
    $("zip-upload").disabled = false;
  }
}

async function uploadImages() {
  const files = [...$("image-files").files];
  const className = $("image-class").value.trim();
  if (!className || !files.length) { say("dataset-status", "Name the class and choose images first.", true); return; }
  const request = { type: "image", class_name: className, label: $("image-label").value };
  if (request.label === "anomalous" && $("image-defect").value.trim()) request.defect = $("image-defect").value.trim();
  $("image-upload").disabled = true;
  let added = 0;
  try {
    for (const [index, file] of files.entries()) {
      say("dataset-status", `Uploading ${index + 1} of ${files.length}…`);
      const result = await upload(request, file);
      added += result.classes[className].added;
    }
    say("dataset-status", `${added} image${added === 1 ? "" : "s"} added to ${className}.`);
    $("image-files").value = "";
    await refreshDatasets();
  } catch (error) {
    fail("dataset-status", error);
  } finally {
    $("image-upload").disabled = false;
  }
}

// ----------------------------------------------------------------------------------- trainings

function renderClassChecks() {
  const box = $("train-classes");
  const chosen = new Set([...box.querySelectorAll("input:checked")].map((i) => i.value));
  for (const label of box.querySelectorAll("label")) label.remove();
  for (const c of state.classes) {
    const input = el("input", { type: "checkbox", value: c.class_name, id: `train-class-${c.class_name}` });
    input.checked = chosen.has(c.class_name);
    box.append(el("label", { for: input.id, class: "check" }, input, ` ${c.class_name}`));
  }
}

function parseSettings(text) {
  const settings = {};
  for (const pair of text.split(",").map((p) => p.trim()).filter(Boolean)) {
    const [key, ...rest] = pair.split("=");
    if (!rest.length) throw { code: "bad_request", message: `"${pair}" is not name=value` };
    settings[key.trim()] = rest.join("=").trim();
  }
  return settings;
}

async function startTraining() {
  const classes = [...$("train-classes").querySelectorAll("input:checked")].map((i) => i.value);
  if (!classes.length) { say("train-status", "Choose at least one class.", true); return; }
  try {
    const body = { classes, kind: $("train-kind").value, settings: parseSettings($("train-settings").value) };
    if ($("train-gate").value !== "") body.gate = Number($("train-gate").value);
    $("train-start").disabled = true;
    const training = await api("/trainings", { method: "POST", body: JSON.stringify(body) });
    say("train-status", `Training ${training.id} started on snapshot ${training.snapshot}.`);
    await refreshTrainings();
    selectTraining(training.id);
    refreshDatasets();
  } catch (error) {
    fail("train-status", error);
  } finally {
    $("train-start").disabled = false;
  }
}

function progressBar(training) {
  const bar = el("progress", { max: "1", value: String(training.progress || 0), "aria-label": `progress of ${training.id}` });
  return el("span", {}, bar, ` ${Math.round((training.progress || 0) * 100)} %`);
}

async function refreshTrainings() {
  try {
    const { trainings } = await api("/trainings");
    const rows = $("training-rows");
    rows.innerHTML = "";
    for (const t of trainings) {
      const open = el("button", { type: "button", class: "link", text: new Date(t.created_at).toLocaleString() });
      open.addEventListener("click", () => selectTraining(t.id));
      const row = el("tr", { "data-training": t.id, "aria-current": String(t.id === state.selected) },
        el("td", {}, open), el("td", { text: t.classes.join(", ") }), el("td", { text: t.kind }),
        el("td", {}, el("span", { class: `tag ${t.status.toLowerCase()}`, text: t.status })), el("td", {}, progressBar(t)));
      rows.append(row);
    }
    if (!trainings.length) rows.append(el("tr", {}, el("td", { colspan: "5", text: "No trainings yet." })));
  } catch (error) {
    fail("train-status", error);
  }
}

function renderSteps(training) {
  const detail = $("training-detail");
  detail.innerHTML = "";
  detail.append(el("h3", { text: `Training ${training.id}: ${training.status}` }),
    el("p", { class: "hint", text: `Classes ${training.classes.join(", ")} · ${training.kind} · snapshot ${training.snapshot}` }));
  const list = el("ol", { class: "steps", id: "training-steps" });
  for (const step of training.steps) {
    const seconds = step.seconds !== undefined ? ` (${step.cached ? "cached" : `${step.seconds} s`})` : "";
    const item = el("li", { class: `step ${step.status.toLowerCase()}`, "data-step": step.name, "data-status": step.status },
      el("strong", { text: step.name }), ` — ${step.status}${seconds}: ${step.what}`);
    if (step.failure_reason) item.append(el("div", { class: "error", text: step.failure_reason }));
    if (step.detail) item.append(el("div", { class: "hint", text: step.detail }));
    list.append(item);
  }
  detail.append(list);
  if (training.status === "Failed") detail.append(el("p", { class: "error", id: "training-failure", text: `Failed: ${training.failure_reason || "see the steps"}` }));
  if (training.registered_version) detail.append(el("p", { id: "training-version", text: `Registered ${training.registered_version}` }));
}

async function selectTraining(id) {
  state.selected = id;
  clearTimeout(state.trainingTimer);
  try {
    const training = await api(`/trainings/${id}`);
    if (state.selected !== id) return;
    renderSteps(training);
    if (ACTIVE.includes(training.status)) {
      state.trainingTimer = setTimeout(() => { refreshTrainings(); selectTraining(id); }, 1500);
      say("train-status", "");
      $("report").className = "empty";
      $("report").textContent = "The report appears when the training has finished.";
      $("approval").hidden = true;
    } else {
      refreshTrainings();
      refreshDatasets();
      await showReport(training);
    }
  } catch (error) {
    // a lost answer (the network, a busy server) does not end the live view: say so and ask again
    fail("train-status", error);
    if (state.selected === id && error.status !== 404) state.trainingTimer = setTimeout(() => selectTraining(id), 3000);
  }
}

// -------------------------------------------------------------------------------------- report

async function showReport(training) {
  const box = $("report");
  box.className = "";
  box.innerHTML = "";
  $("approval").hidden = training.status !== "Succeeded";
  $("approval-status").textContent = "";
  if (training.status !== "Succeeded") {
    box.className = "empty";
    box.textContent = training.status === "Failed" ? `No report: the training failed (${training.failure_reason}).` : `The training is ${training.status}.`;
    return;
  }
  let report;
  try {
    report = await api(`/trainings/${training.id}/report`);
  } catch (error) {
    box.className = "error";
    box.textContent = describeError(error);
    return;
  }
  box.append(el("p", { id: "report-summary", text: `${training.registered_version}: mean image AUROC ${fmt(report.mean.image_auroc)}, F1 ${fmt(report.mean.f1)} on the ${report.split ? report.split.name : ""} split.` }));
  for (const [name, c] of Object.entries(report.classes)) {
    const m = c.metrics;
    const table = el("table", { class: "table metrics", "data-class": name },
      el("thead", {}, el("tr", {}, ...["Class", "Image AUROC", "Pixel AUROC", "PRO", "F1", "Precision", "Recall", "Images"].map((t) => el("th", { scope: "col", text: t })))),
      el("tbody", {}, el("tr", {}, ...[name, fmt(m.image_auroc), fmt(m.pixel_auroc), fmt(m.aupro), fmt(m.f1), fmt(m.precision), fmt(m.recall), String(m.images)].map((t) => el("td", { text: t })))));
    box.append(el("h3", { text: name }), table);
    const plots = el("div", { class: "plots" });
    for (const [plot, title] of [["roc", "ROC curve"], ["histogram", "Score histogram"], ["examples", "Example heatmaps (highest and lowest scores)"]]) {
      const data = c.plots_png_base64[plot];
      if (data) plots.append(el("figure", { class: `plot plot-${plot}` }, el("img", { src: `data:image/png;base64,${data}`, alt: `${title} of ${name}` }), el("figcaption", { class: "hint", text: title })));
    }
    box.append(plots);
    const wrong = el("div", { class: "image-grid wrong-images", "data-class": name });
    for (const item of c.wrong) wrong.append(imageTile(name, { image_id: item.image_id, label: item.defect }, `${item.error} (${item.defect}, score ${fmt(item.raw_score)})`));
    box.append(el("h4", { text: c.wrong.length ? `Test images the model got wrong (${c.wrong.length})` : "No test image was judged wrongly." }), wrong);
  }
  state.report = { training, report };
}

async function decide(decision) {
  const { training } = state.report || {};
  if (!training) return;
  const reason = $("approval-reason").value.trim();
  if (reason.length < 3) { say("approval-status", "Say why (at least a few words): the registry keeps the reason.", true); return; }
  try {
    const answer = await api(`/trainings/${training.id}/approval`, { method: "POST", body: JSON.stringify({ decision, reason, by: "browser" }) });
    say("approval-status", `${answer.version.id} is ${answer.version.status}. ${decision === "approve" ? "Serving switches to it shortly." : ""}`);
    refreshVersions();
    if (decision === "approve") followServing(answer.version.id);
  } catch (error) {
    fail("approval-status", error);
  }
}

// After an approval the endpoint switches to the version; the inspect page is told once it serves it.
async function followServing(versionId, attempts = 60) {
  for (let i = 0; i < attempts; i++) {
    try {
      const listing = await api("/models");
      if (listing.models.some((m) => m.version === versionId && m.available)) {
        loadModels(listing);
        say("approval-status", `${versionId} is approved and now serving.`);
        $("approval-status").dataset.serving = versionId;
        return;
      }
    } catch (error) { /* the endpoint may be reloading */ }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

// --------------------------------------------------------------------------------------- trials

async function refreshVersions() {
  const select = $("trial-version");
  const previous = select.value;
  select.innerHTML = "";
  for (const kind of state.kinds) {
    try {
      const { versions } = await api(`/versions?kind=${encodeURIComponent(kind)}`);
      for (const v of versions) {
        const option = new Option(`${kind} ${v.version} (${v.status}) · ${v.metadata.classes || ""}`, `${kind}/${v.version}`);
        option.dataset.classes = v.metadata.classes || "";
        select.add(option);
      }
    } catch (error) { /* a kind without versions */ }
  }
  if ([...select.options].some((o) => o.value === previous)) select.value = previous;
  fillTrialClasses();
}

function fillTrialClasses() {
  const option = $("trial-version").selectedOptions[0];
  const classes = option ? option.dataset.classes.split(",").filter(Boolean) : [];
  const select = $("trial-class");
  select.innerHTML = "";
  for (const name of classes) select.add(new Option(name, name));
}

function readBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",")[1]);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function startTrial() {
  const files = [...$("trial-files").files];
  const [kind, version] = ($("trial-version").value || "/").split("/");
  if (!files.length || !kind) { say("trial-status", "Choose a version and images first.", true); return; }
  try {
    const images = await Promise.all(files.map(async (f) => ({ name: f.name, image_base64: await readBase64(f) })));
    const trial = await api("/trials", { method: "POST", body: JSON.stringify({ kind, version: Number(version), class_name: $("trial-class").value, images }) });
    state.trialImages = Object.fromEntries(images.map((i) => [i.name, i.image_base64]));
    say("trial-status", `Trial of ${trial.version} on ${files.length} image${files.length === 1 ? "" : "s"}: waiting to run…`);
    followTrial(trial.id);
  } catch (error) {
    fail("trial-status", error);
  }
}

async function followTrial(id) {
  clearTimeout(state.trialTimer);
  let trial;
  try {
    trial = await api(`/trials/${id}`);
  } catch (error) {
    fail("trial-status", error);
    state.trialTimer = setTimeout(() => followTrial(id), 3000);
    return;
  }
  if (ACTIVE.includes(trial.status)) {
    say("trial-status", `Trial of ${trial.version}: ${trial.status.toLowerCase()}…`);
    state.trialTimer = setTimeout(() => followTrial(id), 1000);
    return;
  }
  if (trial.status === "Failed") { say("trial-status", `The trial failed: ${trial.failure_reason}`, true); return; }
  say("trial-status", `Trial of ${trial.version} (${trial.version_status}): ${trial.results.filter((r) => r.is_anomaly).length} of ${trial.results.length} anomalous.`);
  const grid = $("trial-results");
  grid.innerHTML = "";
  trial.results.forEach((result, index) => {
    const image = (state.trialImages || {})[result.name];
    const stage = el("div", { class: "trial-stage" });
    if (image) stage.append(el("img", { src: `data:image/png;base64,${image}`, alt: result.name }));
    if (result.heatmap_png_base64) stage.append(el("img", { class: "overlay", src: `data:image/png;base64,${result.heatmap_png_base64}`, alt: "" }));
    const verdict = result.error ? el("span", { class: "error", text: result.error })
      : el("span", { class: `tag ${result.is_anomaly ? "anomaly" : "normal"}`, text: `${result.is_anomaly ? "anomaly" : "normal"} ${fmt(result.anomaly_score)}` });
    const tile = el("figure", { class: "tile trial-result", "data-index": String(index) }, stage, el("figcaption", {}, `${result.name} `, verdict));
    if (!result.error) tile.append(feedbackButtons({ trial_id: trial.id, index }));
    grid.append(tile);
  });
}

// ----------------------------------------------------------------------------------------- page

export function initLifecycle() {
  const main = document.querySelector('[data-page="train"]');
  if (!main) return;
  build(main);
  initImports(main);  // bring-your-own detectors: js/imports.js
  $("zip-upload").addEventListener("click", uploadZip);
  $("image-upload").addEventListener("click", uploadImages);
  $("train-start").addEventListener("click", startTraining);
  $("approve").addEventListener("click", () => decide("approve"));
  $("reject").addEventListener("click", () => decide("reject"));
  $("trial-start").addEventListener("click", startTrial);
  $("trial-version").addEventListener("change", fillTrialClasses);
  onVerified(() => refreshDatasets());
}

/** The image kinds a training may use, from the /models listing. */
export function setTrainingKinds(listing) {
  state.kinds = listing.models.filter((m) => (m.modality || "image") === "image").map((m) => m.kind);
  const select = $("train-kind");
  if (!select) return;
  select.innerHTML = "";
  for (const kind of state.kinds) select.add(new Option(kind, kind));
  const preferred = (listing.defaults && listing.defaults.image) || listing.default;
  if (state.kinds.includes(preferred)) select.value = preferred;
}

export function showLifecycle() {
  refreshDatasets();
  refreshTrainings();
  refreshVersions();
}

export function hideLifecycle() {
  clearTimeout(state.trainingTimer);
  clearTimeout(state.trialTimer);
  hideImports();
}
