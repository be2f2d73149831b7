// Overview: per-site counts and backlog, throughput and failures, the worker fleet.
import { ApiError, get, query } from "../api.js";
import { chart } from "../chart.js";
import { badge, h, jobLink, orDash, replace, SITES, STATUSES, table, when } from "../dom.js";
import { record } from "../throughput.js";

export async function render(main, ctx) {
  const sites = h("div", { class: "cards" });
  const throughput = h("div");
  const workers = h("div");
  const queues = h("div");
  const updated = h("p", { class: "muted" });
  main.append(
    h("h1", { tabindex: "-1" }, "Overview"),
    updated,
    h("section", { "aria-labelledby": "sites-h" }, h("h2", { id: "sites-h" }, "Sites"), sites),
    h("section", { "aria-labelledby": "tp-h" }, h("h2", { id: "tp-h" }, "Throughput and failures"), throughput),
    h("section", { "aria-labelledby": "workers-h" }, h("h2", { id: "workers-h" }, "Workers"), workers),
    h("section", { "aria-labelledby": "queues-h" }, h("h2", { id: "queues-h" }, "Queues"), queues),
  );
  ctx.live(2000, async () => {
    const stats = await get("/stats", { signal: ctx.signal });
    replace(sites, SITES.map((site) => siteCard(site, stats)));
    replace(queues, queueTable(stats.queues || {}));
    replace(throughput, chart(await record(stats, ctx.signal)));
    replace(updated, "Live: refreshed every 2 s. Last update ", when(new Date().toISOString()), ".");
  }, ctx.signal);
  ctx.live(5000, async () => replace(workers, await fleet(ctx.signal)), ctx.signal);
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
    h(
      "table",
      { class: "counts" },
      h("caption", {}, `${total} job(s) placed on ${site}`),
      h("tbody", {}, STATUSES.filter((s) => s !== "submitted").map((s) =>
        h("tr", { class: counts[s] ? "" : "zero" }, h("th", { scope: "row" }, badge(s)),
          h("td", { "data-testid": `count-${site}-${s}` }, count(site, s, counts[s] || 0))))),
    ),
  );
}

/** A count links to the job list filtered to it. */
function count(site, status, n) {
  if (!n) return "0";
  const href = `#/jobs${query({ status, site })}`;
  return h("a", { href, "aria-label": `${n} ${status} on ${site}: list them` }, String(n));
}

function queueTable(queues) {
  const rows = Object.entries(queues).map(([name, q]) => [
    h("span", { class: "mono" }, name), String(q.ready), orDash(q.unacked), String(q.consumers),
  ]);
  return table(null, ["Queue", "Ready", "Unacked", "Consumers"], rows, "No queue depths known yet.");
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
