// The nodes' execute and webhook functions against a real Warden (the binary under test, on
// real Redis and PostgreSQL). n8n itself does not run here: each function gets the few context
// methods it calls (parameters, credentials, items, request and response), as n8n hands them.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { createServer } from "node:http";
import { randomBytes, randomUUID } from "node:crypto";
import { freePort, sleep, startPostgres, startRedis, startWarden, stopAll } from "../../typescript/test/harness.mjs";

const require = createRequire(import.meta.url);
const { Warden } = require("../dist/nodes/Warden/Warden.node.js");
const { WardenTrigger } = require("../dist/nodes/WardenTrigger/WardenTrigger.node.js");
const { WardenApi } = require("../dist/credentials/WardenApi.credentials.js");
const { configuredOutputs } = require("../dist/nodes/Warden/operations.js");

let server;
const k = (p) => `${p}-${randomUUID()}`;

/** Runs the Warden node's execute on `items` with `params` (one object, or one per item). */
async function execute(params, items = [{ json: {} }], { continueOnFail = false, baseUrl = server.baseUrl } = {}) {
  const node = new Warden();
  const ctx = {
    getInputData: () => items,
    getCredentials: async (name) => {
      assert.equal(name, "wardenApi");
      return { baseUrl, token: "" };
    },
    getNodeParameter: (name, i) => {
      const p = Array.isArray(params) ? params[i] : params;
      if (!(name in p)) throw new Error(`no parameter ${name}`);
      return p[name];
    },
    continueOnFail: () => continueOnFail,
  };
  return node.execute.call(ctx);
}

const secret = "whsec_" + randomBytes(24).toString("base64");

/** Hands one HTTP request to the trigger's webhook function, as n8n would. */
async function deliver(trigger, params, req, res) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const rawBody = Buffer.concat(chunks);
  let status = 200;
  let sent;
  const response = { status: (s) => ((status = s), response), json: (b) => (sent = b), send: (b) => (sent = b) };
  const out = await trigger.webhook.call({
    getRequestObject: () => ({ rawBody, body: JSON.parse(rawBody.toString() || "{}") }),
    getResponseObject: () => response,
    getHeaderData: () => req.headers,
    getNodeParameter: (name, fallback) => (name in params ? params[name] : fallback),
  });
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(sent ?? out.webhookResponse ?? { ok: true }));
  return out;
}

before(async () => {
  const [pg, redis] = await Promise.all([startPostgres(), startRedis()]);
  server = await startWarden({ pg, redis });
});
after(stopAll);

describe("the Warden node", () => {
  test("lock acquire, extend and release carry the fencing token through", async () => {
    const key = k("lock");
    const [[acq]] = await execute({ resource: "lock", operation: "acquire", key, owner: "exec-1", ttlMs: 5_000, waitMs: 0 });
    assert.match(acq.json.state, /^lock_acquired_/);
    const token = acq.json.fencing_token;
    const [[ext]] = await execute({ resource: "lock", operation: "extend", key, owner: "exec-1", fencingToken: token, ttlMs: 5_000 });
    assert.equal(ext.json.state, "extended");
    await assert.rejects(
      execute({ resource: "lock", operation: "acquire", key, owner: "exec-2", ttlMs: 5_000, waitMs: 0 }),
      (e) => e.code === "lock_busy",
    );
    const [[failed]] = await execute(
      { resource: "lock", operation: "acquire", key, owner: "exec-2", ttlMs: 5_000, waitMs: 0 },
      undefined,
      { continueOnFail: true },
    );
    assert.equal(failed.json.code, "lock_busy", "continueOnFail: the error as an item");
    const [[rel]] = await execute({ resource: "lock", operation: "release", key, owner: "exec-1", fencingToken: token });
    assert.equal(rel.json.state, "released");
  });

  test("idempotency begin sends a new key to `started` and a completed one to `completed`", async () => {
    const key = k("pay");
    assert.deepEqual(configuredOutputs({ resource: "idempotency", operation: "begin" }).map((o) => o.displayName), ["completed", "started"]);
    const [done, started] = await execute({ resource: "idempotency", operation: "begin", key, fingerprint: "f", leaseMs: 30_000, waitMs: 0 });
    assert.equal(done.length, 0);
    assert.equal(started[0].json.state, "started");
    const token = started[0].json.token;
    const [[c]] = await execute({ resource: "idempotency", operation: "complete", key, token, response: '{"charge":"ch_1"}' });
    assert.equal(c.json.state, "completed");
    const [again, none] = await execute({ resource: "idempotency", operation: "begin", key, fingerprint: "f", leaseMs: 30_000, waitMs: 0 });
    assert.equal(none.length, 0);
    assert.deepEqual(again[0].json.response, { charge: "ch_1" });
    // A failed run releases the key for the next try.
    const other = k("fail");
    const [, s2] = await execute({ resource: "idempotency", operation: "begin", key: other, fingerprint: "", leaseMs: 30_000, waitMs: 0 });
    await execute({ resource: "idempotency", operation: "fail", key: other, token: s2[0].json.token });
    const [, s3] = await execute({ resource: "idempotency", operation: "begin", key: other, fingerprint: "", leaseMs: 30_000, waitMs: 0 });
    assert.ok(s3[0].json.token > s2[0].json.token, "begun again with a larger token");
  });

  test("rate-limit check sends each item to `allowed` or `limited`", async () => {
    const policy = k("msgs");
    await fetch(`${server.baseUrl}/v1/ratelimit/policies/${policy}`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ limits: [{ name: "m", algorithm: "sliding_log", rate: 2, period_ms: 60_000 }] }),
    });
    const params = { resource: "rateLimit", operation: "check", policy, subject: "clinic-7", cost: 1 };
    const [allowed, limited] = await execute([params, params, params], [{ json: {} }, { json: {} }, { json: {} }]);
    assert.equal(allowed.length, 2);
    assert.equal(limited.length, 1);
    assert.equal(limited[0].pairedItem.item, 2);
    assert.ok(limited[0].json.retryAfterMs > 0);
  });

  test("incident trigger and acknowledge, and a fence refusing an old token", async () => {
    const [[t]] = await execute({
      resource: "incident",
      operation: "trigger",
      dedupKey: k("n8n"),
      severity: "warning",
      summary: "queue backing up",
      source: "n8n",
      details: '{"queue": 12}',
    });
    assert.equal(t.json.state, "triggered");
    const [[a]] = await execute({ resource: "incident", operation: "acknowledge", incidentId: t.json.incident_id });
    assert.equal(a.json.state, "acknowledged");
    const resource = k("ledger");
    const [[ok]] = await execute({ resource: "fence", operation: "check", fenceResource: resource, token: 5 });
    assert.equal(ok.json.state, "accepted");
    await assert.rejects(execute({ resource: "fence", operation: "check", fenceResource: resource, token: 4 }), (e) => e.code === "stale_token");
  });

  test("the credential is tested with GET /v1/status", () => {
    const cred = new WardenApi();
    assert.equal(cred.test.request.url, "/v1/status");
    assert.match(cred.authenticate.properties.headers.Authorization, /Bearer \{\{\$credentials\.token\}\}/);
  });
});

describe("the Warden Trigger node", () => {
  test("Warden's own signed notification starts the workflow; a forged or replayed one is refused", async () => {
    const trigger = new WardenTrigger();
    const started = [];
    const port = await freePort();
    const hook = createServer(async (req, res) => {
      const out = await deliver(trigger, { secret, events: ["incident.triggered"], toleranceSeconds: 300 }, req, res);
      if (out.workflowData) started.push(out.workflowData[0][0].json);
    });
    await new Promise((r) => hook.listen(port, "127.0.0.1", r));
    try {
      const [pg, redis] = await Promise.all([startPostgres(), startRedis()]);
      const notifying = await startWarden({
        pg,
        redis,
        env: { WARDEN_NOTIFY_OWNER_URL: `http://127.0.0.1:${port}/webhook/warden`, WARDEN_NOTIFY_OWNER_SECRET: secret },
      });
      const res = await fetch(`${notifying.baseUrl}/v1/incidents`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ event_action: "trigger", dedup_key: "n8n-trigger", severity: "critical", summary: "both tiers down", source: "test" }),
      });
      assert.equal(res.status, 202);
      const deadline = Date.now() + 15_000;
      while (started.length === 0) {
        assert.ok(Date.now() < deadline, "no notification verified");
        await sleep(50);
      }
      assert.equal(started[0].type, "incident.triggered");
      assert.equal(started[0].data.dedup_key, "n8n-trigger");
      assert.ok(started[0].webhook_id);

      // Forged: signed with another secret. Replayed: a genuine signature from an hour ago.
      const body = JSON.stringify({ type: "incident.triggered", data: {} });
      const { createHmac } = await import("node:crypto");
      const sign = (key, id, ts) =>
        "v1," + createHmac("sha256", Buffer.from(key.slice(6), "base64")).update(`${id}.${ts}.${body}`).digest("base64");
      const now = Math.floor(Date.now() / 1000);
      const post = (headers) => fetch(`http://127.0.0.1:${port}/`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
      const forged = await post({ "webhook-id": "m1", "webhook-timestamp": String(now), "webhook-signature": sign("whsec_" + randomBytes(24).toString("base64"), "m1", now) });
      assert.equal(forged.status, 401);
      const old = now - 3_600;
      const replayed = await post({ "webhook-id": "m2", "webhook-timestamp": String(old), "webhook-signature": sign(secret, "m2", old) });
      assert.equal(replayed.status, 401);
      const genuine = await post({ "webhook-id": "m3", "webhook-timestamp": String(now), "webhook-signature": `v1,AAAA ${sign(secret, "m3", now)}` });
      assert.equal(genuine.status, 200, "any one of several signatures may match");
      assert.equal(started.length, 2);
    } finally {
      hook.close();
    }
  });
});
