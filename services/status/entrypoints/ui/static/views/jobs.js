// Jobs: filters, cursor pagination, a submit form, and the page kept live by polling.
import { ApiError, get, post, query } from "../api.js";
import {
  badge, between, duration, h, jobLink, keepFocus, orDash, replace, SITES, STATUSES, when, zone,
} from "../dom.js";

const PAGE = 25;
const earlier = []; // cursors of the pages before this one, for "Previous page"

export async function render(main, ctx) {
  const filters = {
    status: ctx.params.get("status") || "",
    site: ctx.params.get("site") || "",
    job_type: ctx.params.get("job_type") || "",
    job_id_prefix: ctx.params.get("job_id_prefix") || "",
  };
  const cursor = ctx.params.get("cursor") || "";
  if (!cursor) earlier.length = 0;
  const list = h("div", { class: "job-list" });
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  const updated = h("p", { class: "muted" });
  main.append(
    h("h1", { tabindex: "-1" }, "Jobs"),
    filters.job_id_prefix
      ? h("p", { "data-testid": "prefix-note" }, "Jobs whose id starts with ",
        h("span", { class: "mono" }, filters.job_id_prefix), ".")
      : null,
    submitForm(ctx),
    filterForm(filters, ctx),
    updated,
    list,
    pager,
  );
  let shown = "";
  ctx.live(2000, async () => {
    const page = await get(`/jobs${query({ ...filters, limit: PAGE, cursor })}`, { signal: ctx.signal });
    const key = JSON.stringify(page);
    if (key !== shown) {
      shown = key;
      keepFocus(list, () => replace(list, jobTable(page.items)));
      keepFocus(pager, () => replace(pager, pagerLinks(filters, cursor, page.next_cursor, ctx)));
    }
    replace(updated, "Live: refreshed every 2 s. Last update ", when(new Date().toISOString()), ".");
  }, ctx.signal);
}

function select(name, label, values, chosen) {
  return h("div", { class: "field" },
    h("label", { for: `f-${name}` }, label),
    h("select", { id: `f-${name}`, name },
      h("option", { value: "" }, "any"),
      values.map((v) => h("option", { value: v, selected: v === chosen }, v))));
}

function filterForm(filters, ctx) {
  const form = h("form", { class: "filters", "aria-label": "Filter jobs" },
    select("status", "Status", STATUSES, filters.status),
    select("site", "Site", SITES, filters.site),
    h("div", { class: "field" },
      h("label", { for: "f-job_type" }, "Job type"),
      h("input", { id: "f-job_type", name: "job_type", value: filters.job_type, placeholder: "any" })),
    h("div", { class: "field" },
      h("label", { for: "f-job_id_prefix" }, "Id starts with"),
      h("input", {
        id: "f-job_id_prefix", name: "job_id_prefix", value: filters.job_id_prefix, placeholder: "any",
        maxlength: 36, pattern: "[0-9a-fA-F\\-]+", spellcheck: "false",
      })),
    h("button", { type: "submit" }, "Apply filters"),
    h("a", { href: "#/jobs", class: "reset" }, "Clear"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    earlier.length = 0;
    ctx.navigate(`#/jobs${query(data)}`);
  });
  return form;
}

function jobTable(items) {
  if (!items.length) return h("p", { class: "empty" }, "No jobs match.");
  return h("table", { "data-testid": "jobs" },
    h("caption", {}, `Times in ${zone()}. Queue wait: submitted to first started; `,
      "run time: first started to the end (or to now while it runs)."),
    h("thead", {}, h("tr", {}, ["Job", "Type", "Status", "Site", "Rule", "Attempts", "Submitted",
      "Queue wait", "Run time", "Finished"].map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", {}, items.map((job) => h("tr", { "data-job-id": job.job_id },
      h("td", {}, jobLink(job.job_id)),
      h("td", {}, orDash(job.job_type)),
      h("td", { class: "status" }, badge(job.status)),
      h("td", {}, orDash(job.site)),
      h("td", {}, orDash(job.rule)),
      h("td", {}, `${job.attempts}${job.max_attempts ? ` / ${job.max_attempts}` : ""}`),
      h("td", {}, when(job.submitted_at)),
      h("td", { class: "num", "data-testid": "queue-wait" }, duration(queueWait(job))),
      h("td", { class: "num", "data-testid": "run-time" }, duration(runTime(job))),
      h("td", {}, when(job.finished_at))))));
}

/** Submitted to the first start; to now while it waits (null once it ended unstarted). */
export function queueWait(job) {
  if (!job.submitted_at) return null;
  if (job.started_at) return between(job.submitted_at, job.started_at);
  return job.finished_at ? null : between(job.submitted_at);
}

/** The first start to the end, or to now while it runs. */
export function runTime(job) {
  return job.started_at ? between(job.started_at, job.finished_at) : null;
}

function pagerLinks(filters, cursor, next, ctx) {
  const links = [];
  if (cursor) {
    links.push(h("button", { type: "button", onclick: () => {
      ctx.navigate(`#/jobs${query({ ...filters, cursor: earlier.pop() || "" })}`);
    } }, earlier.length ? "Previous page" : "First page"));
  }
  if (next) {
    links.push(h("button", { type: "button", onclick: () => {
      earlier.push(cursor);
      ctx.navigate(`#/jobs${query({ ...filters, cursor: next })}`);
    } }, "Next page"));
  }
  return links;
}

function submitForm(ctx) {
  const result = h("div", { role: "status", "aria-live": "polite" });
  const field = (id, label, input) => h("div", { class: "field" }, h("label", { for: id }, label), input);
  const form = h("form", { class: "submit", "aria-label": "Submit a job" },
    field("s-job_type", "Job type", h("input", { id: "s-job_type", name: "job_type", value: "noop", required: true })),
    field("s-params", "Params (JSON)", h("textarea", { id: "s-params", name: "params", rows: 2 }, "{}")),
    field("s-priority", "Priority (0–9)", h("input", { id: "s-priority", name: "priority", type: "number", min: 0, max: 9, value: "5" })),
    field("s-target", "Target cloud", h("select", { id: "s-target", name: "target_cloud" },
      h("option", { value: "" }, "let the rules decide"), SITES.map((s) => h("option", { value: s }, s)))),
    field("s-class", "Data classification", h("select", { id: "s-class", name: "data_classification" },
      ["internal", "public", "confidential"].map((c) => h("option", { value: c }, c)))),
    field("s-max", "Max attempts", h("input", { id: "s-max", name: "max_attempts", type: "number", min: 1, max: 20, value: "3" })),
    h("button", { type: "submit" }, "Submit job"),
    result);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    let params;
    try {
      params = JSON.parse(data.params || "{}");
    } catch {
      replace(result, h("p", { class: "error" }, "Params must be JSON, e.g. {\"seconds\": 2}."));
      return;
    }
    const body = {
      job_type: data.job_type.trim(),
      params,
      priority: Number(data.priority),
      data_classification: data.data_classification,
      max_attempts: Number(data.max_attempts),
    };
    if (data.target_cloud) body.target_cloud = data.target_cloud;
    try {
      const accepted = await post("/jobs", body);
      replace(result, h("p", {}, "Submitted ", jobLink(accepted.job_id), "."));
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      replace(result, h("p", { class: "error" }, `Not submitted: ${error.message}`));
    }
  });
  return h("details", { class: "panel" }, h("summary", {}, "Submit a job"), form);
}
