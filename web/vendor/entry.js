// What the web UI uses of CodeMirror 6, bundled into one ES module (codemirror.js) so that
// every piece shares one @codemirror/state. Re-create with ./build.sh.
export { EditorSelection, EditorState, Compartment } from "@codemirror/state";
export {
  EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter,
  drawSelection, placeholder, highlightSpecialChars,
} from "@codemirror/view";
export { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
export {
  syntaxHighlighting, defaultHighlightStyle, indentOnInput, bracketMatching, indentUnit,
} from "@codemirror/language";
export { closeBrackets, closeBracketsKeymap } from "@codemirror/autocomplete";
export { searchKeymap, highlightSelectionMatches } from "@codemirror/search";
export { setDiagnostics, lintGutter } from "@codemirror/lint";
export { python } from "@codemirror/lang-python";
export { sql, PostgreSQL } from "@codemirror/lang-sql";
// Markdown cells: the lezer parser alone (lang-markdown would pull in HTML, CSS and JS).
export { Language, LanguageSupport, defineLanguageFacet } from "@codemirror/language";
export { parser as markdownParser } from "@lezer/markdown";
