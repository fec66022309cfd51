// The watchlist table: one row per symbol. Structure changes at once; values
// are repainted by the caller once per animation frame, only for dirty rows.

import { formatChange, formatPercent, formatPrice, formatSize, formatTime } from "./format.js";
import { sparkPoints } from "./spark.js";

const PRICE_FIELDS = ["bid", "ask", "last"];
const CELL_FIELDS = ["name", ...PRICE_FIELDS, "change", "change_pct", "bid_size", "ask_size", "ts"];
const SPARK_BOX = Object.freeze({ width: 96, height: 22 }); // the SVG viewBox, CSS px
const SVG_NS = "http://www.w3.org/2000/svg";
const SPARK_POINTS = 120; // the last 30 s of 250 ms buckets
const GAP_SHOWN_MS = 5000;
export const FLASH_MS = 600; // how long a move tints its cell
// Below the desktop width some columns leave the row (ticker.css, its first narrow
// query): a tap anywhere on a row then selects it and brings the chart panel,
// which lists the row's details, into view.
export const NARROW = matchMedia("(max-width: 1199.98px)");
const PANEL_ID = "chart"; // the selected row's chart and details (templates/feeds/ticker.html)

/** The text of each cell of a row, from the book alone. */
function rowTexts(book, symbol) {
  const entry = book.entries.get(symbol);
  const quote = entry?.quote;
  const name = book.instruments.get(symbol)?.name ?? "";
  const places = book.decimals(symbol);
  const change = quote ? quote.last - entry.open : NaN;
  return {
    name,
    bid: formatPrice(quote?.bid, places),
    ask: formatPrice(quote?.ask, places),
    last: formatPrice(quote?.last, places),
    change: formatChange(change, places),
    change_pct: formatPercent(change / entry?.open),
    bid_size: formatSize(quote?.bid_size),
    ask_size: formatSize(quote?.ask_size),
    ts: formatTime(quote?.ts),
  };
}

function direction(now, before) {
  if (!Number.isFinite(now) || !Number.isFinite(before) || now === before) return "";
  return now > before ? "up" : "down";
}

/** Set a data attribute only when it changes: an equal write still invalidates style. */
function setData(element, name, value) {
  if (element.dataset[name] !== value) element.dataset[name] = value;
}

function badge(className, text, title) {
  const span = document.createElement("span");
  span.className = `badge ${className}`;
  span.textContent = text;
  if (title) span.title = title;
  span.hidden = true;
  return span;
}

export class WatchlistTable {
  /** `onShown(symbol)`: a row that missed repaints while off screen came into view. */
  constructor({ tbody, emptyNote, book, onRemove, onSelect, onShown }) {
    Object.assign(this, { tbody, emptyNote, book, onRemove, onSelect, onShown });
    // Rows off screen are not repainted (nobody sees them); they catch up as
    // they scroll into view, a little before they get there.
    this.observer = new IntersectionObserver((entries) => this.#seen(entries), { rootMargin: "200px 0px" });
    this.rows = new Map(); // symbol -> {tr, cells, texts, pick, halted, stale, gap, line, shown, values, visible, behind}
    this.selected = "";
    this.flashing = new Map(); // cell -> until (performance.now() ms): tinted cells, in order of expiry
  }

  /** Make the rows match `symbols`: same symbols, same order. Returns the new ones. */
  sync(symbols) {
    for (const [symbol, row] of this.rows) {
      if (!symbols.includes(symbol)) {
        this.observer.unobserve(row.tr);
        PRICE_FIELDS.forEach((field) => this.flashing.delete(row.cells[field]));
        row.tr.remove();
        this.rows.delete(symbol);
      }
    }
    const added = [];
    symbols.forEach((symbol, index) => {
      let row = this.rows.get(symbol);
      if (!row) {
        row = this.#build(symbol);
        this.rows.set(symbol, row);
        this.observer.observe(row.tr);
        added.push(symbol);
      }
      const here = this.tbody.children[index] ?? null;
      if (here !== row.tr) this.tbody.insertBefore(row.tr, here);
    });
    this.emptyNote.hidden = symbols.length > 0;
    return added;
  }

  select(symbol) {
    this.selected = symbol;
    for (const [s, row] of this.rows) {
      row.tr.classList.toggle("selected", s === symbol);
      row.pick.setAttribute("aria-pressed", String(s === symbol));
    }
  }

  /**
   * Write the row's cells from the book. Every write is skipped when it would
   * not change what is shown: each one costs a style recalc, a layout or a
   * repaint in the next frame, and at 1,000 quotes/s most fields repeat.
   */
  paint(symbol) {
    const row = this.rows.get(symbol);
    if (!row) return;
    if (!row.visible) {
      row.behind = true;
      return;
    }
    row.behind = false;
    const texts = rowTexts(this.book, symbol);
    for (const field of CELL_FIELDS) {
      // Compare with what we last wrote rather than reading the DOM back.
      if (row.shown[field] !== texts[field]) {
        row.texts[field].data = texts[field]; // the cell's one text node: no nodes made or dropped
        row.shown[field] = texts[field];
        if (field === "name") row.cells.name.title = texts.name; // the column truncates
      }
    }
    const entry = this.book.entries.get(symbol);
    const quote = entry?.quote;
    if (quote) {
      row.tr.dataset.seq = String(quote.seq);
      // Against what is on screen: several quotes may have come since the last frame.
      for (const field of PRICE_FIELDS) {
        const dir = direction(quote[field], row.values[field]);
        if (dir) this.#flash(row.cells[field], dir, performance.now());
        row.values[field] = quote[field];
      }
      const change = quote.last - entry.open;
      setData(row.tr, "trend", change > 0 ? "up" : change < 0 ? "down" : "flat");
    }
    const halted = Boolean(entry?.halted);
    if (row.halted.hidden === halted) {
      row.halted.hidden = !halted;
      row.tr.classList.toggle("halted", halted);
    }
  }

  /** Untint the cells whose flash is over; true while some are still tinted. */
  fade(nowMs) {
    for (const [cell, until] of this.flashing) {
      if (until > nowMs) return true; // the rest expire later still
      delete cell.dataset.flash;
      this.flashing.delete(cell);
    }
    return false;
  }

  /** Tint the cell (a write only when the direction changes) and keep it tinted FLASH_MS more. */
  #flash(cell, dir, nowMs) {
    setData(cell, "flash", dir);
    this.flashing.delete(cell); // re-inserted last: the map stays in order of expiry
    this.flashing.set(cell, nowMs + FLASH_MS);
  }

  /** Once a second: the stale and gap markers, which change with time, not with messages. */
  age(nowMs, { live, staleMs }) {
    for (const [symbol, row] of this.rows) {
      const entry = this.book.entries.get(symbol);
      const stale = Boolean(entry?.quote) && !entry.halted && (!live || nowMs - entry.receivedAt > staleMs);
      if (row.stale.hidden === stale) {
        row.stale.hidden = !stale;
        row.tr.classList.toggle("stale", stale);
      }
      const gap = entry?.gap && nowMs - entry.gap.at < GAP_SHOWN_MS ? entry.gap : null;
      if (row.gap.hidden === Boolean(gap)) row.gap.hidden = !gap;
      const title = gap ? `${gap.missed} update${gap.missed === 1 ? "" : "s"} conflated or missed` : row.gap.title;
      if (row.gap.title !== title) row.gap.title = title;
    }
  }

  /** Redraw the visible sparklines whose history changed since they were last drawn. */
  drawSparks() {
    for (const [symbol, row] of this.rows) {
      const entry = this.book.entries.get(symbol);
      if (!row.visible || !entry || row.sparkVersion === entry.history.version) continue;
      row.sparkVersion = entry.history.version;
      const { points, trend } = sparkPoints(entry.history.recent(SPARK_POINTS), SPARK_BOX.width, SPARK_BOX.height);
      row.line.setAttribute("points", points);
      row.line.dataset.trend = trend;
    }
  }

  #seen(entries) {
    for (const { target, isIntersecting } of entries) {
      const row = this.rows.get(target.dataset.symbol);
      if (!row) continue;
      row.visible = isIntersecting;
      if (isIntersecting && row.behind) this.onShown(target.dataset.symbol);
    }
  }

  /** On a narrow screen a row is one tap target (but for its remove button): select, then show. */
  #tapped(symbol, event) {
    if (!NARROW.matches || event.target.closest(".remove")) return;
    if (!event.target.closest(".pick")) this.onSelect(symbol); // the button selected already
    document.getElementById(PANEL_ID)?.scrollIntoView({ block: "nearest" });
  }

  #build(symbol) {
    const tr = document.createElement("tr");
    tr.dataset.symbol = symbol;
    const head = document.createElement("th");
    head.scope = "row";
    const pick = document.createElement("button");
    pick.type = "button";
    pick.className = "pick";
    pick.dataset.field = "symbol";
    pick.textContent = symbol;
    pick.title = `Chart ${symbol}`;
    pick.setAttribute("aria-pressed", "false");
    pick.setAttribute("aria-controls", PANEL_ID);
    pick.addEventListener("click", () => this.onSelect(symbol));
    tr.addEventListener("click", (event) => this.#tapped(symbol, event));
    const halted = badge("halted", "halted", "Trading halted: no quotes until it resumes");
    const stale = badge("stale", "stale", "No update for longer than the heartbeat");
    const gap = badge("gap", "≈");
    head.append(pick, halted, stale, gap);
    tr.append(head);
    const cells = {};
    const texts = {};
    for (const field of CELL_FIELDS) {
      const td = document.createElement("td");
      td.dataset.field = field;
      td.className = field === "name" ? "name" : "num";
      texts[field] = td.appendChild(document.createTextNode(""));
      cells[field] = td;
      tr.append(td);
    }
    const sparkCell = document.createElement("td");
    sparkCell.className = "spark";
    // Inline SVG rather than a canvas per row: a new line is one attribute, repainted
    // in place, with no compositing layer per row and colours from the stylesheet.
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", `0 0 ${SPARK_BOX.width} ${SPARK_BOX.height}`);
    svg.setAttribute("aria-hidden", "true");
    const line = document.createElementNS(SVG_NS, "polyline");
    svg.append(line);
    sparkCell.append(svg);
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
    tr.append(sparkCell, actions);
    return {
      tr, cells, texts, pick, halted, stale, gap, line,
      shown: Object.fromEntries(CELL_FIELDS.map((f) => [f, ""])), // as built: empty
      values: {}, sparkVersion: -1, visible: true, behind: false,
    };
  }
}
