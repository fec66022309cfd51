// The status bar: messages per second, round-trip time from ping/pong,
// symbols subscribed and sequence gaps seen. Counted per message, shown once a second.

export const PING_INTERVAL_MS = 5000;

export class StatusBar {
  constructor(element) {
    this.fields = Object.fromEntries(
      [...element.querySelectorAll("[data-stat]")].map((el) => [el.dataset.stat, el]),
    );
    this.count = 0; // messages since the last second
    this.rate = 0;
    this.rttMs = NaN;
    this.pings = new Map(); // ping id -> performance.now() when sent
  }

  counted(messages) {
    this.count += messages;
  }

  pingSent(id, nowMs) {
    this.pings.set(id, nowMs);
  }

  /** A pong for one of our pings; false when the id is not ours. */
  pong(id, nowMs) {
    const sent = this.pings.get(id);
    if (sent === undefined) return false;
    this.pings.clear(); // older pings of a slow moment are superseded
    this.rttMs = nowMs - sent;
    return true;
  }

  disconnected() {
    this.pings.clear();
    this.rttMs = NaN;
  }

  /** Called once a second: roll the counter and write the figures. */
  second({ symbols, gaps }) {
    this.rate = this.count;
    this.count = 0;
    this.#set("rate", this.rate.toLocaleString("en-US"));
    this.#set("rtt", Number.isFinite(this.rttMs) ? `${this.rttMs.toFixed(this.rttMs < 10 ? 1 : 0)} ms` : "—");
    this.#set("symbols", String(symbols));
    this.#set("gaps", gaps.toLocaleString("en-US"));
  }

  #set(name, text) {
    const el = this.fields[name];
    if (el && el.textContent !== text) el.textContent = text;
  }
}
