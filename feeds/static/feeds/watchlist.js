// The user's symbols, in the order added, kept in localStorage per user.

import { normalizeSymbol } from "./frames.js";

// A first visit's list: big equities, crypto, and FX majors from the default
// instruments. EUR/USD is left for the user to add.
export const DEFAULT_SYMBOLS = Object.freeze([
  "AAPL", "MSFT", "NVDA", "TSLA", "AMZN", "BTC-USD", "ETH-USD", "GBP/USD", "USD/JPY",
]);
const MAX_SAVED = 1000; // the server's default max_symbols; a bigger list is corrupt

export class Watchlist {
  constructor(storageKey, storage = globalThis.localStorage) {
    this.storageKey = storageKey;
    this.storage = storage;
    this.symbols = this.#load();
  }

  has(symbol) {
    return this.symbols.includes(symbol);
  }

  add(symbol) {
    if (!this.has(symbol)) this.symbols.push(symbol);
    this.#save();
  }

  remove(symbol) {
    this.symbols = this.symbols.filter((s) => s !== symbol);
    this.#save();
  }

  /** The saved list, cleaned; the default on a first visit or when the entry is unreadable. */
  #load() {
    let raw = null;
    try {
      raw = this.storage.getItem(this.storageKey);
      if (raw === null) return [...DEFAULT_SYMBOLS];
      const saved = JSON.parse(raw);
      if (Array.isArray(saved)) {
        const symbols = saved.slice(0, MAX_SAVED).filter((s) => typeof s === "string").map(normalizeSymbol).filter(Boolean);
        return [...new Set(symbols)];
      }
    } catch {
      /* unreadable entry or storage disabled */
    }
    console.warn("ticker: saved watchlist unreadable; starting from the default", raw);
    return [...DEFAULT_SYMBOLS];
  }

  #save() {
    try {
      this.storage.setItem(this.storageKey, JSON.stringify(this.symbols));
    } catch {
      /* private mode or quota: the watchlist lives for this page only */
    }
  }
}
