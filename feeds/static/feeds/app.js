// The page: wires the connection, the model and the views together, and
// speaks the protocol's requests (docs/PROTOCOL.md).

import { showConnection } from "./badge.js";
import { QuoteBook } from "./book.js";
import { SelectedChart } from "./chart.js";
import { FeedConnection } from "./connection.js";
import { normalizeSymbol } from "./frames.js";
import { ServerLists } from "./lists.js";
import { SymbolSearch } from "./search.js";
import { chartColours } from "./spark.js";
import { PING_INTERVAL_MS, StatusBar } from "./status.js";
import { WatchlistTable } from "./table.js";
import { Watchlist } from "./watchlist.js";

const RATE_LIMIT_RETRY_MS = 1000;
const SPARK_INTERVAL_MS = 250; // sparklines redraw at most this often (one history bucket)
const WATCHLISTS_ID = "watchlists"; // the id of the request that follows the user's lists
// Why the server made the page take symbols off the watchlist, by error code or status state.
const REMOVED_BECAUSE = Object.freeze({
  unknown_symbol: "no longer listed",
  not_entitled: "not licensed to you",
  revoked: "no longer licensed to you",
});

export class TickerApp {
  constructor(root) {
    const { user, wsPath, heartbeatS, loginUrl, instrumentsUrl, barsUrl, watchlistsUrl } = root.dataset;
    Object.assign(this, { root, loginUrl, instrumentsUrl });
    this.heartbeatS = Number(heartbeatS) || 15;
    this.watchlist = new Watchlist(`marketfeed:watchlist:v1:${user}`);
    this.book = new QuoteBook();
    this.table = new WatchlistTable({
      tbody: root.querySelector("#rows"),
      emptyNote: root.querySelector("#empty"),
      book: this.book,
      onRemove: (s) => this.remove(s),
      onSelect: (s) => this.select(s),
      onShown: (s) => this.#markDirty(s),
    });
    this.chart = new SelectedChart(root.querySelector("#chart"), this.book, {
      barsUrl, // candle history (PROTOCOL.md "Bars"); the chart appends SYMBOL/
      onChange: () => this.#schedule(),
    });
    this.status = new StatusBar(document.getElementById("status-bar"));
    this.search = new SymbolSearch({
      form: root.querySelector("#add-form"),
      input: root.querySelector("#add-symbol"),
      listbox: root.querySelector("#suggestions"),
      instrumentsUrl,
      onPick: (symbol, instrument) => this.add(symbol, instrument),
    });
    // The lists kept on the server (PROTOCOL.md "Watchlists"): which one is shown, and its saves.
    this.lists = new ServerLists({
      url: watchlistsUrl || "/api/watchlists/",
      user,
      watchlist: this.watchlist,
      anchor: root.querySelector("#add-form"),
      onShow: (symbols) => this.#show(symbols),
      onRemoved: (reason, symbols) => this.#removedBy(reason, symbols),
      refresh: () => this.#follow(),
    });
    this.shown = false; // the first list to show is the server's: no subscribe before it
    this.followed = null; // the socket the lists are followed on
    this.stateEl = document.getElementById("conn-state");
    this.errorEl = root.querySelector("#add-error");
    this.noticeEl = root.querySelector("#notice");
    this.notices = new Map(); // topic -> sentence, shown together in #notice
    this.removed = new Map(); // reason -> symbols taken off the watchlist for it, this page's life
    this.pending = new Map(); // request id -> {kind: "add"|"remove"|"resubscribe", symbols}
    this.fetching = new Set(); // symbols whose instrument details are on their way
    this.nextId = 1;
    this.maxSymbols = Infinity; // until the welcome says
    this.subscribed = 0;
    this.dirty = new Set();
    this.frame = 0;
    this.sparksAt = 0;
    this.colours = chartColours(document.body);
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    this.conn = new FeedConnection({
      url: `${scheme}://${location.host}${wsPath}`,
      heartbeatS: this.heartbeatS,
      onState: (state, detail) => this.#showState(state, detail),
      onMessages: (messages) => this.#received(messages),
      symbols: () => [...this.watchlist.symbols], // carried over on a planned move (make-before-break)
    });
  }

  start() {
    this.search.start();
    this.search.input.addEventListener("input", () => this.#showError(""));
    matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
      this.colours = chartColours(document.body);
      this.chart.drawn = -1;
      this.#schedule();
    });
    this.#sync();
    this.select(this.watchlist.symbols[0] ?? "");
    setInterval(() => this.#everySecond(), 1000);
    setInterval(() => this.#ping(), PING_INTERVAL_MS);
    this.conn.start();
  }

  /** Subscribe first: only the server knows which symbols exist, so an add needs it live. */
  add(raw, instrument) {
    const symbol = normalizeSymbol(raw);
    const problem = this.#addProblem(raw, symbol);
    if (problem) {
      this.#showError(problem);
      return;
    }
    if (instrument) this.book.setInstrument(symbol, instrument);
    if (this.#request("subscribe", [symbol], "add")) this.#showError("");
    else this.#showError("Not connected; try again once live.");
  }

  remove(symbol) {
    this.#drop(symbol);
    // Offline, nothing to send: the resubscribe after the next welcome leaves it out.
    if (this.#request("unsubscribe", [symbol], "remove")) this.subscribed -= 1;
  }

  /** Off the watchlist and the page, without telling the feed; the list is saved. */
  #drop(symbol) {
    this.watchlist.remove(symbol);
    this.lists.changed();
    this.book.forget(symbol);
    this.#sync();
    if (this.table.selected === symbol) this.select(this.watchlist.symbols[0] ?? "");
  }

  select(symbol) {
    this.table.select(symbol);
    this.chart.show(symbol);
    this.#markDirty(symbol);
  }

  #addProblem(raw, symbol) {
    const typed = String(raw).trim();
    if (!typed) return "Type a symbol or a name, e.g. TSLA or euro.";
    if (!symbol) return `“${typed.slice(0, 20)}” is not a symbol: pick one from the list.`;
    if (this.watchlist.has(symbol)) return `${symbol} is already on the watchlist.`;
    if (this.watchlist.symbols.length >= this.maxSymbols) return `At most ${this.maxSymbols} symbols.`;
    return "";
  }

  #request(op, symbols, kind) {
    const id = this.nextId++;
    if (!this.conn.send({ op, symbols, id })) return false;
    this.pending.set(id, { kind, symbols });
    return true;
  }

  #resubscribe() {
    if (!this.shown) return; // the server's lists first
    this.subscribed = 0;
    const symbols = [...this.watchlist.symbols];
    if (symbols.length) this.#request("subscribe", symbols, "resubscribe");
  }

  #ping() {
    if (!this.conn.live) return;
    const id = `ping-${this.nextId++}`;
    if (this.conn.send({ op: "ping", id })) this.status.pingSent(id, performance.now());
  }

  #received(messages) {
    const now = performance.now();
    this.status.counted(messages.length);
    for (const m of messages) this.#handle(m, now);
  }

  #handle(m, now) {
    switch (m.type) {
      case "snapshot":
      case "quote":
        if (this.#wanted(m.symbol) && this.book.apply(m, now)) {
          this.chart.apply(m); // candles of the selected symbol
          this.#markDirty(m.symbol);
        }
        break;
      case "welcome":
        this.maxSymbols = Number(m.max_symbols) || Infinity;
        this.#follow(); // the user's lists now, and whenever they change
        this.#resubscribe(); // a new connection starts with no subscriptions
        this.#ping();
        break;
      case "watchlists":
        this.lists.received(m.lists, m.id === WATCHLISTS_ID);
        break;
      case "subscribed":
      case "unsubscribed":
        this.#confirmed(this.#take(m.id), m.symbols ?? []);
        break;
      case "error":
        if (m.id === WATCHLISTS_ID) this.#followFailed(m);
        else this.#failed(this.#take(m.id), m);
        break;
      case "status":
        if (!this.#wanted(m.symbol)) break;
        if (m.state === "revoked") {
          this.#revoked(m.symbol);
        } else {
          this.book.setHalted(m.symbol, m.state === "halted");
          this.#markDirty(m.symbol);
        }
        break;
      case "pong":
        this.status.pong(m.id, now);
        break;
      default: // heartbeat, subscriptions: proof of life is all we need
        break;
    }
  }

  #take(id) {
    const request = this.pending.get(id);
    this.pending.delete(id);
    return request;
  }

  /** Watched, or being added (its snapshot may share a frame with the reply). */
  #wanted(symbol) {
    if (this.watchlist.has(symbol)) return true;
    for (const r of this.pending.values()) if (r.kind === "add" && r.symbols.includes(symbol)) return true;
    return false;
  }

  #confirmed(request, symbols) {
    if (request?.kind === "resubscribe" || request?.kind === "switch") {
      this.subscribed = request.kind === "switch" ? this.subscribed + symbols.length : symbols.length;
      // Details only for symbols the server accepted (no 404s for stale ones).
      symbols.forEach((s) => this.#fetchInstrument(s));
    }
    if (request?.kind !== "add") return;
    for (const symbol of symbols) {
      this.watchlist.add(symbol);
      this.subscribed += 1;
      this.#fetchInstrument(symbol);
    }
    this.lists.changed();
    this.#sync();
    this.select(symbols[0]);
    this.search.clear();
  }

  #failed(request, m) {
    if (!request) {
      if (m.code !== "unauthorized") console.warn("ticker: server error", m);
    } else if (request.kind === "add") {
      const text = m.code === "unknown_symbol" ? `No instrument ${request.symbols[0]}.` : m.message || m.code;
      this.#showError(text);
    } else if (request.kind === "resubscribe" || request.kind === "switch") {
      this.#resubscribeFailed(m, request.symbols);
    } else {
      console.warn("ticker: unsubscribe failed", m);
    }
  }

  /** The server dropped the subscription (PROTOCOL.md "Entitlements"): off the page, saying why. */
  #revoked(symbol) {
    if (this.watchlist.has(symbol)) this.subscribed -= 1;
    this.#removedBy("revoked", [symbol]);
  }

  /** The saved watchlist was refused as a whole (requests are atomic): repair it and retry. */
  #resubscribeFailed(m, sent) {
    const named = Array.isArray(m.symbols) ? m.symbols : [];
    if (m.code === "unknown_symbol" || m.code === "not_entitled") {
      // One stale or unlicensed symbol must not stop the whole stream.
      this.#removedBy(m.code, named);
    } else if (m.code === "too_many_symbols") {
      this.watchlist.symbols.slice(this.maxSymbols).forEach((s) => this.#drop(s));
      this.#notice("limit", `The feed allows ${this.maxSymbols} symbols; the rest were dropped.`);
    } else if (m.code === "rate_limited") {
      setTimeout(() => this.#resubscribe(), RATE_LIMIT_RETRY_MS);
      return;
    }
    // Retry when the list is no longer the one refused: this repair, or one made meanwhile
    // (a refused save of the list drops the same symbols), changed it. The same list again
    // would only be refused again, so a confusing reply cannot loop.
    const now = this.watchlist.symbols;
    if (now.length !== sent.length || sent.some((s) => !this.watchlist.has(s))) this.#resubscribe();
    else console.warn("ticker: resubscribe failed", m);
  }

  /** Drop `symbols` and name them, with every other symbol removed for the same reason. */
  #removedBy(reason, symbols) {
    symbols.forEach((s) => this.#drop(s));
    const all = this.removed.get(reason) ?? new Set();
    symbols.forEach((s) => all.add(s));
    this.removed.set(reason, all);
    if (all.size) this.#notice(reason, `Removed from the watchlist, ${REMOVED_BECAUSE[reason]}: ${[...all].join(", ")}.`);
  }

  async #fetchInstrument(symbol) {
    if (this.book.instruments.has(symbol) || this.fetching.has(symbol)) return;
    this.fetching.add(symbol);
    try {
      // Symbols use only URL-safe characters; "/" in EUR/USD may stay raw (PROTOCOL.md).
      const response = await fetch(`${this.instrumentsUrl}${symbol}/`, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (!response.ok) return; // unknown or signed out: decimals fall back to the prices seen
      this.book.setInstrument(symbol, await response.json());
      this.#markDirty(symbol);
    } catch (err) {
      console.warn(`ticker: no instrument details for ${symbol}`, err);
    } finally {
      this.fetching.delete(symbol);
    }
  }

  /** Follow the user's lists on the current socket (after a planned move too: the new socket). */
  #follow() {
    if (this.conn.send({ op: "watchlists", id: WATCHLISTS_ID })) this.followed = this.conn.ws;
  }

  #followFailed(m) {
    if (m.code === "bad_request") {
      this.lists.unavailable(); // a server without the op: this browser keeps the list
    } else {
      this.followed = null; // e.g. rate_limited: again in a second
    }
  }

  /** Show `symbols` (the server's list, another list, or this one changed elsewhere). */
  #show(symbols) {
    const before = this.watchlist.symbols;
    const had = new Set(before);
    const kept = new Set(symbols);
    const gone = before.filter((s) => !kept.has(s));
    const added = symbols.filter((s) => !had.has(s));
    this.watchlist.replace(symbols);
    gone.forEach((s) => this.book.forget(s));
    this.#sync();
    if (!this.watchlist.has(this.table.selected)) this.select(this.watchlist.symbols[0] ?? "");
    if (!this.shown) {
      this.shown = true;
      this.#resubscribe(); // the first list: all of it
      return;
    }
    if (gone.length && this.#request("unsubscribe", gone, "remove")) this.subscribed -= gone.length;
    if (added.length) this.#request("subscribe", added, "switch");
  }

  #sync() {
    this.table.sync(this.watchlist.symbols).forEach((s) => this.#markDirty(s));
  }

  #markDirty(symbol) {
    if (!symbol) return;
    this.dirty.add(symbol);
    this.#schedule();
  }

  #schedule() {
    if (!this.frame) this.frame = requestAnimationFrame((t) => this.#paint(t));
  }

  /** One pass per animation frame, however many messages came since the last. */
  #paint(now) {
    this.frame = 0;
    for (const symbol of this.dirty) this.table.paint(symbol);
    this.dirty.clear();
    this.chart.draw(this.colours);
    // Come back for tints still to fade, and for the sparklines.
    const fading = this.table.fade(performance.now());
    if (now - this.sparksAt >= SPARK_INTERVAL_MS) {
      this.sparksAt = now;
      this.table.drawSparks();
      if (fading) this.#schedule();
    } else {
      this.#schedule();
    }
  }

  #everySecond() {
    const live = this.conn.live;
    if (live && this.conn.ws !== this.followed) this.#follow(); // a planned move brings no welcome
    this.status.second({ symbols: live ? this.subscribed : 0, gaps: this.book.gaps });
    this.table.age(performance.now(), { live, staleMs: this.heartbeatS * 1000 });
  }

  #showState(state, detail) {
    this.root.dataset.live = String(state === "live");
    if (state === "live") {
      this.heartbeatS = this.conn.heartbeatS;
    } else {
      this.#dropPending();
      this.status.disconnected();
    }
    showConnection(this.stateEl, state, detail, this.loginUrl);
  }

  /** Replies to the requests of a lost connection will never come. */
  #dropPending() {
    for (const request of this.pending.values()) {
      if (request.kind === "add") {
        this.#showError(`Connection lost before ${request.symbols[0]} was added; try again.`);
      }
    }
    this.pending.clear();
  }

  #showError(text) {
    this.errorEl.textContent = text; // textContent: server messages are never HTML
  }

  /** Show `text` as the latest sentence on `topic`, beside the other topics' latest. */
  #notice(topic, text) {
    this.notices.delete(topic); // re-inserted last: the newest news reads last
    this.notices.set(topic, text);
    this.noticeEl.textContent = [...this.notices.values()].join(" ");
    this.noticeEl.hidden = false;
  }
}
