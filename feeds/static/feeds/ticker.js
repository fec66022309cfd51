// The web ticker page (PROTOCOL.md is the contract it speaks).
//
// One WebSocket to /ws/quotes/, authenticated by the session cookie; a
// per-user watchlist kept in localStorage; and rendering batched to one pass
// per animation frame, so a burst of quotes costs one paint, not one each.
//
//   FeedConnection  socket lifecycle: reconnect with backoff, liveness watchdog
//   Watchlist       the symbols (persisted) and the newest message per symbol
//   WatchlistTable  the DOM rows; repaints only the symbols marked dirty
//   TickerApp       wires them together and speaks the protocol's requests

const SYMBOL_RE = /^[A-Z0-9.\-/_]{1,20}$/; // feeds.models.SYMBOL_PATTERN
const DEFAULT_WATCHLIST = ["AAPL", "MSFT", "NVDA", "BTC-USD", "ETH-USD", "EUR/USD", "GBP/USD"];
const PRICE_FIELDS = ["bid", "ask", "last"];
const CELL_FIELDS = ["bid", "ask", "last", "last_size", "volume", "ts"];

const BACKOFF_BASE_S = 1;
const BACKOFF_CAP_S = 30; // a long outage still retries twice a minute
// Longer than the server's 10 s first-message auth deadline, so a handshake
// that will end in 4401 gets to say so before we give up on it.
const CONNECT_TIMEOUT_S = 15;
// Heartbeats come after heartbeat_s of silence; two missed ones plus slack means dead.
const LIVENESS_SLACK_S = 5;
const RATE_LIMIT_RETRY_S = 1;

const Close = Object.freeze({
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

/** Decimal places of a number or decimal string: 0.00001 -> 5, "278.50" -> 2, 100 -> 0. */
export function decimalsOf(value) {
  let text = String(value);
  if (/e/i.test(text)) text = Number(value).toFixed(10).replace(/0+$/, "");
  const dot = text.indexOf(".");
  return dot < 0 ? 0 : text.length - dot - 1;
}

/** Seconds before reconnect attempt `attempt` (0-based): doubling, capped, "equal jitter". */
export function backoffSeconds(attempt, random = Math.random) {
  const ceiling = Math.min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** attempt);
  // Half fixed, half random: never a thundering herd, never an instant retry loop.
  return ceiling / 2 + (random() * ceiling) / 2;
}

/** Owns the socket. Reports state changes and every message; never touches the DOM. */
class FeedConnection {
  constructor({ url, heartbeatS, onState, onMessage }) {
    Object.assign(this, { url, heartbeatS, onState, onMessage });
    this.ws = null;
    this.attempt = 0;
    this.welcomed = false;
    this.signedOut = false;
    this.timer = 0; // reconnect countdown
    this.watchdog = 0;
  }

  get live() {
    return this.welcomed && this.ws?.readyState === WebSocket.OPEN;
  }

  start() {
    window.addEventListener("offline", () => this.#abandon(Close.NO_TRAFFIC));
    window.addEventListener("online", () => {
      if (!this.ws && !this.signedOut) {
        this.attempt = 0;
        this.#open();
      }
    });
    this.#open();
  }

  /** Send one request; false when there is no live socket to send it on. */
  send(request) {
    if (!this.live) return false;
    this.ws.send(JSON.stringify(request));
    return true;
  }

  #open() {
    clearTimeout(this.timer);
    if (!navigator.onLine) {
      this.onState("offline", { reason: "network" });
      return;
    }
    this.onState("connecting", {});
    this.welcomed = false;
    const ws = new WebSocket(this.url);
    this.ws = ws;
    // Each handler checks it still belongs to the current socket: an abandoned
    // socket may yet deliver a late message or close event.
    ws.onmessage = (event) => {
      if (ws === this.ws) this.#received(event.data);
    };
    ws.onclose = (event) => {
      if (ws === this.ws) this.#closed(event.code);
    };
    this.#armWatchdog();
  }

  #received(text) {
    this.#armWatchdog();
    let messages;
    try {
      messages = parseFrame(text);
    } catch (err) {
      console.warn("ticker: unreadable frame", err);
      return;
    }
    for (const message of messages) {
      if (message.type === "welcome") {
        this.welcomed = true;
        this.attempt = 0;
        if (Number(message.heartbeat_s) > 0) this.heartbeatS = Number(message.heartbeat_s);
        this.#armWatchdog();
        this.onState("live", {});
      }
      this.onMessage(message);
    }
  }

  #closed(code) {
    clearTimeout(this.watchdog);
    this.ws = null;
    this.welcomed = false;
    if (code === Close.UNAUTHORIZED) {
      // Retrying the same (expired) session would only be refused again.
      this.signedOut = true;
      this.onState("offline", { reason: "unauthorized" });
    } else if (!navigator.onLine) {
      this.onState("offline", { reason: "network" });
    } else {
      // 1001 is the server restarting: come straight back, jittered, once.
      const first = code === Close.GOING_AWAY && this.attempt === 0;
      const delay = first ? Math.random() : backoffSeconds(this.attempt);
      this.attempt += 1;
      this.#countdown(performance.now() + delay * 1000, code);
    }
  }

  #countdown(deadline, code) {
    const msLeft = deadline - performance.now();
    if (msLeft <= 0) {
      this.#open();
      return;
    }
    this.onState("reconnecting", { seconds: Math.ceil(msLeft / 1000), code });
    this.timer = setTimeout(() => this.#countdown(deadline, code), msLeft % 1000 || 1000);
  }

  #armWatchdog() {
    clearTimeout(this.watchdog);
    const seconds = this.welcomed ? this.heartbeatS * 2 + LIVENESS_SLACK_S : CONNECT_TIMEOUT_S;
    this.watchdog = setTimeout(() => {
      console.warn(`ticker: nothing heard for ${seconds} s; reconnecting`);
      this.#abandon(Close.NO_TRAFFIC);
    }, seconds * 1000);
  }

  /** Drop the socket without waiting for a close handshake a dead peer will never answer. */
  #abandon(code) {
    const ws = this.ws;
    if (!ws) return;
    this.ws = null;
    try {
      ws.close(code, "client gave up");
    } catch {
      /* already closing */
    }
    this.#closed(code);
  }
}

/** The user's symbols, in the order added, and what the feed last said about each. */
class Watchlist {
  constructor(storageKey) {
    this.storageKey = storageKey;
    this.symbols = this.#load();
    this.latest = new Map(); // symbol -> newest snapshot/quote
    this.halted = new Set();
    this.instruments = new Map(); // symbol -> {name, decimals} from the REST API
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
    this.latest.delete(symbol);
    this.halted.delete(symbol);
    this.#save();
  }

  /** Keep a snapshot or quote if it is newer than what we hold; true when it changed the row. */
  applyQuote(message) {
    const held = this.latest.get(message.symbol);
    // A snapshot is authoritative (it may start a new epoch, with lower seqs);
    // a quote is only news if it is newer than what we hold.
    if (message.type === "quote" && held && Number(message.seq) <= Number(held.seq)) return false;
    message.previousLast = held?.last;
    this.latest.set(message.symbol, message);
    // Quotes flow only while trading, so one proves a halt is over even if
    // the "trading" status was sent while we were disconnected.
    this.halted.delete(message.symbol);
    return true;
  }

  setHalted(symbol, halted) {
    if (halted) this.halted.add(symbol);
    else this.halted.delete(symbol);
  }

  /** Price decimals: the tick size's when known, else the most seen in prices so far. */
  decimals(symbol) {
    const known = this.instruments.get(symbol)?.decimals;
    if (known !== undefined) return known;
    const quote = this.latest.get(symbol);
    return quote ? Math.max(...PRICE_FIELDS.map((f) => decimalsOf(quote[f] ?? 0))) : 2;
  }

  #load() {
    try {
      const raw = localStorage.getItem(this.storageKey);
      if (raw === null) return [...DEFAULT_WATCHLIST]; // first visit
      const saved = JSON.parse(raw);
      if (Array.isArray(saved)) {
        const symbols = saved.filter((s) => typeof s === "string").map((s) => s.trim().toUpperCase());
        return [...new Set(symbols.filter((s) => SYMBOL_RE.test(s)))];
      }
    } catch {
      /* unreadable entry or storage disabled: start from the default */
    }
    return [...DEFAULT_WATCHLIST];
  }

  #save() {
    try {
      localStorage.setItem(this.storageKey, JSON.stringify(this.symbols));
    } catch {
      /* private mode or quota: the watchlist lives for this page only */
    }
  }
}

const sizeFormat = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const timeFormat = new Intl.DateTimeFormat("en-GB", {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  fractionalSecondDigits: 3,
  hour12: false,
});

/** The text of each cell of a row, from the model alone. */
function rowTexts(watchlist, symbol) {
  const quote = watchlist.latest.get(symbol);
  if (!quote) return Object.fromEntries(CELL_FIELDS.map((f) => [f, "—"]));
  const places = watchlist.decimals(symbol);
  const price = (v) => (typeof v === "number" ? v.toFixed(places) : "—");
  const size = (v) => (typeof v === "number" ? sizeFormat.format(v) : "—");
  // ts is integer microseconds; Date wants milliseconds.
  const ts = typeof quote.ts === "number" ? timeFormat.format(new Date(Math.floor(quote.ts / 1000))) : "—";
  return {
    bid: price(quote.bid),
    ask: price(quote.ask),
    last: price(quote.last),
    last_size: size(quote.last_size),
    volume: size(quote.volume),
    ts,
  };
}

/** The table body. Structure changes at once; values repaint once per animation frame. */
class WatchlistTable {
  constructor(tbody, emptyNote, watchlist, onRemove) {
    Object.assign(this, { tbody, emptyNote, watchlist, onRemove });
    this.rows = new Map(); // symbol -> {tr, cells, badge, symbolCell, shown}
    this.dirty = new Set();
    this.frame = 0;
  }

  /** Make the rows match the watchlist: same symbols, same order. */
  sync() {
    const wanted = this.watchlist.symbols;
    for (const [symbol, row] of this.rows) {
      if (!wanted.includes(symbol)) {
        row.tr.remove();
        this.rows.delete(symbol);
        this.dirty.delete(symbol);
      }
    }
    wanted.forEach((symbol, index) => {
      let row = this.rows.get(symbol);
      if (!row) {
        row = this.#build(symbol);
        this.rows.set(symbol, row);
        this.markDirty(symbol);
      }
      const here = this.tbody.children[index] ?? null;
      if (here !== row.tr) this.tbody.insertBefore(row.tr, here);
    });
    this.emptyNote.hidden = wanted.length > 0;
  }

  markDirty(symbol) {
    if (!this.rows.has(symbol)) return;
    this.dirty.add(symbol);
    if (!this.frame) this.frame = requestAnimationFrame(() => this.#flush());
  }

  #flush() {
    this.frame = 0;
    for (const symbol of this.dirty) this.#paint(symbol, this.rows.get(symbol));
    this.dirty.clear();
  }

  #paint(symbol, row) {
    const wl = this.watchlist;
    const texts = rowTexts(wl, symbol);
    for (const field of CELL_FIELDS) {
      // Compare with what we last wrote rather than reading the DOM back.
      if (row.shown[field] !== texts[field]) {
        row.cells[field].textContent = texts[field];
        row.shown[field] = texts[field];
      }
    }
    const quote = wl.latest.get(symbol);
    if (quote) {
      row.tr.dataset.seq = String(quote.seq);
      const prev = quote.previousLast;
      if (typeof prev === "number" && prev !== quote.last) {
        row.tr.dataset.tick = quote.last > prev ? "up" : "down";
      }
    }
    const halted = wl.halted.has(symbol);
    row.tr.classList.toggle("halted", halted);
    row.badge.hidden = !halted;
    const name = wl.instruments.get(symbol)?.name;
    if (name && row.symbolCell.title !== name) row.symbolCell.title = name;
  }

  #build(symbol) {
    const tr = document.createElement("tr");
    tr.dataset.symbol = symbol;
    const symbolCell = document.createElement("th");
    symbolCell.scope = "row";
    const label = document.createElement("span");
    label.dataset.field = "symbol";
    label.textContent = symbol;
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = "halted";
    badge.hidden = true;
    symbolCell.append(label, " ", badge);
    tr.append(symbolCell);
    const cells = {};
    for (const field of CELL_FIELDS) {
      const td = document.createElement("td");
      td.dataset.field = field;
      td.className = "num";
      cells[field] = td;
      tr.append(td);
    }
    const actions = document.createElement("td");
    actions.className = "actions";
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "remove";
    remove.textContent = "×";
    remove.title = `Remove ${symbol}`;
    remove.setAttribute("aria-label", `Remove ${symbol}`);
    remove.addEventListener("click", () => this.onRemove(symbol));
    actions.append(remove);
    tr.append(actions);
    return { tr, cells, badge, symbolCell, shown: {} };
  }
}

/** The page: the add box, the state badge, and the protocol requests. */
class TickerApp {
  constructor(root) {
    const { user, wsPath, heartbeatS, loginUrl, instrumentsUrl } = root.dataset;
    Object.assign(this, { root, loginUrl, instrumentsUrl });
    this.watchlist = new Watchlist(`marketfeed:watchlist:v1:${user}`);
    const tbody = root.querySelector("#rows");
    const empty = root.querySelector("#empty");
    this.table = new WatchlistTable(tbody, empty, this.watchlist, (s) => this.remove(s));
    this.stateEl = document.getElementById("conn-state");
    this.input = root.querySelector("#add-symbol");
    this.errorEl = root.querySelector("#add-error");
    this.noticeEl = root.querySelector("#notice");
    this.pending = new Map(); // request id -> {kind: "add"|"remove"|"resubscribe", symbols}
    this.fetching = new Set(); // symbols whose instrument details are on their way
    this.nextId = 1;
    this.maxSymbols = Infinity; // until the welcome says
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    this.conn = new FeedConnection({
      url: `${scheme}://${location.host}${wsPath}`,
      heartbeatS: Number(heartbeatS) || 15,
      onState: (state, detail) => this.#showState(state, detail),
      onMessage: (message) => this.#handle(message),
    });
  }

  start() {
    this.root.querySelector("#add-form").addEventListener("submit", (event) => {
      event.preventDefault(); // Enter in the box submits too
      this.add(this.input.value);
    });
    this.input.addEventListener("input", () => this.#showError(""));
    this.table.sync();
    this.conn.start();
  }

  add(raw) {
    const symbol = raw.trim().toUpperCase();
    const problem = this.#addProblem(symbol);
    // Only the server knows which symbols exist, so an add needs it live.
    if (!problem && !this.#request("subscribe", [symbol], "add")) {
      this.#showError("Not connected; try again once live.");
    } else {
      this.#showError(problem);
    }
  }

  remove(symbol) {
    this.watchlist.remove(symbol);
    this.table.sync();
    // Offline, nothing to send: the resubscribe after the next welcome leaves it out.
    this.#request("unsubscribe", [symbol], "remove");
  }

  #addProblem(symbol) {
    if (!symbol) return "Type a symbol, e.g. AAPL or EUR/USD.";
    if (!SYMBOL_RE.test(symbol)) return `“${symbol}” is not a symbol: letters, digits and . - / _ only.`;
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
    const symbols = [...this.watchlist.symbols];
    if (symbols.length) this.#request("subscribe", symbols, "resubscribe");
  }

  #handle(m) {
    switch (m.type) {
      case "welcome":
        this.maxSymbols = Number(m.max_symbols) || Infinity;
        this.#resubscribe(); // a new connection starts with no subscriptions
        break;
      case "subscribed":
      case "unsubscribed":
        this.#confirmed(this.#take(m.id), m.symbols ?? []);
        break;
      case "error":
        this.#failed(this.#take(m.id), m);
        break;
      case "snapshot":
      case "quote":
        if (this.#wanted(m.symbol) && this.watchlist.applyQuote(m)) this.table.markDirty(m.symbol);
        break;
      case "status":
        if (!this.#wanted(m.symbol)) break;
        this.watchlist.setHalted(m.symbol, m.state === "halted");
        this.table.markDirty(m.symbol);
        break;
      default: // heartbeat, pong, subscriptions: proof of life is all we need
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
    // Details only for symbols the server accepted (no 404s for stale ones);
    // every resubscribe also retries those a dropped connection cut short.
    if (request?.kind === "resubscribe") symbols.forEach((s) => this.#fetchInstrument(s));
    if (request?.kind !== "add") return;
    for (const symbol of symbols) {
      this.watchlist.add(symbol);
      this.#fetchInstrument(symbol);
    }
    this.table.sync();
    symbols.forEach((s) => this.table.markDirty(s));
    if (symbols.includes(this.input.value.trim().toUpperCase())) this.input.value = "";
  }

  #failed(request, m) {
    if (!request) {
      if (m.code !== "unauthorized") console.warn("ticker: server error", m);
    } else if (request.kind === "add") {
      this.#showError(m.message || m.code);
    } else if (request.kind === "resubscribe") {
      this.#resubscribeFailed(m);
    } else {
      console.warn("ticker: unsubscribe failed", m);
    }
  }

  /** The saved watchlist was refused as a whole (requests are atomic): repair it and retry. */
  #resubscribeFailed(m) {
    const before = this.watchlist.symbols.length;
    const named = m.symbols ?? [];
    if (m.code === "unknown_symbol") {
      named.forEach((s) => this.watchlist.remove(s));
      this.#notice(`Removed from the watchlist, no longer listed: ${named.join(", ")}.`);
    } else if (m.code === "too_many_symbols") {
      this.watchlist.symbols.slice(this.maxSymbols).forEach((s) => this.watchlist.remove(s));
      this.#notice(`The feed allows ${this.maxSymbols} symbols; the rest were dropped.`);
    } else if (m.code === "rate_limited") {
      setTimeout(() => this.#resubscribe(), RATE_LIMIT_RETRY_S * 1000);
      return;
    }
    this.table.sync();
    // Retry only if the repair changed something, so a confusing reply cannot loop.
    if (this.watchlist.symbols.length < before) this.#resubscribe();
    else console.warn("ticker: resubscribe failed", m);
  }

  async #fetchInstrument(symbol) {
    if (this.watchlist.instruments.has(symbol) || this.fetching.has(symbol)) return;
    this.fetching.add(symbol);
    try {
      // Symbols use only URL-safe characters; "/" in EUR/USD may stay raw (PROTOCOL.md).
      const response = await fetch(`${this.instrumentsUrl}${symbol}/`, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (!response.ok) return; // unknown or signed out: decimals fall back to the prices seen
      const data = await response.json();
      this.watchlist.instruments.set(symbol, { name: data.name, decimals: decimalsOf(data.tick_size) });
      this.table.markDirty(symbol);
    } catch (err) {
      console.warn(`ticker: no instrument details for ${symbol}`, err);
    } finally {
      this.fetching.delete(symbol);
    }
  }

  #showState(state, detail) {
    const el = this.stateEl;
    el.dataset.state = state;
    el.dataset.reason = detail.reason ?? "";
    this.root.dataset.live = String(state === "live");
    if (state !== "live") this.#dropPending();
    if (state === "offline" && detail.reason === "unauthorized") {
      const link = document.createElement("a");
      link.href = this.loginUrl;
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

  #notice(text) {
    this.noticeEl.textContent = text;
    this.noticeEl.hidden = !text;
  }
}

const root = typeof document === "undefined" ? null : document.getElementById("ticker");
if (root) new TickerApp(root).start();
