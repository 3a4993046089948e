// The server's recent log entries (GET /v1/logs), newest last, followed as they come.
import { api } from "./api.js";
import { debounce, fill, h } from "./ui.js";

export function logsPage(root) {
  document.title = "Logs · Quiver";
  const body = h("tbody");
  const note = h("p.muted", {}, "Loading…");
  let cursor = 0;
  let timer = null;
  let stopped = false;
  const level = h("select", { "aria-label": "Level", onchange: () => restart() },
    ["debug", "info", "warning", "error"].map((l) => h("option", { value: l, selected: l === "info" }, l)));
  const regex = h("input", { type: "search", placeholder: "Filter (regular expression)", "aria-label": "Filter", oninput: debounce(() => restart(), 300) });
  const poll = async () => {
    try {
      const got = await api.get("/v1/logs", { since: cursor, level: level.value, regex: regex.value, limit: 500 });
      cursor = got.cursor;
      for (const e of got.entries) {
        body.append(h(`tr.log.${e.level}`, {}, h("td.muted", {}, new Date(e.timestamp).toLocaleTimeString()),
          h("td", {}, e.level), h("td.muted", {}, e.logger), h("td", {}, h("pre", {}, e.message, e.exception ? ` (${e.exception})` : ""))));
      }
      while (body.children.length > 2000) body.firstChild.remove();
      note.textContent = body.children.length ? "" : "No entries at this level yet.";
    } catch (err) {
      note.textContent = `Could not read the logs: ${err.message}`;
      note.className = "error-text";
    }
    if (!stopped) timer = setTimeout(poll, 2000);
  };
  const restart = () => {
    clearTimeout(timer);
    cursor = 0;
    body.replaceChildren();
    poll();
  };
  fill(root, h("div.logs-page", {}, h("div.page-bar", {}, h("h1", {}, "Logs"), h("div.row", {}, level, regex)), note,
    h("table.list", {}, h("thead", {}, h("tr", {}, ["time", "level", "logger", "message"].map((t) => h("th", {}, t)))), body)));
  poll();
  return { close: () => { stopped = true; clearTimeout(timer); } };
}
