// The client's overhead over raw fetch: 64 concurrent workers acquiring and releasing locks
// (a key each, so nothing waits on the lock itself), through the client and through bare
// fetch calls with the same bodies, in alternating rounds against one Warden.
//
//   node bench/overhead.mjs [--seconds 5] [--rounds 3] [--workers 64] [--base-url URL]
//
// Without --base-url it starts the release binary (../../target/release/warden, or
// $WARDEN_BIN) on its own Redis and PostgreSQL. Prints one JSON line per round and a summary.

import { parseArgs } from "node:util";
import { Warden } from "../dist/esm/index.js";

const { values: o } = parseArgs({
  options: {
    seconds: { type: "string", default: "5" },
    rounds: { type: "string", default: "3" },
    workers: { type: "string", default: "64" },
    "base-url": { type: "string" },
  },
});
const seconds = Number(o.seconds);
const workers = Number(o.workers);

let baseUrl = o["base-url"];
let harness;
if (!baseUrl) {
  process.env.WARDEN_BIN ??= new URL("../../../target/release/warden", import.meta.url).pathname;
  harness = await import("../test/harness.mjs");
  const [pg, redis] = await Promise.all([harness.startPostgres(), harness.startRedis()]);
  baseUrl = (await harness.startWarden({ pg, redis })).baseUrl;
}

const w = new Warden({ baseUrl });
const headers = { "content-type": "application/json" };
const raw = {
  async acquire(key, owner) {
    const r = await fetch(`${baseUrl}/v1/locks/${encodeURIComponent(key)}/acquire`, {
      method: "POST",
      headers,
      body: JSON.stringify({ owner, ttl_ms: 10_000, wait_ms: 0 }),
    });
    const b = await r.json();
    if (r.status !== 200) throw new Error(JSON.stringify(b));
    return b;
  },
  async release(key, owner, token) {
    const r = await fetch(`${baseUrl}/v1/locks/${encodeURIComponent(key)}/release`, {
      method: "POST",
      headers,
      body: JSON.stringify({ owner, fencing_token: token }),
    });
    const b = await r.json();
    if (r.status !== 200) throw new Error(JSON.stringify(b));
    return b;
  },
};
const client = {
  acquire: (key, owner) => w.locks.acquire(key, { owner, ttl_ms: 10_000, wait_ms: 0 }),
  release: (key, owner, token) => w.locks.release(key, { owner, fencing_token: token }),
};

async function round(name, api, n) {
  const until = performance.now() + seconds * 1000;
  const lat = [];
  await Promise.all(
    Array.from({ length: workers }, async (_, id) => {
      for (let i = 0; performance.now() < until; i++) {
        const key = `bench-${name}-${n}-${id}-${i}`;
        const t = performance.now();
        const g = await api.acquire(key, `w${id}`);
        lat.push(performance.now() - t);
        await api.release(key, `w${id}`, g.fencing_token);
      }
    }),
  );
  lat.sort((a, b) => a - b);
  const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];
  const r = { name, round: n, acquires_per_s: lat.length / seconds, p50_ms: q(0.5), p99_ms: q(0.99) };
  console.log(JSON.stringify(r));
  return r;
}

await round("warmup", raw, 0);
const results = { raw: [], client: [] };
for (let n = 1; n <= Number(o.rounds); n++) {
  results.raw.push(await round("raw", raw, n));
  results.client.push(await round("client", client, n));
}
const mean = (rs, f) => rs.reduce((s, r) => s + r[f], 0) / rs.length;
const rawRate = mean(results.raw, "acquires_per_s");
const clientRate = mean(results.client, "acquires_per_s");
console.log(
  JSON.stringify({
    summary: true,
    workers,
    seconds,
    raw_acquires_per_s: Math.round(rawRate),
    client_acquires_per_s: Math.round(clientRate),
    overhead_pct: Number((100 * (1 - clientRate / rawRate)).toFixed(1)),
    raw_p50_ms: Number(mean(results.raw, "p50_ms").toFixed(2)),
    client_p50_ms: Number(mean(results.client, "p50_ms").toFixed(2)),
  }),
);
await harness?.stopAll();
process.exit(0);
