// The notebook page's side panels, and the extension point for new ones.
//
// A panel is registered with registerPanel({id, title, order, available(ctx), mount(el, ctx)}):
// - available(ctx) decides whether the panel shows, from what the server offers
//   (ctx.features.has("GET", "/v1/notebooks/{session_id}/dependencies"), the OpenAPI document)
//   or the notebook's state (ctx.state): a panel appears when its API exists;
// - mount(el, ctx) fills `el` the first time the panel is opened and may return {unmount()};
//   it follows the notebook with ctx.on(frameType | "state", fn), which returns an unsubscribe
//   function, and acts with ctx.api (REST) and ctx.send(type, payload) (the WebSocket).
// The context: {features, sessionId, state, dag, cells(), nameOf(id), send, on, jumpTo(id), api, toast}.
// A new panel is one module under panels/ whose default export is that object, plus its
// name in BUILT_IN below (or a registerPanel call from anywhere before the page opens).
import { fill, h } from "./ui.js";
import dag from "./panels/dag.js";
import environment from "./panels/environment.js";
import outputs from "./panels/outputs.js";
import workers from "./panels/workers.js";

const registry = [];

export function registerPanel(panel) {
  if (registry.some((p) => p.id === panel.id)) throw new Error(`panel ${panel.id} registered twice`);
  registry.push({ order: 100, available: () => true, ...panel });
  registry.sort((a, b) => a.order - b.order);
}

/** Tabs for the panels available here; each panel is mounted when first shown. */
export function mountPanels(el, ctx) {
  const shown = registry.filter((p) => {
    try {
      return p.available(ctx);
    } catch {
      return false;
    }
  });
  const tabs = h("div.panel-tabs", { role: "tablist" });
  const bodies = h("div.panel-bodies");
  const mounted = new Map();
  const select = (panel) => {
    for (const b of tabs.children) b.setAttribute("aria-selected", String(b.dataset.panel === panel.id));
    for (const b of bodies.children) b.hidden = b.dataset.panel !== panel.id;
    if (!mounted.has(panel.id)) {
      const body = bodies.querySelector(`[data-panel="${panel.id}"]`);
      try {
        mounted.set(panel.id, panel.mount(body, ctx) || {});
      } catch (err) {
        fill(body, h("p.error-text", {}, `This panel failed: ${err.message}`));
        mounted.set(panel.id, {});
      }
    }
  };
  for (const panel of shown) {
    tabs.append(h("button.tab", { role: "tab", dataset: { panel: panel.id, testid: `tab-${panel.id}` }, onclick: () => select(panel) }, panel.title));
    bodies.append(h("div.panel-body", { role: "tabpanel", dataset: { panel: panel.id }, hidden: true }));
  }
  fill(el, tabs, bodies);
  if (shown.length) select(shown[0]);
  return {
    unmount: () => mounted.forEach((m) => m.unmount?.()),
  };
}

const BUILT_IN = [dag, outputs, environment, workers];
BUILT_IN.forEach(registerPanel);
