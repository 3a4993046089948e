// One cell: its bar (name, status, run controls), editor, analysis (defines, reads,
// diagnostics), why it is stale, its live console and its outputs.
import { CellEditor } from "./editor.js";
import { renderMarkdown } from "./markdown.js";
import { renderError, renderOutput } from "./outputs.js";
import { fill, formatMs, h } from "./ui.js";

const LANG_LABEL = { python: "Python", sql: "SQL", markdown: "Markdown", prompt: "Prompt" };

/** How a cell is named to a person: its `@name`, else the first name it defines that is not
 * an import (`sales`, not `pyarrow`), else its first definition, else its id. */
export function cellName(cell) {
  if (cell.annotations?.name) return cell.annotations.name;
  const defines = cell.defines || [];
  if (cell.language === "python" && defines.length > 1) {
    const imported = new Set();
    for (const m of (cell.source || "").matchAll(/^\s*(?:from\s+\S+\s+)?import\s+([^#\n]+)/gm)) {
      for (const part of m[1].replace(/[()]/g, "").split(",")) {
        const words = part.trim().split(/\s+/);
        imported.add(words[words.length - 1].split(".")[0]);
      }
    }
    const own = defines.find((d) => !imported.has(d));
    if (own) return own;
  }
  return defines[0] || cell.id;
}

/** Why a cell is stale, in words, from its reasons and causality (docs/notebooks.md). */
export function staleText(cell, nameOf) {
  const details = cell.causality?.details || [];
  const parts = [];
  for (const d of details) {
    if (d.type === "source_changed") parts.push("its source changed since it ran");
    else if (d.type === "config_changed") parts.push("its configuration changed");
    else if (d.type === "input_changed") parts.push(`upstream cell ${d.cell_name || nameOf(d.cell_id)} changed`);
    else if (d.type === "env_changed") {
      parts.push(d.package ? `package ${d.package} changed (${d.from_package_version ?? "none"} → ${d.to_package_version ?? "none"})` : "the environment changed");
    }
  }
  if (!parts.length) {
    for (const r of cell.staleness_reasons || []) {
      parts.push({ self: "it changed since it ran", upstream: "an upstream cell changed", env: "the environment changed", forced: "forced" }[r] || r);
    }
  }
  return [...new Set(parts)].join("; ");
}

export class CellView {
  constructor(cell, page) {
    this.page = page;
    this.cell = cell;
    this.id = cell.id;
    this.version = 0; // local edits made
    this.acked = 0; // local edits the server has taken
    this.consoleText = { stdout: "", stderr: "" };
    this.traceback = null;
    this.build();
    this.update(cell);
    this.showOutputs(cell.display_outputs || []);
    this.showConsole(cell.console_stdout, cell.console_stderr);
  }

  get dirty() {
    return this.acked < this.version;
  }

  build() {
    const c = this.cell;
    const p = this.page;
    this.statusEl = h("span.status", { dataset: { testid: "cell-status" } });
    this.nameEl = h("span.cell-name");
    this.runButton = h("button.run", { title: "Run (Shift+Enter)", "aria-label": "Run cell", onclick: () => p.run(this.id, "normal") }, "▶ Run");
    this.cancelButton = h("button.cancel", { title: "Cancel the run", "aria-label": "Cancel run", hidden: true, onclick: () => p.cancel(this.id) }, "■ Cancel");
    const item = (label, fn, title) => h("button", { role: "menuitem", title, onclick: (ev) => { ev.target.closest("details").open = false; fn(); } }, label);
    this.menu = h("details.menu", {},
      h("summary", { "aria-label": "More actions", title: "More actions" }, "⋯"),
      h("div.menu-items", { role: "menu" },
        item("Rerun (ignore the cache)", () => p.run(this.id, "rerun")),
        item("Force (no upstream runs)", () => p.run(this.id, "force")),
        item("Move up", () => p.move(this.id, -1), "Alt+↑"),
        item("Move down", () => p.move(this.id, 1), "Alt+↓"),
        ["python", "sql", "markdown", "prompt"].map((lang) => item(`Add ${LANG_LABEL[lang]} cell below`, () => p.addCell(lang, this.id))),
        item("Delete cell", () => p.deleteCell(this.id))));
    this.handle = h("span.handle", { draggable: "true", title: "Drag to reorder", "aria-hidden": "true" }, "⠿");
    this.saveState = h("span.save-state", { "aria-live": "polite" });
    const bar = h("div.cell-bar", {},
      this.handle,
      h("span.lang", {}, LANG_LABEL[c.language] || c.language),
      this.nameEl,
      this.statusEl,
      this.saveState,
      h("span.spacer"),
      this.runButton,
      this.cancelButton,
      this.menu);
    this.editorHost = h("div.editor-host");
    this.editor = new CellEditor(this.editorHost, {
      source: c.source,
      language: c.language,
      label: `Source of cell ${c.id}`,
      onChange: (source) => { this.version++; this.cell.source = source; p.scheduleSave(this); },
      onRun: (mode) => p.run(this.id, mode),
      onSave: () => p.saveNow(this),
      onMove: (delta) => p.move(this.id, delta),
      onFocus: () => p.focused(this.id),
    });
    this.rendered = null;
    if (c.language === "markdown") {
      this.rendered = h("div.md-rendered", { title: "Double-click to edit", ondblclick: () => this.editMarkdown(true) });
      this.editToggle = h("button.edit-md", { onclick: () => this.editMarkdown(!this.editing) }, "Edit");
      bar.insertBefore(this.editToggle, this.runButton);
      this.editorHost.hidden = true;
    }
    this.metaEl = h("div.cell-meta");
    this.staleEl = h("div.stale-reason", { hidden: true, dataset: { testid: "stale-reason" } });
    this.consoleEl = h("div.console", { hidden: true, dataset: { testid: "console" } });
    this.outputsEl = h("div.outputs", { dataset: { testid: "outputs" } });
    this.footEl = h("div.cell-foot");
    this.el = h("section.cell", { id: `cell-${c.id}`, dataset: { testid: "cell", cellId: c.id }, "aria-label": `Cell ${c.id}` },
      bar, this.editorHost, this.rendered, this.metaEl, this.staleEl, this.consoleEl, this.outputsEl, this.footEl);
    p.dragAndDrop(this);
  }

  editMarkdown(on) {
    this.editing = on;
    this.editorHost.hidden = !on;
    this.rendered.hidden = on;
    this.editToggle.textContent = on ? "Done" : "Edit";
    if (on) this.editor.focus();
    else this.renderMarkdownCell();
  }

  renderMarkdownCell() {
    if (!this.rendered) return;
    const text = this.editor.value;
    fill(this.rendered, text.trim() ? renderMarkdown(text) : h("p.muted", {}, "Empty Markdown cell: double-click to write."));
  }

  /** New server state for this cell (a Cell, or part of one: dag_update / cell_status). */
  update(patch) {
    Object.assign(this.cell, patch);
    const c = this.cell;
    if (patch.source !== undefined && !this.dirty && patch.source !== this.editor.value) {
      this.editor.value = patch.source;
      if (this.rendered && !this.editing) this.renderMarkdownCell();
    }
    if (this.rendered && this.rendered.childElementCount === 0) this.renderMarkdownCell();
    this.nameEl.textContent = cellName(c);
    const status = c.status || "idle";
    this.el.dataset.status = status;
    this.statusEl.textContent = status;
    this.statusEl.className = `status ${status}`;
    const running = status === "running";
    this.runButton.hidden = running;
    this.cancelButton.hidden = !running;
    const stale = status === "stale" ? staleText(c, (id) => this.page.nameOf(id)) : "";
    this.staleEl.hidden = !stale;
    this.staleEl.textContent = stale ? `Stale: ${stale}` : "";
    // An edit's dag_update names every cell: redraw only what changed (typing stays light).
    const meta = JSON.stringify([c.defines, c.references, c.annotation_diagnostics, c.shadow_warnings]);
    if (meta !== this.meta) {
      this.meta = meta;
      this.renderMeta();
    }
  }

  renderMeta() {
    const c = this.cell;
    const chips = (label, names, cls) =>
      names && names.length ? h(`span.chips.${cls}`, {}, `${label} `, names.map((n) => h("code", {}, n))) : null;
    const diags = (c.annotation_diagnostics || []).map((d) =>
      h(`div.diag.${d.severity || "info"}`, { dataset: { testid: "diagnostic" } },
        d.severity === "error" ? "✖ " : "⚠ ", d.line ? `line ${d.line}: ` : "", d.message));
    const shadows = (c.shadow_warnings || []).map((w) => h("div.diag.warn", { dataset: { testid: "diagnostic" } }, "⚠ ", w));
    fill(this.metaEl,
      h("div.analysis", {}, chips("defines", c.defines, "defines"), chips("reads", c.references, "reads")),
      diags, shadows);
    this.editor.setDiagnostics(c.annotation_diagnostics);
  }

  /** The console while a run writes it (cell_console frames), or the last run's. */
  appendConsole(stream, text) {
    this.consoleText[stream] = (this.consoleText[stream] || "") + text;
    this.renderConsole();
  }

  showConsole(stdout, stderr) {
    this.consoleText = { stdout: stdout || "", stderr: stderr || "" };
    this.renderConsole();
  }

  renderConsole() {
    const { stdout, stderr } = this.consoleText;
    this.consoleEl.hidden = !stdout && !stderr;
    fill(this.consoleEl, stdout ? h("pre.stdout", {}, stdout) : null, stderr ? h("pre.stderr", {}, stderr) : null);
  }

  showOutputs(outputs, extra = {}) {
    const ctx = { sessionId: this.page.sessionId, cellId: this.id, cellArtifactUri: this.cell.artifact_uri };
    if (this.cell.language === "markdown") outputs = []; // shown rendered from the source
    fill(this.outputsEl, outputs.map((o, index) => {
      try {
        if (o.content_type === "error" && !o.traceback && this.traceback) o = { ...o, traceback: this.traceback };
        return renderOutput(o, { ...ctx, index });
      } catch (err) {
        return renderError(`This output could not be shown: ${err.message}`);
      }
    }));
    const bits = [];
    if (extra.duration_ms !== undefined) bits.push(formatMs(extra.duration_ms));
    if (extra.cache_hit ?? this.cell.cache_hit) bits.push("cache hit");
    const method = extra.execution_method ?? this.cell.execution_method;
    if (method && method !== "cached") bits.push(method);
    this.footEl.textContent = bits.join(" · ");
  }

  /** A run began: clear what the last one left. */
  started() {
    this.showConsole("", "");
    this.traceback = null;
  }

  finished(result) {
    if (result.stdout !== undefined) this.showConsole(result.stdout, result.stderr);
    this.update({ artifact_uri: result.artifact_uri ?? this.cell.artifact_uri, cache_hit: result.cache_hit, execution_method: result.execution_method });
    this.showOutputs(result.displays || [], result);
  }

  failed(error, traceback) {
    this.traceback = traceback || null;
    this.showOutputs([{ content_type: "error", error, traceback }]);
  }

  setSaveState(text, cls = "") {
    this.saveState.textContent = text;
    this.saveState.className = `save-state ${cls}`;
  }
}
