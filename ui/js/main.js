// IVADAS in the browser: plain JavaScript modules, no build step, no external requests.
// Each page is a module with an init function and a <main data-page="..."> in index.html; the
// header's links switch pages by the URL's #fragment.
import { $, setApiBase, showError } from "./api.js";
import { initHistory, refreshHistory } from "./history.js";
import { initInspect, loadModels } from "./inspect.js";

const PAGES = { inspect: { init: initInspect } };

function showPage() {
  const wanted = location.hash.slice(1) || "inspect";
  const name = PAGES[wanted] ? wanted : "inspect";
  for (const page of document.querySelectorAll("[data-page]")) page.hidden = page.dataset.page !== name;
  for (const link of document.querySelectorAll("[data-page-link]")) {
    link.setAttribute("aria-current", String(link.dataset.pageLink === name));
  }
  if (PAGES[name].show) PAGES[name].show();
}

async function start() {
  for (const page of Object.values(PAGES)) page.init();
  initHistory();
  window.addEventListener("hashchange", showPage);
  try {
    const config = await fetch("config.json").then((r) => (r.ok ? r.json() : {}));
    setApiBase(config.apiBaseUrl);
    $("environment").textContent = config.environment || "";
  } catch (err) {
    setApiBase("");
  }
  showPage();
  try {
    await loadModels();
  } catch (error) {
    showError(error);
  }
  refreshHistory();
  document.body.dataset.ready = "true";
}

start();
