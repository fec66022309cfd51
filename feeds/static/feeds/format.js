// Text for the numbers on the page. Pure functions: no DOM, no state.

/** Decimal places of a number or decimal string: 0.00001 -> 5, "278.50" -> 2, 100 -> 0. */
export function decimalsOf(value) {
  let text = String(value);
  if (/e/i.test(text)) text = Number(value).toFixed(10).replace(/0+$/, "");
  const dot = text.indexOf(".");
  return dot < 0 ? 0 : text.length - dot - 1;
}

const NONE = "—";
const MINUS = "\u2212"; // a real minus sign: as wide as "+" in a monospaced face

const sizeFormat = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const timeFormat = new Intl.DateTimeFormat("en-GB", {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  fractionalSecondDigits: 3,
  hour12: false,
});

export function formatPrice(value, places) {
  return Number.isFinite(value) ? value.toFixed(places) : NONE;
}

export function formatSize(value) {
  return Number.isFinite(value) ? sizeFormat.format(value) : NONE;
}

/** A signed difference on the price grid: "+0.25", "−1.10", "0.00". */
export function formatChange(delta, places) {
  if (!Number.isFinite(delta)) return NONE;
  const text = Math.abs(delta).toFixed(places);
  if (Number(text) === 0) return text;
  return (delta > 0 ? "+" : MINUS) + text;
}

/** A signed percentage with two decimals: "+0.12%". */
export function formatPercent(ratio) {
  if (!Number.isFinite(ratio)) return NONE;
  return formatChange(ratio * 100, 2) + "%";
}

/** The protocol's ts (integer microseconds since the epoch) as local hh:mm:ss.mmm. */
export function formatTime(tsMicros) {
  return Number.isFinite(tsMicros) ? timeFormat.format(new Date(Math.floor(tsMicros / 1000))) : NONE;
}
