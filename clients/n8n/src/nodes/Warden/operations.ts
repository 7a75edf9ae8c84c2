// What each operation of the Warden node does, over the bundled @warden/client: its answer
// and the output it goes to. Outputs: `idempotency.begin` → 0 `completed`, 1 `started`;
// `rateLimit.check` → 0 `allowed`, 1 `limited`; every other operation → 0.

import type { Warden } from "../../client/index.js";

/** The parameters of one item, read by name. */
export type Param = (name: string) => unknown;

/** The outputs an operation has, by name, in order. */
export const TWO_OUTPUTS: Record<string, [string, string]> = {
  "idempotency.begin": ["completed", "started"],
  "rateLimit.check": ["allowed", "limited"],
};

/** The outputs the node shows for its parameters (evaluated by n8n's editor, and by
 * `execute` for the shape it returns). */
export function configuredOutputs(parameters: { resource?: string; operation?: string }) {
  const two = TWO_OUTPUTS[`${parameters.resource}.${parameters.operation}`];
  return two ? two.map((displayName) => ({ type: "main", displayName })) : [{ type: "main", displayName: "" }];
}

/** Runs one operation: the output index and the JSON it sends there. */
export async function run(w: Warden, resource: string, operation: string, p: Param): Promise<[number, Record<string, unknown>]> {
  const s = (n: string) => String(p(n) ?? "");
  const n = (n: string) => Number(p(n) ?? 0);
  switch (`${resource}.${operation}`) {
    case "lock.acquire":
      return [0, await w.locks.acquire(s("key"), { owner: s("owner"), ttl_ms: n("ttlMs"), wait_ms: n("waitMs") })];
    case "lock.extend":
      return [0, await w.locks.extend(s("key"), { owner: s("owner"), fencing_token: n("fencingToken"), ttl_ms: n("ttlMs") })];
    case "lock.release":
      return [0, await w.locks.release(s("key"), { owner: s("owner"), fencing_token: n("fencingToken") })];
    case "idempotency.begin": {
      const fingerprint = s("fingerprint") || undefined;
      const a = await w.idempotency.begin(s("key"), { fingerprint, lease_ms: n("leaseMs"), wait_ms: n("waitMs") });
      return [a.state === "completed" ? 0 : 1, { ...a, key: s("key") }];
    }
    case "idempotency.complete":
      return [0, await w.idempotency.complete(s("key"), n("token"), json(p("response")))];
    case "idempotency.fail":
      return [0, await w.idempotency.fail(s("key"), n("token"))];
    case "rateLimit.check": {
      const r = await w.limit(s("policy"), s("subject"), { cost: n("cost") || 1 });
      return [r.success ? 0 : 1, { ...r }];
    }
    case "incident.trigger":
      return [
        0,
        await w.incidents.trigger({
          dedup_key: s("dedupKey") || undefined,
          severity: s("severity"),
          summary: s("summary"),
          source: s("source") || "n8n",
          details: (json(p("details")) ?? {}) as Record<string, never>,
        }),
      ];
    case "incident.acknowledge":
      return [0, await w.incidents.ack(s("incidentId"))];
    case "fence.check":
      return [0, await w.fence(s("fenceResource"), n("token"))];
    default:
      throw new Error(`unknown operation ${resource}.${operation}`);
  }
}

/** A JSON parameter: n8n hands it parsed or as text. */
function json(v: unknown): unknown {
  if (typeof v !== "string") return v;
  if (v.trim() === "") return null;
  return JSON.parse(v);
}
