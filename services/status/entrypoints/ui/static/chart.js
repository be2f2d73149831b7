// A bar chart in plain SVG: succeeded and failed jobs per time bucket, as
// GET /stats/throughput counts them.
import { zone } from "./dom.js";

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

function pad(n) {
  return String(n).padStart(2, "0");
}

/** An axis label: the clock, with the date when the range spans more than a day. */
function tickLabel(ms, long) {
  const d = new Date(ms);
  const clock = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  return long ? `${d.getMonth() + 1}/${d.getDate()} ${clock}` : clock;
}

/** `flow`: the answer of GET /stats/throughput; `label`: the range in words. */
export function chart(flow, label) {
  const buckets = flow.buckets.map((b) => ({
    t: Date.parse(b.start), succeeded: b.succeeded, failed: b.dead_lettered + b.rejected, rejected: b.rejected,
  }));
  const ok = buckets.reduce((n, b) => n + b.succeeded, 0);
  const bad = buckets.reduce((n, b) => n + b.failed, 0);
  const rejected = buckets.reduce((n, b) => n + b.rejected, 0);
  const top = Math.max(1, ...buckets.map((b) => b.succeeded + b.failed));
  const width = flow.bucket_seconds;
  const per = width % 3600 === 0 ? `${width / 3600}-hour` : width % 60 === 0 ? `${width / 60}-minute` : `${width}-second`;
  const summary = `${label}: ${ok} succeeded, ${bad} failed (${rejected} of them rejected), ` +
    `in ${per} bars; busiest bar ${top}.`;
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
  const slot = plotW / Math.max(1, buckets.length);
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
  if (buckets.length) {
    const long = Date.parse(flow.until) - Date.parse(flow.since) > 86400 * 1000;
    const first = buckets[0].t;
    const middle = buckets[Math.floor(buckets.length / 2)].t;
    const labels = [[0, tickLabel(first, long)], [Math.floor(buckets.length / 2), tickLabel(middle, long)],
      [buckets.length, "now"]];
    for (const [i, text] of labels) {
      const anchor = i === 0 ? "start" : i === buckets.length ? "end" : "middle";
      svg.append(el("text", { x: PAD.left + i * slot, y: H - 8, class: "axis", "text-anchor": anchor }, text));
    }
  }
  const figure = document.createElement("figure");
  figure.className = "chart-figure";
  const caption = document.createElement("figcaption");
  caption.className = "legend";
  caption.innerHTML =
    '<span class="key ok-key"></span> succeeded <span class="key bad-key"></span> failed (dead-lettered or rejected)';
  caption.append(` · times in ${zone()}`);
  const text = document.createElement("p");
  text.className = "muted";
  text.dataset.testid = "chart-summary";
  text.textContent = summary;
  figure.append(svg, caption, text);
  return figure;
}
