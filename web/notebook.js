// The notebook page: open by path (the URL names it), keep the cells in step with the server
// over the WebSocket, save edits as you type, run, cancel, reorder, and host the side panels.
import { api } from "./api.js";
import { CellView, cellName } from "./cell.js";
import { loadCodeMirror } from "./editor.js";
import { mountPanels } from "./panels.js";
import { NotebookSocket } from "./socket.js";
import { confirmDialog, debounce, dialog, fill, formatMs, h, toast } from "./ui.js";

const SAVE_DEBOUNCE_MS = 250;

export class NotebookPage {
  /** @param features the server's features, or a promise of them (asked for beside the notebook) */
  constructor(root, path, features) {
    this.root = root;
    this.path = path;
    this.features = features;
    this.views = new Map();
    this.order = [];
    this.listeners = new Map();
    this.inflight = []; // edits sent, waiting for their dag_update: [{cell, version, t0}]
    this.runningId = null;
  }

  // ---- opening -------------------------------------------------------------------------------

  /** The notebook's state: this tab's live session again after a reload (personal mode keeps
   * sessions listable), else `open` by path, which (re)reads the notebook from disk. */
  async load() {
    const key = `quiver:session:${this.path}`;
    const known = sessionStorage.getItem(key);
    if (known) {
      try {
        const state = await api.get(`/v1/notebooks/sessions/${known}`);
        if (state.session_id === known) return state;
      } catch {
        /* closed, restarted, or service mode: open it */
      }
    }
    const state = await api.post("/v1/notebooks/open", { path: this.path });
    sessionStorage.setItem(key, state.session_id);
    return state;
  }

  async open() {
    fill(this.root, h("p.loading-page", {}, "Opening the notebook…"));
    let state;
    try {
      [state, this.features] = await Promise.all([this.load(), this.features]);
    } catch (err) {
      fill(this.root, h("div.page-error", { role: "alert" }, h("h2", {}, "This notebook could not be opened"),
        h("p", {}, err.message), h("p", {}, h("a", { href: "/" }, "Back to the notebooks"))));
      return;
    }
    this.sessionId = state.session_id;
    this.build(state);
    this.connect();
    performance.mark("quiver:notebook-built");
    // After the next frame is painted: what the first-paint figure measures (bench/bench_web.py).
    requestAnimationFrame(() => setTimeout(() => performance.mark("quiver:notebook-shown"), 0));
    // The editor's code loads after the first paint; cells near the viewport then get editors.
    requestAnimationFrame(() => loadCodeMirror().then(() => this.observeEditors()).catch((err) => toast(`The editor did not load: ${err.message}`, "error")));
  }

  connect() {
    this.socket?.close();
    this.socket = new NotebookSocket(this.sessionId, (type, payload) => this.frame(type, payload), (s) => this.connection(s));
  }

  connection(state) {
    this.connectionEl.textContent = { open: "Live", connecting: "Connecting…", closed: "Reconnecting…", gone: "Session closed", unauthorized: "Signed out" }[state] || state;
    this.connectionEl.className = `connection ${state}`;
    document.body.classList.toggle("offline", state !== "open");
    if (state === "open") {
      if (this.wasDisconnected) {
        this.socket.send("notebook_sync");
        for (const view of this.views.values()) if (view.dirty) this.sendSave(view);
      }
      this.wasDisconnected = false;
    } else this.wasDisconnected = true;
    if (state === "gone") this.reopen();
    if (state === "unauthorized") location.reload();
  }

  /** The server no longer knows our session (restarted, closed): open the notebook again. */
  async reopen() {
    try {
      sessionStorage.removeItem(`quiver:session:${this.path}`);
      const state = await this.load();
      this.sessionId = state.session_id;
      this.applyState(state);
      this.connect();
      toast("The notebook was opened again in a new session.", "info");
    } catch (err) {
      toast(`The session ended and the notebook could not be reopened: ${err.message}`, "error");
      setTimeout(() => this.reopen(), 3000);
    }
  }

  build(state) {
    this.nameEl = h("h1.nb-name", { title: "Rename", tabindex: 0, role: "button", onclick: () => this.rename(), onkeydown: (ev) => ev.key === "Enter" && this.rename() });
    this.connectionEl = h("span.connection", { dataset: { testid: "connection" } }, "Connecting…");
    this.progressEl = h("span.progress", { "aria-live": "polite", dataset: { testid: "progress" } });
    const exportMenu = this.exportMenu();
    const header = h("div.nb-header", {},
      h("div.nb-title", {}, this.nameEl, h("span.nb-path", { title: "Path under the notebook root" }, this.path)),
      h("div.nb-actions", {},
        this.connectionEl,
        this.progressEl,
        h("button.primary", { onclick: () => this.runAll(false), title: "Run every cell that is not up to date" }, "Run all"),
        h("button", { onclick: () => this.runAll(true), title: "Run every cell again, ignoring the cache" }, "Rerun all"),
        this.cancelAllButton = h("button.cancel", { hidden: true, onclick: () => this.cancel(this.runningId) }, "■ Cancel"),
        exportMenu,
        this.panelToggle = h("button.panel-toggle", { "aria-expanded": "true", onclick: () => this.togglePanels() }, "Panels")));
    this.cellsEl = h("div.cells", { dataset: { testid: "cells" } });
    const adders = h("div.add-cells", {}, "Add a cell: ",
      ["python", "sql", "markdown", "prompt"].map((lang) =>
        h("button", { onclick: () => this.addCell(lang), dataset: { testid: `add-${lang}` } }, { python: "+ Python", sql: "+ SQL", markdown: "+ Markdown", prompt: "+ Prompt" }[lang])));
    this.panelsEl = h("aside.panels", { "aria-label": "Panels" });
    this.root.classList.add("notebook-page");
    fill(this.root, header, h("div.nb-body", {}, h("div.nb-main", {}, this.cellsEl, adders), this.panelsEl));
    this.togglePanels(!window.matchMedia("(max-width: 900px)").matches);
    this.applyState(state);
    this.panels = mountPanels(this.panelsEl, this.panelContext());
  }

  exportMenu() {
    if (!this.features.has("GET", "/v1/notebooks/{session_id}/export")) return null;
    const link = (fmt, label) => h("a", { role: "menuitem", href: "#", onclick: (ev) => { ev.preventDefault(); location.href = `/v1/notebooks/${this.sessionId}/export?fmt=${fmt}`; } }, label);
    return h("details.menu.export", {}, h("summary", {}, "Export"),
      h("div.menu-items", { role: "menu" }, link("zip", "Zip bundle"), link("snapshot", "Snapshot"), link("html", "HTML"), link("markdown", "Markdown")));
  }

  panelContext() {
    const page = this;
    return {
      features: this.features,
      get sessionId() { return page.sessionId; },
      get state() { return page.state; },
      get dag() { return page.dag; },
      cells: () => page.order.map((id) => page.views.get(id).cell),
      nameOf: (id) => page.nameOf(id),
      send: (type, payload) => page.socket.send(type, payload),
      on: (type, fn) => page.on(type, fn),
      jumpTo: (id) => page.jumpTo(id),
      api,
      toast,
    };
  }

  togglePanels(show) {
    const open = show ?? this.panelsEl.hidden;
    this.panelsEl.hidden = !open;
    this.panelToggle.setAttribute("aria-expanded", String(open));
    this.root.classList.toggle("panels-open", open);
  }

  // ---- state -----------------------------------------------------------------------------------

  /** A whole NotebookState (open, notebook_state frames): cells added, removed, moved, updated. */
  applyState(state) {
    this.state = state;
    this.nameEl.textContent = state.name;
    document.title = `${state.name} · Quiver`;
    if (state.dag) this.dag = state.dag;
    const cells = [...state.cells].sort((a, b) => a.order - b.order);
    const seen = new Set();
    const fragment = document.createDocumentFragment();
    for (const cell of cells) {
      seen.add(cell.id);
      let view = this.views.get(cell.id);
      if (!view) {
        view = new CellView({ ...cell }, this);
        this.views.set(cell.id, view);
        this.observe?.(view);
      } else {
        const { display_outputs: outputs, ...rest } = cell;
        view.update(rest);
        if (view.cell.status !== "running" && JSON.stringify(outputs) !== JSON.stringify(view.lastOutputs)) {
          view.showOutputs(outputs || []);
        }
      }
      view.lastOutputs = cell.display_outputs;
      fragment.append(view.el);
    }
    for (const [id, view] of this.views) {
      if (!seen.has(id)) {
        view.editor.destroy();
        view.el.remove();
        this.views.delete(id);
      }
    }
    this.order = cells.map((c) => c.id);
    this.cellsEl.append(fragment); // re-appending keeps focus and editors, in the new order
    if (!cells.length) this.cellsEl.append(this.emptyNote ??= h("p.empty", {}, "No cells yet: add one below."));
    else this.emptyNote?.remove();
    this.emit("state", state);
  }

  nameOf(id) {
    const view = this.views.get(id);
    return view ? cellName(view.cell) : id;
  }

  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(fn);
    return () => this.listeners.get(type).delete(fn);
  }

  emit(type, payload) {
    for (const fn of this.listeners.get(type) || []) {
      try {
        fn(payload);
      } catch (err) {
        console.error(err);
      }
    }
  }

  // ---- frames from the server -----------------------------------------------------------------

  frame(type, p) {
    const view = p.cell_id ? this.views.get(p.cell_id) : null;
    switch (type) {
      case "notebook_state":
        this.applyState(p);
        break;
      case "dag_update": {
        this.dag = { ...this.dag, edges: p.edges, roots: p.roots, leaves: p.leaves, topological_order: p.topological_order };
        let foreign = false;
        for (const entry of p.cells) {
          if (entry.source !== undefined) foreign = true;
          this.views.get(entry.id)?.update({ shadow_warnings: [], ...entry });
        }
        if (!foreign) this.acknowledge();
        break;
      }
      case "cell_status":
        if (view) {
          if (p.status === "running" && view.cell.status !== "running") view.started();
          view.update({ status: p.status, staleness_reasons: p.staleness_reasons || [], causality: p.causality || null });
          if (p.status === "running") this.runningId = p.cell_id;
          else if (this.runningId === p.cell_id) this.runningId = null;
          this.cancelAllButton.hidden = !this.runningId;
          if (p.status !== "running" && view.dirty && !view.saving) this.sendSave(view); // a save refused while it ran
        }
        break;
      case "cell_console":
        view?.appendConsole(p.stream, p.text);
        break;
      case "cell_output":
        view?.finished(p);
        if (view) view.lastOutputs = p.displays;
        break;
      case "cell_error":
        view?.failed(p.error, p.traceback);
        break;
      case "cascade_prompt":
        this.confirmCascade(p);
        break;
      case "cascade_progress":
        this.progressEl.textContent = p.completed < p.total ? `Running ${p.completed + 1} of ${p.total}: ${this.nameOf(p.current_cell_id)}` : "";
        break;
      case "error":
        this.serverError(p);
        break;
      case "session_closed":
        toast(`The server closed this session (${p.reason}): ${p.message || ""}`, "error");
        break;
      default:
        break;
    }
    if (type === "cell_status" && !this.runningId) this.progressEl.textContent = "";
    this.emit(type, p);
    this.emit("frame", { type, payload: p });
  }

  serverError(p) {
    const view = p.cell_id ? this.views.get(p.cell_id) : null;
    if (p.code === "cell_busy" && view) {
      // The cell runs: the edit waits and goes out when the run ends (cell_status).
      view.saving = false;
      view.setSaveState("waits for the run to end", "pending");
      this.inflight = this.inflight.filter((f) => f.view !== view);
      return;
    }
    if (p.code === "cell_locked" && view) {
      view.saving = false;
      this.inflight = this.inflight.filter((f) => f.view !== view);
      view.setSaveState(`not saved: ${p.held_by || "someone"} is editing this cell`, "error");
      toast(`Cell ${this.nameOf(view.id)} is being edited by ${p.held_by || "someone else"}; your change was not saved.`, "error");
      return;
    }
    if (/^Cell source|^Missing cell_id or source/.test(p.error || "")) {
      this.inflight.shift();
    }
    toast(p.error || "The server refused the request.", "error");
  }

  // ---- editing -----------------------------------------------------------------------------------

  scheduleSave(view) {
    view.setSaveState("editing…", "pending");
    (view.saveSoon ??= debounce(() => this.sendSave(view), SAVE_DEBOUNCE_MS))();
    if (view.rendered && !view.editing) view.renderMarkdownCell();
  }

  saveNow(view) {
    view.saveSoon?.flush();
    if (view.dirty && !view.saving) this.sendSave(view);
  }

  sendSave(view) {
    const version = view.version;
    const t0 = performance.now();
    if (!this.socket.send("cell_source_update", { cell_id: view.id, source: view.editor.value })) {
      view.setSaveState("not saved yet: offline", "error");
      return;
    }
    view.saving = true;
    this.inflight.push({ view, version, t0 });
    view.setSaveState("saving…", "pending");
  }

  /** A dag_update for our own edit: the oldest edit in flight is saved. */
  acknowledge() {
    const done = this.inflight.shift();
    if (!done) return;
    const { view, version, t0 } = done;
    performance.measure("quiver:save", { start: t0, end: performance.now() });
    view.acked = Math.max(view.acked, version);
    view.saving = this.inflight.some((f) => f.view === view);
    if (!view.dirty) view.setSaveState("saved", "saved");
    else if (!view.saving && !view.saveSoon?.pending()) this.sendSave(view);
  }

  focused(id) {
    this.socket?.send("cell_focus", { cell_id: id });
  }

  // ---- running -------------------------------------------------------------------------------------

  run(id, mode = "normal") {
    const view = this.views.get(id);
    if (!view) return;
    this.saveNow(view);
    const type = { normal: "cell_execute", rerun: "cell_execute_rerun", force: "cell_execute_force" }[mode];
    if (!this.socket.send(type, { cell_id: id })) toast("Not connected to the server: reconnecting, try again in a moment.", "error");
  }

  async confirmCascade(p) {
    const others = p.cells_to_run.filter((id) => id !== p.cell_id);
    const list = h("ol.cascade-list", {}, p.cells_to_run.map((id) => h("li", {}, this.nameOf(id), id === p.cell_id ? " (this cell)" : "")));
    const est = p.estimated_duration_ms ? h("p.muted", {}, `Estimated: ${formatMs(p.estimated_duration_ms)}`) : null;
    const ok = await dialog("Run upstream cells too?",
      h("div.body", { dataset: { testid: "cascade-prompt" } }, h("p", {}, `This will also run ${others.length} upstream cell${others.length === 1 ? "" : "s"} first:`), list, est),
      [["Cancel", false], ["Run all " + p.cells_to_run.length, true, "primary"]]);
    if (ok) this.socket.send("cell_execute_cascade", { cell_id: p.cell_id, plan_id: p.plan_id });
  }

  runAll(rerun) {
    for (const view of this.views.values()) this.saveNow(view);
    this.socket.send(rerun ? "notebook_rerun_all" : "notebook_run_all", { continue_on_error: true });
  }

  cancel(id) {
    if (id) this.socket.send("cell_cancel", { cell_id: id });
  }

  // ---- structure -----------------------------------------------------------------------------------

  async addCell(language, afterId = null) {
    try {
      const cell = await api.post(`/v1/notebooks/${this.sessionId}/cells`, { language, after_cell_id: afterId });
      // The notebook_state broadcast places it too; this makes it appear without waiting.
      if (!this.views.has(cell.id)) {
        const cells = this.order.map((id) => this.views.get(id).cell);
        this.applyState({ ...this.state, cells: [...cells, cell] });
      }
      const view = this.views.get(cell.id);
      view.el.scrollIntoView({ block: "nearest" });
      if (language === "markdown") view.editMarkdown(true);
      else view.editor.focus();
    } catch (err) {
      toast(`Could not add a cell: ${err.message}`, "error");
    }
  }

  async deleteCell(id) {
    if (!(await confirmDialog("Delete this cell?", `Cell ${this.nameOf(id)} and its source file will be removed.`, "Delete"))) return;
    try {
      const answer = await api.del(`/v1/notebooks/${this.sessionId}/cells/${id}`);
      this.applyState({ ...this.state, cells: answer.cells });
    } catch (err) {
      toast(`Could not delete the cell: ${err.message}`, "error");
    }
  }

  move(id, delta) {
    const order = [...this.order];
    const at = order.indexOf(id);
    const to = at + delta;
    if (at < 0 || to < 0 || to >= order.length) return;
    order.splice(at, 1);
    order.splice(to, 0, id);
    this.reorder(order, id);
  }

  async reorder(order, focusId) {
    try {
      const answer = await api.put(`/v1/notebooks/${this.sessionId}/cells/reorder`, { cell_ids: order });
      this.applyState({ ...this.state, cells: answer.cells });
      if (focusId) this.views.get(focusId)?.editor.focus();
    } catch (err) {
      toast(`Could not reorder the cells: ${err.message}`, "error");
    }
  }

  dragAndDrop(view) {
    view.handle.addEventListener("dragstart", (ev) => {
      ev.dataTransfer.setData("text/x-quiver-cell", view.id);
      ev.dataTransfer.effectAllowed = "move";
      view.el.classList.add("dragging");
    });
    view.handle.addEventListener("dragend", () => view.el.classList.remove("dragging"));
    view.el.addEventListener("dragover", (ev) => {
      if (!ev.dataTransfer.types.includes("text/x-quiver-cell")) return;
      ev.preventDefault();
      const below = ev.offsetY > view.el.offsetHeight / 2;
      view.el.classList.toggle("drop-below", below);
      view.el.classList.toggle("drop-above", !below);
    });
    view.el.addEventListener("dragleave", () => view.el.classList.remove("drop-below", "drop-above"));
    view.el.addEventListener("drop", (ev) => {
      const moved = ev.dataTransfer.getData("text/x-quiver-cell");
      const below = view.el.classList.contains("drop-below");
      view.el.classList.remove("drop-below", "drop-above");
      if (!moved || moved === view.id) return;
      ev.preventDefault();
      const order = this.order.filter((id) => id !== moved);
      order.splice(order.indexOf(view.id) + (below ? 1 : 0), 0, moved);
      this.reorder(order);
    });
  }

  async rename() {
    const input = h("input", { type: "text", value: this.state.name, maxlength: 255, required: true, "aria-label": "Notebook name" });
    if (!(await dialog("Rename the notebook", h("label.field", {}, "Name", input), [["Cancel", false], ["Rename", true, "primary"]]))) return;
    try {
      const answer = await api.put(`/v1/notebooks/${this.sessionId}/name`, { name: input.value });
      this.state.name = answer.name;
      this.nameEl.textContent = answer.name;
      document.title = `${answer.name} · Quiver`;
    } catch (err) {
      toast(`Could not rename: ${err.message}`, "error");
    }
  }

  jumpTo(id) {
    const view = this.views.get(id);
    if (!view) return;
    view.el.scrollIntoView({ behavior: "smooth", block: "center" });
    view.el.classList.add("flash");
    setTimeout(() => view.el.classList.remove("flash"), 1200);
    this.togglePanels(!window.matchMedia("(max-width: 900px)").matches);
  }

  /** Editors for the cells near the viewport (and the ones scrolled to later). */
  observeEditors() {
    const io = new IntersectionObserver((entries) => {
      for (const e of entries) {
        if (!e.isIntersecting) continue;
        const view = this.views.get(e.target.dataset.cellId);
        if (view && !(view.cell.language === "markdown" && !view.editing)) view.editor.mount();
        io.unobserve(e.target);
      }
    }, { rootMargin: "400px 0px" });
    this.observe = (view) => io.observe(view.el);
    for (const view of this.views.values()) io.observe(view.el);
  }

  close() {
    this.socket?.close();
    this.panels?.unmount();
  }
}
