// Dead letters: why each message stopped, and a Redrive button (optionally to another site).
import { ApiError, get, post, query } from "../api.js";
import { h, jobLink, orDash, replace, SITES, when } from "../dom.js";

const PAGE = 50;

export async function render(main, ctx) {
  const cursor = ctx.params.get("cursor") || "";
  const list = h("div");
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  const updated = h("p", { class: "muted" });
  replace(
    main,
    h("h1", { tabindex: "-1" }, "Dead letters"),
    h("p", {}, "Messages that could not be run. Redriving re-opens the job under the same id ",
      "with a fresh budget of attempts; choosing a site re-places it there (residency permitting)."),
    ctx.operator ? null : h("p", { class: "muted" }, "This token reads only: redriving needs the admin token."),
    updated, list, pager);
  let shown = "";
  const refresh = async (force = false) => {
    const page = await get(`/dead-letters${query({ limit: PAGE, cursor })}`, { signal: ctx.signal });
    const key = JSON.stringify(page);
    // never rebuild the table under the user's hands: it would lose their focus and choices
    if (!force && (key === shown || list.contains(document.activeElement))) return;
    shown = key;
    replace(list, letterTable(page.items, ctx, () => refresh(true)));
    replace(pager,
      cursor ? h("a", { href: "#/dead-letters" }, "First page") : null,
      page.next_cursor ? h("a", { href: `#/dead-letters${query({ cursor: page.next_cursor })}` }, "Next page") : null);
    replace(updated, "Live: refreshed every 5 s. Last update ", when(new Date().toISOString()), ".");
  };
  ctx.live(5000, refresh, ctx.signal);
}

function letterTable(items, ctx, refresh) {
  if (!items.length) return h("p", { class: "empty", "data-testid": "no-dead-letters" }, "No dead letters waiting.");
  const headers = ["Dead-lettered", "Job", "Type", "Site", "Reason", "Detail", "Source queue"];
  if (ctx.operator) headers.push("Redrive");
  return h("table", { "data-testid": "dead-letters" },
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", {}, items.map((letter) => h("tr", { "data-dead-letter-id": letter.id, "data-job-id": letter.job_id || "" },
      h("td", {}, when(letter.dead_lettered_at)),
      h("td", {}, jobLink(letter.job_id)),
      h("td", {}, orDash(letter.job_type)),
      h("td", {}, orDash(letter.site)),
      h("td", { class: "reason" }, letter.reason),
      h("td", {}, detail(letter)),
      h("td", { class: "mono" }, orDash(letter.source_queue)),
      ctx.operator ? h("td", {}, redrive(letter, ctx, refresh)) : null))));
}

function detail(letter) {
  return h("details", {},
    h("summary", {}, letter.detail ? letter.detail.slice(0, 80) : "message body"),
    letter.detail && letter.detail.length > 80 ? h("p", {}, letter.detail) : null,
    h("pre", { class: "code" }, letter.body));
}

function redrive(letter, ctx, refresh) {
  const selectId = `site-${letter.id}`;
  const site = h("select", { id: selectId, "aria-label": `Site for job ${letter.job_id || letter.id}` },
    h("option", { value: "" }, "same site"),
    SITES.map((s) => h("option", { value: s }, `re-place on ${s}`)));
  const label = `Redrive job ${letter.job_id || letter.id}`;
  const button = h("button", { type: "button", "aria-label": label, onclick: async () => {
    button.disabled = true;
    const body = { ids: [letter.id] };
    if (site.value) body.site = site.value;
    try {
      const answer = await post("/dead-letters/redrive", body);
      const why = (answer.skipped || []).map((s) => s.why).join("; ");
      ctx.notice(answer.redriven ? `Redriven: job ${letter.job_id || letter.id} runs again.` : `Not redriven: ${why || "already redriven"}.`,
        answer.redriven ? "info" : "error");
      await refresh();
    } catch (error) {
      if (error instanceof ApiError && error.status === 403) return ctx.forbidden(error);
      ctx.notice(`Not redriven: ${error.message}`, "error");
      button.disabled = false;
    }
  } }, "Redrive");
  return h("div", { class: "redrive" }, site, button);
}
