// Talking to the IVADAS API: one fetch wrapper, the error texts people read, small DOM helpers.
import { authHeaders, forget } from "./auth.js";

export const $ = (id) => document.getElementById(id);

const ERROR_TEXT = {
  payload_too_large: "The request is too large: ",
  unsupported_media_type: "That input cannot be read by this model: ",
  unusable_image: "The image could not be used: ",
  unknown_class: "This model does not know that class: ",
  unknown_model: "That model kind does not exist.",
  model_unavailable: "The model is not available right now. Try again shortly or pick another model.",
  model_not_deployed: "That model kind has no approved version yet: ",
  endpoint_timeout: "The model took too long to answer. Try again.",
  throttled: "Too many requests right now. Wait a moment and try again.",
  bad_request: "The request was not accepted: ",
  unauthorized: "Your sign-in is missing or has ended. Reload the page to sign in again.",
  token_expired: "Your sign-in has expired. Reload the page to sign in again.",
  forbidden: "You are not allowed to do this: ",
  quota_exceeded: "This station has used its requests for today.",
};

const settings = { base: "" };

export function setApiBase(base) { settings.base = (base || "").replace(/\/$/, ""); }

export async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(settings.base + path, { ...options, headers: { "Content-Type": "application/json", ...authHeaders(), ...(options.headers || {}) } });
  } catch (err) {
    throw { code: "network", message: "The IVADAS API cannot be reached. Check the connection and try again." };
  }
  let body = null;
  try { body = await response.json(); } catch (err) { body = null; }
  if (!response.ok) {
    const error = (body && body.error) || {};
    if (response.status === 401) forget();  // the next page load signs in again
    throw { code: error.code || "http_" + response.status, message: error.message || response.statusText, status: response.status };
  }
  return body;
}

export function describeError(error, texts = {}) {
  const prefix = texts[error.code] || ERROR_TEXT[error.code];
  if (!prefix) return error.message || "Something went wrong.";
  return prefix.endsWith(": ") ? prefix + (error.message || "") : prefix;
}

export function showError(error, boxId = "error", texts = {}) {
  const box = $(boxId);
  box.textContent = describeError(error, texts);
  box.dataset.code = error.code || "";
  box.hidden = false;
}

export function clearError(boxId = "error") { $(boxId).hidden = true; $(boxId).textContent = ""; }

export function fmt(value) { return value === null || value === undefined ? "n/a" : Number(value).toFixed(3); }
