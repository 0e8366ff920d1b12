// The web API client: the bearer token lives in localStorage (shared by the tabs of this
// origin), the HttpOnly `__Host-session` cookie goes along by itself; every call sends both.

const KEY = "teleport.session";

/** The stored web session `{token, user, expires}` (ms), or null. */
export function getSession() {
  try {
    const s = JSON.parse(localStorage.getItem(KEY) ?? "null");
    if (s && typeof s.token === "string" && s.expires > Date.now()) return s;
  } catch {
    // a broken entry counts as none
  }
  return null;
}

function saveSession(answer, user) {
  const s = {
    token: answer.token,
    user: answer.user ?? user,
    expires: Date.now() + Number(answer.expires_in ?? 0) * 1000,
  };
  localStorage.setItem(KEY, JSON.stringify(s));
  return s;
}

/** Forgets the session locally. */
export function dropSession() {
  localStorage.removeItem(KEY);
}

/** An API error with the server's message and the HTTP status. */
export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

/** Where the login page sends the user back to: only paths of this UI. */
export function safeRedirect(value) {
  if (typeof value !== "string") return "/web";
  if (!value.startsWith("/web") || value.startsWith("//") || value.includes("\\")) return "/web";
  return /^\/web(?:[/?#]|$)/.test(value) ? value : "/web";
}

/** Sends the browser to the login page, remembering where it was. */
export function toLogin() {
  const here = location.pathname + location.search;
  const redirect = here.startsWith("/web/login") ? "" : `?redirect=${encodeURIComponent(here)}`;
  location.assign(`/web/login${redirect}`);
}

/**
 * Calls the API: JSON in and out; the bearer token when there is a session. A 401 (the
 * session expired or was revoked) sends the user to the login page.
 */
export async function api(method, path, body, options = {}) {
  const headers = { accept: "application/json" };
  const session = getSession();
  if (session && options.auth !== false) headers.authorization = `Bearer ${session.token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    cache: "no-store",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try {
    data = await res.json();
  } catch {
    // not JSON
  }
  if (!res.ok) {
    const message = data?.error?.message ?? data?.message ?? `HTTP ${res.status}`;
    if (res.status === 401 && options.auth !== false) {
      dropSession();
      toLogin();
    }
    throw new ApiError(message, res.status);
  }
  noteActivity();
  return data;
}

/** Logs in with password and TOTP code; stores the session. */
export async function login(user, pass, code) {
  const body = { user, pass };
  if (code) body.second_factor_token = code;
  const answer = await api("POST", "/v1/webapi/sessions/web", body, { auth: false });
  return saveSession(answer, user);
}

/** Logs out on the server (best effort) and here. */
export async function logout() {
  try {
    await api("DELETE", "/v1/webapi/sessions/web");
  } finally {
    dropSession();
  }
}

let lastRenew = 0;
let renewing = null;

/**
 * Renews the session while the tab is used (API calls, keys, clicks): at most once every 5 minutes (the idle timeout is 30);
 * the server never extends it beyond its configured maximum.
 */
export function noteActivity() {
  const s = getSession();
  if (!s || renewing || Date.now() - lastRenew < 300_000) return;
  lastRenew = Date.now();
  renewing = api("POST", "/v1/webapi/sessions/web/renew", {})
    .then((answer) => {
      if (answer?.token) saveSession(answer, s.user);
      else if (answer?.expires_in) saveSession({ ...s, expires_in: answer.expires_in }, s.user);
    })
    .catch(() => {
      // an expired session shows up on the next call
    })
    .finally(() => {
      renewing = null;
    });
}

let pingAnswer = null;

/** `/webapi/ping` (cluster name, second factor), fetched once per page. */
export async function ping() {
  pingAnswer ??= await api("GET", "/webapi/ping", undefined, { auth: false });
  return pingAnswer;
}

/** `/v1/webapi/sites/<site>` + rest. */
export function sitePath(site, rest) {
  return `/v1/webapi/sites/${encodeURIComponent(site)}${rest}`;
}

/** A query string from an object, without empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}
