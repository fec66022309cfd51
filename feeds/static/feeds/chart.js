// The larger chart of the selected row: its last price over the history kept
// (two minutes), the session open as a dashed line, and the range drawn.

import { formatChange, formatPercent, formatPrice } from "./format.js";
import { drawLine } from "./spark.js";

function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

export class SelectedChart {
  constructor(panel, book) {
    this.book = book;
    this.panel = panel;
    this.canvas = panel.querySelector("canvas");
    this.title = panel.querySelector("[data-chart=symbol]");
    this.name = panel.querySelector("[data-chart=name]");
    this.last = panel.querySelector("[data-chart=last]");
    this.change = panel.querySelector("[data-chart=change]");
    this.range = panel.querySelector("[data-chart=range]");
    this.symbol = "";
    this.drawn = -1;
    this.box = { width: this.canvas.clientWidth, height: this.canvas.clientHeight };
    // Measured on resize only, so drawing in a frame never forces a layout.
    new ResizeObserver(([entry]) => {
      this.box = { width: entry.contentRect.width, height: entry.contentRect.height };
      this.drawn = -1;
    }).observe(this.canvas);
  }

  show(symbol) {
    this.symbol = symbol;
    this.drawn = -1;
    this.panel.hidden = !symbol;
    this.title.textContent = symbol;
  }

  /** Redraw when the selected symbol's history changed since the last drawing. */
  draw(colours) {
    const entry = this.book.entries.get(this.symbol);
    setText(this.name, this.book.instruments.get(this.symbol)?.name ?? "");
    if (!entry?.quote) return;
    const places = this.book.decimals(this.symbol);
    const change = entry.quote.last - entry.open;
    setText(this.last, formatPrice(entry.quote.last, places));
    setText(this.change, `${formatChange(change, places)} (${formatPercent(change / entry.open)})`);
    this.change.dataset.trend = change > 0 ? "up" : change < 0 ? "down" : "flat";
    if (this.drawn === entry.history.version) return;
    this.drawn = entry.history.version;
    const drawn = drawLine(this.canvas, entry.history.recent(), colours, {
      base: entry.open, box: this.box, padding: 6, lineWidth: 1.75,
    });
    const seconds = Math.round(entry.history.spanMs / 1000);
    setText(this.range, drawn
      ? `last ${seconds} s · low ${formatPrice(drawn.min, places)} · high ${formatPrice(drawn.max, places)}`
      : "collecting prices…");
  }
}
