// Where cells can run: the notebook's worker catalog with each worker's health.
import { ago, fill, h } from "../ui.js";

export default {
  id: "workers",
  title: "Workers",
  order: 40,
  available: (ctx) => ctx.features.has("GET", "/v1/notebooks/{session_id}/workers"),
  mount(el, ctx) {
    const list = h("div");
    const load = async (refresh) => {
      try {
        const answer = await ctx.api.get(`/v1/notebooks/${ctx.sessionId}/workers`, { refresh: refresh || null });
        fill(list, h("table.list", {},
          h("thead", {}, h("tr", {}, ["worker", "backend", "health", "checked"].map((t) => h("th", {}, t)))),
          h("tbody", {}, answer.workers.map((w) => h("tr", {},
            h("td", {}, w.name, w.last_error ? h("div.error-text", {}, w.last_error) : null),
            h("td", {}, w.backend),
            h("td", {}, h(`span.health.${w.health}`, {}, w.health)),
            h("td.muted", {}, w.health_checked_at ? ago(w.health_checked_at) : "—"))))));
      } catch (err) {
        fill(list, h("p.error-text", {}, `Could not list the workers: ${err.message}`));
      }
    };
    fill(el, h("div.panel-bar", {}, h("button", { onclick: () => load(true) }, "Check health")), list);
    load(false);
  },
};
