// The web ticker: one WebSocket (session cookie auth), a watchlist kept in
// localStorage, and rendering batched to one pass per animation frame.

const root = document.getElementById("ticker");
const stateEl = document.getElementById("conn-state");
const rowsEl = document.getElementById("rows");
const input = document.getElementById("add-symbol");
const errorEl = document.getElementById("add-error");
const storageKey = `marketfeed:watchlist:${root.dataset.user}`;
const DEFAULT_WATCHLIST = ["AAPL", "MSFT", "NVDA", "BTC-USD", "ETH-USD", "EUR/USD", "GBP/USD"];
const FIELDS = ["bid", "ask", "last", "last_size", "volume", "ts"];

function loadWatchlist() {
  try {
    const saved = JSON.parse(localStorage.getItem(storageKey));
    if (Array.isArray(saved)) return saved;
  } catch (_) { /* a corrupt entry falls back to the default */ }
  return [...DEFAULT_WATCHLIST];
}

const watchlist = loadWatchlist();
const latest = new Map();   // symbol -> newest message (snapshot or quote)
const dirty = new Set();
let socket = null;
let nextId = 1;
let attempt = 0;
const pending = new Map();  // request id -> symbol being added

const decimals = new Map();  // symbol -> decimal places of its tick size
const PRICE_FIELDS = new Set(["bid", "ask", "last"]);

async function loadDecimals(symbol) {
  if (decimals.has(symbol)) return;
  decimals.set(symbol, null);
  try {
    const res = await fetch(`/api/instruments/${encodeURIComponent(symbol)}/`, { credentials: "same-origin" });
    if (!res.ok) return;
    const tick = (await res.json()).tick_size.replace(/0+$/, "");
    decimals.set(symbol, tick.includes(".") ? tick.split(".")[1].length : 0);
    dirty.add(symbol);
  } catch (_) { /* prices then show as received */ }
}

function formatValue(symbol, field, value) {
  if (field === "ts") return formatTime(value);
  const places = decimals.get(symbol);
  if (PRICE_FIELDS.has(field) && places != null) return value.toFixed(places);
  return String(value);
}

function saveWatchlist() { localStorage.setItem(storageKey, JSON.stringify(watchlist)); }

function setState(state, text) {
  stateEl.dataset.state = state;
  stateEl.textContent = text || state;
}

function send(obj) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(obj));
}

function rowFor(symbol) {
  let row = rowsEl.querySelector(`tr[data-symbol="${CSS.escape(symbol)}"]`);
  if (!row) {
    loadDecimals(symbol);
    row = document.createElement("tr");
    row.dataset.symbol = symbol;
    const name = document.createElement("td");
    name.dataset.field = "symbol";
    name.textContent = symbol;
    row.append(name);
    for (const field of FIELDS) {
      const cell = document.createElement("td");
      cell.dataset.field = field;
      row.append(cell);
    }
    const actions = document.createElement("td");
    const remove = document.createElement("button");
    remove.className = "remove";
    remove.title = `Remove ${symbol}`;
    remove.textContent = "×";
    remove.addEventListener("click", () => removeSymbol(symbol));
    actions.append(remove);
    row.append(actions);
    rowsEl.append(row);
  }
  return row;
}

function formatTime(us) {
  return new Date(us / 1000).toISOString().slice(11, 23);
}

function render() {
  for (const symbol of dirty) {
    const msg = latest.get(symbol);
    if (!msg || !watchlist.includes(symbol)) continue;
    const row = rowFor(symbol);
    for (const field of FIELDS) {
      const cell = row.querySelector(`td[data-field="${field}"]`);
      const value = msg[field];
      if (value === undefined) continue;
      const text = formatValue(symbol, field, value);
      if (field === "last" && cell.textContent) {
        const before = Number(cell.textContent);
        cell.classList.toggle("up", value > before);
        cell.classList.toggle("down", value < before);
      }
      cell.textContent = text;
    }
  }
  dirty.clear();
  requestAnimationFrame(render);
}

function setHalted(symbol, halted) {
  const row = rowFor(symbol);
  row.classList.toggle("halted", halted);
  const cell = row.querySelector('td[data-field="symbol"]');
  cell.textContent = symbol;
  if (halted) {
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = "halted";
    cell.append(badge);
  }
}

function handle(msg) {
  switch (msg.type) {
    case "welcome":
      attempt = 0;
      setState("live");
      if (watchlist.length) send({ op: "subscribe", symbols: watchlist, id: nextId++ });
      break;
    case "snapshot":
    case "quote":
      latest.set(msg.symbol, msg);
      dirty.add(msg.symbol);
      break;
    case "status":
      setHalted(msg.symbol, msg.state === "halted");
      break;
    case "subscribed":
      for (const symbol of msg.symbols) rowFor(symbol);
      if (pending.has(msg.id)) {
        const symbol = pending.get(msg.id);
        pending.delete(msg.id);
        if (!watchlist.includes(symbol)) { watchlist.push(symbol); saveWatchlist(); }
        errorEl.textContent = "";
      }
      break;
    case "error":
      if (pending.has(msg.id)) {
        pending.delete(msg.id);
        errorEl.textContent = msg.message;
      } else if (msg.code === "unknown_symbol" && msg.symbols) {
        // Instruments removed on the server: drop them from the saved list.
        for (const s of msg.symbols) { const i = watchlist.indexOf(s); if (i >= 0) watchlist.splice(i, 1); }
        saveWatchlist();
        if (watchlist.length) send({ op: "subscribe", symbols: watchlist, id: nextId++ });
      }
      break;
    default:
      break;  // heartbeat, pong: proof of life only
  }
}

function addSymbol(raw) {
  const symbol = raw.trim().toUpperCase();
  if (!symbol) return;
  const id = nextId++;
  pending.set(id, symbol);
  send({ op: "subscribe", symbols: [symbol], id });
}

function removeSymbol(symbol) {
  const i = watchlist.indexOf(symbol);
  if (i >= 0) watchlist.splice(i, 1);
  saveWatchlist();
  latest.delete(symbol);
  send({ op: "unsubscribe", symbols: [symbol], id: nextId++ });
  rowsEl.querySelector(`tr[data-symbol="${CSS.escape(symbol)}"]`)?.remove();
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  setState(attempt ? "reconnecting" : "connecting", attempt ? "reconnecting…" : "connecting");
  socket = new WebSocket(`${scheme}//${location.host}${root.dataset.wsPath}`);
  socket.addEventListener("message", (event) => {
    const data = JSON.parse(event.data);
    for (const msg of Array.isArray(data) ? data : [data]) handle(msg);
  });
  socket.addEventListener("close", (event) => {
    if (event.code === 4401) {
      setState("offline", "signed out — log in again");
      stateEl.innerHTML = '<a href="/accounts/login/">signed out — log in again</a>';
      return;
    }
    // Exponential backoff with full jitter, capped at 30 s.
    const delay = Math.random() * Math.min(30_000, 500 * 2 ** attempt++);
    let left = Math.ceil(delay / 1000);
    setState("reconnecting", `reconnecting in ${left} s`);
    const countdown = setInterval(() => {
      left -= 1;
      if (left > 0) setState("reconnecting", `reconnecting in ${left} s`);
    }, 1000);
    setTimeout(() => { clearInterval(countdown); connect(); }, delay);
  });
}

document.getElementById("add-form").addEventListener("submit", (event) => {
  event.preventDefault();
  addSymbol(input.value);
  input.value = "";
});
window.addEventListener("offline", () => setState("offline"));

for (const symbol of watchlist) rowFor(symbol);
requestAnimationFrame(render);
connect();
