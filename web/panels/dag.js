// The cell graph: one box per cell, layered top to bottom by dependency, edges labelled by the
// variables they carry, coloured by status; a click jumps to the cell.
import { fill, h, svg } from "../ui.js";

const W = 132;
const H = 30;
const GAP_X = 18;
const GAP_Y = 58;

/** Layers: a cell sits one below its lowest upstream; order within a layer is notebook order. */
export function layout(cells, edges) {
  const index = new Map(cells.map((c, i) => [c.id, i]));
  const ups = new Map(cells.map((c) => [c.id, []]));
  for (const e of edges) if (ups.has(e.to_cell_id) && index.has(e.from_cell_id)) ups.get(e.to_cell_id).push(e.from_cell_id);
  const layer = new Map();
  const depth = (id, seen = new Set()) => {
    if (layer.has(id)) return layer.get(id);
    if (seen.has(id)) return 0; // a cycle (the server reports it as a diagnostic)
    seen.add(id);
    const d = Math.max(-1, ...ups.get(id).map((u) => depth(u, seen))) + 1;
    layer.set(id, d);
    return d;
  };
  cells.forEach((c) => depth(c.id));
  const rows = [];
  for (const c of cells) (rows[layer.get(c.id)] ??= []).push(c);
  const pos = new Map();
  const width = Math.max(1, ...rows.map((r) => r?.length || 0)) * (W + GAP_X);
  rows.forEach((row, y) => {
    const offset = (width - row.length * (W + GAP_X)) / 2;
    row.forEach((c, x) => pos.set(c.id, { x: offset + x * (W + GAP_X) + GAP_X / 2, y: 12 + y * (H + GAP_Y) }));
  });
  return { pos, width, height: 24 + rows.length * (H + GAP_Y) - GAP_Y };
}

function draw(el, ctx) {
  const cells = ctx.cells().filter((c) => c.language !== "markdown");
  const edges = ctx.dag?.edges || [];
  if (!cells.length) {
    fill(el, h("p.muted", {}, "No code cells yet."));
    return;
  }
  const { pos, width, height } = layout(cells, edges);
  const graph = svg("svg", { class: "dag", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "Cell graph" });
  const labels = new Map();
  for (const e of edges) {
    const key = `${e.from_cell_id}>${e.to_cell_id}`;
    if (!labels.has(key)) labels.set(key, { e, vars: [] });
    if (e.variable) labels.get(key).vars.push(e.variable);
  }
  for (const { e, vars } of labels.values()) {
    const a = pos.get(e.from_cell_id);
    const b = pos.get(e.to_cell_id);
    if (!a || !b) continue;
    const [x1, y1, x2, y2] = [a.x + W / 2, a.y + H, b.x + W / 2, b.y];
    const my = (y1 + y2) / 2;
    graph.append(svg("path", { class: vars.length ? "edge" : "edge order", d: `M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${y2 - 4}`, "marker-end": "url(#arrow)" }));
    const text = vars.join(", ") || "after";
    graph.append(svg("text", { class: "edge-label", x: (x1 + x2) / 2, y: my + 4, "text-anchor": "middle" }, text.length > 22 ? text.slice(0, 21) + "…" : text));
  }
  graph.prepend(svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 8 8", refX: 7, refY: 4, markerWidth: 7, markerHeight: 7, orient: "auto" }, svg("path", { d: "M0,0 L8,4 L0,8 z", class: "arrowhead" }))));
  for (const c of cells) {
    const p = pos.get(c.id);
    const name = ctx.nameOf(c.id);
    const node = svg("g", { class: `node ${c.status || "idle"}`, transform: `translate(${p.x},${p.y})`, tabindex: 0, role: "button", "data-cell-id": c.id, "aria-label": `${name}: ${c.status}` },
      svg("title", {}, `${name} (${c.id}) — ${c.status}${c.staleness_reasons?.length ? ": " + c.staleness_reasons.join(", ") : ""}`),
      svg("rect", { width: W, height: H, rx: 6 }),
      svg("text", { x: W / 2, y: H / 2 + 4, "text-anchor": "middle" }, name.length > 17 ? name.slice(0, 16) + "…" : name));
    node.addEventListener("click", () => ctx.jumpTo(c.id));
    node.addEventListener("keydown", (ev) => ev.key === "Enter" && ctx.jumpTo(c.id));
    graph.append(node);
  }
  const legend = h("div.legend", {}, ["idle", "running", "ready", "stale", "error"].map((s) => h(`span.swatch.${s}`, {}, s)));
  fill(el, legend, h("div.dag-scroll", {}, graph));
}

export default {
  id: "dag",
  title: "DAG",
  order: 10,
  mount(el, ctx) {
    let queued = false;
    const redraw = () => {
      if (queued) return;
      queued = true;
      requestAnimationFrame(() => {
        queued = false;
        if (!el.hidden) draw(el, ctx);
      });
    };
    draw(el, ctx);
    const offs = ["state", "dag_update", "cell_status"].map((t) => ctx.on(t, redraw));
    const seen = new MutationObserver(() => !el.hidden && redraw());
    seen.observe(el, { attributes: true, attributeFilter: ["hidden"] });
    return { unmount: () => { offs.forEach((off) => off()); seen.disconnect(); } };
  },
};
