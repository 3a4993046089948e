// Small DOM helpers shared by every view: element building, toasts, dialogs, formatting.
// Nothing here sets innerHTML from data: text goes in as text nodes.

/** h("button.primary", {onclick, title}, "Run") — an element with classes, props and children. */
export function h(spec, props = {}, ...children) {
  const [tag, ...classes] = spec.split(".");
  const el = document.createElement(tag || "div");
  if (classes.length) el.className = classes.join(" ");
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "class") el.className += (el.className ? " " : "") + value;
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

const SVG_NS = "http://www.w3.org/2000/svg";
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

// ---- toasts: every failure the user should know about ends here, never in silence -----------

let toastBox = null;

/** Show a message for a while; errors stay until dismissed. */
export function toast(message, kind = "info", { timeout } = {}) {
  if (!toastBox) {
    toastBox = h("div.toasts", { role: "status", "aria-live": "polite" });
    document.body.append(toastBox);
  }
  const close = h("button.icon", { title: "Dismiss", "aria-label": "Dismiss" }, "×");
  const item = h(`div.toast.${kind}`, { role: kind === "error" ? "alert" : "status" },
    h("span.message", {}, message), close);
  const remove = () => item.remove();
  close.addEventListener("click", remove);
  toastBox.append(item);
  const ms = timeout ?? (kind === "error" ? 0 : 4000);
  if (ms) setTimeout(remove, ms);
  while (toastBox.children.length > 5) toastBox.firstChild.remove();
  return item;
}

// ---- dialogs (a <dialog> element: focus trapping and Escape come with it) ---------------------

/** A modal with a title, a body and buttons; resolves with the value of the button pressed. */
export function dialog(title, body, buttons = [["Cancel", false], ["OK", true, "primary"]]) {
  return new Promise((resolve) => {
    const dlg = h("dialog.modal", { "aria-label": title });
    const form = h("form", { method: "dialog" });
    const row = h("div.buttons");
    for (const [label, value, cls] of buttons) {
      const b = h(`button${cls ? "." + cls : ""}`, { type: "submit", value: String(value) }, label);
      b.dataset.value = JSON.stringify(value);
      row.append(b);
    }
    append(form, [h("h2", {}, title), body, row]);
    dlg.append(form);
    let result = buttons[0][1];
    form.addEventListener("submit", (ev) => {
      const pressed = ev.submitter;
      result = pressed ? JSON.parse(pressed.dataset.value) : buttons[buttons.length - 1][1];
    });
    dlg.addEventListener("close", () => {
      dlg.remove();
      resolve(result);
    });
    document.body.append(dlg);
    dlg.showModal();
    const first = form.querySelector("input,select,textarea") || row.lastChild;
    first.focus();
  });
}

export const confirmDialog = (title, text, ok = "OK") =>
  dialog(title, h("div.body", {}, text), [["Cancel", false], [ok, true, "primary"]]);

// ---- formatting -------------------------------------------------------------------------------

export function formatBytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return `${i ? n.toFixed(n < 10 ? 1 : 0) : n} ${units[i]}`;
}

export const formatNumber = (n) => (n === null || n === undefined ? "—" : Number(n).toLocaleString("en"));

export function formatMs(ms) {
  if (ms === null || ms === undefined) return "";
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
}

/** A time (unix seconds, ms or ISO string) as "3 min ago". */
export function ago(when) {
  if (when === null || when === undefined) return "";
  let t = typeof when === "string" ? Date.parse(when) : when < 1e12 ? when * 1000 : when;
  const s = Math.max(0, (Date.now() - t) / 1000);
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(t).toLocaleDateString();
}

/** Run fn at most once per `ms` after the last call; .flush() runs a pending call now. */
export function debounce(fn, ms) {
  let timer = null;
  let args = null;
  const run = () => { timer = null; const a = args; args = null; fn(...a); };
  const wrapped = (...a) => { args = a; clearTimeout(timer); timer = setTimeout(run, ms); };
  wrapped.flush = () => { if (timer !== null) { clearTimeout(timer); run(); } };
  wrapped.pending = () => timer !== null;
  return wrapped;
}
