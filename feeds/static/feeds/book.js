// What the feed last said about each watched symbol: the newest quote, the
// session open, halts, sequence gaps and the price history. No DOM.

import { decimalsOf } from "./format.js";
import { PriceHistory } from "./history.js";

const PRICE_FIELDS = ["bid", "ask", "last"];

/** Per symbol: {quote, open, epoch, receivedAt, halted, gap, history}. */
export class QuoteBook {
  constructor() {
    this.entries = new Map();
    this.instruments = new Map(); // symbol -> {name, decimals, reference} from the REST API
    this.gaps = 0; // updates conflated or missed, in total
  }

  entry(symbol) {
    let entry = this.entries.get(symbol);
    if (!entry) {
      entry = { quote: null, open: NaN, epoch: "", receivedAt: 0,
                halted: false, gap: null, history: new PriceHistory() };
      this.entries.set(symbol, entry);
    }
    return entry;
  }

  forget(symbol) {
    this.entries.delete(symbol);
  }

  /** Keep a snapshot or quote if it is news; true when it changed the row. */
  apply(message, nowMs) {
    const entry = this.entry(message.symbol);
    const held = entry.quote;
    const seq = Number(message.seq);
    if (message.type === "snapshot") {
      // Authoritative: it may start a new epoch, with lower numbers.
      entry.epoch = String(message.epoch ?? "");
    } else if (held) {
      const heldSeq = Number(held.seq);
      if (seq <= heldSeq) return false;
      // seq rises by one per quote published; more means conflated or missed.
      if (seq > heldSeq + 1) {
        const missed = seq - heldSeq - 1;
        this.gaps += missed;
        entry.gap = { missed, at: nowMs };
      }
    }
    entry.quote = message;
    entry.receivedAt = nowMs;
    // Quotes flow only while trading, so one proves a halt is over even if
    // the "trading" status was sent while we were disconnected.
    entry.halted = false;
    if (Number.isNaN(entry.open)) entry.open = this.instruments.get(message.symbol)?.reference ?? message.last;
    entry.history.push(message.last, nowMs);
    return true;
  }

  setHalted(symbol, halted) {
    this.entry(symbol).halted = halted;
  }

  /** Details from the REST API; the server's reference price becomes the session open. */
  setInstrument(symbol, data) {
    const reference = Number(data.reference_price);
    this.instruments.set(symbol, {
      name: String(data.name ?? ""),
      decimals: decimalsOf(data.tick_size),
      reference: reference > 0 ? reference : undefined,
    });
    if (reference > 0) this.entry(symbol).open = reference;
  }

  /** Price decimals: the tick size's when known, else the most seen in prices so far. */
  decimals(symbol) {
    const known = this.instruments.get(symbol)?.decimals;
    if (known !== undefined) return known;
    const quote = this.entries.get(symbol)?.quote;
    return quote ? Math.max(...PRICE_FIELDS.map((f) => decimalsOf(quote[f] ?? 0))) : 2;
  }
}
