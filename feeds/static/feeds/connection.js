// The socket's lifecycle: connect, watch for silence, reconnect with backoff,
// and move to a new socket when the server asks (make-before-break).
// Reports states and messages; never touches the DOM.
//
// Resume (PROTOCOL.md "Resume after reconnect"): the last seq of every symbol
// and its epoch are kept here, and the first subscribe on a new socket carries
// them as `since`, so a reconnect replays what was missed instead of a gap.
// Planned moves (PROTOCOL.md "Make-before-break: reconnect"): on `reconnect`
// a second socket opens beside the first and subscribes the page's symbols
// with `since`; it takes over once its `subscribed` arrives, and only then is
// the first closed, so the rows keep updating throughout.

import { Close, parseFrame } from "./frames.js";

const BACKOFF_BASE_S = 1;
const BACKOFF_CAP_S = 30; // a long outage still retries twice a minute
// Longer than the server's 10 s first-message auth deadline, so a handshake
// that will end in 4401 gets to say so before we give up on it.
const CONNECT_TIMEOUT_S = 15;
// Heartbeats come after heartbeat_s of silence; two missed ones plus slack means dead.
const LIVENESS_SLACK_S = 5;
// The id of the subscribe a new socket sends during a planned move.
const HANDOVER_ID = "handover";

/** Seconds before reconnect attempt `attempt` (0-based): doubling, capped, "equal jitter". */
export function backoffSeconds(attempt, random = Math.random) {
  const ceiling = Math.min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** attempt);
  // Half fixed, half random: never a thundering herd, never an instant retry loop.
  return ceiling / 2 + (random() * ceiling) / 2;
}

/** The messages of one frame, or null (with a console warning) when it cannot be read. */
function readFrame(text) {
  try {
    return parseFrame(text);
  } catch (err) {
    console.warn("ticker: unreadable frame", err);
    return null;
  }
}

/**
 * States: "connecting", "live" (welcomed), "reconnecting" ({seconds, code}),
 * "offline" ({reason: "network" | "unauthorized"}).
 */
export class FeedConnection {
  /** `symbols()`: what the page is subscribed to, carried over to a new socket on a planned move. */
  constructor({ url, heartbeatS, onState, onMessages, symbols = () => [] }) {
    Object.assign(this, { url, heartbeatS, onState, onMessages, symbols });
    this.ws = null;
    this.seqs = new Map(); // symbol -> seq of the newest quote or snapshot received
    this.epoch = ""; // the numbering those seqs belong to
    this.resumeNext = false; // the first subscribe on a new socket carries `since`
    this.next = null; // the socket taking over after a `reconnect`
    this.sentDuringMove = []; // (un)subscribes sent on the old socket while the new one sets up
    this.attempt = 0;
    this.welcomed = false;
    this.signedOut = false;
    this.timer = 0; // reconnect countdown
    this.watchdog = 0;
    this.lastHeard = 0;
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
    let out = request;
    if (request.op === "subscribe" && this.resumeNext) {
      this.resumeNext = false;
      out = this.#withSince(request);
    } else if (request.op === "unsubscribe") {
      request.symbols.forEach((s) => this.seqs.delete(s));
    }
    this.ws.send(JSON.stringify(out));
    if (this.next && (request.op === "subscribe" || request.op === "unsubscribe")) this.sentDuringMove.push(request);
    return true;
  }

  /** The request with `since` (and its epoch) for those of its symbols seen before. */
  #withSince(request) {
    const since = {};
    for (const symbol of request.symbols) if (this.seqs.has(symbol)) since[symbol] = this.seqs.get(symbol);
    if (!this.epoch || !Object.keys(since).length) return request;
    return { ...request, since, epoch: this.epoch };
  }

  /** Note the newest seq per symbol (a snapshot also names the epoch) from messages of the live socket. */
  #track(messages) {
    for (const m of messages) {
      if (m.type === "snapshot") {
        this.seqs.set(m.symbol, Number(m.seq));
        if (m.epoch) this.epoch = String(m.epoch);
      } else if (m.type === "quote" && Number(m.seq) > (this.seqs.get(m.symbol) ?? 0)) {
        this.seqs.set(m.symbol, Number(m.seq));
      } else if (m.type === "welcome" && !this.seqs.size) {
        this.epoch = String(m.epoch ?? "");
      }
    }
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
    this.lastHeard = performance.now();
    const messages = readFrame(text);
    if (!messages) return;
    const welcome = messages.find((m) => m.type === "welcome");
    if (welcome) {
      this.welcomed = true;
      this.attempt = 0;
      this.resumeNext = true;
      if (Number(welcome.heartbeat_s) > 0) this.heartbeatS = Number(welcome.heartbeat_s);
      this.#armWatchdog();
      this.onState("live", {});
    }
    this.#track(messages);
    this.onMessages(messages);
    if (messages.some((m) => m.type === "reconnect")) this.#moveSoon();
  }

  // --- planned moves (make-before-break) ---

  /** Open the socket that will take over; the current one serves until then. */
  #moveSoon() {
    if (this.next) return;
    const ws = new WebSocket(this.url);
    this.next = ws;
    this.sentDuringMove = [];
    ws.onmessage = (event) => {
      if (ws === this.next) this.#receivedByNext(ws, event.data);
      else if (ws === this.ws) this.#received(event.data);
    };
    ws.onclose = (event) => {
      if (ws === this.next) this.next = null; // refused: the old socket's 1001 brings a plain reconnect
      else if (ws === this.ws) this.#closed(event.code);
    };
  }

  /** The new socket's welcome, then the reply to its subscribe; the take-over at that reply. */
  #receivedByNext(ws, text) {
    const messages = readFrame(text);
    if (!messages) return;
    const welcome = messages.find((m) => m.type === "welcome");
    if (welcome) {
      const symbols = this.symbols();
      if (!symbols.length) return this.#takeOver(ws, messages.slice(messages.indexOf(welcome) + 1));
      ws.send(JSON.stringify(this.#withSince({ op: "subscribe", symbols, id: HANDOVER_ID })));
    }
    const reply = messages.findIndex((m) => m.id === HANDOVER_ID);
    if (reply < 0) return;
    if (messages[reply].type === "subscribed") this.#takeOver(ws, messages.slice(reply + 1));
    else this.#dropNext(); // refused (e.g. a symbol gone): the old socket's 1001 brings a plain reconnect
  }

  /** Make `ws` the socket; hand the page what followed its reply, then close the old one. */
  #takeOver(ws, rest) {
    const old = this.ws;
    this.next = null;
    this.ws = ws;
    this.welcomed = true;
    this.resumeNext = false;
    this.attempt = 0;
    for (const request of this.sentDuringMove) ws.send(JSON.stringify(request));
    this.sentDuringMove = [];
    this.#armWatchdog();
    try {
      old?.close(1000, "moved to a new connection");
    } catch {
      /* already closing */
    }
    this.#track(rest);
    this.onMessages(rest);
  }

  #dropNext() {
    const next = this.next;
    this.next = null;
    try {
      next?.close(1000, "not needed");
    } catch {
      /* already closing */
    }
  }

  // --- end planned moves ---

  #closed(code) {
    clearTimeout(this.watchdog);
    this.#dropNext(); // the move did not finish in time: reconnect (with since) as after any drop
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

  /** Give up on a socket silent for too long. Re-armed lazily: a frame only stamps lastHeard. */
  #armWatchdog() {
    clearTimeout(this.watchdog);
    this.lastHeard = performance.now();
    const check = () => {
      const seconds = this.welcomed ? this.heartbeatS * 2 + LIVENESS_SLACK_S : CONNECT_TIMEOUT_S;
      const msLeft = this.lastHeard + seconds * 1000 - performance.now();
      if (msLeft > 0) {
        this.watchdog = setTimeout(check, msLeft);
        return;
      }
      console.warn(`ticker: nothing heard for ${seconds} s; reconnecting`);
      this.#abandon(Close.NO_TRAFFIC);
    };
    this.watchdog = setTimeout(check, CONNECT_TIMEOUT_S * 1000);
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
