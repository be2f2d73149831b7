// Job groups (sagas): the members, the compensations they started, the group's status.
import { ApiError, get } from "../api.js";
import { badge, h, jobLink, keepFocus, orDash, replace, shortId, table, when } from "../dom.js";

const OPEN = new Set(["running", "compensating"]);

export async function renderLookup(main, ctx) {
  const input = h("input", { id: "group-id", name: "group", required: true, pattern: "[0-9a-fA-F-]{36}", size: 40 });
  const form = h("form", { class: "filters", onsubmit: (event) => {
    event.preventDefault();
    ctx.navigate(`#/groups/${input.value.trim()}`);
  } },
    h("div", { class: "field" }, h("label", { for: "group-id" }, "Group id"), input),
    h("button", { type: "submit" }, "Open group"));
  main.append(
    h("h1", { tabindex: "-1" }, "Job groups"),
    h("p", {}, "A job's page links to its group. Or open one by its id (from POST /job-groups):"),
    form);
}

export async function render(main, ctx) {
  const id = ctx.match[1].toLowerCase();
  const body = h("div");
  main.append(h("h1", { tabindex: "-1" }, "Job group ", h("span", { class: "mono", title: id }, shortId(id))), body);
  let open = true;
  ctx.live(2000, async () => {
    if (!open) return;
    let group;
    try {
      group = await get(`/job-groups/${id}`, { signal: ctx.signal });
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        replace(body, h("p", { class: "empty" }, `No job group ${id}.`));
        return;
      }
      throw error;
    }
    open = OPEN.has(group.status);
    keepFocus(body, () => replace(body, view(group)));
  }, ctx.signal);
}

function members(jobs) {
  return jobs.map((job) => [jobLink(job.job_id), orDash(job.job_type), badge(job.status),
    orDash(job.site), when(job.finished_at)]);
}

function view(group) {
  const compensations = group.compensations || [];
  return [
    h("p", { class: "headline" }, "Status ", badge(group.status), " ", h("span", { class: "mono" }, group.group_id)),
    h("h2", {}, "Members"),
    table(null, ["Job", "Type", "Status", "Site", "Finished"], members(group.jobs), "No members."),
    h("h2", {}, "Compensations"),
    table(null, ["Job", "Type", "Status", "Site", "Finished", "Compensates"],
      members(compensations).map((row, i) => [...row, jobLink(compensations[i].compensates)]),
      "No compensation started."),
  ];
}
