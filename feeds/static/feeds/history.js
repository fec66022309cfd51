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
