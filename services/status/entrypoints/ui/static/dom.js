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

/** Local time; the date too when not today. The full ISO time is in the title. */
export function when(iso) {
  if (!iso) return h("span", { class: "muted" }, "—");
  const date = new Date(iso);
  const clock = `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  const today = new Date().toDateString() === date.toDateString();
  const day = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  return h("time", { datetime: iso, title: iso }, today ? clock : `${day} ${clock}`);
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
