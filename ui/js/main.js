// IVADAS in the browser: plain JavaScript modules, no build step, no external requests.
// Each page is a module with an init function and a <main data-page="..."> in index.html; the
// header's links switch pages by the URL's #fragment (#sensors/pump-1 opens a page on an asset).
import { $, api, setApiBase, showError } from "./api.js";
import { initAuth, renderUser } from "./auth.js";
import { initHistory, refreshHistory, setKindModalities } from "./history.js";
import { initInspect, loadModels } from "./inspect.js";
import { hideLifecycle, initLifecycle, setTrainingKinds, showLifecycle } from "./lifecycle.js";
import { hideSensors, initSensors, setSensorModels, showSensors } from "./sensors.js";
import { initMonitoring, showMonitoring } from "./monitoring.js";

const PAGES = {
  inspect: { init: initInspect },
  sensors: { init: initSensors, show: showSensors, hide: hideSensors },
  train: { init: initLifecycle, show: showLifecycle, hide: hideLifecycle },
  monitoring: { init: initMonitoring, show: showMonitoring },
};
let current = null;
let loaded = false; // pages are told they are shown once the model listing is in

function showPage() {
  const [wanted, ...rest] = location.hash.slice(1).split("/");
  const name = PAGES[wanted] ? wanted : "inspect";
  for (const page of document.querySelectorAll("[data-page]")) page.hidden = page.dataset.page !== name;
  for (const link of document.querySelectorAll("[data-page-link]")) {
    link.setAttribute("aria-current", String(link.dataset.pageLink === name));
  }
  if (!loaded) return;
  if (current && current !== name && PAGES[current].hide) PAGES[current].hide();
  current = name;
  if (PAGES[name].show) PAGES[name].show(decodeURIComponent(rest.join("/")));
}

async function start() {
  for (const page of Object.values(PAGES)) page.init();
  initHistory();
  window.addEventListener("hashchange", showPage);
  let auth = null;
  try {
    const config = await fetch("config.json").then((r) => (r.ok ? r.json() : {}));
    setApiBase(config.apiBaseUrl);
    $("environment").textContent = config.environment || "";
    auth = config.auth;
  } catch (err) {
    setApiBase("");
  }
  try {
    await initAuth(auth);  // with sign-in configured: signed in here, or off to the sign-in page
  } catch (err) {
    showError({ code: "sign_in", message: err.message });
  }
  renderUser();
  showPage();
  try {
    const listing = await api("/models");
    setKindModalities(listing.models);
    loadModels(listing);
    setSensorModels(listing);
    setTrainingKinds(listing);
  } catch (error) {
    showError(error);
    showError(error, "sensors-error");
  }
  loaded = true;
  showPage();
  refreshHistory();
  document.body.dataset.ready = "true";
}

start();
