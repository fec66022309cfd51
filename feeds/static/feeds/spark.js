// A price line on a canvas, for the sparklines and the selected row's chart.
// No chart library: a path through the points, scaled to the canvas.

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
  return { up: read("--up"), down: read("--down"), flat: read("--muted"), grid: read("--border") };
}

/**
 * Draw `prices` (oldest first) as a line filling the canvas, coloured by the
 * direction from `base` (the first point when absent). Returns the min and max drawn.
 */
export function drawLine(canvas, prices, colours, { base, box, padding = 2, lineWidth = 1.25 } = {}) {
  const ratio = fitCanvas(canvas, box);
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  if (prices.length < 2) return null;
  let min = Infinity;
  let max = -Infinity;
  for (const p of prices) {
    if (p < min) min = p;
    if (p > max) max = p;
  }
  const pad = padding * ratio;
  const span = max - min || 1; // a flat line sits in the middle
  const x = (i) => pad + ((width - 2 * pad) * i) / (prices.length - 1);
  const y = (p) => (max === min ? height / 2 : pad + (height - 2 * pad) * (1 - (p - min) / span));
  const start = base ?? prices[0];
  const end = prices.at(-1);
  if (base !== undefined && base >= min && base <= max) {
    ctx.strokeStyle = colours.grid;
    ctx.lineWidth = ratio;
    ctx.setLineDash([3 * ratio, 3 * ratio]);
    ctx.beginPath();
    ctx.moveTo(0, y(base));
    ctx.lineTo(width, y(base));
    ctx.stroke();
    ctx.setLineDash([]);
  }
  ctx.strokeStyle = end > start ? colours.up : end < start ? colours.down : colours.flat;
  ctx.lineWidth = lineWidth * ratio;
  ctx.lineJoin = "round";
  ctx.beginPath();
  prices.forEach((p, i) => (i ? ctx.lineTo(x(i), y(p)) : ctx.moveTo(x(i), y(p))));
  ctx.stroke();
  return { min, max };
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
