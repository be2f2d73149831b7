// The dashboard's shell: hash routes, the token prompt, the live-update clock.
import { ApiError, get, onUnauthorized, query } from "./api.js";
import { h, replace } from "./dom.js";
import { demote, hasToken, role, signIn, signOut } from "./session.js";
import * as deadLetters from "./views/dead_letters.js";
import * as groups from "./views/groups.js";
import * as job from "./views/job.js";
import * as jobs from "./views/jobs.js";
import * as overview from "./views/overview.js";
import * as schedules from "./views/schedules.js";

const UUID = "([0-9a-fA-F-]{36})";
const ROUTES = [
  [/^\/?$/, "overview", overview.render],
  [/^\/jobs$/, "jobs", jobs.render],
  [new RegExp(`^/jobs/${UUID}$`), "jobs", job.render],
  [/^\/dead-letters$/, "dead-letters", deadLetters.render],
  [/^\/groups$/, "groups", groups.renderLookup],
  [new RegExp(`^/groups/${UUID}$`), "groups", groups.render],
  [/^\/schedules$/, "schedules", schedules.render],
];

const main = document.getElementById("main");
const noticeBox = document.getElementById("notice");
let current = null; // the AbortController of the page on screen
let asking = false;

/** A message in the live region (screen readers hear it). */
export function notice(text, kind = "info") {
  replace(noticeBox, text ? h("p", { class: `note ${kind}` }, text) : null);
}

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, search = ""] = raw.split("?");
  return { path, params: new URLSearchParams(search) };
}

async function route({ focus = true } = {}) {
  current?.abort();
  const controller = new AbortController();
  current = controller;
  asking = false;
  const { path, params } = parseHash();
  const found = ROUTES.find(([pattern]) => pattern.test(path));
  markSection(found ? found[1] : null);
  if (!found) {
    replace(main, h("h1", { tabindex: "-1" }, "Not found"), h("p", {}, "No such page."));
    return;
  }
  const [pattern, , render] = found;
  const ctx = {
    params,
    match: path.match(pattern),
    signal: controller.signal,
    operator: false,
    live,
    notice,
    navigate,
    forbidden,
  };
  try {
    ctx.operator = (await role()) === "operator";
    await showSession(ctx.operator);
    if (controller.signal.aborted) return;
    main.replaceChildren();
    await render(main, ctx);
    if (focus) main.querySelector("h1")?.focus({ preventScroll: true });
  } catch (error) {
    if (controller.signal.aborted || asking) return;
    showError(error);
  }
}

function showError(error) {
  const text = error instanceof ApiError ? `${error.message} (HTTP ${error.status})` : String(error);
  replace(main, h("h1", { tabindex: "-1" }, "Something went wrong"), h("p", { class: "error" }, text));
}

function markSection(section) {
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.section === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function showSession(operator) {
  const box = document.getElementById("session");
  const label = hasToken()
    ? operator ? "token: operator" : "token: read-only"
    : operator ? "no token needed" : "read-only";
  const forget = hasToken()
    ? h("button", { type: "button", class: "link", onclick: forgetToken }, "Forget token")
    : null;
  replace(box, h("span", { class: "muted" }, label), forget);
}

function forgetToken() {
  signOut();
  askForToken("Token forgotten. Enter a token to continue.");
}

/** The token prompt: once per browser session (sessionStorage keeps it). */
function askForToken(message) {
  if (asking) return;
  asking = true;
  current?.abort();
  markSection(null);
  replace(document.getElementById("session"));
  const input = h("input", {
    id: "token", name: "token", type: "password", autocomplete: "off", required: true,
  });
  const form = h(
    "form",
    { class: "token-form", onsubmit: (event) => {
      event.preventDefault();
      signIn(input.value);
      asking = false;
      notice("");
      route();
    } },
    h("label", { for: "token" }, "API token (API_TOKEN to read, ADMIN_TOKEN to operate)"),
    input,
    h("button", { type: "submit" }, "Use this token"),
  );
  replace(
    main,
    h("h1", { tabindex: "-1" }, "Token needed"),
    h("p", {}, message || "This hybridq asks for a bearer token. It is kept for this browser tab only."),
    form,
  );
  input.focus();
}

/** Runs `tick` now and then every `ms` until the page changes; errors show, ticks go on. */
async function live(ms, tick, signal) {
  while (!signal.aborted) {
    try {
      await tick();
      if (!signal.aborted && noticeBox.dataset.live === "lost") {
        noticeBox.dataset.live = "";
        notice("");
      }
    } catch (error) {
      if (signal.aborted || (error instanceof ApiError && error.status === 401)) return;
      noticeBox.dataset.live = "lost";
      notice(`Live update failed: ${error.message}. Retrying.`, "error");
    }
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
    });
  }
}

function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

/** A 403 on an action: this token only reads; show the page again without the buttons. */
function forbidden(error) {
  demote();
  notice(`Not allowed with this token: ${error.message}`, "error");
  route({ focus: false });
}

const FULL_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The header's search: a whole job id opens the job; the first digits of one open the
 * only job they match, or the job list of every job they match.
 */
async function find(event) {
  event.preventDefault();
  const raw = document.getElementById("find-id").value.trim().toLowerCase();
  if (!raw) return;
  if (FULL_ID.test(raw)) {
    navigate(`#/jobs/${raw}`);
    return;
  }
  try {
    const page = await get(`/jobs${query({ job_id_prefix: raw, limit: 2 })}`);
    if (page.items.length === 1) navigate(`#/jobs/${page.items[0].job_id}`);
    else navigate(`#/jobs${query({ job_id_prefix: raw })}`);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status === 401) throw error;
    notice(`Not a job id or the start of one: ${error.message}`, "error");
  }
}
document.getElementById("find").addEventListener("submit", find);

onUnauthorized(() => {
  const had = hasToken();
  signOut();
  askForToken(had ? "That token was refused. Enter a valid token." : undefined);
});
// the skip link must not change the hash: the hash is the route
document.getElementById("skip").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});
window.addEventListener("hashchange", () => { notice(""); route(); });
route();
