// Recent prices of one symbol for the sparkline and the chart: one point per
// time bucket (the bucket's last price), so the memory and the drawing cost
// do not grow with the quote rate.

export const BUCKET_MS = 250;
export const CAPACITY = 480; // two minutes of buckets

export class PriceHistory {
  constructor() {
    this.times = [];
    this.prices = [];
    this.version = 0; // bumped on every change: the drawings compare it
  }

  /** Record `price` seen at `nowMs` (performance.now() time). */
  push(price, nowMs) {
    if (!Number.isFinite(price)) return;
    const bucket = Math.floor(nowMs / BUCKET_MS);
    const last = this.times.length - 1;
    if (last >= 0 && this.times[last] === bucket) {
      this.prices[last] = price;
    } else {
      this.times.push(bucket);
      this.prices.push(price);
      if (this.times.length > CAPACITY) {
        this.times.shift();
        this.prices.shift();
      }
    }
    this.version += 1;
  }

  /** The newest `count` prices, oldest first. */
  recent(count = CAPACITY) {
    return this.prices.slice(-count);
  }

  get spanMs() {
    return this.times.length ? (this.times.at(-1) - this.times[0] + 1) * BUCKET_MS : 0;
  }
}

// --- candles: the selected row's large chart -------------------------------------------

export const CANDLES_KEPT = 120; // the bars asked of the API: two hours of one-minute candles

/**
 * One symbol's OHLCV candles: the server's bars (GET /api/bars/), then the
 * live ones built from quotes. A quote is a trade when its cumulative volume
 * grew since the previous quote seen (PROTOCOL.md "Bars"); a snapshot only
 * sets that baseline. Quotes the server conflated away are missed, so a live
 * candle's high and low may be a little narrower than the server's bar.
 */
export class CandleHistory {
  constructor(capacity = CANDLES_KEPT) {
    this.capacity = capacity;
    this.candles = []; // {t: start ms, o, h, l, c, v}, oldest first
    this.intervalMs = 60_000; // until the server says (interval_s)
    this.volume = NaN;
    this.version = 0; // bumped on every change: the drawing compares it
  }

  /** The server's bars (oldest first); live candles of the same period or later are kept on top. */
  load({ interval_s: intervalS, bars }) {
    const intervalMs = Number(intervalS) * 1000;
    const live = intervalMs === this.intervalMs ? this.candles : [];
    if (intervalMs > 0) this.intervalMs = intervalMs;
    const loaded = (Array.isArray(bars) ? bars : []).map((b) => ({
      t: Date.parse(b.start), o: b.open, h: b.high, l: b.low, c: b.close, v: b.volume,
    })).filter((c) => Number.isFinite(c.t));
    const lastT = loaded.at(-1)?.t ?? -Infinity;
    for (const candle of live) {
      const stored = loaded.at(-1);
      if (stored && candle.t === lastT) {
        // The server's bar may be a flush behind: keep its open, widen by what we saw since.
        Object.assign(stored, { h: Math.max(stored.h, candle.h), l: Math.min(stored.l, candle.l),
                                c: candle.c, v: Math.max(stored.v, candle.v) });
      } else if (candle.t > lastT) {
        loaded.push(candle);
      }
    }
    this.candles = loaded.slice(-this.capacity);
    this.version += 1;
  }

  /** Count `message` (a quote or snapshot); true when it changed a candle. */
  apply(message) {
    const volume = Number(message.volume);
    const traded = volume - this.volume;
    this.volume = volume;
    if (message.type !== "quote" || !(traded > 0)) return false;
    const price = Number(message.last);
    const t = Math.floor(Number(message.ts) / 1000 / this.intervalMs) * this.intervalMs;
    const last = this.candles.at(-1);
    if (!Number.isFinite(price) || !Number.isFinite(t)) return false;
    if (!last || t > last.t) {
      this.candles.push({ t, o: price, h: price, l: price, c: price, v: traded });
      if (this.candles.length > this.capacity) this.candles.shift();
    } else {
      // A stamp before the newest candle counts in it, as on the server.
      if (price > last.h) last.h = price;
      if (price < last.l) last.l = price;
      last.c = price;
      last.v += traded;
    }
    this.version += 1;
    return true;
  }
}
