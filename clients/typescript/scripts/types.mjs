// Generates src/generated/openapi.ts from a running Warden's /openapi.json (or a saved file):
//   node scripts/types.mjs http://127.0.0.1:8080/openapi.json
// The test suite regenerates it from the binary under test and fails when it drifts.
import { writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { generate } from "./generate.mjs";

const source = process.argv[2];
if (!source) {
  console.error("usage: node scripts/types.mjs <url or file of /openapi.json>");
  process.exit(2);
}
const out = fileURLToPath(new URL("../src/generated/openapi.ts", import.meta.url));
await writeFile(out, await generate(source));
console.log(`wrote ${out}`);
