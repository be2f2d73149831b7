// A bar chart in plain SVG: succeeded and failed jobs per time bucket.
import { BUCKET_SECONDS, WINDOW_SECONDS } from "./throughput.js";

const NS = "http://www.w3.org/2000/svg";
const W = 720;
const H = 180;
const PAD = { left: 44, right: 10, top: 12, bottom: 28 };

function el(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

export function chart(buckets) {
  const ok = buckets.reduce((n, b) => n + b.succeeded, 0);
  const bad = buckets.reduce((n, b) => n + b.failed, 0);
  const top = Math.max(1, ...buckets.map((b) => b.succeeded + b.failed));
  const summary = `Last ${WINDOW_SECONDS / 60} minutes: ${ok} succeeded, ${bad} failed ` +
    `(in ${BUCKET_SECONDS}-second bars; busiest bar ${top}).`;
  const svg = el("svg", {
    viewBox: `0 0 ${W} ${H}`, role: "img", class: "chart", "aria-labelledby": "chart-title",
  });
  svg.append(el("title", { id: "chart-title" }, summary));
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const y = (v) => PAD.top + plotH - (v / top) * plotH;
  for (const v of new Set([0, Math.ceil(top / 2), top])) {
    svg.append(el("line", { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v), class: "grid" }));
    svg.append(el("text", { x: PAD.left - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, v));
  }
  const slot = plotW / buckets.length;
  buckets.forEach((b, i) => {
    const x = PAD.left + i * slot + 1;
    const w = Math.max(1, slot - 2);
    if (b.succeeded) {
      svg.append(el("rect", { x, y: y(b.succeeded), width: w, height: y(0) - y(b.succeeded), class: "ok" }));
    }
    if (b.failed) {
      const base = y(b.succeeded);
      svg.append(el("rect", { x, y: base - (y(0) - y(b.failed)), width: w, height: y(0) - y(b.failed), class: "bad" }));
    }
  });
  const labels = [[0, `-${WINDOW_SECONDS / 60} min`], [buckets.length / 2, `-${WINDOW_SECONDS / 120} min`], [buckets.length, "now"]];
  for (const [i, text] of labels) {
    const anchor = i === 0 ? "start" : i === buckets.length ? "end" : "middle";
    svg.append(el("text", { x: PAD.left + i * slot, y: H - 8, class: "axis", "text-anchor": anchor }, text));
  }
  const figure = document.createElement("figure");
  figure.className = "chart-figure";
  const caption = document.createElement("figcaption");
  caption.className = "legend";
  caption.innerHTML =
    '<span class="key ok-key"></span> succeeded <span class="key bad-key"></span> failed (dead-lettered or rejected)';
  const text = document.createElement("p");
  text.className = "muted";
  text.textContent = summary;
  figure.append(svg, caption, text);
  return figure;
}
