// The dashboard's only door to data: the public HTTP API, with the session's bearer token.
// The token lives in sessionStorage: entered once, kept until the tab closes.

const BASE = location.pathname.replace(/\/ui\/?$/, "");
const TOKEN_KEY = "hybridq.token";

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

let unauthorized = () => {};

/** Called on every 401: the app asks for a token. */
export function onUnauthorized(callback) {
  unauthorized = callback;
}

function headers(extra = {}) {
  const result = { Accept: "application/json", ...extra };
  const value = token();
  if (value) result.Authorization = `Bearer ${value}`;
  return result;
}

/** A readable sentence from an error body: `detail`, then each field error. */
export function describe(body, status) {
  if (body && typeof body === "object") {
    const parts = [];
    if (typeof body.detail === "string") parts.push(body.detail);
    for (const e of body.errors || []) parts.push(`${e.field}: ${e.message}`);
    if (parts.length) return parts.join("; ");
  }
  if (typeof body === "string" && body) return body.slice(0, 300);
  return `HTTP ${status}`;
}

async function fail(response) {
  const text = await response.text();
  let body = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  if (response.status === 401) unauthorized();
  return new ApiError(response.status, describe(body, response.status), body);
}

export async function request(method, path, body, { signal } = {}) {
  const init = { method, signal, cache: "no-store", headers: headers() };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(BASE + path, init);
  if (!response.ok) throw await fail(response);
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

export const get = (path, options) => request("GET", path, undefined, options);
export const post = (path, body, options) => request("POST", path, body, options);
export const patch = (path, body, options) => request("PATCH", path, body, options);

/** `?a=1&b=2` from an object, leaving out empty values. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/**
 * Server-sent events read with fetch, since EventSource cannot send an Authorization
 * header. Calls onEvent(name, data) per event; resolves when the server ends the stream.
 */
export async function stream(path, onEvent, signal) {
  const response = await fetch(BASE + path, {
    signal,
    cache: "no-store",
    headers: headers({ Accept: "text/event-stream" }),
  });
  if (!response.ok) throw await fail(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    // sse-starlette ends lines with \r\n; a \r at the chunk's end waits for its \n
    const cut = buffer.endsWith("\r") ? buffer.length - 1 : buffer.length;
    buffer = buffer.slice(0, cut).replace(/\r\n?/g, "\n") + buffer.slice(cut);
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      dispatch(block, onEvent);
    }
  }
}

function dispatch(block, onEvent) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") name = value;
    else if (field === "data") data.push(value);
  }
  if (data.length) onEvent(name, data.join("\n"));
}
