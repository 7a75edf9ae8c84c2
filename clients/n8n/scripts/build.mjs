// Builds the nodes (CommonJS, as n8n loads them) with the @warden/client sources bundled in:
// they are copied from ../typescript/src into src/client (not committed) and compiled with the
// nodes, so the package has no runtime dependency. The icon is copied beside each node.
import { execFileSync } from "node:child_process";
import { cpSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";

rmSync("dist", { recursive: true, force: true });
rmSync("src/client", { recursive: true, force: true });
cpSync("../typescript/src", "src/client", { recursive: true });
const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
execFileSync(process.execPath, [tsc, "-p", "tsconfig.json"], { stdio: "inherit" });
for (const node of ["Warden", "WardenTrigger"]) cpSync("icons/warden.svg", `dist/nodes/${node}/warden.svg`);
writeFileSync("dist/package.json", JSON.stringify({ type: "commonjs" }) + "\n");
