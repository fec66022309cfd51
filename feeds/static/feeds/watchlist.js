// The symbols on the page, in the user's order, and the browser-kept list of
// before watchlists lived on the server (docs/PROTOCOL.md "Watchlists").
//
// The server keeps the user's lists (lists.js reads and writes them); this is
// the one shown. A list this browser kept in localStorage is read once: when
// the user has no list on the server yet, lists.js moves it up, and the entry
// is then marked migrated and never used again. Until the server's lists are
// known, and only if the server cannot keep them, this list stays local.

import { normalizeSymbol } from "./frames.js";

// A first visit's list: big equities, crypto, and FX majors from the default
// instruments. EUR/USD is left for the user to add.
export const DEFAULT_SYMBOLS = Object.freeze([
  "AAPL", "MSFT", "NVDA", "TSLA", "AMZN", "BTC-USD", "ETH-USD", "GBP/USD", "USD/JPY",
]);
const MAX_SAVED = 1000; // the server's default max_symbols; a bigger list is corrupt
// What the localStorage entry becomes once its list is on the server.
const MIGRATED = Object.freeze({ migrated: true });

export class Watchlist {
  constructor(storageKey, storage = globalThis.localStorage) {
    this.storageKey = storageKey;
    this.storage = storage;
    this.pending = false; // an entry of this browser's not yet moved to the server
    this.migrated = false; // the entry was moved: the server's lists are the only ones
    this.local = false; // the server cannot keep lists: this browser keeps this one
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

  /** Show `symbols` instead (another list, or this one changed elsewhere). */
  replace(symbols) {
    this.symbols = [...symbols];
    this.#save();
  }

  /** The browser's entry is on the server now (or the server had lists already): never read it again. */
  markMigrated() {
    this.pending = false;
    this.migrated = true;
    try {
      this.storage.setItem(this.storageKey, JSON.stringify(MIGRATED));
    } catch {
      /* storage disabled: nothing was read from it either */
    }
  }

  /** The saved list, cleaned; the default on a first visit or when the entry is unreadable. */
  #load() {
    let raw = null;
    try {
      raw = this.storage.getItem(this.storageKey);
      if (raw === null) return [...DEFAULT_SYMBOLS];
      const saved = JSON.parse(raw);
      if (saved?.migrated === true) {
        this.migrated = true;
        return []; // the server's lists, once they come
      }
      if (Array.isArray(saved)) {
        const symbols = saved.slice(0, MAX_SAVED).filter((s) => typeof s === "string").map(normalizeSymbol).filter(Boolean);
        this.pending = true;
        return [...new Set(symbols)];
      }
    } catch {
      /* unreadable entry or storage disabled */
    }
    console.warn("ticker: saved watchlist unreadable; starting from the default", raw);
    return [...DEFAULT_SYMBOLS];
  }

  #save() {
    if (!this.local) return;
    try {
      this.storage.setItem(this.storageKey, JSON.stringify(this.symbols));
    } catch {
      /* private mode or quota: the watchlist lives for this page only */
    }
  }
}
