// Who is looking: the token (api.js) and whether it may operate (cancel, redrive).
import { ApiError, post, setToken, token } from "./api.js";

const ROLE_KEY = "hybridq.role";

/**
 * "operator" or "reader". Found out once per token by asking for a redrive of no dead
 * letters at all (`{"ids": []}`): it changes nothing, and it answers 403 exactly to tokens
 * that may not redrive, whatever the server's rule for tokens is.
 */
export async function role() {
  const known = sessionStorage.getItem(ROLE_KEY);
  if (known) return known;
  try {
    await post("/dead-letters/redrive", { ids: [] });
  } catch (error) {
    if (!(error instanceof ApiError) || error.status === 401) throw error;
    if (error.status !== 403 && error.status !== 422) return "reader"; // unsure: ask again later
    if (error.status === 403) return remember("reader");
  }
  return remember("operator");
}

function remember(found) {
  sessionStorage.setItem(ROLE_KEY, found);
  return found;
}

/** After a 403 on an action: this token reads only; operator buttons go. */
export function demote() {
  sessionStorage.setItem(ROLE_KEY, "reader");
}

export function signIn(value) {
  sessionStorage.removeItem(ROLE_KEY);
  setToken(value.trim());
}

export function signOut() {
  sessionStorage.removeItem(ROLE_KEY);
  setToken(null);
}

export function hasToken() {
  return Boolean(token());
}
