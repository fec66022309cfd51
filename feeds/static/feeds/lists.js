// The user's named watchlists, kept on the server (docs/PROTOCOL.md "Watchlists").
//
// Read over the feed: the page sends {"op":"watchlists"} on every socket and
// gets every list, then again whenever they change, from this browser or any
// other. Written over REST, /api/watchlists/, with the session cookie and its
// CSRF token, one write at a time and in order. A small bar above the add box
// picks the list shown, and creates, renames and deletes one.
//
// The page (app.js) owns the symbols shown (watchlist.js); this tells it which
// to show through `onShow(symbols)`, and hears of the user's own changes
// through `changed()`. The feed's copy of a write of ours can come after the
// write's own answer, and a copy of an earlier write after a later one: so
// from a write until the lists are asked for again once the writes are done
// (`refresh()`), what the feed brings unasked is ignored. The server reads
// and sends one connection's lists in order, so the answer, and whatever
// comes after it, is at least as new as every write of ours.

import { DEFAULT_SYMBOLS } from "./watchlist.js";

const FIRST_NAME = "My watchlist";
const MAX_NAME_CHARS = 60;

/** The CSRF token Django put in the page (the log-out form's), else its cookie. */
function csrfToken() {
  const field = document.querySelector('input[name="csrfmiddlewaretoken"]');
  if (field?.value) return field.value;
  return /(?:^|;\s*)csrftoken=([^;]+)/.exec(document.cookie)?.[1] ?? "";
}

/** A failed write's reason, for a person: the API's `detail`, else the HTTP status. */
async function reasonOf(response) {
  try {
    const body = await response.json();
    if (typeof body?.detail === "string") return { text: body.detail, symbols: body.symbols };
  } catch {
    /* not JSON */
  }
  return { text: `the server answered ${response.status}`, symbols: undefined };
}

export class ServerLists {
  /**
   * `watchlist`: the symbols shown (watchlist.js); `onShow(symbols)`: show these instead;
   * `onRemoved(reason, symbols)`: symbols the server refused, taken off with a notice;
   * `refresh()`: ask the feed for the lists (the `watchlists` request).
   */
  constructor({ url, user, watchlist, anchor, onShow, onRemoved, refresh, storage = globalThis.localStorage }) {
    Object.assign(this, { url, watchlist, onShow, onRemoved, refresh, storage });
    this.currentKey = `marketfeed:watchlist:current:${user}`;
    this.lists = null; // every list of the user, once the feed has said
    this.currentId = null; // the list shown; null: not saved yet (the default, or nothing)
    this.writes = 0;
    this.chain = Promise.resolve();
    this.asked = false; // lists were asked for after our writes: until the answer, ignore the rest
    this.bar = this.#buildBar(anchor);
  }

  get known() {
    return this.lists !== null;
  }

  /** The `watchlists` message: every list of the user, now; `answer`: to our request. */
  received(lists, answer) {
    if (!Array.isArray(lists)) return;
    if (this.lists === null) return this.#first(lists);
    if (answer) this.asked = false;
    if (!this.writes && !this.asked) this.#apply(lists);
  }

  /** The server does not keep lists (an older one refused the op): this browser keeps its own. */
  unavailable() {
    if (this.lists !== null) return;
    this.lists = [];
    this.watchlist.local = true;
    this.bar.hidden = true;
    this.onShow(this.watchlist.symbols);
  }

  /** The user added or removed a symbol of the list shown: save it. */
  changed() {
    if (this.lists === null || this.watchlist.local) return;
    this.#write(async () => {
      const symbols = [...this.watchlist.symbols]; // the newest, when its turn comes
      if (this.currentId === null) return this.#create(this.#freeName(FIRST_NAME), symbols);
      return this.#put(this.currentId, { symbols });
    });
  }

  // --- what the feed brings ---

  #first(lists) {
    this.lists = lists;
    const wl = this.watchlist;
    if (lists.length) {
      if (wl.pending) wl.markMigrated(); // the server's lists win; the browser's is not moved
      const saved = Number(this.#stored());
      this.#show(lists.find((l) => l.id === saved) ?? lists[0]);
    } else if (wl.pending) {
      this.#migrate([...wl.symbols]);
    } else {
      this.#show(null, wl.migrated ? [...DEFAULT_SYMBOLS] : wl.symbols);
    }
  }

  /** Move the browser's list up once; symbols the server does not know are dropped, with a notice. */
  #migrate(symbols) {
    this.onShow(symbols);
    this.#write(async () => {
      for (let attempt = 0; attempt < 3; attempt++) {
        // What the page shows: the refused symbols are off it by the next attempt.
        const wanted = [...this.watchlist.symbols];
        const response = await this.#fetch("POST", this.url, { name: FIRST_NAME, symbols: wanted });
        if (response.ok) {
          const made = await response.json();
          this.watchlist.markMigrated();
          this.lists = [...this.lists.filter((l) => l.id !== made.id), made];
          this.#show(made);
          return;
        }
        const { text, symbols: refused } = await reasonOf(response);
        if (response.status !== 400 || !Array.isArray(refused)) return this.#error(`Not saved: ${text}`);
        this.onRemoved("unknown_symbol", refused);
      }
    });
  }

  /** Lists from the feed after the first: follow what changed elsewhere. */
  #apply(lists) {
    // A list we wrote since is newer than its copy here (a write's echo can come after its answer).
    const ours = new Map(this.lists.map((l) => [l.id, l]));
    this.lists = lists.map((l) => (ours.get(l.id)?.updated > l.updated ? ours.get(l.id) : l));
    const current = lists.find((l) => l.id === this.currentId);
    if (current) {
      if (current.symbols.join() !== this.watchlist.symbols.join()) this.onShow(current.symbols);
      this.#render();
    } else if (this.currentId !== null || lists.length) {
      this.#show(this.lists[0] ?? null); // deleted elsewhere, or one made elsewhere while we had none
    } else {
      this.#render();
    }
  }

  #show(list, symbols = list?.symbols ?? []) {
    this.currentId = list?.id ?? null;
    if (list) this.#store(list.id);
    this.onShow(symbols);
    this.#render();
  }

  // --- writes, one at a time ---

  #write(job) {
    this.writes += 1;
    this.chain = this.chain
      .then(job)
      .catch((err) => this.#error(`Not saved: ${err?.message ?? err}`))
      .finally(() => {
        this.writes -= 1;
        if (this.writes) return;
        this.asked = true; // offline, the request after the next welcome answers
        this.refresh();
      });
    return this.chain;
  }

  #fetch(method, url, body) {
    return fetch(url, {
      method,
      credentials: "same-origin",
      keepalive: true, // a change made just before a reload still reaches the server
      headers: { Accept: "application/json", "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  async #create(name, symbols) {
    const response = await this.#fetch("POST", this.url, { name, symbols });
    if (!response.ok) return this.#refused(response);
    const made = await response.json();
    this.lists = [...this.lists.filter((l) => l.id !== made.id), made];
    this.currentId ??= made.id;
    if (this.currentId === made.id) this.#store(made.id);
    this.#render();
    return made;
  }

  async #put(id, fields) {
    const response = await this.#fetch("PUT", `${this.url}${id}/`, fields);
    if (!response.ok) return this.#refused(response);
    const saved = await response.json();
    this.lists = this.lists.map((l) => (l.id === saved.id ? saved : l));
    this.#render();
    return saved;
  }

  async #refused(response) {
    const { text, symbols } = await reasonOf(response);
    if (response.status === 400 && Array.isArray(symbols) && this.currentId !== null) {
      // Instruments gone since they were added: off the list, and saved without them.
      this.onRemoved("unknown_symbol", symbols);
      return null;
    }
    this.#error(`Not saved: ${text}`);
    return null;
  }

  // --- the bar: pick, create, rename, delete ---

  #buildBar(anchor) {
    const bar = document.createElement("form");
    bar.className = "lists";
    bar.setAttribute("aria-label", "Watchlists");
    bar.hidden = true; // until the lists are known
    const el = (tag, props) => Object.assign(document.createElement(tag), props);
    this.picker = el("select", { id: "list-picker" });
    const label = el("label", { htmlFor: "list-picker", textContent: "Watchlist" });
    this.nameBox = el("span", { hidden: true });
    this.nameInput = el("input", { id: "list-name", maxLength: MAX_NAME_CHARS, required: true, spellcheck: false, placeholder: "List name" });
    const nameLabel = el("label", { htmlFor: "list-name", className: "visually-hidden", textContent: "List name" });
    this.saveButton = el("button", { type: "submit", className: "primary", textContent: "Save" });
    const cancel = el("button", { type: "button", textContent: "Cancel" });
    this.nameBox.append(nameLabel, this.nameInput, " ", this.saveButton, " ", cancel);
    this.buttons = el("span");
    const newButton = el("button", { type: "button", textContent: "New list" });
    this.renameButton = el("button", { type: "button", textContent: "Rename" });
    this.deleteButton = el("button", { type: "button", textContent: "Delete" });
    this.buttons.append(newButton, " ", this.renameButton, " ", this.deleteButton);
    this.errorEl = el("span", { className: "error", role: "alert" });
    this.errorEl.setAttribute("aria-live", "assertive");
    bar.append(label, this.picker, this.buttons, this.nameBox, this.errorEl);
    anchor.before(bar);

    this.picker.addEventListener("change", () => this.#pick(Number(this.picker.value)));
    newButton.addEventListener("click", () => this.#askName("new", ""));
    this.renameButton.addEventListener("click", () => this.#askName("rename", this.#current()?.name ?? ""));
    this.deleteButton.addEventListener("click", () => this.#delete());
    cancel.addEventListener("click", () => this.#closeName());
    bar.addEventListener("submit", (event) => {
      event.preventDefault();
      this.#saveName();
    });
    return bar;
  }

  #render() {
    if (this.lists === null) return;
    this.bar.hidden = false;
    const options = this.lists.map((l) => new Option(l.name, String(l.id), false, l.id === this.currentId));
    if (this.currentId === null) options.unshift(new Option("Watchlist (not saved yet)", "", false, true));
    this.picker.replaceChildren(...options);
    this.renameButton.disabled = this.deleteButton.disabled = this.currentId === null;
  }

  #pick(id) {
    const list = this.lists?.find((l) => l.id === id);
    if (list) this.#show(list);
  }

  #current() {
    return this.lists?.find((l) => l.id === this.currentId) ?? null;
  }

  #askName(mode, name) {
    this.naming = mode;
    this.#error("");
    this.buttons.hidden = true;
    this.nameBox.hidden = false;
    this.nameInput.value = name;
    this.saveButton.textContent = mode === "new" ? "Create" : "Rename";
    this.nameInput.focus();
  }

  #closeName() {
    this.naming = null;
    this.nameBox.hidden = true;
    this.buttons.hidden = false;
  }

  #saveName() {
    const name = this.nameInput.value.trim();
    if (!name) return this.#error("A list needs a name.");
    const mode = this.naming;
    this.#closeName();
    this.#write(async () => {
      if (mode === "new") {
        // The list shown, if never saved (the default), is kept before the new one is shown.
        if (this.currentId === null && this.watchlist.symbols.length) {
          await this.#create(this.#freeName(FIRST_NAME), [...this.watchlist.symbols]);
        }
        const made = await this.#create(name, []);
        if (made) this.#show(made);
      } else if (this.currentId !== null) {
        await this.#put(this.currentId, { name });
      }
    });
  }

  #delete() {
    const list = this.#current();
    if (!list || !confirm(`Delete the watchlist “${list.name}”?`)) return;
    this.#write(async () => {
      const response = await this.#fetch("DELETE", `${this.url}${list.id}/`);
      if (!response.ok && response.status !== 404) return this.#refused(response);
      this.lists = this.lists.filter((l) => l.id !== list.id);
      if (this.currentId === list.id) this.#show(this.lists[0] ?? null);
      else this.#render();
    });
  }

  /** The name, or the name with a number after it if the user has a list of that name. */
  #freeName(base) {
    const taken = new Set((this.lists ?? []).map((l) => l.name.toLowerCase()));
    let name = base;
    for (let n = 2; taken.has(name.toLowerCase()); n++) name = `${base} ${n}`;
    return name;
  }

  #error(text) {
    this.errorEl.textContent = text; // textContent: server text is never HTML
  }

  #stored() {
    try {
      return this.storage.getItem(this.currentKey);
    } catch {
      return null;
    }
  }

  #store(id) {
    try {
      this.storage.setItem(this.currentKey, String(id));
    } catch {
      /* storage disabled: the first list is shown next time */
    }
  }
}
