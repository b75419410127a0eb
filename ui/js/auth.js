// Sign-in: the OAuth 2.0 authorization-code flow with PKCE (RFC 7636), as a public client.
// config.json's `auth` names the sign-in service (Cognito's hosted sign-in on AWS, the local stack's
// /oauth2/* with `ivadas up --auth`); without it the API is open and nothing here runs.
// No client secret exists; the only thing in the URL is the one-time code, which is useless without
// the verifier kept in this tab; the ID token lives in sessionStorage (this tab, until it closes).

const STORE = "ivadas.auth";
const PENDING = "ivadas.auth.pending";
const GROUP_RANK = { inspector: 1, engineer: 2, admin: 3 };

let config = null;
let session = null; // { token, username, groups, expires }

function base64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomText(size) { return base64url(crypto.getRandomValues(new Uint8Array(size))); }

async function challengeOf(verifier) {
  return base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
}

function claimsOf(token) {
  const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  return JSON.parse(decodeURIComponent(escape(atob(part + "===".slice((part.length + 3) % 4)))));
}

function groupsOf(claims) {
  const groups = claims["cognito:groups"] || [];
  return Array.isArray(groups) ? groups : String(groups).split(/[\s,]+/).filter(Boolean);
}

function redirectUri() { return location.origin + "/"; }

function remember(token) {
  const claims = claimsOf(token);
  session = { token, username: claims["cognito:username"] || claims.username || claims.sub,
              groups: groupsOf(claims), expires: claims.exp * 1000 };
  sessionStorage.setItem(STORE, JSON.stringify(session));
}

function restore() {
  try { session = JSON.parse(sessionStorage.getItem(STORE)); } catch (err) { session = null; }
  if (session && !(session.expires > Date.now() + 30000)) forget();
}

export function forget() { session = null; sessionStorage.removeItem(STORE); }

export function authEnabled() { return Boolean(config); }

export function currentUser() { return session ? { username: session.username, groups: session.groups } : null; }

/** Whether the signed-in person's groups reach `group` (always, when the API is open). */
export function mayAct(group) {
  if (!config) return true;
  if (!session) return false;
  return Math.max(0, ...session.groups.map((g) => GROUP_RANK[g] || 0)) >= GROUP_RANK[group];
}

/** The header the API wants: the ID token, as API Gateway's Cognito authorizer reads it. */
export function authHeaders() { return session ? { Authorization: session.token } : {}; }

/** To the sign-in page; back here with a code (the page's #fragment is kept for after). */
export async function signIn() {
  const verifier = randomText(48);
  const state = randomText(16);
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, hash: location.hash }));
  const query = new URLSearchParams({
    response_type: "code", client_id: config.clientId, redirect_uri: redirectUri(), scope: config.scopes || "openid",
    state, code_challenge: await challengeOf(verifier), code_challenge_method: "S256",
  });
  location.assign(`${config.authorizeUrl}?${query}`);
}

export function signOut() {
  forget();
  if (config && config.logoutUrl) {
    const query = new URLSearchParams({ client_id: config.clientId, logout_uri: redirectUri() });
    location.assign(`${config.logoutUrl}?${query}`);
  } else {
    location.assign(redirectUri());
  }
}

async function finishSignIn(params) {
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
  sessionStorage.removeItem(PENDING);
  history.replaceState(null, "", location.pathname + (pending && pending.hash ? pending.hash : ""));  // the code leaves the URL
  if (!pending || params.get("state") !== pending.state) throw new Error("the sign-in answer does not match this tab's request; sign in again");
  const response = await fetch(config.tokenUrl, {
    method: "POST", headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "authorization_code", client_id: config.clientId, code: params.get("code"),
                                redirect_uri: redirectUri(), code_verifier: pending.verifier }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok || !body.id_token) throw new Error(body.error_description || body.error || "the sign-in could not be completed");
  remember(body.id_token);
}

/** Call once at start with config.json's `auth`. Resolves to the signed-in user, or null when the
 *  API is open; sends the browser to the sign-in page when nobody is signed in. */
export async function initAuth(authConfig) {
  config = authConfig && authConfig.authorizeUrl ? authConfig : null;
  if (!config) return null;
  restore();
  const params = new URLSearchParams(location.search);
  if (params.get("error")) {
    history.replaceState(null, "", location.pathname + location.hash);
    throw new Error(`sign-in refused: ${params.get("error_description") || params.get("error")}`);
  }
  if (params.get("code")) await finishSignIn(params);
  if (!session) {
    await signIn();
    return new Promise(() => {});  // the page is leaving
  }
  return currentUser();
}

/** The header's user badge and sign-out button, and every element marked data-min-group="engineer"
 *  (or another group) hidden from people below it. The API refuses those actions anyway. */
export function renderUser() {
  const user = currentUser();
  const badge = document.getElementById("user");
  const button = document.getElementById("sign-out");
  if (badge) {
    badge.hidden = !user;
    badge.textContent = user ? `${user.username} (${user.groups.join(", ") || "no group"})` : "";
  }
  if (button) {
    button.hidden = !user;
    button.onclick = signOut;
  }
  for (const element of document.querySelectorAll("[data-min-group]")) {
    element.hidden = !mayAct(element.dataset.minGroup);
  }
}
