// The home page: the notebooks under the notebook root (discover), create, open, delete and,
// where the server has the route, import a Jupyter notebook.
import { api } from "./api.js";
import { ago, confirmDialog, fill, h, toast } from "./ui.js";

/** A notebook's address in the UI: /n/<its path under the notebook root>. */
export const notebookHref = (root, path) => {
  const rel = path.startsWith(root + "/") ? path.slice(root.length + 1) : path;
  return "/n/" + rel.split("/").map(encodeURIComponent).join("/");
};

export async function homePage(root, features, navigate) {
  document.title = "Notebooks · Quiver";
  const config = features.config || {};
  const list = h("div.nb-list", { dataset: { testid: "notebook-list" } }, h("p.muted", {}, "Loading…"));
  const versions = config.available_python_versions || [];
  const name = h("input", { type: "text", name: "name", required: true, placeholder: "My analysis", maxlength: 255, "aria-label": "Notebook name", dataset: { testid: "new-name" } });
  const python = h("select", { name: "python", "aria-label": "Python version", disabled: config.python_selection_fixed || versions.length <= 1 },
    versions.map((v) => h("option", { value: v, selected: v === config.default_python_version }, `Python ${v}`)));
  const create = h("form.create", {
    onsubmit: async (ev) => {
      ev.preventDefault();
      const button = create.querySelector("button");
      button.disabled = true;
      try {
        const state = await api.post("/v1/notebooks/create", {
          parent_path: config.default_parent_path || "",
          name: name.value.trim(),
          python_version: python.value || null,
        });
        navigate(notebookHref(listing.root, state.path));
      } catch (err) {
        toast(`Could not create the notebook: ${err.message}`, "error");
      } finally {
        button.disabled = false;
      }
    },
  }, h("h2", {}, "New notebook"), h("div.row", {}, name, python, h("button.primary", { type: "submit" }, "Create")));

  const importer = features.has("POST", "/v1/notebooks/import") ? importBox(config, navigate, () => listing.root) : null;
  fill(root, h("div.home", {}, h("div.home-side", {}, create, importer), h("section.home-list", {}, h("h2", {}, "Notebooks"), list)));
  name.focus();

  let listing = { root: "", notebooks: [] };
  try {
    listing = await api.get("/v1/notebooks/discover");
  } catch (err) {
    fill(list, h("p.error-text", { role: "alert" }, `Could not list the notebooks: ${err.message}`));
    return;
  }
  const personal = config.deployment_mode !== "service";
  const rows = listing.notebooks
    .sort((a, b) => String(b.updated_at).localeCompare(String(a.updated_at)))
    .map((nb) => {
      const href = notebookHref(listing.root, nb.path);
      const del = personal ? h("button.icon.danger", {
        title: `Delete ${nb.name}`, "aria-label": `Delete ${nb.name}`,
        onclick: async () => {
          if (!(await confirmDialog("Delete this notebook?", `${nb.name} (${nb.path}) and every file in its folder will be removed.`, "Delete"))) return;
          try {
            await api.post("/v1/notebooks/delete-by-path", { path: nb.path });
            row.remove();
            toast(`Deleted ${nb.name}.`);
          } catch (err) {
            toast(`Could not delete: ${err.message}`, "error");
          }
        },
      }, "Delete") : null;
      const row = h("div.nb-row", { dataset: { testid: "notebook-row" } },
        h("a.nb-link", { href, onclick: (ev) => { ev.preventDefault(); navigate(href); } }, nb.name),
        h("span.muted.nb-path", {}, href.slice(3)),
        h("span.muted", {}, ago(nb.updated_at)),
        del);
      return row;
    });
  fill(list, rows.length ? rows : h("p.muted", {}, `No notebooks under ${listing.root} yet: create one.`));
}

function importBox(config, navigate, rootOf) {
  const input = h("input", { type: "file", accept: ".ipynb,application/x-ipynb+json", "aria-label": "Jupyter notebook file" });
  const send = async (file) => {
    const form = new FormData();
    form.append("file", file);
    form.append("parent_path", config.default_parent_path || "");
    try {
      const state = await api.post("/v1/notebooks/import", form);
      navigate(notebookHref(rootOf(), state.path));
    } catch (err) {
      toast(`Could not import ${file.name}: ${err.message}`, "error");
    }
  };
  input.addEventListener("change", () => input.files[0] && send(input.files[0]));
  const box = h("div.import", {}, h("h2", {}, "Import a Jupyter notebook"), h("p.muted", {}, "Drop an .ipynb file here, or pick one."), input);
  box.addEventListener("dragover", (ev) => { ev.preventDefault(); box.classList.add("drop"); });
  box.addEventListener("dragleave", () => box.classList.remove("drop"));
  box.addEventListener("drop", (ev) => {
    ev.preventDefault();
    box.classList.remove("drop");
    const file = ev.dataTransfer.files[0];
    if (file) send(file);
  });
  return box;
}
