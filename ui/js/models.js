// The models panel: every deployed kind with its served version, thresholds and evaluation metrics.
import { $, fmt } from "./api.js";

// The evaluation metrics shown per modality: [key in the evaluation report, column title].
export const METRIC_COLUMNS = {
  image: [["image_auroc", "Image AUROC"], ["pixel_auroc", "Pixel AUROC"], ["aupro", "PRO"], ["f1", "F1"]],
  sensors: [["auroc", "AUROC"], ["f1", "F1"], ["far", "False alarm rate"], ["event_recall", "Event recall"]],
};

export function renderModelCards(models) {
  const container = $("model-cards");
  container.innerHTML = "";
  for (const model of models) {
    const card = document.createElement("article");
    card.className = "card" + (model.available ? "" : " unavailable");
    const title = document.createElement("h3");
    title.textContent = `${model.kind} — ${model.available ? model.version : "unavailable"}`;
    card.append(title);
    if (!model.available) {
      const reason = document.createElement("p");
      reason.textContent = model.reason;
      card.append(reason);
      container.append(card);
      continue;
    }
    if (model.warning) {
      const warning = document.createElement("p");
      warning.className = "warning";
      warning.textContent = model.warning;
      card.append(warning);
    }
    const mean = (model.metrics && model.metrics.mean) || {};
    const perClass = (model.metrics && model.metrics.classes) || {};
    const info = document.createElement("p");
    info.className = "hint";
    const columns = METRIC_COLUMNS[model.modality || "image"] || [];
    const backbone = model.backbone ? `backbone ${model.backbone.name} (${model.backbone.precision}, weights ${model.backbone.weights}), ` : "";
    info.textContent = backbone + "mean " + columns.map(([key, title]) => `${title} ${fmt(mean[key])}`).join(", ");
    card.append(info);
    const table = document.createElement("table");
    table.className = "table";
    const head = table.createTHead().insertRow();
    for (const title of [model.modality === "sensors" ? "Asset" : "Class", "Raw threshold", "Calibration", ...columns.map((c) => c[1])]) {
      const cell = document.createElement("th");
      cell.scope = "col";
      cell.textContent = title;
      head.append(cell);
    }
    const body = document.createElement("tbody");
    for (const [name, entry] of Object.entries(model.classes)) {
      const row = body.insertRow();
      const metrics = perClass[name] || {};
      for (const text of [name, fmt(entry.raw_threshold), entry.calibration, ...columns.map(([key]) => fmt(metrics[key]))]) {
        row.insertCell().textContent = text;
      }
    }
    table.append(body);
    card.append(table);
    container.append(card);
  }
}


