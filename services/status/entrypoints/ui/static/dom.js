// Building the page: elements with text nodes only (never innerHTML with data), and the
// small formats every view shares.

export const STATUSES = [
  "submitted", "rejected", "scheduled", "queued", "running",
  "retrying", "succeeded", "dead_lettered", "cancelled",
];
export const TERMINAL = new Set(["rejected", "succeeded", "dead_lettered", "cancelled"]);
export const SITES = ["public", "private"];

/** h("a", {href: "#/", class: "x", onclick: fn}, "text", child, [more]) */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function badge(status) {
  return h("span", { class: `badge status-${status || "unknown"}` }, status || "unknown");
}

function pad(n) {
  return String(n).padStart(2, "0");
}

const ZONE = new Intl.DateTimeFormat(undefined, { timeZoneName: "short" })
  .formatToParts(new Date()).find((part) => part.type === "timeZoneName")?.value || "local time";

/** The time zone the page shows times in (the browser's). */
export function zone() {
  return ZONE;
}

/** Date, time and time zone, in the browser's zone; the exact UTC time is in the title. */
export function when(iso) {
  if (!iso) return h("span", { class: "muted" }, "—");
  const date = new Date(iso);
  const day = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  const clock = `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  return h("time", { datetime: iso, title: date.toISOString() }, `${day} ${clock} ${ZONE}`);
}

/** Seconds as people read them: 850 ms, 12.3 s, 4 min 05 s, 2 h 03 min. */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "—";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  const s = Math.round(seconds);
  if (s < 3600) return `${Math.floor(s / 60)} min ${pad(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${pad(Math.floor((s % 3600) / 60))} min`;
}

/** Seconds from one ISO time to another (or to now); null when the first is unknown. */
export function between(fromIso, toIso) {
  if (!fromIso) return null;
  const end = toIso ? Date.parse(toIso) : Date.now();
  return Math.max(0, (end - Date.parse(fromIso)) / 1000);
}

export function shortId(id) {
  return id ? String(id).slice(0, 8) : "";
}

export function jobLink(id) {
  if (!id) return h("span", { class: "muted" }, "—");
  return h("a", { href: `#/jobs/${id}`, class: "mono", title: id }, shortId(id));
}

export function groupLink(id) {
  return h("a", { href: `#/groups/${id}`, class: "mono", title: id }, shortId(id));
}

export function pretty(value) {
  return h("pre", { class: "code" }, JSON.stringify(value, null, 2));
}

export function orDash(value) {
  return value === null || value === undefined || value === "" ? "—" : String(value);
}

/** A table: headers, then rows of cells (nodes or text); an empty text when no rows. */
export function table(caption, headers, rows, empty = "Nothing here.") {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h(
    "table",
    {},
    caption ? h("caption", {}, caption) : null,
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c))))),
  );
}

export function definitions(pairs) {
  return h("dl", { class: "facts" }, pairs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

export function replace(node, ...children) {
  node.replaceChildren();
  append(node, children);
}

/**
 * Runs `update` (which rebuilds part of `container`) and puts the keyboard focus back on
 * the same link or button if it was inside: live refreshes must not throw a keyboard user
 * back to the top of the page.
 */
export function keepFocus(container, update) {
  const active = document.activeElement;
  const inside = active && active !== container && container.contains(active);
  const key = inside ? [active.tagName, active.getAttribute("href"), active.textContent] : null;
  update();
  if (!key) return;
  for (const node of container.querySelectorAll(key[0])) {
    if (node.getAttribute("href") === key[1] && node.textContent === key[2]) {
      node.focus({ preventScroll: true });
      return;
    }
  }
}
