// A cell's display outputs (API.md §2.1 DisplayOutput): tables, text, Markdown, images, HTML,
// values and errors with the user's traceback.
import { TableGrid } from "./grid.js";
import { renderMarkdown } from "./markdown.js";
import { url } from "./api.js";
import { formatNumber, h } from "./ui.js";

/** One display output as an element; `ctx` = {sessionId, cellId, index, cellArtifactUri}. */
export function renderOutput(output, ctx) {
  const type = output.content_type;
  if (type === "arrow/ipc") {
    const withUri = output.artifact_uri ? output : { ...output, artifact_uri: ctx.cellArtifactUri };
    const grid = new TableGrid({ sessionId: ctx.sessionId, cellId: ctx.cellId, output: withUri, index: ctx.index });
    return h("div.output.table", {}, h("div.output-head", {}, `Table · ${formatNumber(output.rows)} rows × ${(output.columns || []).length} columns`), grid.el);
  }
  if (type === "error") return renderError(output.error, output.traceback);
  if (type === "image/png" || type?.startsWith("image/")) {
    const src = output.inline_data_url || url(`/v1/notebooks/${ctx.sessionId}/cells/${ctx.cellId}/outputs/${ctx.index}/blob`);
    const img = h("img.output-image", { src, alt: `Image output ${ctx.index + 1} of cell ${ctx.cellId}` });
    if (output.width) img.width = output.width;
    return h("div.output.image", {}, img);
  }
  if (type === "text/markdown") return h("div.output.md", {}, renderMarkdown(output.markdown_text ?? output.text ?? ""));
  if (type === "text/html") {
    // Someone's _repr_html_: shown in a sandbox (no scripts, no same-origin access).
    const frame = h("iframe.output-html", { sandbox: "", title: "HTML output", srcdoc: output.html ?? output.text ?? output.preview ?? "" });
    return h("div.output.html", {}, frame);
  }
  if (type === "json/object") {
    return h("div.output.value", {}, h("pre", {}, JSON.stringify(output.preview ?? output.value, null, 2)));
  }
  const text = output.text ?? (typeof output.preview === "string" ? output.preview : JSON.stringify(output.preview ?? "", null, 2));
  return h("div.output.value", {}, h("pre", {}, text ?? ""), output.note ? h("p.muted", {}, output.note) : null);
}

/** An error: the message, then the traceback (trimmed by the server to the user's frames). */
export function renderError(message, traceback) {
  return h("div.output.error", { role: "alert" },
    h("div.error-message", {}, message || "The cell failed."),
    traceback ? h("pre.traceback", {}, traceback) : null);
}
