// The notebook's environment as the server reports it (NotebookState.environment): the Python
// it asked for and runs, the lock, the packages. Managing dependencies belongs to a panel the
// environment work adds (docs/ui.md, "Panels") once its routes exist.
import { ago, fill, h } from "../ui.js";

const ROWS = [
  ["Python requested", "requested_python_version"],
  ["Python running", (e) => e.runtime_python_version || e.python_version],
  ["State", "sync_state"],
  ["Declared packages", "declared_package_count"],
  ["Locked packages", "resolved_package_count"],
  ["Lockfile", (e) => (e.has_lockfile ? (e.lockfile_hash || "").slice(0, 12) || "yes" : "none")],
  ["Interpreter", (e) => e.venv_python || e.interpreter_source],
  ["Last synced", (e) => (e.last_synced_at ? ago(e.last_synced_at) : "never")],
];

export default {
  id: "environment",
  title: "Environment",
  order: 30,
  available: (ctx) => Boolean(ctx.state?.environment),
  mount(el, ctx) {
    const draw = () => {
      const env = ctx.state.environment || {};
      fill(el,
        h("dl.facts", {}, ROWS.map(([label, key]) => [h("dt", {}, label), h("dd", {}, String((typeof key === "function" ? key(env) : env[key]) ?? "—"))])),
        env.sync_error ? h("p.error-text", {}, env.sync_error) : null,
        env.sync_notice ? h("p.muted", {}, env.sync_notice) : null);
    };
    draw();
    const off = ctx.on("state", draw);
    return { unmount: off };
  },
};
