// The add box: a combobox that suggests instruments by symbol or name from
// GET /api/instruments/?search=, with the keyboard (arrows, Enter, Escape).

const DEBOUNCE_MS = 120;
const MAX_SUGGESTIONS = 8;
const MAX_QUERY_CHARS = 100; // the API's limit; the box allows fewer anyway

export class SymbolSearch {
  /** `onPick(symbol, instrument|null)`: the user chose a suggestion or submitted the text. */
  constructor({ form, input, listbox, instrumentsUrl, onPick }) {
    Object.assign(this, { form, input, listbox, instrumentsUrl, onPick });
    this.options = []; // instruments shown, in order
    this.active = -1;
    this.timer = 0;
    this.inflight = null; // AbortController of the running request
  }

  start() {
    this.input.addEventListener("input", () => this.#schedule());
    this.input.addEventListener("keydown", (event) => this.#key(event));
    this.input.addEventListener("blur", () => this.close());
    this.form.addEventListener("submit", (event) => {
      event.preventDefault(); // Enter in the box submits too
      this.#pick(this.active);
    });
    // mousedown, not click: it comes before the input's blur closes the list.
    this.listbox.addEventListener("mousedown", (event) => {
      const option = event.target.closest("[role=option]");
      if (!option) return;
      event.preventDefault();
      this.#pick(Number(option.dataset.index));
    });
  }

  clear() {
    this.input.value = "";
    this.close();
  }

  close() {
    clearTimeout(this.timer);
    this.inflight?.abort();
    this.#render([]);
  }

  #schedule() {
    clearTimeout(this.timer);
    const query = this.input.value.trim();
    if (!query) {
      this.close();
      return;
    }
    this.timer = setTimeout(() => this.#fetch(query.slice(0, MAX_QUERY_CHARS)), DEBOUNCE_MS);
  }

  async #fetch(query) {
    this.inflight?.abort();
    const controller = new AbortController();
    this.inflight = controller;
    const url = `${this.instrumentsUrl}?${new URLSearchParams({ search: query, page_size: MAX_SUGGESTIONS })}`;
    try {
      const response = await fetch(url, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
        signal: controller.signal,
      });
      // A query the API refuses (400) simply has no suggestions.
      const body = response.ok ? await response.json() : { results: [] };
      if (controller === this.inflight && document.activeElement === this.input) {
        this.#render(Array.isArray(body.results) ? body.results : []);
      }
    } catch (err) {
      if (err.name !== "AbortError") console.warn("ticker: search failed", err);
    }
  }

  #render(instruments) {
    this.options = instruments;
    this.active = -1;
    const items = instruments.map((instrument, index) => {
      const li = document.createElement("li");
      li.id = `suggestion-${index}`;
      li.setAttribute("role", "option");
      li.dataset.index = String(index);
      li.dataset.symbol = instrument.symbol;
      li.setAttribute("aria-selected", "false");
      const symbol = document.createElement("span");
      symbol.className = "symbol";
      symbol.textContent = instrument.symbol;
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = instrument.active === false ? `${instrument.name} (halted)` : instrument.name;
      li.append(symbol, name);
      return li;
    });
    this.listbox.replaceChildren(...items);
    this.listbox.hidden = items.length === 0;
    this.input.setAttribute("aria-expanded", String(items.length > 0));
    this.input.removeAttribute("aria-activedescendant");
  }

  #key(event) {
    const count = this.options.length;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      if (!count) return;
      event.preventDefault();
      // Cycle through the options and back to the typed text (-1).
      let next = this.active + (event.key === "ArrowDown" ? 1 : -1);
      if (next >= count) next = -1;
      if (next < -1) next = count - 1;
      this.#highlight(next);
    } else if (event.key === "Escape" && count) {
      event.preventDefault();
      this.close();
    }
  }

  #highlight(index) {
    this.active = index;
    [...this.listbox.children].forEach((li, i) => li.setAttribute("aria-selected", String(i === this.active)));
    if (this.active >= 0) this.input.setAttribute("aria-activedescendant", `suggestion-${this.active}`);
    else this.input.removeAttribute("aria-activedescendant");
  }

  /** A highlighted suggestion wins; otherwise the typed text, matched to a suggestion when exact. */
  #pick(index) {
    const typed = this.input.value.trim().toUpperCase();
    const instrument = this.options[index] ?? this.options.find((i) => i.symbol === typed) ?? null;
    this.onPick(instrument ? instrument.symbol : typed, instrument);
    this.#render([]);
  }
}
