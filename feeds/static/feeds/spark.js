// Drawing helpers, no chart library: the rows' sparklines (an SVG polyline's
// points), and the canvas sizing and colours the selected row's chart (chart.js) uses.

/**
 * Size the canvas's backing store to its CSS box at the screen's pixel ratio.
 * Pass the box when it is known, so a frame of drawing never forces a layout.
 */
export function fitCanvas(canvas, box = { width: canvas.clientWidth, height: canvas.clientHeight }) {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.round(box.width * ratio));
  const height = Math.max(1, Math.round(box.height * ratio));
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  return ratio;
}

/** The colours of the drawings, read from the stylesheet's custom properties. */
export function chartColours(element) {
  const style = getComputedStyle(element);
  const read = (name) => style.getPropertyValue(name).trim();
  return { up: read("--up"), down: read("--down"), flat: read("--muted") };
}

/**
 * The `points` of an SVG polyline drawing `prices` (oldest first) in a
 * `width` × `height` box, and its direction ("up", "down", "flat") from first to last.
 */
export function sparkPoints(prices, width, height, padding = 2) {
  if (prices.length < 2) return { points: "", trend: "flat" };
  const min = Math.min(...prices);
  const max = Math.max(...prices);
  const span = max - min;
  const step = (width - 2 * padding) / (prices.length - 1);
  const y = (p) => (span ? padding + (height - 2 * padding) * (1 - (p - min) / span) : height / 2);
  const points = prices.map((p, i) => `${(padding + i * step).toFixed(1)},${y(p).toFixed(1)}`).join(" ");
  const first = prices[0];
  const last = prices.at(-1);
  return { points, trend: last > first ? "up" : last < first ? "down" : "flat" };
}
