// The client when things go wrong: a stalled server, a lost lease, 503s with Retry-After, safe
// mode, a refused connection — against the real binary on real Redis and PostgreSQL.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { randomUUID } from "node:crypto";
import {
  Warden,
  LockLostError,
  SafeBlockError,
  UnknownOutcomeError,
  UnavailableError,
} from "../dist/esm/index.js";
import { freePort, recordingFetch, sleep, startPostgres, startRedis, startWarden, stopAll } from "./harness.mjs";

let pg;
let redis;
const k = (p) => `${p}-${randomUUID()}`;

before(async () => {
  [pg, redis] = await Promise.all([startPostgres(), startRedis()]);
});
after(stopAll);

describe("a lost lease", () => {
  test("a server that stops answering: the signal aborts before the lease could lapse, LockLostError, no release", async () => {
    const server = await startWarden({ pg, redis });
    const rec = recordingFetch();
    const w = new Warden({ baseUrl: server.baseUrl, fetch: rec.fetch, retries: 0 });
    const ttl = 900;
    let abortedAfter;
    await assert.rejects(
      w.withLock(k("stalled"), { ttlMs: ttl }, async ({ signal }) => {
        const start = Date.now();
        server.stall(true);
        await new Promise((r) => signal.addEventListener("abort", r, { once: true }));
        abortedAfter = Date.now() - start;
        server.stall(false);
        return "finished";
      }),
      (e) => e instanceof LockLostError && e.reason === "lease_unconfirmed",
    );
    assert.ok(abortedAfter < ttl, `aborted ${abortedAfter} ms in, within the ${ttl} ms lease`);
    assert.ok(rec.sent.some((s) => s.endsWith("/extend")), "it tried to renew");
    assert.ok(!rec.sent.some((s) => s.endsWith("/release")), `no release: ${rec.sent}`);
  });
});

describe("retries", () => {
  test("a 503 starting with Retry-After is retried after the wait; the answer then comes through", async () => {
    const server = await startWarden({ pg, redis });
    let refusals = 2;
    const seen = [];
    const port = await freePort();
    const front = createServer(async (req, res) => {
      seen.push(Date.now());
      if (refusals > 0) {
        refusals -= 1;
        res.writeHead(503, { "content-type": "application/problem+json", "retry-after": "1" });
        res.end(JSON.stringify({ type: "/problems/starting", title: "Starting", status: 503, detail: "starting", code: "starting" }));
        return;
      }
      const chunks = [];
      for await (const c of req) chunks.push(c);
      const body = chunks.length ? Buffer.concat(chunks) : undefined;
      const r = await fetch(server.baseUrl + req.url, { method: req.method, headers: { "content-type": "application/json" }, body });
      res.writeHead(r.status, { "content-type": r.headers.get("content-type") ?? "application/json" });
      res.end(await r.text());
    });
    await new Promise((r) => front.listen(port, "127.0.0.1", r));
    try {
      const w = new Warden({ baseUrl: `http://127.0.0.1:${port}`, retries: 3 });
      const got = await w.locks.acquire(k("after-503"), { owner: "o", ttl_ms: 5_000 });
      assert.equal(got.state.startsWith("lock_acquired"), true);
      assert.equal(seen.length, 3, "two refusals, then the answer");
      assert.ok(seen[1] - seen[0] >= 950 && seen[2] - seen[1] >= 950, `Retry-After honoured: ${seen.map((t) => t - seen[0])}`);
    } finally {
      front.close();
    }
  });

  test("a safe block is never retried", async () => {
    const server = await startWarden({ pg, redis });
    const w = new Warden({ baseUrl: server.baseUrl });
    const entered = await w.guard.enter("client test: drill");
    assert.equal(entered.state, "safe_mode");
    const rec = recordingFetch();
    const client = new Warden({ baseUrl: server.baseUrl, fetch: rec.fetch, retries: 5 });
    await assert.rejects(
      client.withLock(k("blocked"), { ttlMs: 1_000 }, () => assert.fail("ran in safe mode")),
      (e) => e instanceof SafeBlockError && e.status === 503 && e.reason.length > 0,
    );
    assert.deepEqual(rec.sent.filter((s) => s.includes("/acquire")).length, 1, `${rec.sent}`);
  });

  test("a timeout after the request was sent is UnknownOutcomeError, and a request that is not safe to repeat is sent once", async () => {
    const server = await startWarden({ pg, redis });
    const rec = recordingFetch();
    const w = new Warden({ baseUrl: server.baseUrl, fetch: rec.fetch, timeoutMs: 300, retries: 2, backoffMs: 10 });
    await w.rateLimits.putPolicy("t", { limits: [{ name: "n", algorithm: "gcra", rate: 10, period_ms: 1_000 }] });
    server.stall(true);
    try {
      const before = rec.sent.length;
      await assert.rejects(w.limit("t", "s"), (e) => e instanceof UnknownOutcomeError && e.status === 0 && e.correlationId.length > 0);
      assert.equal(rec.sent.length - before, 1, "a check consumes: never repeated blindly");
      const mid = rec.sent.length;
      await assert.rejects(w.kv.get("x"), UnknownOutcomeError);
      assert.equal(rec.sent.length - mid, 3, "a read is repeated (1 + 2 retries)");
    } finally {
      server.stall(false);
    }
  });

  test("a refused connection is retried with backoff, then UnavailableError", async () => {
    const port = await freePort();
    const rec = recordingFetch();
    const w = new Warden({ baseUrl: `http://127.0.0.1:${port}`, fetch: rec.fetch, retries: 2, backoffMs: 10 });
    await assert.rejects(w.idempotency.begin(k("nobody")), (e) => e instanceof UnavailableError && e.code === "unreachable");
    assert.equal(rec.sent.length, 3, "never reached the server: safe to send again");
  });
});

describe("correlation", () => {
  test("the correlation id and traceparent go out and come back on errors", async () => {
    const server = await startWarden({ pg, redis });
    const w = new Warden({ baseUrl: server.baseUrl });
    const id = "corr-" + randomUUID();
    await assert.rejects(
      w.kv.put("bad\u0001key", 1, {}, { correlationId: id }),
      (e) => e.name === "InvalidRequestError" && e.code === "invalid_key" && e.correlationId === id,
    );
  });
});
