// Overview: per-site counts and backlog, throughput and failures and the timings of
// finished jobs over a chosen time range, the worker fleet, the queues.
import { ApiError, get, query } from "../api.js";
import { chart } from "../chart.js";
import { badge, duration, h, jobLink, replace, SITES, STATUSES, table, when } from "../dom.js";

export const RANGES = [
  ["5m", 300, "Last 5 minutes"],
  ["15m", 900, "Last 15 minutes"],
  ["1h", 3600, "Last hour"],
  ["6h", 21600, "Last 6 hours"],
  ["24h", 86400, "Last 24 hours"],
  ["7d", 604800, "Last 7 days"],
];
const DEFAULT_RANGE = "15m";
// the server's bucket widths; the range starts on a multiple, so bars do not shift
const BUCKETS = [1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400];
const UNPLACED = "unplaced";

export async function render(main, ctx) {
  let range = RANGES.find(([key]) => key === ctx.params.get("range")) || RANGES.find(([key]) => key === DEFAULT_RANGE);
  const sites = h("div", { class: "cards" });
  const throughput = h("div");
  const timings = h("div");
  const workers = h("div");
  const queues = h("div");
  const updated = h("p", { class: "muted" });
  const picker = h("select", { id: "range", name: "range" },
    RANGES.map(([key, , label]) => h("option", { value: key, selected: key === range[0] }, label)));
  picker.addEventListener("change", () => {
    range = RANGES.find(([key]) => key === picker.value);
    // the choice is in the address (a link or a reload keeps it), without a new page
    history.replaceState(null, "", `#/${query({ range: range[0] })}`);
    tick().catch((error) => { if (!ctx.signal.aborted) ctx.notice(`Not refreshed: ${error.message}`, "error"); });
  });
  main.append(
    h("h1", { tabindex: "-1" }, "Overview"),
    updated,
    h("section", { "aria-labelledby": "sites-h" }, h("h2", { id: "sites-h" }, "Sites"), sites),
    h("div", { class: "range field" }, h("label", { for: "range" }, "Time range (throughput and timings)"), picker),
    h("section", { "aria-labelledby": "tp-h" }, h("h2", { id: "tp-h" }, "Throughput and failures"), throughput),
    h("section", { "aria-labelledby": "timings-h" },
      h("h2", { id: "timings-h" }, "Queue wait and run time of finished jobs"), timings),
    h("section", { "aria-labelledby": "workers-h" }, h("h2", { id: "workers-h" }, "Workers"), workers),
    h("section", { "aria-labelledby": "queues-h" }, h("h2", { id: "queues-h" }, "Queues"), queues),
  );
  let asked = 0; // the newest range request: an older answer arriving late is dropped
  const tick = async () => {
    const mine = ++asked;
    const [key, seconds, label] = range;
    const bucket = BUCKETS.find((b) => seconds / b <= 60) || BUCKETS[BUCKETS.length - 1];
    const now = Date.now();
    const since = new Date(Math.floor((now - seconds * 1000) / (bucket * 1000)) * bucket * 1000).toISOString();
    const until = new Date(now).toISOString();
    const [flow, times] = await Promise.all([
      get(`/stats/throughput${query({ since, until, bucket_seconds: bucket })}`, { signal: ctx.signal }),
      get(`/stats/timings${query({ since, until })}`, { signal: ctx.signal }),
    ]);
    if (mine !== asked || key !== range[0]) return;
    replace(throughput, chart(flow, label));
    replace(timings, timingTable(times, label));
  };
  ctx.live(2000, async () => {
    const stats = await get("/stats", { signal: ctx.signal });
    replace(sites, SITES.map((site) => siteCard(site, stats)), unplacedCard(stats));
    replace(queues, queueTable(stats.queues || {}));
    replace(updated, "Live: refreshed every 2 s (the range every 5 s). Last update ", when(new Date().toISOString()), ".");
  }, ctx.signal);
  ctx.live(5000, tick, ctx.signal);
  ctx.live(5000, async () => replace(workers, await fleet(ctx.signal)), ctx.signal);
}

function countsTable(place, counts, caption) {
  return h(
    "table",
    { class: "counts" },
    h("caption", {}, caption),
    h("tbody", {}, STATUSES.filter((s) => place === UNPLACED || s !== "submitted").map((s) =>
      h("tr", { class: counts[s] ? "" : "zero" }, h("th", { scope: "row" }, badge(s)),
        h("td", { "data-testid": `count-${place}-${s}` }, count(place, s, counts[s] || 0))))),
  );
}

function siteCard(site, stats) {
  const counts = (stats.by_site || {})[site] || {};
  const queue = (stats.queues || {})[`jobs.${site}`];
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  return h(
    "article",
    { class: "card", "aria-labelledby": `site-${site}` },
    h("h3", { id: `site-${site}` }, site),
    h(
      "p",
      { class: "backlog" },
      "Backlog ",
      h("strong", { "data-testid": `backlog-${site}` }, queue ? String(queue.ready) : "—"),
      queue ? ` ready in jobs.${site}, ${queue.consumers} consumer(s)` : " (queue depth not known)",
    ),
    countsTable(site, counts, `${total} job(s) placed on ${site}`),
  );
}

/** Jobs no site has: rejected before placement, or not yet routed (by_status less by_site). */
export function unplaced(stats) {
  const result = {};
  for (const [status, n] of Object.entries(stats.by_status || {})) {
    const placed = SITES.reduce((sum, site) => sum + (((stats.by_site || {})[site] || {})[status] || 0), 0);
    if (n - placed > 0) result[status] = n - placed;
  }
  return result;
}

function unplacedCard(stats) {
  const counts = unplaced(stats);
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  return h(
    "article",
    { class: "card", "aria-labelledby": "site-unplaced" },
    h("h3", { id: "site-unplaced" }, "Not placed"),
    h("p", { class: "backlog" }, "Rejected ",
      h("strong", { "data-testid": "rejected-total" }, String((stats.by_status || {}).rejected || 0)),
      " in all; jobs here never reached a site (refused, or not yet routed)."),
    countsTable(UNPLACED, counts, `${total} job(s) on no site`),
  );
}

/** A count links to the job list filtered to it. */
function count(place, status, n) {
  if (!n) return "0";
  const where = place === UNPLACED ? {} : { site: place };
  const href = `#/jobs${query({ status, ...where })}`;
  const on = place === UNPLACED ? "not placed" : `on ${place}`;
  return h("a", { href, "aria-label": `${n} ${status} ${on}: list them` }, String(n));
}

function timingTable(body, label) {
  const seconds = (p, q) => (p[q] === null ? "—" : duration(p[q]));
  const rows = body.items.map((row) => {
    const type = row.job_type ?? "(unknown)";
    const failed = row.outcomes.dead_lettered + row.outcomes.rejected;
    const cell = (kind, q) => h("td", { class: "num", "data-testid": `${kind}-${q}` }, seconds(row[kind], q));
    return h("tr", { "data-job-type": type, class: type === "(all)" ? "total" : "" },
      h("th", { scope: "row" }, type === "(all)" ? "All job types" : h("span", { class: "mono" }, type)),
      h("td", { class: "num", "data-testid": "finished" }, String(row.finished)),
      h("td", { class: "num" }, String(row.outcomes.succeeded)),
      h("td", { class: "num", "data-testid": "failed" }, String(failed)),
      cell("queue_wait", "p50"), cell("queue_wait", "p95"), cell("queue_wait", "p99"),
      cell("run_time", "p50"), cell("run_time", "p95"), cell("run_time", "p99"));
  });
  const th = (text, attrs = {}) => h("th", { scope: "col", ...attrs }, text);
  return h("table", { class: "timings", "data-testid": "timings" },
    h("caption", {}, `${label}, by job type: jobs that finished in the range. Queue wait: submitted to first `,
      "started. Run time: first started to the end, retries included. Failed: dead-lettered or rejected."),
    h("thead", {},
      h("tr", {}, th("Job type", { rowspan: 2 }), th("Finished", { rowspan: 2 }), th("Succeeded", { rowspan: 2 }),
        th("Failed", { rowspan: 2 }), th("Queue wait", { colspan: 3, scope: "colgroup" }),
        th("Run time", { colspan: 3, scope: "colgroup" })),
      h("tr", {}, ["p50", "p95", "p99", "p50", "p95", "p99"].map((q) => th(q)))),
    h("tbody", {}, rows));
}

function queueTable(queues) {
  // no Unacked column: the status service reads depths with passive declares (exact and
  // current), which count ready messages and consumers only; running jobs are under Workers
  const rows = Object.entries(queues).map(([name, q]) => [
    h("span", { class: "mono" }, name), String(q.ready), String(q.consumers),
  ]);
  return table(null, ["Queue", "Ready", "Consumers"], rows, "No queue depths known yet.");
}

async function fleet(signal) {
  let body;
  try {
    body = await get("/workers", { signal });
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      return h("p", { class: "empty", "data-testid": "workers-unavailable" },
        "Not available: this server has no worker list (GET /workers).");
    }
    throw error;
  }
  const rows = body.items.map((w) => {
    // `running`: the attempts it runs (a list), or just how many
    const running = Array.isArray(w.running) ? w.running : [];
    const count = Array.isArray(w.running) ? running.length : Number(w.running) || 0;
    return [
      h("span", { class: "mono" }, w.worker), w.site, (w.job_types || []).join(", "),
      `${count} / ${w.concurrency}`, running.length ? running.map((r) => [jobLink(r.job_id), " "]) : "—",
      when(w.last_seen),
    ];
  });
  return table(null, ["Worker", "Site", "Job types", "Running / capacity", "Running jobs", "Last seen"], rows,
    "No worker has reported in.");
}
