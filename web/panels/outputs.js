// The notebook's table outputs: each cell's artifacts (variable → artifact URI), the registry
// names that point at them, and a link to the artifact's own page.
import { fill, h } from "../ui.js";

const artifactPath = (uri) => {
  const m = /^strata:\/\/artifact\/([^@]+)@v=(\d+)$/.exec(uri || "");
  return m ? `/artifacts/${m[1]}/${m[2]}` : null;
};

export default {
  id: "outputs",
  title: "Outputs",
  order: 20,
  mount(el, ctx) {
    let names = {};
    const draw = () => {
      const rows = [];
      for (const cell of ctx.cells()) {
        for (const [variable, uri] of Object.entries(cell.artifact_uris || {})) {
          const link = artifactPath(uri);
          rows.push(h("tr", {},
            h("td", {}, h("a", { href: "#", onclick: (ev) => { ev.preventDefault(); ctx.jumpTo(cell.id); } }, ctx.nameOf(cell.id))),
            h("td", {}, h("code", {}, variable)),
            h("td", {}, link ? h("a", { href: link }, uri.replace("strata://artifact/", "").slice(0, 12) + "…") : uri,
              (names[cell.id] || []).filter((n) => n.artifact_uri === uri).map((n) => h("span.tag", {}, n.name)))));
        }
      }
      fill(el, rows.length
        ? h("table.list", {}, h("thead", {}, h("tr", {}, h("th", {}, "cell"), h("th", {}, "variable"), h("th", {}, "artifact"))), h("tbody", {}, rows))
        : h("p.muted", {}, "No table outputs yet: run a cell that makes a table."));
    };
    const refresh = async () => {
      if (ctx.features.has("GET", "/v1/notebooks/{session_id}/artifacts")) {
        try {
          names = (await ctx.api.get(`/v1/notebooks/${ctx.sessionId}/artifacts`)).cells || {};
        } catch (err) {
          ctx.toast(`Outputs panel: ${err.message}`, "error");
        }
      }
      draw();
    };
    refresh();
    const offs = [ctx.on("cell_output", draw), ctx.on("state", draw)];
    return { unmount: () => offs.forEach((off) => off()) };
  },
};
