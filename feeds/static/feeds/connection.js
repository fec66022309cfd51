// The socket's lifecycle: connect, watch for silence, reconnect with backoff.
// Reports states and messages; never touches the DOM.

import { Close, parseFrame } from "./frames.js";

const BACKOFF_BASE_S = 1;
const BACKOFF_CAP_S = 30; // a long outage still retries twice a minute
// Longer than the server's 10 s first-message auth deadline, so a handshake
// that will end in 4401 gets to say so before we give up on it.
const CONNECT_TIMEOUT_S = 15;
// Heartbeats come after heartbeat_s of silence; two missed ones plus slack means dead.
const LIVENESS_SLACK_S = 5;

/** Seconds before reconnect attempt `attempt` (0-based): doubling, capped, "equal jitter". */
export function backoffSeconds(attempt, random = Math.random) {
  const ceiling = Math.min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** attempt);
  // Half fixed, half random: never a thundering herd, never an instant retry loop.
  return ceiling / 2 + (random() * ceiling) / 2;
}

/**
 * States: "connecting", "live" (welcomed), "reconnecting" ({seconds, code}),
 * "offline" ({reason: "network" | "unauthorized"}).
 */
export class FeedConnection {
  constructor({ url, heartbeatS, onState, onMessages }) {
    Object.assign(this, { url, heartbeatS, onState, onMessages });
    this.ws = null;
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
    this.ws.send(JSON.stringify(request));
    return true;
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
    let messages;
    try {
      messages = parseFrame(text);
    } catch (err) {
      console.warn("ticker: unreadable frame", err);
      return;
    }
    const welcome = messages.find((m) => m.type === "welcome");
    if (welcome) {
      this.welcomed = true;
      this.attempt = 0;
      if (Number(welcome.heartbeat_s) > 0) this.heartbeatS = Number(welcome.heartbeat_s);
      this.#armWatchdog();
      this.onState("live", {});
    }
    this.onMessages(messages);
  }

  #closed(code) {
    clearTimeout(this.watchdog);
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
