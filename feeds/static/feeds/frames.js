// What the page needs of the wire contract (docs/PROTOCOL.md) beyond JSON itself.

export const SYMBOL_RE = /^[A-Z0-9.\-/_]{1,20}$/; // feeds.models.SYMBOL_PATTERN

export const Close = Object.freeze({
  GOING_AWAY: 1001,
  NO_TRAFFIC: 4000, // ours: the watchdog gave up on a silent socket
  UNAUTHORIZED: 4401,
  TOO_MANY_CONNECTIONS: 4429,
});

/** A frame is one message object or an array of them; always return the list, in order. */
export function parseFrame(text) {
  const data = JSON.parse(text);
  return (Array.isArray(data) ? data : [data]).filter((m) => m && typeof m === "object");
}

/** A symbol as the server answers it (upper-case), or "" when it cannot be one. */
export function normalizeSymbol(raw) {
  const symbol = String(raw ?? "").trim().toUpperCase();
  return SYMBOL_RE.test(symbol) ? symbol : "";
}
