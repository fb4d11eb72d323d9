// @ts-check
/**
 * @file The bridge to the vendored libraries (web/vendor/, see
 * scripts/vendor-web.sh) that turn code and TeX into markup: load them on
 * first use, and let their output reach the page only as nodes rebuilt
 * through an allowlist.
 *
 * Those libraries answer with HTML strings built from model output. The
 * strings are parsed in an inert document (DOMParser: no scripts run, no
 * images load) and walked; only allowlisted elements and attributes are
 * re-created in the page with `createElement(NS)`, everything else is kept
 * as its text. So whatever the library lets through, no event handler,
 * link, style or unknown element can become live.
 *
 * Loading is lazy and never blocks rendering: until a library is ready the
 * renderer shows plain text and queues an upgrade, applied in place when it
 * arrives (or never, if it cannot load: the plain text stays).
 */

/** Upgrades waiting for one library; older ones are dropped beyond this. */
const MAX_QUEUED = 500;

/**
 * A module loaded on first use.
 * @template T
 */
export class LazyModule {
  /** @type {"idle" | "loading" | "ready" | "failed"} */
  #state = "idle";
  /** @type {T | undefined} */
  #value;
  /** @type {(() => void)[]} */
  #queue = [];
  /** @type {Promise<T | undefined> | undefined} */
  #promise;
  #load;

  /** @param {() => Promise<T>} load */
  constructor(load) {
    this.#load = load;
  }

  /** The module when loaded, else undefined (and the load starts). */
  now() {
    if (this.#state === "ready") return this.#value;
    this.ready();
    return undefined;
  }

  /**
   * Run `upgrade` once the module has loaded (never if it fails to).
   * @param {() => void} upgrade
   */
  later(upgrade) {
    if (this.#state === "ready") upgrade();
    if (this.#state === "ready" || this.#state === "failed") return;
    if (this.#queue.push(upgrade) > MAX_QUEUED) this.#queue.shift();
    this.ready();
  }

  /** Load it (once); resolves to the module, or undefined when it failed. */
  ready() {
    if (!this.#promise) {
      this.#state = "loading";
      this.#promise = this.#load().then(
        (value) => {
          this.#value = value;
          this.#state = "ready";
          return value;
        },
        () => {
          this.#state = "failed";
          return undefined;
        },
      );
      this.#promise.then(() => {
        const queue = this.#queue;
        this.#queue = [];
        for (const upgrade of queue) upgrade();
      });
    }
    return this.#promise;
  }
}

/**
 * What an allowlist keeps of one parsed element: the element to create in
 * the page (namespace and name) and which of its attributes to copy;
 * "children" to drop the element but keep its (rebuilt) children; or null to
 * keep only its text.
 * @typedef {{ ns: string, name: string, attributes: (name: string, value: string) => boolean }} Kept
 * @typedef {(element: Element) => Kept | "children" | null} Allow
 */

/**
 * Parse a library's HTML in an inert document and rebuild its body's
 * children in `doc` through `allow`.
 * @param {string} html @param {Allow} allow @param {Document} doc
 */
export function rebuildHtml(html, allow, doc) {
  const parsed = new DOMParser().parseFromString(html, "text/html");
  const fragment = doc.createDocumentFragment();
  for (const child of parsed.body.childNodes) rebuild(child, allow, doc, fragment);
  return fragment;
}

/**
 * @param {Node} node @param {Allow} allow @param {Document} doc @param {Node} parent
 * @param {number} [depth] guards the stack against absurd nesting
 */
function rebuild(node, allow, doc, parent, depth = 0) {
  if (node.nodeType === Node.TEXT_NODE) {
    parent.appendChild(doc.createTextNode(node.nodeValue ?? ""));
    return;
  }
  if (node.nodeType !== Node.ELEMENT_NODE) return; // comments, processing instructions
  const element = /** @type {Element} */ (node);
  const kept = depth < 200 ? allow(element) : null;
  if (!kept) {
    parent.appendChild(doc.createTextNode(element.textContent ?? ""));
    return;
  }
  if (kept === "children") {
    for (const child of element.childNodes) rebuild(child, allow, doc, parent, depth + 1);
    return;
  }
  const copy = doc.createElementNS(kept.ns, kept.name);
  for (const { name, value } of element.attributes) {
    if (!name.startsWith("on") && kept.attributes(name, value)) copy.setAttribute(name, value);
  }
  for (const child of element.childNodes) rebuild(child, allow, doc, copy, depth + 1);
  parent.appendChild(copy);
}

/**
 * A small cache of rebuilt nodes, cloned on use: a streaming reply is
 * re-rendered many times a second and its finished code blocks and formulas
 * need not be highlighted or typeset again.
 */
export class NodeCache {
  /** @type {Map<string, Node>} */
  #entries = new Map();
  #limit;

  constructor(limit = 100) {
    this.#limit = limit;
  }

  /** @param {string} key @param {() => Node | null} make */
  get(key, make) {
    let node = this.#entries.get(key);
    if (node) {
      this.#entries.delete(key); // most recently used last
    } else {
      node = make() ?? undefined;
      if (!node) return null;
    }
    this.#entries.set(key, node);
    if (this.#entries.size > this.#limit) this.#entries.delete(/** @type {string} */ (this.#entries.keys().next().value));
    return node.cloneNode(true);
  }
}
