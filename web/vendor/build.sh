#!/usr/bin/env bash
# Re-create codemirror.js and LICENSES.txt from the npm registry, at the versions pinned in
# package.json / package-lock.json. `make run` never needs this: the built files are committed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$here/package.json" "$here/entry.js" "$work/"
[ -f "$here/package-lock.json" ] && cp "$here/package-lock.json" "$work/"
cd "$work"
if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --silent; else npm install --no-audit --no-fund --silent; fi
cp package-lock.json "$here/package-lock.json"
versions="$(node -e 'const d=require("./package.json").dependencies;console.log(Object.entries(d).map(([k,v])=>k+"@"+v).join(" "))')"
npx --no-install esbuild entry.js --bundle --format=esm --minify --target=es2020 \
  --legal-comments=none --banner:js="/* CodeMirror 6 for Quiver's web UI (MIT licence, see LICENSES.txt): $versions */" \
  --outfile="$here/codemirror.js"
node - "$here/LICENSES.txt" <<'JS'
// Every package in the bundle: its version and licence text.
const fs = require("fs"), path = require("path");
const out = [];
const seen = new Set();
function walk(dir) {
  for (const name of fs.readdirSync(dir)) {
    if (name.startsWith(".")) continue;
    const full = path.join(dir, name);
    if (name.startsWith("@")) { walk(full); continue; }
    const pj = path.join(full, "package.json");
    if (!fs.existsSync(pj)) continue;
    const meta = JSON.parse(fs.readFileSync(pj, "utf8"));
    if (name === "esbuild" || (meta.name || "").startsWith("@esbuild/")) continue; // build tool only
    const key = meta.name + "@" + meta.version;
    if (seen.has(key)) continue;
    seen.add(key);
    const lic = fs.readdirSync(full).find((f) => /^licen[cs]e/i.test(f));
    out.push(`${key} (${meta.license})\n` + (lic ? fs.readFileSync(path.join(full, lic), "utf8").trim() : "") + "\n");
  }
}
walk("node_modules");
out.sort();
fs.writeFileSync(process.argv[2], "Packages bundled into web/vendor/codemirror.js, with their licences.\n\n" + out.join("\n" + "-".repeat(72) + "\n\n"));
JS
echo "built $here/codemirror.js ($(wc -c < "$here/codemirror.js") bytes)"
