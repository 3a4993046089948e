// The REST client: JSON in and out, and one readable message for every failure.
// Same origin, so the sign-in cookie (when the server has a token) goes along by itself.

export class ApiError extends Error {
  constructor(status, message, detail) {
    super(message);
    this.status = status;
    this.detail = detail;
    this.code = detail && typeof detail === "object" && !Array.isArray(detail) ? detail.code : undefined;
  }
}

/** The API's `detail` as words: a string, an object's message, or FastAPI's 422 list. */
export function describe(detail, status) {
  if (detail === null || detail === undefined) return `HTTP ${status}`;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((d) => {
        const where = (d.loc || []).filter((p) => p !== "body" && p !== "query").join(".");
        return where ? `${where}: ${d.msg}` : d.msg;
      })
      .join("; ");
  }
  if (typeof detail === "object") return detail.message || detail.error || JSON.stringify(detail);
  return String(detail);
}

/** A URL under /v1 with query parameters (empty values left out). */
export function url(path, query) {
  const u = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== "") u.searchParams.set(k, String(v));
  }
  return u.pathname + u.search;
}

const listeners = new Set();
/** Called with (ok: boolean) whenever a request reaches or fails to reach the server. */
export const onReachability = (fn) => listeners.add(fn);
const reached = (ok) => listeners.forEach((fn) => fn(ok));

export async function request(method, path, { query, body, signal, raw = false } = {}) {
  const init = { method, signal, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    if (body instanceof FormData) init.body = body;
    else {
      init.body = JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
  }
  let response;
  try {
    response = await fetch(url(path, query), init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    reached(false);
    throw new ApiError(0, "Cannot reach the Quiver server: is it still running?");
  }
  reached(true);
  if (response.status === 401) {
    // The sign-in cookie is gone or the token changed: the page route shows the sign-in form.
    location.reload();
    throw new ApiError(401, "Sign in again: the server asks for its token.");
  }
  if (!response.ok) {
    const text = await response.text();
    let detail = text;
    try {
      detail = JSON.parse(text).detail ?? text;
    } catch {
      /* plain text (a 429, a proxy's page): shown as it is */
    }
    const message = describe(detail, response.status) || `HTTP ${response.status}`;
    throw new ApiError(response.status, message, detail);
  }
  if (raw) return response;
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response.text();
}

export const api = {
  get: (path, query, opts) => request("GET", path, { query, ...opts }),
  post: (path, body, query) => request("POST", path, { body, query }),
  put: (path, body) => request("PUT", path, { body }),
  del: (path) => request("DELETE", path),
};

// ---- what this server offers: panels appear when their routes exist ----------------------------

let features = null;

/** The server's routes (from its OpenAPI document) and the notebook runtime config. */
export async function loadFeatures() {
  if (features) return features;
  const [doc, config] = await Promise.all([
    api.get("/openapi.json").catch(() => ({ paths: {} })),
    api.get("/v1/notebooks/config").catch(() => ({})),
  ]);
  const routes = new Set();
  for (const [path, methods] of Object.entries(doc.paths || {})) {
    for (const method of Object.keys(methods)) routes.add(`${method.toUpperCase()} ${path}`);
  }
  features = {
    config,
    version: doc.info?.version,
    /** has("GET", "/v1/notebooks/{session_id}/dependencies") */
    has: (method, path) => routes.has(`${method} ${path}`),
    routes,
  };
  return features;
}
