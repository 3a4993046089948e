// The service's artifacts and names: a paged list, and one artifact's schema, rows, size,
// lineage, a preview of its first rows and its downloads.
import { api, url } from "./api.js";
import { ago, debounce, fill, formatBytes, formatNumber, h, toast } from "./ui.js";

const PAGE = 50;
const PREVIEW_ROWS = 20;
const href = (id, v) => `/artifacts/${id}/${v}`;
const parse = (uri) => /^strata:\/\/artifact\/([^@]+)@v=(\d+)$/.exec(uri || "");

function executorOf(a) {
  try {
    return JSON.parse(a.transform_spec || "{}").executor || a.kind || "";
  } catch {
    return a.kind || "";
  }
}

export async function artifactsPage(root, rest, navigate) {
  const [id, version] = rest.split("/").filter(Boolean);
  if (id && version) return artifactPage(root, id, Number(version), navigate);
  document.title = "Artifacts · Quiver";
  const state = { offset: 0, sort: "created_at", order: "desc", prefix: "" };
  const table = h("div.artifact-list", { dataset: { testid: "artifact-list" } });
  const names = h("div.names");
  const pager = h("div.pager");
  const link = (a, text) => h("a", { href: href(a.artifact_id, a.version), onclick: (ev) => { ev.preventDefault(); navigate(href(a.artifact_id, a.version)); } }, text);
  const load = async () => {
    try {
      const page = await api.get("/v1/artifacts", { limit: PAGE, offset: state.offset, sort: state.sort, order: state.order, name_prefix: state.prefix });
      const sortable = (key, label) => h("th", {}, h("button.sort", { onclick: () => { state.order = state.sort === key && state.order === "desc" ? "asc" : "desc"; state.sort = key; state.offset = 0; load(); } }, label, state.sort === key ? (state.order === "desc" ? " ▼" : " ▲") : ""));
      fill(table, h("table.list", {},
        h("thead", {}, h("tr", {}, h("th", {}, "artifact"), h("th", {}, "state"), sortable("row_count", "rows"), sortable("byte_size", "size"), h("th", {}, "made by"), sortable("created_at", "created"))),
        h("tbody", {}, page.artifacts.map((a) => h("tr", {},
          h("td", {}, link(a, `${a.artifact_id.slice(0, 12)}… v${a.version}`), (a.names || []).map((n) => h("span.tag", {}, typeof n === "string" ? n : n.name))),
          h("td", {}, h(`span.state.${a.state}`, {}, a.state)),
          h("td.num", {}, formatNumber(a.row_count)),
          h("td.num", {}, formatBytes(a.byte_size)),
          h("td", {}, executorOf(a)),
          h("td.muted", {}, ago(a.created_at)))))));
      if (!page.artifacts.length) table.append(h("p.muted", {}, "No artifacts."));
      fill(pager,
        h("button", { disabled: state.offset === 0, onclick: () => { state.offset = Math.max(0, state.offset - PAGE); load(); } }, "‹ Prev"),
        h("span", {}, `${formatNumber(state.offset + 1)}–${formatNumber(state.offset + page.artifacts.length)}`),
        h("button", { disabled: page.artifacts.length < PAGE, onclick: () => { state.offset += PAGE; load(); } }, "Next ›"));
    } catch (err) {
      fill(table, h("p.error-text", { role: "alert" }, `Could not list the artifacts: ${err.message}`));
    }
  };
  const filter = h("input", { type: "search", placeholder: "Name prefix", "aria-label": "Name prefix", oninput: debounce((ev) => { state.prefix = ev.target.value.trim(); state.offset = 0; load(); }, 300) });
  fill(root, h("div.artifacts-page", {},
    h("section", {}, h("div.page-bar", {}, h("h1", {}, "Artifacts"), filter), table, pager),
    h("section", {}, h("h2", {}, "Names"), names)));
  load();
  try {
    const answer = await api.get("/v1/names");
    fill(names, answer.names.length ? h("table.list", {}, h("tbody", {}, answer.names.map((n) => {
      const m = parse(n.artifact_uri);
      return h("tr", {}, h("td", {}, h("code", {}, n.name)), h("td", {}, m ? link({ artifact_id: m[1], version: m[2] }, `${m[1].slice(0, 12)}… v${m[2]}`) : n.artifact_uri), h("td.muted", {}, ago(n.updated_at)));
    }))) : h("p.muted", {}, "No names yet."));
  } catch (err) {
    fill(names, h("p.error-text", {}, `Could not list the names: ${err.message}`));
  }
}

async function artifactPage(root, id, version, navigate) {
  document.title = `Artifact ${id.slice(0, 12)} · Quiver`;
  const base = `/v1/artifacts/${encodeURIComponent(id)}/v/${version}`;
  fill(root, h("p.loading-page", {}, "Loading the artifact…"));
  let info;
  try {
    info = await api.get(base);
  } catch (err) {
    fill(root, h("div.page-error", { role: "alert" }, h("h2", {}, "Artifact not available"), h("p", {}, err.message), h("a", { href: "/artifacts" }, "All artifacts")));
    return;
  }
  const go = (uri) => {
    const m = parse(uri);
    return m ? h("a", { href: href(m[1], m[2]), onclick: (ev) => { ev.preventDefault(); navigate(href(m[1], m[2])); } }, `${m[1].slice(0, 12)}… v${m[2]}`) : h("code", {}, uri);
  };
  const preview = h("div.preview", { dataset: { testid: "artifact-preview" } }, h("p.muted", {}, "Loading the first rows…"));
  const lineage = h("div.lineage", {}, h("p.muted", {}, "Loading the lineage…"));
  const ready = info.state === "ready" || info.state === "superseded";
  const dl = (fmt, label) => h("a", { href: url(`${base}/data`, fmt === "arrow" ? {} : { format: fmt }), download: `${id}-v${version}.${fmt}` }, label);
  fill(root, h("div.artifact-page", {},
    h("p", {}, h("a", { href: "/artifacts", onclick: (ev) => { ev.preventDefault(); navigate("/artifacts"); } }, "‹ All artifacts")),
    h("h1", {}, `Artifact ${id} v${version}`),
    h("dl.facts", {},
      h("dt", {}, "URI"), h("dd", {}, h("code", {}, info.artifact_uri)),
      h("dt", {}, "State"), h("dd", {}, h(`span.state.${info.state}`, {}, info.state), info.error_message ? h("span.error-text", {}, " ", info.error_message) : null),
      h("dt", {}, "Rows"), h("dd", {}, formatNumber(info.row_count)),
      h("dt", {}, "Size"), h("dd", {}, formatBytes(info.byte_size)),
      h("dt", {}, "Made by"), h("dd", {}, executorOf(info)),
      h("dt", {}, "Created"), h("dd", {}, ago(info.created_at))),
    ready ? h("p.downloads", {}, "Download: ", dl("arrow", "Arrow"), " · ", dl("csv", "CSV"), " · ", dl("parquet", "Parquet")) : null,
    h("h2", {}, "Schema"),
    h("table.list", {}, h("tbody", {}, (info.schema || []).map((c) => h("tr", {}, h("td", {}, c.name), h("td.type", {}, c.type), h("td.muted", {}, c.nullable ? "nullable" : ""))))),
    h("h2", {}, "Preview"), preview,
    h("h2", {}, "Lineage"), lineage));
  if (ready) previewRows(`${base}/data`, preview);
  else fill(preview, h("p.muted", {}, `No rows: the artifact is ${info.state}.`));
  try {
    const graph = await api.get(`${base}/lineage`, { max_depth: 10 });
    const inputs = graph.nodes.filter((n) => n.depth > 0);
    fill(lineage, inputs.length ? h("ul.tree", {}, inputs.map((n) => h("li", { class: `depth-${Math.min(n.depth, 6)}` },
      "↳ ".repeat(1), n.type === "artifact" ? go(n.id) : h("code", {}, n.id), n.executor ? h("span.muted", {}, ` (${n.executor})`) : null))) : h("p.muted", {}, "No inputs: it was uploaded or read from a table directly."));
  } catch (err) {
    fill(lineage, h("p.error-text", {}, `Could not load the lineage: ${err.message}`));
  }
}

/** The first rows, read from the CSV stream; the download stops there (never the whole table). */
async function previewRows(path, el) {
  const abort = new AbortController();
  try {
    const response = await fetch(url(path, { format: "csv" }), { signal: abort.signal });
    if (!response.ok) throw new Error((await response.json().catch(() => ({}))).detail || `HTTP ${response.status}`);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    let rows = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (value) text += value;
      rows = parseCsv(text, PREVIEW_ROWS + 2);
      if (done || rows.length > PREVIEW_ROWS + 1) break;
    }
    abort.abort();
    const [head, ...body] = rows;
    const shown = body.slice(0, PREVIEW_ROWS).filter((r) => r.length === head.length);
    fill(el, h("div.grid-scroll", {}, h("table", {}, h("thead", {}, h("tr", {}, head.map((c) => h("th", {}, c)))),
      h("tbody", {}, shown.map((r) => h("tr", {}, r.map((v) => h("td", {}, v))))))),
      h("p.muted", {}, `The first ${shown.length} rows.`));
  } catch (err) {
    if (err.name !== "AbortError") {
      fill(el, h("p.error-text", {}, `Could not preview: ${err.message}`));
      toast(`Preview: ${err.message}`, "error");
    }
  }
}

/** RFC 4180 rows, at most `limit` complete ones (a row cut by the stream is left out). */
export function parseCsv(text, limit) {
  const rows = [];
  let row = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length && rows.length < limit; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ",") { row.push(field); field = ""; }
    else if (ch === "\n") { row.push(field.replace(/\r$/, "")); rows.push(row); row = []; field = ""; }
    else field += ch;
  }
  return rows;
}
