// The larger chart of the selected row: candles of 1, 5 or 15 minutes or an
// hour (the buttons in its caption), the server's history (GET /api/bars/,
// which the ticker backfills on a first start) continued live from the quotes.
// Drawn on a canvas, at most once per animation frame and only when a candle changed.

import { formatChange, formatPercent, formatPrice, formatSize, formatTime } from "./format.js";
import { CANDLES_KEPT, CandleHistory } from "./history.js";
import { fitCanvas } from "./spark.js";
import { NARROW } from "./table.js";

const MIN_SLOTS = 30; // a short history still draws candles of a readable width
const PADDING_PX = 6;
// The intervals the API rolls up (PROTOCOL.md "Bars"); the server's interval_s is the truth.
export const INTERVALS = Object.freeze({ "1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000 });
export const DEFAULT_INTERVAL = "1m";

function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

function intervalLabel(ms) {
  if (ms >= 3_600_000 && ms % 3_600_000 === 0) return `${ms / 3_600_000}-h`;
  return ms >= 60_000 ? `${Math.round(ms / 60_000)}-min` : `${Math.round(ms / 1000)}-s`;
}

/** The interval buttons, added to the chart's caption: one pressed at a time. */
function intervalPicker(caption, onPick) {
  const group = document.createElement("span");
  group.className = "intervals";
  group.setAttribute("role", "group");
  group.setAttribute("aria-label", "Candle interval");
  for (const name of Object.keys(INTERVALS)) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = name;
    button.dataset.interval = name;
    button.setAttribute("aria-pressed", String(name === DEFAULT_INTERVAL));
    button.addEventListener("click", () => onPick(name));
    group.append(button);
  }
  caption.append(group);
  return group;
}

// What the panel lists of the selected quote where the table has no room for those
// columns (ticker.css shows the list below the desktop width only).
const DETAILS = Object.freeze([
  ["bid", "Bid"], ["ask", "Ask"], ["bid_size", "Bid size"], ["ask_size", "Ask size"], ["ts", "Time"],
]);

/** The details list, added to the chart's caption: field -> its <dd>. */
function detailsList(caption, before) {
  const list = document.createElement("dl");
  list.className = "details";
  const values = {};
  for (const [field, label] of DETAILS) {
    const pair = document.createElement("div");
    const term = document.createElement("dt");
    term.textContent = label;
    const value = document.createElement("dd");
    value.dataset.detail = field;
    value.textContent = "—";
    pair.append(term, value);
    list.append(pair);
    values[field] = value;
  }
  caption.insertBefore(list, before);
  return values;
}

/** The text of each detail of `quote` (null: none yet). */
function detailTexts(quote, places) {
  return {
    bid: formatPrice(quote?.bid, places),
    ask: formatPrice(quote?.ask, places),
    bid_size: formatSize(quote?.bid_size),
    ask_size: formatSize(quote?.ask_size),
    ts: formatTime(quote?.ts),
  };
}

/** The colour of a candle: up when it closed above its open, down below, flat otherwise. */
function candleColour(candle, colours) {
  return candle.c > candle.o ? colours.up : candle.c < candle.o ? colours.down : colours.flat;
}

/**
 * Draw `candles` (oldest first) right-aligned on the canvas: a wick from low to
 * high and a body from open to close. Returns the lowest and highest price drawn.
 */
export function drawCandles(canvas, candles, colours, { box, padding = PADDING_PX } = {}) {
  const ratio = fitCanvas(canvas, box);
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  canvas.dataset.candles = String(candles.length); // what the tests count
  const newest = candles.at(-1);
  canvas.dataset.last = newest ? `${newest.t} ${newest.v}` : ""; // and watch grow
  if (!candles.length) return null;
  let min = Infinity;
  let max = -Infinity;
  for (const c of candles) {
    if (c.l < min) min = c.l;
    if (c.h > max) max = c.h;
  }
  const pad = padding * ratio;
  const span = max - min;
  const y = (p) => (span ? pad + (height - 2 * pad) * (1 - (p - min) / span) : height / 2);
  const slot = (width - 2 * pad) / Math.max(candles.length, MIN_SLOTS);
  const body = Math.max(ratio, Math.floor(slot * 0.7));
  const left = width - pad - slot * candles.length;
  candles.forEach((c, i) => {
    const centre = Math.round(left + slot * (i + 0.5));
    ctx.fillStyle = ctx.strokeStyle = candleColour(c, colours);
    ctx.fillRect(centre - Math.floor(ratio / 2), y(c.h), ratio, Math.max(ratio, y(c.l) - y(c.h)));
    const top = y(Math.max(c.o, c.c));
    ctx.fillRect(centre - Math.floor(body / 2), top, body, Math.max(ratio, y(Math.min(c.o, c.c)) - top));
  });
  return { min, max };
}

export class SelectedChart {
  constructor(panel, book, { barsUrl, onChange = () => {} } = {}) {
    this.book = book;
    this.panel = panel;
    this.barsUrl = barsUrl;
    this.onChange = onChange;
    this.canvas = panel.querySelector("canvas");
    this.title = panel.querySelector("[data-chart=symbol]");
    this.name = panel.querySelector("[data-chart=name]");
    this.last = panel.querySelector("[data-chart=last]");
    this.change = panel.querySelector("[data-chart=change]");
    this.range = panel.querySelector("[data-chart=range]");
    this.symbol = "";
    this.interval = DEFAULT_INTERVAL;
    this.loaded = ""; // the interval whose history the candles hold, once it came
    this.picker = intervalPicker(panel.querySelector("figcaption"), (name) => this.setInterval(name));
    this.details = detailsList(panel.querySelector("figcaption"), this.range);
    this.candles = new CandleHistory();
    this.loading = null; // the AbortController of the history request in flight
    this.drawn = -1;
    this.box = { width: this.canvas.clientWidth, height: this.canvas.clientHeight };
    // Measured on resize only, so drawing in a frame never forces a layout.
    new ResizeObserver(([entry]) => {
      this.box = { width: entry.contentRect.width, height: entry.contentRect.height };
      this.drawn = -1;
      this.onChange();
    }).observe(this.canvas);
  }

  show(symbol) {
    if (symbol === this.symbol) return;
    this.symbol = symbol;
    this.candles = new CandleHistory();
    this.candles.intervalMs = INTERVALS[this.interval]; // until the server says (interval_s)
    this.loaded = "";
    this.drawn = -1;
    this.panel.hidden = !symbol;
    this.title.textContent = symbol;
    // Not this symbol's candles yet: said at once (tests wait on it), redrawn empty next frame,
    // so the last symbol's candles never stand under this one's name.
    this.canvas.dataset.interval = "";
    this.onChange();
    if (symbol) this.#loadHistory(symbol);
  }

  /** Candles of another interval ("1m", "5m", "15m", "1h"): the server's, then live. */
  setInterval(name) {
    if (!(name in INTERVALS) || name === this.interval) return;
    this.interval = name;
    for (const button of this.picker.children) {
      button.setAttribute("aria-pressed", String(button.dataset.interval === name));
    }
    const { volume } = this.candles; // the trade baseline carries over: no trade is missed
    this.candles = new CandleHistory();
    this.candles.intervalMs = INTERVALS[name]; // until the server says (interval_s)
    this.candles.volume = volume;
    this.loaded = "";
    this.drawn = -1;
    this.onChange();
    if (this.symbol) this.#loadHistory(this.symbol);
  }

  /** A quote or snapshot the page accepted; only the selected symbol's count. */
  apply(message) {
    if (message.symbol === this.symbol) this.candles.apply(message);
  }

  async #loadHistory(symbol) {
    this.loading?.abort();
    const controller = (this.loading = new AbortController());
    const { interval } = this;
    try {
      // Symbols use only URL-safe characters; "/" in EUR/USD may stay raw (PROTOCOL.md).
      // CANDLES_KEPT bars of any interval fill the chart: the API rolls them up.
      const url = `${this.barsUrl}${symbol}/?interval=${interval}&limit=${CANDLES_KEPT}`;
      const response = await fetch(url, {
        credentials: "same-origin", headers: { Accept: "application/json" }, signal: controller.signal,
      });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const history = await response.json();
      if (symbol !== this.symbol || interval !== this.interval) return;
      this.candles.load(history);
      this.loaded = interval;
      this.onChange();
    } catch (err) {
      if (err.name !== "AbortError") console.warn(`ticker: no bars for ${symbol}; live candles only`, err);
    } finally {
      if (this.loading === controller) this.loading = null;
    }
  }

  /** Redraw when the selected symbol's candles changed since the last drawing. */
  draw(colours) {
    const entry = this.book.entries.get(this.symbol);
    setText(this.name, this.book.instruments.get(this.symbol)?.name ?? "");
    if (entry?.quote) {
      const places = this.book.decimals(this.symbol);
      const change = entry.quote.last - entry.open;
      setText(this.last, formatPrice(entry.quote.last, places));
      setText(this.change, `${formatChange(change, places)} (${formatPercent(change / entry.open)})`);
      this.change.dataset.trend = change > 0 ? "up" : change < 0 ? "down" : "flat";
    }
    if (NARROW.matches) { // written only where shown: the desktop's frames stay as they were
      const texts = detailTexts(entry?.quote, this.book.decimals(this.symbol));
      for (const [field, value] of Object.entries(this.details)) setText(value, texts[field]);
    }
    if (this.drawn === this.candles.version) return;
    this.drawn = this.candles.version;
    this.#drawCandles(colours);
  }

  #drawCandles(colours) {
    const { candles, intervalMs } = this.candles;
    const drawn = drawCandles(this.canvas, candles, colours, { box: this.box });
    this.canvas.dataset.interval = this.loaded; // with the candles it drew: what the tests wait for
    if (!drawn) {
      setText(this.range, "waiting for trades…");
      return;
    }
    const places = this.book.decimals(this.symbol);
    const seconds = Math.round((candles.at(-1).t + intervalMs - candles[0].t) / 1000);
    setText(this.range, `${intervalLabel(intervalMs)} candles · last ${seconds} s · `
      + `low ${formatPrice(drawn.min, places)} · high ${formatPrice(drawn.max, places)}`);
  }
}
