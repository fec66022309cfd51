// The instrument changelist, live: last price, change and status of the rows
// on the page, asked for again every second (GET live/?ids=...) with the
// operator's session, and written into the cells the server rendered. The
// server formats every value (to the instrument's tick), so the page only
// swaps text. A classic deferred script: the CSP allows no inline script.
"use strict";

(() => {
  const state = document.getElementById("live-state");
  if (!state) return;
  const url = state.dataset.url;
  const intervalMs = Number(state.dataset.intervalMs) || 1000;
  const BACKOFF_CAP_MS = 30000;
  const FLASH_MS = 500;

  // pk -> {last: element, change: element, ...}
  const cells = new Map();
  for (const el of document.querySelectorAll("[data-live][data-pk]")) {
    const row = cells.get(el.dataset.pk) ?? {};
    row[el.dataset.live] = el;
    cells.set(el.dataset.pk, row);
  }
  if (!cells.size) return;
  const query = `${url}?ids=${[...cells.keys()].join(",")}`;
  let failures = 0;

  /** The line above the table, written (and so announced) only when it says something new. */
  function say(kind, text) {
    if (state.dataset.state === kind) return;
    state.dataset.state = kind;
    state.textContent = text;
  }

  function flash(el, before, after) {
    const moved = Number(after) - Number(before);
    if (!Number.isFinite(moved) || moved === 0) return;
    el.dataset.flash = moved > 0 ? "up" : "down";
    clearTimeout(el.flashTimer);
    el.flashTimer = setTimeout(() => delete el.dataset.flash, FLASH_MS);
  }

  function apply(rows) {
    for (const [pk, row] of Object.entries(rows)) {
      const found = cells.get(pk);
      if (!found) continue;
      for (const [field, el] of Object.entries(found)) {
        if (field === "status") {
          el.dataset.status = row.status;
          if (el.textContent !== row.status_label) el.textContent = row.status_label;
          continue;
        }
        const text = row[field];
        if (text === undefined) continue;
        el.dataset.direction = row.direction;
        if (el.textContent === text) continue;
        if (field === "last") flash(el, el.textContent, text);
        el.textContent = text;
      }
    }
  }

  async function poll() {
    if (!document.hidden) {
      try {
        const response = await fetch(query, {
          credentials: "same-origin",
          headers: { Accept: "application/json" },
          cache: "no-store",
        });
        // Signed out meanwhile: the admin answers with its login page.
        if (response.redirected || response.status === 401 || response.status === 403) {
          say("signed-out", "Prices stopped: signed out. Reload the page to sign in again.");
          return;
        }
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        apply((await response.json()).rows);
        failures = 0;
        say("live", "Prices live, updated every second.");
      } catch (err) {
        failures += 1;
        say("retrying", "Prices paused: the server does not answer. Retrying…");
      }
    }
    const wait = failures ? Math.min(BACKOFF_CAP_MS, intervalMs * 2 ** failures) : intervalMs;
    setTimeout(poll, wait);
  }

  poll();
})();
