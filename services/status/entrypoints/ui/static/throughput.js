// Throughput and failures over the last minutes, computed in the browser from what the API
// says: the growth of the succeeded and failed (dead_lettered + rejected) counts between
// two /stats polls, and, for time the page was not open, the finish times in the job list.
import { get, query } from "./api.js";

const KEY = "hybridq.throughput";
export const BUCKET_SECONDS = 10;
export const WINDOW_SECONDS = 300;
const MAX_GAP_MS = 15000; // a longer gap between polls is filled from the job list

const FAILED = ["dead_lettered", "rejected"];

function load() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY)) || { last: null, buckets: {} };
  } catch {
    return { last: null, buckets: {} };
  }
}

function save(state) {
  const oldest = Date.now() - WINDOW_SECONDS * 1000 - BUCKET_SECONDS * 1000;
  for (const key of Object.keys(state.buckets)) if (Number(key) < oldest) delete state.buckets[key];
  sessionStorage.setItem(KEY, JSON.stringify(state));
}

function bucketOf(ms) {
  return Math.floor(ms / (BUCKET_SECONDS * 1000)) * BUCKET_SECONDS * 1000;
}

function add(state, ms, succeeded, failed) {
  const key = bucketOf(ms);
  const bucket = state.buckets[key] || { succeeded: 0, failed: 0 };
  bucket.succeeded += succeeded;
  bucket.failed += failed;
  state.buckets[key] = bucket;
}

function totals(stats) {
  const by = stats.by_status || {};
  return {
    succeeded: by.succeeded || 0,
    failed: FAILED.reduce((n, s) => n + (by[s] || 0), 0),
  };
}

/** Jobs that finished in (since, until], from the newest 500 jobs of the list. */
async function backfill(state, since, until, signal) {
  const page = await get(`/jobs${query({ limit: 500 })}`, { signal });
  for (const job of page.items) {
    if (!job.finished_at) continue;
    const t = Date.parse(job.finished_at);
    if (t <= since || t > until) continue;
    if (job.status === "succeeded") add(state, t, 1, 0);
    else if (FAILED.includes(job.status)) add(state, t, 0, 1);
  }
}

/** Records one /stats answer; returns the buckets of the window, oldest first. */
export async function record(stats, signal) {
  const state = load();
  const now = Date.now();
  const seen = totals(stats);
  const last = state.last;
  if (!last || now - last.t > MAX_GAP_MS || now < last.t) {
    const since = last && now > last.t ? last.t : now - WINDOW_SECONDS * 1000;
    await backfill(state, since, now, signal);
  } else {
    // a redrive lowers dead_lettered: never count a fall as negative work
    add(state, now, Math.max(0, seen.succeeded - last.succeeded), Math.max(0, seen.failed - last.failed));
  }
  state.last = { t: now, ...seen };
  save(state);
  return window_(state, now);
}

function window_(state, now) {
  const end = bucketOf(now);
  const result = [];
  for (let t = end - WINDOW_SECONDS * 1000 + BUCKET_SECONDS * 1000; t <= end; t += BUCKET_SECONDS * 1000) {
    result.push({ t, ...(state.buckets[t] || { succeeded: 0, failed: 0 }) });
  }
  return result;
}
