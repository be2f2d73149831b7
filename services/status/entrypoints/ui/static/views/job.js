// One job: where it runs and why, its progress, outcome, family, and event timeline —
// kept live by the job's event stream while it is not finished.
import { ApiError, get, post, query, stream, token } from "../api.js";
import {
  badge, between, definitions, duration, groupLink, h, jobLink, keepFocus, orDash, pretty, replace, shortId,
  TERMINAL, when,
} from "../dom.js";

export async function render(main, ctx) {
  const id = ctx.match[1].toLowerCase();
  const body = h("div");
  main.append(h("h1", { tabindex: "-1" }, "Job ", h("span", { class: "mono", title: id }, shortId(id))), body);
  let shown = "";
  const refresh = async () => {
    const [view, events] = await Promise.all([
      get(`/jobs/${id}`, { signal: ctx.signal }),
      get(`/jobs/${id}/events`, { signal: ctx.signal }),
    ]);
    const children = "parent_id" in view ? await family(id, ctx.signal) : null;
    const key = JSON.stringify([view, events.items, children]);
    if (key !== shown) {
      shown = key;
      keepFocus(body, () => replace(body, page(view, events.items, children, ctx, refresh)));
    }
    return view;
  };
  let view;
  try {
    view = await refresh();
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      replace(body, h("p", { class: "empty" }, `No job ${id} (yet: a job appears once the status service has seen it).`));
      ctx.live(2000, async () => { if (await refresh().catch(() => null)) ctx.navigate(location.hash); }, ctx.signal);
      return;
    }
    throw error;
  }
  follow(id, view, refresh, ctx);
}

/** Stream while the job is open; poll slowly once it is finished (a redrive re-opens it). */
async function follow(id, view, refresh, ctx) {
  let finished = TERMINAL.has(view.status);
  while (!ctx.signal.aborted) {
    if (!finished) {
      try {
        let pending = null;
        await stream(`/jobs/${id}/stream`, () => {
          pending ??= setTimeout(() => { pending = null; refresh().catch(() => {}); }, 150);
        }, ctx.signal);
      } catch (error) {
        if (ctx.signal.aborted) return;
        if (error instanceof ApiError && error.status === 401) return;
        // no stream (e.g. 429: too many open): polling below keeps the page live
      }
    }
    await sleep(finished ? 5000 : 1000, ctx.signal);
    if (ctx.signal.aborted) return;
    try {
      finished = TERMINAL.has((await refresh()).status);
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return;
    }
  }
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

async function family(id, signal) {
  const page = await get(`/jobs${query({ parent_id: id, limit: 100 })}`, { signal });
  // a server without the parent filter answers every job: keep only this job's children
  return page.items.filter((job) => job.parent_id === id);
}

function page(view, events, children, ctx, refresh) {
  const running = view.status === "running";
  return [
    h("p", { class: "headline" }, badge(view.status), " ",
      h("span", { class: "mono" }, view.job_id), " ", orDash(view.job_type)),
    actions(view, ctx, refresh),
    running || (view.progress !== null && view.progress !== undefined && !TERMINAL.has(view.status))
      ? progress(view) : null,
    h("section", { "aria-labelledby": "placement-h" },
      h("h2", { id: "placement-h" }, "Placement"),
      definitions([
        ["Site", orDash(view.site)],
        ["Rule", h("span", { "data-testid": "rule" }, orDash(view.rule))],
        ["Reason", h("span", { "data-testid": "reason" }, orDash(view.reason))],
        ["Priority", orDash(view.priority)],
        ["Data classification", orDash(view.data_classification)],
      ])),
    outcome(view),
    h("section", { "aria-labelledby": "details-h" },
      h("h2", { id: "details-h" }, "Details"),
      definitions([
        ["Attempts", `${view.attempts}${view.max_attempts ? ` of ${view.max_attempts}` : ""}`],
        ["Submitted", when(view.submitted_at)],
        ["Queue wait", h("span", { "data-testid": "queue-wait" }, waited(events))],
        ["Run time", h("span", { "data-testid": "run-time" }, ran(events))],
        ["Started", when(view.started_at)],
        ["Finished", when(view.finished_at)],
        ["Updated", when(view.updated_at)],
        ["Group", view.group_id ? groupLink(view.group_id) : "—"],
        ["Parent", view.parent_id ? jobLink(view.parent_id) : "—"],
        ["Schedule", view.schedule_id ? h("a", { href: "#/schedules", class: "mono" }, shortId(view.schedule_id)) : "—"],
        ["Params", view.params ? pretty(view.params) : "—"],
      ])),
    children ? h("section", { "aria-labelledby": "children-h" },
      h("h2", { id: "children-h" }, "Children"),
      children.length
        ? h("ul", {}, children.map((c) => h("li", {}, jobLink(c.job_id), " ", orDash(c.job_type), " ", badge(c.status))))
        : h("p", { class: "empty" }, "No child jobs.")) : null,
    h("section", { "aria-labelledby": "timeline-h" },
      h("h2", { id: "timeline-h" }, "Timeline"),
      timeline(events)),
    deliveries(view.job_id, ctx.signal),
  ];
}

/** The job's webhook deliveries (each attempt), for a signed-in admin; nothing otherwise. */
function deliveries(id, signal) {
  const section = h("section", { "aria-labelledby": "webhooks-h", "data-testid": "webhook-deliveries", hidden: "" });
  // fetched quietly: a 401 or 403 here (no admin token) is no reason to ask for a token
  const quiet = async (path) => {
    const auth = token() ? { Authorization: `Bearer ${token()}` } : {};
    const response = await fetch(location.pathname.replace(/\/ui\/?$/, "") + path, { signal, cache: "no-store", headers: { Accept: "application/json", ...auth } });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return response.json();
  };
  (async () => {
    const hooks = (await quiet("/webhooks")).items;
    const rows = [];
    for (const hook of hooks) {
      const log = await quiet(`/webhooks/${hook.webhook_id}/deliveries${query({ job_id: id })}`);
      for (const a of log.items) rows.push([hook, a]);
    }
    if (!hooks.length) return;
    replace(section, [
      h("h2", { id: "webhooks-h" }, "Webhook deliveries"),
      rows.length
        ? h("ol", { class: "timeline" }, rows.map(([hook, a]) => h("li", {},
          when(a.attempted_at), " ", h("strong", {}, a.event_type), " to ", h("span", { class: "mono" }, hook.url), ": ",
          a.outcome, a.status_code !== null ? ` (${a.status_code})` : "", a.error ? ` — ${a.error}` : "",
          a.next_try_at ? [", next try ", when(a.next_try_at)] : "")))
        : h("p", { class: "empty" }, "No deliveries yet."),
    ]);
    section.hidden = false;
  })().catch(() => {}); // no admin token, or the database away: the section stays hidden
  return section;
}

const ENDINGS = new Set(["JobSucceeded", "JobDeadLettered", "JobCancelled", "JobRejected"]);

/** The job's events' times: its submission, first start and last ending (null if none). */
function moments(events) {
  const first = (type) => events.find((e) => e.type === type)?.occurred_at || null;
  const endings = events.filter((e) => ENDINGS.has(e.type));
  const last = endings.length ? endings[endings.length - 1] : null;
  // a redrive re-opens the job: an ending before the last redrive is not its end
  const redriven = events.filter((e) => e.type === "JobRedriven").pop();
  const ended = last && (!redriven || Date.parse(last.occurred_at) >= Date.parse(redriven.occurred_at))
    ? last.occurred_at : null;
  return { submitted: first("JobSubmitted"), started: first("JobStarted"), ended };
}

/** JobSubmitted to the first JobStarted (to now while no worker has it). */
function waited(events) {
  const { submitted, started, ended } = moments(events);
  if (!submitted) return "—";
  if (started) return duration(between(submitted, started));
  return ended ? "never started" : `${duration(between(submitted))} so far`;
}

/** The first JobStarted to the job's end (to now while it runs), retries included. */
function ran(events) {
  const { started, ended } = moments(events);
  if (!started) return "—";
  const attempts = events.filter((e) => e.type === "JobStarted").length;
  const text = duration(between(started, ended));
  const tries = attempts > 1 ? ` over ${attempts} attempts` : "";
  return ended ? `${text}${tries}` : `${text} so far${tries}`;
}

function progress(view) {
  const percent = Math.round(view.progress || 0);
  return h("section", { "aria-labelledby": "progress-h" },
    h("h2", { id: "progress-h" }, "Progress"),
    h("progress", { max: 100, value: percent, "aria-labelledby": "progress-h" }, `${percent}%`),
    h("span", { class: "progress-text" }, ` ${percent}%`, view.progress_message ? ` — ${view.progress_message}` : ""));
}

function outcome(view) {
  if (view.error) {
    return h("section", { "aria-labelledby": "error-h", class: "outcome failed" },
      h("h2", { id: "error-h" }, "Error"),
      h("pre", { class: "code", "data-testid": "error" }, view.error));
  }
  if (view.result) {
    return h("section", { "aria-labelledby": "result-h", class: "outcome" },
      h("h2", { id: "result-h" }, "Result"), pretty(view.result));
  }
  return null;
}

function actions(view, ctx, refresh) {
  if (view.status === "dead_lettered") {
    return h("p", { class: "actions" }, "It can be run again: ", h("a", { href: "#/dead-letters" }, "Dead letters"), ".");
  }
  if (!ctx.operator || TERMINAL.has(view.status)) return null;
  const button = h("button", { type: "button", class: "danger", onclick: async () => {
    button.disabled = true;
    try {
      await post(`/jobs/${view.job_id}/cancel`, { reason: "cancelled from the dashboard" });
      ctx.notice("Cancel requested.");
      await refresh();
    } catch (error) {
      if (error instanceof ApiError && error.status === 403) return ctx.forbidden(error);
      ctx.notice(`Not cancelled: ${error.message}`, "error");
      button.disabled = false;
    }
  } }, "Cancel job");
  return h("p", { class: "actions" }, button);
}

const SUMMARY = {
  JobSubmitted: (e) => `${e.job_type}, priority ${e.priority}, ${e.data_classification}` +
    (e.target_cloud ? `, asked for ${e.target_cloud}` : "") +
    (e.delay_seconds ? `, delayed ${e.delay_seconds} s` : ""),
  JobRejected: (e) => [e.reason, ...(e.errors || []).map((x) => `${x.field}: ${x.message}`)].join("; "),
  JobScheduled: (e) => `on ${e.site}, not before ${e.not_before}`,
  JobRouted: (e) => `to ${e.site} by rule ${e.rule}: ${e.reason}`,
  JobStarted: (e) => `attempt ${e.attempt} on ${e.worker} (${e.site})`,
  JobProgress: (e) => `${Math.round(e.percent)}%${e.message ? ` — ${e.message}` : ""}`,
  JobFailed: (e) => `attempt ${e.attempt}: ${e.error}${e.retry_at ? `; retry at ${e.retry_at}` : ""}`,
  JobSucceeded: (e) => `attempt ${e.attempt} in ${Number(e.duration_seconds).toFixed(2)} s`,
  JobDeadLettered: (e) => `${e.reason} after ${e.attempts} attempt(s)`,
  JobCancelled: (e) => e.reason,
  JobRedriven: (e) => `to ${e.site}${e.next_attempt ? `, next attempt ${e.next_attempt}` : ""}`,
};

function timeline(events) {
  if (!events.length) return h("p", { class: "empty" }, "No events yet.");
  return h("ol", { class: "timeline", "data-testid": "timeline" }, events.map((e) =>
    h("li", { class: `event ${e.type}` },
      when(e.occurred_at), " ",
      h("strong", {}, e.type), " ",
      h("span", {}, (SUMMARY[e.type] || (() => ""))(e)))));
}
