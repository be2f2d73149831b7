// Schedules: recurring jobs, when they run next, what they last submitted.
import { ApiError, get, patch } from "../api.js";
import { h, jobLink, orDash, replace, table, when } from "../dom.js";

export async function render(main, ctx) {
  const list = h("div");
  main.append(h("h1", { tabindex: "-1" }, "Schedules"), list);
  let shown = "";
  const refresh = async (force = false) => {
    let body;
    try {
      body = await get("/schedules", { signal: ctx.signal });
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        replace(list, h("p", { class: "empty", "data-testid": "schedules-unavailable" },
          "Not available: this server has no schedules (GET /schedules)."));
        return;
      }
      throw error;
    }
    const key = JSON.stringify(body);
    if (!force && (key === shown || list.contains(document.activeElement))) return;
    shown = key;
    replace(list, scheduleTable(body.items, ctx, () => refresh(true)));
  };
  ctx.live(5000, refresh, ctx.signal);
}

function every(s) {
  if (s.cron) return `cron ${s.cron} (${s.timezone || "UTC"})`;
  if (s.every_seconds) return `every ${s.every_seconds} s`;
  return "—";
}

function scheduleTable(items, ctx, refresh) {
  const rows = items.map((s) => [
    orDash(s.name), every(s), orDash(s.job && s.job.job_type), s.enabled ? "yes" : "no",
    when(s.next_run_at), when(s.last_run_at),
    h("span", {}, (s.recent_job_ids || []).slice(0, 5).map((id) => [jobLink(id), " "])),
    toggle(s, ctx, refresh),
  ]);
  return table(null, ["Name", "When", "Job type", "Enabled", "Next run", "Last run", "Recent jobs", "Action"],
    rows, "No schedules.");
}

function toggle(s, ctx, refresh) {
  const label = `${s.enabled ? "Disable" : "Enable"} schedule ${s.name}`;
  const button = h("button", { type: "button", "aria-label": label, onclick: async () => {
    button.disabled = true;
    try {
      await patch(`/schedules/${s.schedule_id || s.id}`, { enabled: !s.enabled });
      await refresh();
    } catch (error) {
      if (error instanceof ApiError && error.status === 403) return ctx.forbidden(error);
      ctx.notice(`Not changed: ${error.message}`, "error");
      button.disabled = false;
    }
  } }, s.enabled ? "Disable" : "Enable");
  return button;
}
