// The web UI's entry point: the top bar, the routes (/, /n/<notebook path>, /artifacts[/id/v]),
// and the last line of defence: any error nobody handled is shown, never swallowed.
import { loadFeatures, onReachability } from "./api.js";
import { artifactsPage } from "./artifacts.js";
import { homePage } from "./home.js";
import { logsPage } from "./logs.js";
import { NotebookPage } from "./notebook.js";
import { fill, h, toast } from "./ui.js";

const main = document.getElementById("main");
let current = null;

window.addEventListener("error", (ev) => toast(`Something went wrong in the page: ${ev.message}`, "error"));
window.addEventListener("unhandledrejection", (ev) => {
  const reason = ev.reason;
  if (reason?.name === "AbortError") return;
  toast(reason?.message || String(reason), "error");
});

// ---- offline: the server is the only network this page needs ----------------------------------
const banner = document.getElementById("offline");
let probing = null;
onReachability((ok) => {
  banner.hidden = ok;
  if (!ok && !probing) {
    probing = setInterval(async () => {
      try {
        if ((await fetch("/health", { cache: "no-store" })).ok) {
          clearInterval(probing);
          probing = null;
          banner.hidden = true;
        }
      } catch {
        /* still down */
      }
    }, 2000);
  }
});

export function navigate(path, replace = false) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  route();
}

async function route() {
  current?.close?.();
  current = null;
  main.className = "";
  const path = decodeURI(location.pathname);
  for (const a of document.querySelectorAll("nav.top a")) {
    a.toggleAttribute("aria-current", path === a.getAttribute("href") || (a.getAttribute("href") !== "/" && path.startsWith(a.getAttribute("href"))));
  }
  if (path.startsWith("/n/")) {
    current = new NotebookPage(main, path.slice(3), loadFeatures());
    await current.open();
    return;
  }
  const features = await loadFeatures();
  if (path === "/logs") {
    current = logsPage(main);
  } else if (path.startsWith("/artifacts")) {
    await artifactsPage(main, path.slice("/artifacts".length), navigate);
  } else {
    await homePage(main, features, navigate);
  }
}

for (const a of document.querySelectorAll("nav.top a")) {
  a.addEventListener("click", (ev) => {
    ev.preventDefault();
    navigate(a.getAttribute("href"));
  });
}
window.addEventListener("popstate", route);
route().catch((err) => fill(main, h("div.page-error", { role: "alert" }, h("h2", {}, "The page could not load"), h("p", {}, err.message))));
