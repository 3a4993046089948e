// A table output as a paged, sortable grid. Rows come a page at a time from the REST data
// routes (`cells/{id}/data`), never the whole table; the schema from `data/summary`;
// downloads from `data/export` (CSV, Parquet: the current view) and the output's blob (Arrow).
import { api, url } from "./api.js";
import { debounce, fill, formatNumber, h, toast } from "./ui.js";

const PAGE = 50;

// The first page of a grid is asked for when the grid comes near the viewport: a notebook
// with many table outputs opens without a request per table.
const pending = new WeakMap();
const seen = new IntersectionObserver((entries) => {
  for (const e of entries) {
    if (!e.isIntersecting) continue;
    seen.unobserve(e.target);
    pending.get(e.target)?.();
    pending.delete(e.target);
  }
}, { rootMargin: "300px 0px" });
const whenVisible = (el, fn) => {
  pending.set(el, fn);
  seen.observe(el);
};

export class TableGrid {
  /** @param {object} o {sessionId, cellId, output (a display output), index} */
  constructor(o) {
    this.o = o;
    this.uri = o.output.artifact_uri;
    this.total = o.output.rows ?? null;
    this.columns = o.output.columns || [];
    this.offset = 0;
    this.sortBy = null;
    this.sortDir = "asc";
    this.search = "";
    this.seq = 0;
    this.el = h("div.grid", { dataset: { testid: "table-output" } });
    this.status = h("span.grid-status", { "aria-live": "polite" });
    this.table = h("table");
    this.summary = null;
    const base = `/v1/notebooks/${o.sessionId}/cells/${o.cellId}`;
    this.base = base;

    const searchBox = h("input.search", {
      type: "search",
      placeholder: "Search rows",
      "aria-label": "Search rows",
      oninput: debounce((ev) => { this.search = ev.target.value.trim(); this.offset = 0; this.load(); }, 300),
    });
    this.prev = h("button", { onclick: () => this.page(-1), title: "Previous page" }, "‹ Prev");
    this.next = h("button", { onclick: () => this.page(1), title: "Next page" }, "Next ›");
    const downloads = h("span.downloads", {}, "Download: ",
      this.uri ? [
        h("a", { href: "#", onclick: (ev) => this.download(ev, "csv") }, "CSV"), " · ",
        h("a", { href: "#", onclick: (ev) => this.download(ev, "parquet") }, "Parquet"), " · ",
      ] : null,
      h("a", { href: url(`${base}/outputs/${o.index}/blob`), download: `${o.cellId}.arrow` }, "Arrow"));
    const schemaButton = this.uri
      ? h("button", { onclick: () => this.toggleSchema(), "aria-expanded": "false" }, "Schema")
      : null;
    this.schemaButton = schemaButton;
    this.schemaBox = h("div.schema", { hidden: true });
    this.el.append(
      h("div.grid-bar", {}, this.uri ? searchBox : null, schemaButton, downloads),
      this.schemaBox,
      h("div.grid-scroll", {}, this.table),
      h("div.pager", {}, this.prev, this.status, this.next),
    );
    // The preview that came with the output paints at once; the first page replaces it.
    this.render({ columns: this.columns, rows: (o.output.preview || []).slice(0, PAGE).map((r) => this.columns.map((c) => r[c])), total: this.total, offset: 0 });
    if (this.uri) whenVisible(this.el, () => this.load());
    else this.status.textContent = `Preview: first ${(o.output.preview || []).length} of ${formatNumber(this.total)} rows`;
  }

  page(delta) {
    const next = this.offset + delta * PAGE;
    if (next < 0 || (this.total !== null && next >= this.total)) return;
    this.offset = next;
    this.load();
  }

  sort(column) {
    if (this.sortBy !== column) [this.sortBy, this.sortDir] = [column, "asc"];
    else if (this.sortDir === "asc") this.sortDir = "desc";
    else [this.sortBy, this.sortDir] = [null, "asc"];
    this.offset = 0;
    this.load();
  }

  view() {
    return { artifact_uri: this.uri, sort_by: this.sortBy, sort_dir: this.sortBy ? this.sortDir : null, search: this.search };
  }

  async load() {
    const seq = ++this.seq;
    this.el.classList.add("loading");
    try {
      const page = await api.get(`${this.base}/data`, { ...this.view(), offset: this.offset, limit: PAGE });
      if (seq !== this.seq) return; // a newer request is on its way
      if (page.pageable === false) {
        this.status.textContent = "This output is not a table.";
        return;
      }
      this.total = page.total;
      this.columns = page.columns;
      this.render(page);
    } catch (err) {
      if (seq === this.seq) {
        this.status.textContent = err.message;
        toast(`Table page: ${err.message}`, "error");
      }
    } finally {
      if (seq === this.seq) this.el.classList.remove("loading");
    }
  }

  render(page) {
    const head = h("tr", {}, h("th.rownum", { scope: "col" }, "#"));
    for (const name of page.columns) {
      const sorted = this.sortBy === name ? this.sortDir : null;
      head.append(h("th", { scope: "col", "aria-sort": sorted ? (sorted === "asc" ? "ascending" : "descending") : "none" },
        h("button.sort", { onclick: () => this.sort(name), title: `Sort by ${name}`, "aria-label": `Sort by ${name}` },
          name, sorted ? (sorted === "asc" ? " ▲" : " ▼") : "")));
    }
    const body = h("tbody");
    page.rows.forEach((row, i) => {
      const tr = h("tr", {}, h("td.rownum", {}, String(page.offset + i + 1)));
      for (const value of row) {
        const kind = value === null ? "null" : typeof value;
        tr.append(h(`td.${kind}`, {}, value === null ? "null" : typeof value === "object" ? JSON.stringify(value) : String(value)));
      }
      body.append(tr);
    });
    fill(this.table, h("thead", {}, head), body);
    const first = page.rows.length ? page.offset + 1 : 0;
    const last = page.offset + page.rows.length;
    this.status.textContent = `Rows ${formatNumber(first)}–${formatNumber(last)} of ${formatNumber(page.total)}`;
    this.prev.disabled = page.offset <= 0;
    this.next.disabled = page.total === null || last >= page.total;
  }

  download(ev, fmt) {
    ev.preventDefault();
    const a = h("a", { href: url(`${this.base}/data/export`, { ...this.view(), fmt }), download: "" });
    document.body.append(a);
    a.click();
    a.remove();
  }

  async toggleSchema() {
    const open = this.schemaBox.hidden;
    this.schemaBox.hidden = !open;
    this.schemaButton.setAttribute("aria-expanded", String(open));
    if (!open || this.summary) return;
    fill(this.schemaBox, "Loading the schema…");
    try {
      this.summary = await api.get(`${this.base}/data/summary`, { artifact_uri: this.uri });
      const rows = this.summary.columns.map((c) =>
        h("tr", {}, h("td", {}, c.name), h("td.type", {}, c.dtype), h("td", {}, formatNumber(c.nulls)),
          h("td", {}, formatNumber(c.distinct)), h("td", {}, c.min ?? ""), h("td", {}, c.max ?? "")));
      fill(this.schemaBox, h("table.schema-table", {},
        h("thead", {}, h("tr", {}, ["column", "type", "nulls", "distinct", "min", "max"].map((t) => h("th", {}, t)))),
        h("tbody", {}, rows)), h("p.muted", {}, `${formatNumber(this.summary.total)} rows`));
    } catch (err) {
      fill(this.schemaBox, h("p.error-text", {}, `Could not load the schema: ${err.message}`));
    }
  }
}
