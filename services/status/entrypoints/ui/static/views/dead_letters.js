// Dead letters: why each message stopped, a Redrive button per letter (optionally to
// another site), and for operators: select several (or every one shown by a filter) and
// redrive them at once.
import { ApiError, get, post, query } from "../api.js";
import { h, jobLink, orDash, replace, SITES, when } from "../dom.js";

const PAGE = 50;

export async function render(main, ctx) {
  const cursor = ctx.params.get("cursor") || "";
  const filter = { reason: ctx.params.get("reason") || "", job_type: ctx.params.get("job_type") || "" };
  const selected = new Set(); // dead letter ids, kept across live refreshes
  const list = h("div");
  const bar = h("div", { class: "bulk", "aria-live": "polite" });
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  const updated = h("p", { class: "muted" });
  replace(
    main,
    h("h1", { tabindex: "-1" }, "Dead letters"),
    h("p", {}, "Messages that could not be run. Redriving re-opens the job under the same id ",
      "with a fresh budget of attempts; choosing a site re-places it there (residency permitting)."),
    ctx.operator ? null : h("p", { class: "muted" }, "This token reads only: redriving needs the admin token."),
    filterForm(filter, cursor, ctx),
    updated, ctx.operator ? bar : null, list, pager);
  let shown = "";
  let items = [];
  const refresh = async (force = false) => {
    const page = await get(`/dead-letters${query({ limit: PAGE, cursor })}`, { signal: ctx.signal });
    const key = JSON.stringify(page);
    // never rebuild the table under the user's hands: it would lose their focus and choices
    if (!force && (key === shown || list.contains(document.activeElement) || bar.contains(document.activeElement))) return;
    shown = key;
    items = page.items.filter((letter) => matches(letter, filter));
    const present = new Set(items.map((letter) => letter.id));
    for (const id of [...selected]) if (!present.has(id)) selected.delete(id);
    const hidden = page.items.length - items.length;
    const view = { items, selected, hidden, onSelect: () => showBar() };
    replace(list, letterTable(view, ctx, () => refresh(true)));
    showBar();
    replace(pager,
      cursor ? h("a", { href: `#/dead-letters${query(filter)}` }, "First page") : null,
      page.next_cursor ? h("a", { href: `#/dead-letters${query({ ...filter, cursor: page.next_cursor })}` }, "Next page") : null);
    replace(updated, "Live: refreshed every 5 s. Last update ", when(new Date().toISOString()), ".");
  };
  const showBar = () => {
    if (!ctx.operator) return;
    const focused = bar.contains(document.activeElement) ? document.activeElement.id : null;
    const site = bar.querySelector("select")?.value || "";
    replace(bar, bulkBar(selected, items, site, ctx, () => refresh(true), () => {
      for (const box of list.querySelectorAll("input.pick")) box.checked = selected.has(box.value);
      syncAll(list, selected, items);
      showBar();
    }));
    if (focused) document.getElementById(focused)?.focus();
  };
  ctx.live(5000, refresh, ctx.signal);
}

function matches(letter, filter) {
  return (!filter.reason || letter.reason === filter.reason) &&
    (!filter.job_type || (letter.job_type || "") === filter.job_type);
}

function filterForm(filter, cursor, ctx) {
  const field = (name, label) => h("div", { class: "field" },
    h("label", { for: `dl-${name}` }, label),
    h("input", { id: `dl-${name}`, name, value: filter[name], placeholder: "any" }));
  const form = h("form", { class: "filters", "aria-label": "Filter dead letters" },
    field("reason", "Reason"), field("job_type", "Job type"),
    h("button", { type: "submit" }, "Show matching"),
    h("a", { href: "#/dead-letters", class: "reset" }, "Clear"),
    h("p", { class: "muted hint" }, "The filter applies to this page of dead letters (the newest 50)."));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    ctx.navigate(`#/dead-letters${query({ reason: data.reason.trim(), job_type: data.job_type.trim(), cursor })}`);
  });
  return form;
}

function syncAll(container, selected, items) {
  const all = container.querySelector("input.pick-all");
  if (!all) return;
  const chosen = items.filter((letter) => selected.has(letter.id)).length;
  all.checked = chosen > 0 && chosen === items.length;
  all.indeterminate = chosen > 0 && chosen < items.length;
}

function letterTable({ items, selected, hidden, onSelect }, ctx, refresh) {
  const more = hidden ? h("p", { class: "muted" }, `${hidden} more on this page do not match the filter.`) : null;
  if (!items.length) {
    return [h("p", { class: "empty", "data-testid": "no-dead-letters" }, "No dead letters waiting."), more];
  }
  const headers = ["Dead-lettered", "Job", "Type", "Site", "Reason", "Detail", "Source queue"]
    .map((x) => h("th", { scope: "col" }, x));
  if (ctx.operator) {
    const all = h("input", { type: "checkbox", class: "pick-all", id: "pick-all", "aria-label": "Select every dead letter shown" });
    all.addEventListener("change", () => {
      for (const letter of items) {
        if (all.checked) selected.add(letter.id);
        else selected.delete(letter.id);
      }
      for (const box of all.closest("table").querySelectorAll("input.pick")) box.checked = all.checked;
      onSelect();
    });
    headers.unshift(h("th", { scope: "col", class: "pick-col" }, all));
    headers.push(h("th", { scope: "col" }, "Redrive"));
  }
  const table = h("table", { "data-testid": "dead-letters" },
    h("thead", {}, h("tr", {}, headers)),
    h("tbody", {}, items.map((letter) => h("tr", { "data-dead-letter-id": letter.id, "data-job-id": letter.job_id || "" },
      ctx.operator ? h("td", { class: "pick-col" }, pick(letter, selected, () => {
        syncAll(table, selected, items);
        onSelect();
      })) : null,
      h("td", {}, when(letter.dead_lettered_at)),
      h("td", {}, jobLink(letter.job_id)),
      h("td", {}, orDash(letter.job_type)),
      h("td", {}, orDash(letter.site)),
      h("td", { class: "reason" }, letter.reason),
      h("td", {}, detail(letter)),
      h("td", { class: "mono" }, orDash(letter.source_queue)),
      ctx.operator ? h("td", {}, redrive(letter, ctx, refresh)) : null))));
  syncAll(table, selected, items);
  return [table, more];
}

function pick(letter, selected, onSelect) {
  const box = h("input", {
    type: "checkbox", class: "pick", value: letter.id, checked: selected.has(letter.id),
    "aria-label": `Select job ${letter.job_id || letter.id}`,
  });
  box.addEventListener("change", () => {
    if (box.checked) selected.add(letter.id);
    else selected.delete(letter.id);
    onSelect();
  });
  return box;
}

function bulkBar(selected, items, site, ctx, refresh, reselect) {
  const n = selected.size;
  const siteSelect = h("select", { id: "bulk-site", "aria-label": "Site for the selected dead letters" },
    h("option", { value: "" }, "same site"),
    SITES.map((s) => h("option", { value: s, selected: s === site }, `re-place on ${s}`)));
  const button = h("button", { type: "button", id: "bulk-redrive", disabled: n === 0, onclick: async () => {
    const ids = [...selected];
    button.disabled = true;
    const body = { ids };
    if (siteSelect.value) body.site = siteSelect.value;
    try {
      const answer = await post("/dead-letters/redrive", body);
      const skipped = answer.skipped || [];
      const why = skipped.map((s) => s.why).join("; ");
      ctx.notice(`Redriven ${answer.redriven} of ${ids.length} selected dead letter(s).` +
        (skipped.length ? ` Not redriven: ${why}.` : ""), skipped.length || !answer.redriven ? "error" : "info");
      selected.clear();
      await refresh();
    } catch (error) {
      if (error instanceof ApiError && error.status === 403) return ctx.forbidden(error);
      ctx.notice(`Not redriven: ${error.message}`, "error");
      button.disabled = false;
    }
  } }, n ? `Redrive ${n} selected` : "Redrive selected");
  const clear = h("button", { type: "button", class: "link", id: "bulk-clear", disabled: n === 0, onclick: () => {
    selected.clear();
    reselect();
  } }, "Clear selection");
  return [
    h("span", { "data-testid": "selected-count" }, `${n} of ${items.length} shown selected`),
    siteSelect, button, clear,
  ];
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
