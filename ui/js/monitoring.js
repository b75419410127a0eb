// The monitoring page: the latest monitoring run (drift, anomaly rate and confirmed quality per class
// and model version, and its alarms), a button asking for a run now, and the full HTML report.
import { $, api, showError, clearError } from "./api.js";

const POLL_MS = 1500;
const POLL_LIMIT = 80; // two minutes for a requested run to appear
// on AWS a run is a SageMaker Processing job: an instance is provisioned first, so it takes minutes
const JOB_POLL_MS = 15000;
const JOB_POLL_LIMIT = 80; // twenty minutes
let latest = null;

function pct(value) {
  return value === null || value === undefined ? "—" : `${(value * 100).toFixed(1)} %`;
}

function num(value, digits = 2) {
  return value === null || value === undefined ? "—" : Number(value).toFixed(digits);
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.append(td);
  return td;
}

function scoreText(drift) {
  if (!drift) return "no reference";
  if (drift.psi === null) return "no scores";
  const text = drift.method === "ks_exact"
    ? `exact KS p ${Number(drift.ks_p_value).toPrecision(2)} (${drift.reference_samples} reference scores)`
    : `PSI ${num(drift.psi)} · KS p ${Number(drift.ks_p_value).toPrecision(2)}`;
  return drift.judged === false ? `${text} (too few samples to judge)` : text;
}

function inputText(drift) {
  if (!drift) return "no reference";
  if (!drift.samples) return "no input statistics";
  if (drift.drifted.length) return "moved: " + drift.drifted.join(", ");
  return drift.worst ? `stable (largest change: ${drift.worst})` : "stable";
}

function renderGroups(summary) {
  const body = $("monitoring-groups");
  body.replaceChildren();
  for (const group of summary.groups) {
    const row = document.createElement("tr");
    const alarmed = group.alarms.length > 0;
    row.className = alarmed ? "monitoring-alarm" : "";
    row.dataset.className = group.class_name;
    cell(row, group.class_name);
    cell(row, `${group.model_kind} ${group.model_version}`);
    cell(row, String(group.verdicts));
    cell(row, pct(group.anomaly_rate));
    cell(row, scoreText(group.score_drift), group.score_drift && group.score_drift.drifted ? "bad" : "");
    cell(row, inputText(group.input_drift), group.input_drift && group.input_drift.drifted.length ? "bad" : "");
    const quality = group.quality;
    cell(row, quality.reviewed ? `${pct(quality.precision)} / ${pct(quality.recall)} (${quality.reviewed})` : "none reviewed");
    body.append(row);
  }
}

function renderAlarms(summary) {
  const list = $("monitoring-alarms");
  list.replaceChildren();
  for (const alarm of summary.alarms) {
    const item = document.createElement("li");
    item.className = "bad";
    item.textContent = alarm.message;
    list.append(item);
  }
  if (!summary.alarms.length) {
    const item = document.createElement("li");
    item.className = "good";
    item.textContent = "No alarm in this period.";
    list.append(item);
  }
}

function render(response) {
  const summary = response.summary;
  latest = summary;
  $("monitoring-empty").hidden = Boolean(summary);
  $("monitoring-content").hidden = !summary;
  if (!summary) {
    $("monitoring-empty").textContent = response.message || "No monitoring run yet.";
    return;
  }
  const status = $("monitoring-status");
  status.textContent = summary.status === "alarm" ? `${summary.alarms.length} alarm(s)` : "OK";
  status.className = "monitoring-status " + (summary.status === "alarm" ? "bad" : "good");
  $("monitoring-period").textContent =
    `${summary.verdicts} verdicts from ${summary.period.since.slice(0, 16).replace("T", " ")} to ` +
    `${summary.period.until.slice(0, 16).replace("T", " ")} UTC · generated ${summary.generated_at.slice(0, 19).replace("T", " ")} UTC`;
  renderAlarms(summary);
  renderGroups(summary);
}

export async function refreshMonitoring() {
  clearError("monitoring-error");
  try {
    render(await api("/monitoring"));
  } catch (error) {
    showError(error, "monitoring-error");
  }
}

async function runNow() {
  const button = $("monitoring-run");
  const before = latest && latest.generated_at;
  button.disabled = true;
  clearError("monitoring-error");
  const note = $("monitoring-run-note");
  note.hidden = true;
  try {
    const started = await api("/monitoring/run", { method: "POST", body: "{}" });
    const job = started && started.job_name;
    if (job) {
      note.textContent = `Monitoring job ${job} started on SageMaker. It takes a few minutes; this page shows its report when it is written.`;
      note.hidden = false;
    }
    const [every, limit] = job ? [JOB_POLL_MS, JOB_POLL_LIMIT] : [POLL_MS, POLL_LIMIT];
    for (let i = 0; i < limit; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, every));
      const response = await api("/monitoring");
      if (response.summary && response.summary.generated_at !== before) {
        note.hidden = true;
        render(response);
        return;
      }
    }
    const waiting = job ? `Monitoring job ${job} has not written its report yet; refresh later.`
      : "The monitoring run has not finished yet; refresh in a moment.";
    showError({ message: waiting }, "monitoring-error");
  } catch (error) {
    showError(error, "monitoring-error");
  } finally {
    button.disabled = false;
  }
}

async function openReport() {
  clearError("monitoring-error");
  try {
    // as JSON, so that the call goes through the API helper like every other (and its sign-in); the page's
    // own content is placed here rather than in a frame, which the site's content security policy refuses
    const report = await api("/monitoring/report", { headers: { Accept: "application/json", "Content-Type": "application/json" } });
    const box = $("monitoring-report");
    if (report.url) {
      box.replaceChildren(reportLink(report));
    } else {
      const parsed = new DOMParser().parseFromString(report.html, "text/html");
      box.replaceChildren(...parsed.body.childNodes);
    }
    box.hidden = false;
    box.scrollIntoView({ block: "start" });
  } catch (error) {
    showError(error, "monitoring-error");
  }
}

// a report too large for an API answer comes as a short-lived link to it: opened by the user's click, in a tab
// of its own (the site's content security policy keeps other origins out of this page)
function reportLink(report) {
  const paragraph = document.createElement("p");
  const link = document.createElement("a");
  link.href = report.url;
  link.target = "_blank";
  link.rel = "noopener noreferrer";
  link.id = "monitoring-report-link";
  link.textContent = "Open the report in a new tab";
  const megabytes = (report.bytes / 1048576).toFixed(1);
  const minutes = Math.round(report.expires_in / 60);
  paragraph.append(`The report is ${megabytes} MB, too large to show on this page. `, link,
    ` (the link works for ${minutes} minutes; open the report again for a new one).`);
  return paragraph;
}

export function initMonitoring() {
  $("monitoring-run").addEventListener("click", runNow);
  $("monitoring-refresh").addEventListener("click", refreshMonitoring);
  $("monitoring-open-report").addEventListener("click", openReport);
}

export function showMonitoring() {
  refreshMonitoring();
}
