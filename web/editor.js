// A cell's code editor: CodeMirror 6 (vendor/codemirror.js, built from npm by vendor/build.sh).
// The editor is made when the cell comes near the viewport (or is clicked); until then the
// source shows as plain text, so a 200-cell notebook paints without 200 editors.
import { h } from "./ui.js";

let loading = null;
/** The page's style nonce (rest/web.py): CodeMirror's own styles need it under the CSP. */
const NONCE = document.querySelector('meta[name="quiver-style-nonce"]')?.content || "";
/** Load CodeMirror once (a dynamic import: the first paint does not wait for it). */
export const loadCodeMirror = () => (loading ??= import("./vendor/codemirror.js"));

function languageOf(cm, language) {
  if (language === "python") return cm.python();
  if (language === "sql") return cm.sql({ dialect: cm.PostgreSQL, upperCaseKeywords: false });
  if (language === "markdown" || language === "prompt") {
    const md = new cm.Language(cm.defineLanguageFacet(), cm.markdownParser, [], "markdown");
    return new cm.LanguageSupport(md);
  }
  return [];
}

export class CellEditor {
  /**
   * @param {HTMLElement} host where the editor goes
   * @param {object} opts {source, language, onChange(source), onRun(mode), onSave(), onFocus(),
   *   onMove(delta), label}
   */
  constructor(host, opts) {
    this.host = host;
    this.opts = opts;
    this.view = null;
    this.source = opts.source ?? "";
    this.language = opts.language;
    this.diagnostics = [];
    this.placeholder = h("pre.editor-placeholder", {
      tabindex: 0,
      role: "textbox",
      "aria-label": opts.label || "Cell source",
      onclick: () => this.mount(true),
      onfocus: () => this.mount(true),
    }, this.source || " ");
    host.append(this.placeholder);
  }

  get value() {
    return this.view ? this.view.state.doc.toString() : this.source;
  }

  /** Replace the text (another tab's edit); the cursor stays where it can. */
  set value(source) {
    this.source = source;
    if (!this.view) {
      this.placeholder.textContent = source || " ";
      return;
    }
    const doc = this.view.state.doc.toString();
    if (doc === source) return;
    const head = Math.min(this.view.state.selection.main.head, source.length);
    this.applying = true;
    this.view.dispatch({ changes: { from: 0, to: doc.length, insert: source }, selection: { anchor: head } });
    this.applying = false;
  }

  get mounted() {
    return this.view !== null;
  }

  /** Make the CodeMirror editor (once); `focus` puts the cursor in it. */
  async mount(focus = false) {
    if (this.view) {
      if (focus) this.view.focus();
      return this.view;
    }
    if (this.mounting) return this.mounting.then((v) => (focus && v.focus(), v));
    this.mounting = loadCodeMirror().then((cm) => {
      this.cm = cm;
      this.language_ = new cm.Compartment();
      const o = this.opts;
      const keys = cm.keymap.of([
        { key: "Shift-Enter", run: () => (o.onRun?.("normal"), true) },
        { key: "Mod-Enter", run: () => (o.onRun?.("normal"), true) },
        { key: "Mod-s", run: () => (o.onSave?.(), true), preventDefault: true },
        { key: "Alt-ArrowUp", run: () => (o.onMove?.(-1), true) },
        { key: "Alt-ArrowDown", run: () => (o.onMove?.(1), true) },
        { key: "Escape", run: (v) => (v.contentDOM.blur(), true) },
        ...cm.closeBracketsKeymap,
        ...cm.defaultKeymap,
        ...cm.searchKeymap,
        ...cm.historyKeymap,
        cm.indentWithTab,
      ]);
      const state = cm.EditorState.create({
        doc: this.source,
        extensions: [
          keys,
          cm.EditorView.cspNonce.of(NONCE),
          cm.history(),
          cm.drawSelection(),
          cm.highlightSpecialChars(),
          cm.indentOnInput(),
          cm.bracketMatching(),
          cm.closeBrackets(),
          cm.highlightSelectionMatches(),
          cm.syntaxHighlighting(cm.defaultHighlightStyle, { fallback: true }),
          cm.indentUnit.of("    "),
          cm.EditorView.lineWrapping,
          cm.EditorView.contentAttributes.of({ "aria-label": o.label || "Cell source" }),
          cm.lintGutter(),
          this.language_.of(languageOf(cm, this.language)),
          cm.EditorView.updateListener.of((u) => {
            if (u.docChanged && !this.applying) {
              this.source = u.state.doc.toString();
              o.onChange?.(this.source);
            }
            if (u.focusChanged && u.view.hasFocus) o.onFocus?.();
          }),
        ],
      });
      this.view = new cm.EditorView({ state });
      this.placeholder.replaceWith(this.view.dom);
      this.showDiagnostics();
      return this.view;
    });
    const view = await this.mounting;
    if (focus) view.focus();
    return view;
  }

  setLanguage(language) {
    this.language = language;
    if (this.view) this.view.dispatch({ effects: this.language_.reconfigure(languageOf(this.cm, language)) });
  }

  /** The cell's diagnostics, marked on their lines: [{line?, message, severity}]. */
  setDiagnostics(diagnostics) {
    this.diagnostics = diagnostics || [];
    this.showDiagnostics();
  }

  showDiagnostics() {
    if (!this.view) return;
    const doc = this.view.state.doc;
    const marks = this.diagnostics
      .filter((d) => d.line)
      .map((d) => {
        const line = doc.line(Math.min(Math.max(1, d.line), doc.lines));
        const severity = d.severity === "warn" ? "warning" : d.severity === "info" ? "info" : "error";
        return { from: line.from, to: line.to, severity, message: d.message };
      });
    this.view.dispatch(this.cm.setDiagnostics(this.view.state, marks));
  }

  focus() {
    return this.mount(true);
  }

  destroy() {
    this.view?.destroy();
  }
}
