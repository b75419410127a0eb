// The inspection history: newest first, filtered by class and verdict.
import { $, api, showError } from "./api.js";

export async function refreshHistory() {
  const params = new URLSearchParams({ limit: "25" });
  if ($("history-class").value) params.set("class_name", $("history-class").value);
  if ($("history-verdict").value) params.set("verdict", $("history-verdict").value);
  try {
    const { inspections } = await api("/inspections?" + params.toString());
    const rows = $("history-rows");
    rows.innerHTML = "";
    for (const item of inspections) {
      const row = rows.insertRow();
      row.insertCell().textContent = new Date(item.timestamp).toLocaleString();
      row.insertCell().textContent = item.class_name;
      row.insertCell().textContent = `${item.model_kind} ${item.model_version}`;
      row.insertCell().textContent = Number(item.anomaly_score).toFixed(3);
      const tag = document.createElement("span");
      tag.className = "tag " + (item.is_anomaly ? "anomaly" : "normal");
      tag.textContent = item.is_anomaly ? "anomaly" : "normal";
      row.insertCell().append(tag);
    }
    if (!inspections.length) rows.insertRow().insertCell().textContent = "No inspections yet.";
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
