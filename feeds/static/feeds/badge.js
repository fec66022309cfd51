// The connection badge in the top bar: always says where the feed stands.

import { Close } from "./frames.js";

/** Show `state` ("connecting", "live", "reconnecting", "offline") with its detail. */
export function showConnection(el, state, detail, loginUrl) {
  el.dataset.state = state;
  el.dataset.reason = detail.reason ?? "";
  if (state === "offline" && detail.reason === "unauthorized") {
    const link = document.createElement("a");
    link.href = loginUrl;
    link.textContent = "log in again";
    el.replaceChildren("signed out — ", link);
    return;
  }
  const why = detail.code === Close.TOO_MANY_CONNECTIONS ? " (too many connections)" : "";
  el.textContent = {
    connecting: "connecting…",
    live: "live",
    reconnecting: `reconnecting in ${detail.seconds} s${why}`,
    offline: "offline",
  }[state];
}
