// The package as a user gets it: types that match the binary's /openapi.json, and both module
// systems loading the same API through the `exports` map.

import { after, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, existsSync } from "node:fs";
import { createRequire } from "node:module";
import { generate } from "../scripts/generate.mjs";
import { startWarden, stopAll } from "./harness.mjs";

after(stopAll);

test("the committed types are what /openapi.json of the binary under test generates", async () => {
  const server = await startWarden();
  const fresh = await generate(`${server.baseUrl}/openapi.json`);
  const committed = readFileSync(new URL("../src/generated/openapi.ts", import.meta.url), "utf8");
  assert.ok(
    fresh === committed,
    "src/generated/openapi.ts drifted from the API: run `node scripts/types.mjs <warden>/openapi.json` and commit it",
  );
});

test("import and require load the same API, each with its type declarations", async () => {
  const esm = await import("@warden/client");
  const cjs = createRequire(import.meta.url)("@warden/client");
  for (const mod of [esm, cjs]) {
    assert.equal(typeof mod.Warden, "function");
    assert.equal(typeof mod.withLock, "function");
    assert.equal(new mod.LockLostError({ status: 409, code: "lock_lost", correlationId: "c" }) instanceof mod.WardenError, true);
  }
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
  assert.deepEqual(Object.keys(pkg.exports["."].import), ["types", "default"], "types first");
  assert.deepEqual(Object.keys(pkg.exports["."].require), ["types", "default"], "types first");
  for (const cond of ["import", "require"]) {
    const types = new URL(`../${pkg.exports["."][cond].types}`, import.meta.url);
    assert.ok(existsSync(types), `${types}`);
  }
  assert.deepEqual(pkg.dependencies ?? {}, {}, "no runtime dependencies");
});
