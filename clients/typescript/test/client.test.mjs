// The client against a real Warden (the binary under test) on real Redis and PostgreSQL.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import {
  Warden,
  LockBusyError,
  LockLostError,
  StaleTokenError,
  FingerprintMismatchError,
  InvalidRequestError,
} from "../dist/esm/index.js";
import { recordingFetch, sleep, startPostgres, startRedis, startWarden, stopAll } from "./harness.mjs";

let server;
let w;
const k = (p) => `${p}-${randomUUID()}`;

before(async () => {
  const [pg, redis] = await Promise.all([startPostgres(), startRedis()]);
  server = await startWarden({ pg, redis });
  w = new Warden({ baseUrl: server.baseUrl });
});
after(stopAll);

describe("the story 1.5 interface", () => {
  test("set, get and del store any JSON, expire with a ttl, and miss as null", async () => {
    const key = k("kv");
    assert.equal(await w.get(key), null);
    await w.set(key, { contact: 42, tags: ["a"] });
    assert.deepEqual(await w.get(key), { contact: 42, tags: ["a"] });
    await w.set(key, 7);
    assert.equal(await w.get(key), 7);
    await w.del(key);
    assert.equal(await w.get(key), null);
    await w.del(key); // absent: nothing happens
    const short = k("ttl");
    await w.set(short, "soon gone", 300);
    assert.equal(await w.get(short), "soon gone");
    const deadline = Date.now() + 5_000;
    while ((await w.get(short)) !== null) {
      assert.ok(Date.now() < deadline, "never expired");
      await sleep(50);
    }
  });

  test("lock is false while another client holds the key, and unlock releases with the token held", async () => {
    const key = k("lock");
    const other = new Warden({ baseUrl: server.baseUrl });
    assert.equal(await w.lock(key, 10_000), true);
    assert.ok(w.lockToken(key) > 0);
    assert.equal(await other.lock(key, 10_000), false, "busy");
    assert.equal(await w.lock(key, 10_000), true, "the holder's own repeat is the same grant");
    await w.unlock(key);
    assert.equal(w.lockToken(key), undefined);
    assert.equal(await other.lock(key, 10_000), true, "free after unlock");
    assert.ok(other.lockToken(key) > 0);
    await w.unlock(key); // not held by w: nothing happens
    const held = await w.locks.get(key);
    assert.equal(held.state, "held", "w's unlock did not release other's lock");
    await other.unlock(key);
    assert.equal(await w.locks.get(key), null);
  });
});

describe("withLock", () => {
  test("hands fn the fencing token and a live signal, renews past the TTL, and releases", async () => {
    const key = k("wl");
    const seen = await w.withLock(key, { ttlMs: 600 }, async ({ fencingToken, signal }) => {
      await sleep(1_500); // longer than the TTL: renewals keep it
      assert.equal(signal.aborted, false);
      const held = await w.locks.get(key);
      assert.equal(held.holders[0].fencing_token, fencingToken);
      return fencingToken;
    });
    assert.ok(seen > 0);
    assert.equal(await w.locks.get(key), null, "released");
  });

  test("a busy lock is LockBusyError and fn never runs", async () => {
    const key = k("busy");
    assert.equal(await w.lock(key, 10_000), true);
    let ran = false;
    await assert.rejects(
      w.withLock(key, { ttlMs: 1_000 }, () => {
        ran = true;
      }),
      (e) => e instanceof LockBusyError && !(e instanceof LockLostError) && e.code === "lock_busy",
    );
    assert.equal(ran, false);
    await w.unlock(key);
  });

  test("fn's own error wins, and the lock is released", async () => {
    const key = k("err");
    await assert.rejects(
      w.withLock(key, { ttlMs: 1_000 }, () => {
        throw new Error("payment failed");
      }),
      /payment failed/,
    );
    assert.equal(await w.locks.get(key), null);
  });

  test("a lease the server ends (max hold) aborts the signal and throws LockLostError even though fn resolved, with no release sent", async () => {
    const key = k("maxhold");
    const rec = recordingFetch();
    const client = new Warden({ baseUrl: server.baseUrl, fetch: rec.fetch });
    let reason;
    await assert.rejects(
      client.withLock(key, { ttlMs: 300, maxHoldMs: 300, watch: true }, async ({ signal }) => {
        await new Promise((r) => signal.addEventListener("abort", r, { once: true }));
        reason = signal.reason;
        return "done anyway";
      }),
      (e) => e instanceof LockLostError && e.reason === "max_hold_exceeded",
    );
    assert.ok(reason instanceof LockLostError, "the signal's reason is the LockLostError");
    assert.ok(!rec.sent.some((s) => s.endsWith("/release")), `no release: ${rec.sent}`);
  });
});

describe("fencing", () => {
  test("an old holder's token is refused after the lock moved on", async () => {
    const key = k("fence");
    const resource = k("ledger");
    const a = await w.locks.acquire(key, { owner: "a", ttl_ms: 200 });
    await sleep(400); // a's lease lapses: b takes the lock with a larger token
    const b = await w.locks.acquire(key, { owner: "b", ttl_ms: 10_000 });
    assert.ok(b.fencing_token > a.fencing_token);
    const ok = await w.fence(resource, b.fencing_token);
    assert.equal(ok.state, "accepted");
    await assert.rejects(
      w.fence(resource, a.fencing_token),
      (e) => e instanceof StaleTokenError && e.highest === b.fencing_token && e.status === 409,
    );
  });
});

describe("idempotent", () => {
  test("20 concurrent callers of one key run fn once and all get its result", async () => {
    const key = k("pay");
    let runs = 0;
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        new Warden({ baseUrl: server.baseUrl }).idempotent(key, { waitMs: 10_000, fingerprint: "f1" }, async () => {
          runs += 1;
          await sleep(300);
          return { charge: "ch_1", by: i };
        }),
      ),
    );
    assert.equal(runs, 1);
    assert.equal(new Set(results.map((r) => JSON.stringify(r))).size, 1, "one result for all");
    // A later caller with another fingerprint is refused; the same one replays.
    await assert.rejects(w.idempotent(key, { fingerprint: "f2" }, () => 0), FingerprintMismatchError);
    assert.deepEqual(await w.idempotent(key, { fingerprint: "f1" }, () => assert.fail("ran twice")), results[0]);
  });

  test("when fn throws the claim is released and a retry runs it", async () => {
    const key = k("retry");
    await assert.rejects(w.idempotent(key, {}, () => Promise.reject(new Error("card declined"))), /card declined/);
    assert.equal(await w.idempotent(key, {}, () => "second try"), "second try");
  });
});

describe("getOrLoad", () => {
  test("50 concurrent callers run the loader once and share its value", async () => {
    const key = k("profile");
    let loads = 0;
    const values = await Promise.all(
      Array.from({ length: 50 }, () =>
        new Warden({ baseUrl: server.baseUrl }).getOrLoad("ts", key, async () => {
          loads += 1;
          await sleep(300);
          return { name: "Ana", n: loads };
        }, { ttlMs: 60_000, leaseMs: 5_000 }),
      ),
    );
    assert.equal(loads, 1);
    for (const v of values) assert.deepEqual(v, { name: "Ana", n: 1 });
    assert.deepEqual(await w.getOrLoad("ts", key, () => assert.fail("loaded twice"), { ttlMs: 60_000 }), { name: "Ana", n: 1 });
  });
});

describe("limit and waitForLimit", () => {
  test("a limited call is an answer with the wait, and waitForLimit waits it out", async () => {
    const policy = k("p");
    await w.rateLimits.putPolicy(policy, {
      limits: [{ name: "per_second", algorithm: "sliding_log", rate: 2, period_ms: 1_000 }],
    });
    const subject = "clinic-7";
    const first = await w.limit(policy, subject);
    assert.equal(first.success, true);
    assert.equal(first.remaining, 1);
    assert.equal((await w.limit(policy, subject)).success, true);
    const third = await w.limit(policy, subject);
    assert.equal(third.success, false);
    assert.equal(third.state, "limited");
    assert.ok(third.retryAfterMs > 0 && third.retryAfterMs <= 1_000, `${third.retryAfterMs}`);
    const none = await w.waitForLimit(policy, subject, { timeoutMs: 1 });
    assert.equal(none.success, false, "no wait fits in 1 ms");
    const started = Date.now();
    const waited = await w.waitForLimit(policy, subject, { timeoutMs: 5_000 });
    assert.equal(waited.success, true);
    assert.ok(Date.now() - started >= third.retryAfterMs - 100, "it waited for the window");
    await assert.rejects(w.limit(policy, subject, { cost: 50 }), InvalidRequestError);
  });
});

describe("sessions, streams, reservations", () => {
  test("a session is created, read with a version, and revoked", async () => {
    const s = await w.sessions.create({ principal: "u1", data: { cart: 1 }, idle_ttl_ms: 60_000, absolute_ttl_ms: 600_000 });
    assert.equal(s.state, "created");
    const got = await w.sessions.get(s.session_id);
    assert.deepEqual(got.data, { cart: 1 });
    await w.sessions.revoke(s.session_id);
    await assert.rejects(w.sessions.get(s.session_id), (e) => e.status === 410 && e.code === "revoked");
  });

  test("intents of a contact commit in causal order", async () => {
    const stream = k("contact");
    const seqs = [];
    for (const id of ["i1", "i2"]) {
      const a = await w.streams.intake(stream, { intent_id: id, intent_type: "message", payload: { id } });
      seqs.push(a.commit_sequence);
    }
    const early = w.streams.commit(stream, { commit_sequence: seqs[1], intent_id: "i2", wait_ms: 5_000 });
    await sleep(100);
    const first = await w.streams.commit(stream, { commit_sequence: seqs[0], intent_id: "i1" });
    assert.equal(first.state, "committed_causal");
    assert.equal((await early).state, "committed_causal", "the second waited for the first");
  });

  test("a sold-out SKU answers out_of_stock rather than throwing", async () => {
    const sku = k("sku");
    await w.inventory.setTotal(sku, 1);
    const got = await w.inventory.reserve(sku, { user_id: "b1", quantity: 1 }, "buy-b1");
    assert.equal(got.state, "reserved");
    const again = await w.inventory.reserve(sku, { user_id: "b1", quantity: 1 }, "buy-b1");
    assert.equal(again.reservation_id, got.reservation_id, "an idempotent repeat");
    const other = await w.inventory.reserve(sku, { user_id: "b2", quantity: 1 });
    assert.equal(other.state, "out_of_stock");
    assert.equal((await w.inventory.confirm(got.reservation_id)).state, "confirmed");
  });
});
