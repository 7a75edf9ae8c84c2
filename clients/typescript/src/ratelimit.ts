// Rate limits: `limit` answers success or not (a 429 is an answer, not an error), and
// `waitForLimit` waits for the server's retry time until a deadline.

import type { components } from "./generated/openapi.js";
import { type CallOptions, type Http, sleep } from "./http.js";
import { seg } from "./locks.js";

type S = components["schemas"];
export type RateLimitAnswer = S["RateLimitAnswer"];
export type PolicyAnswer = S["PolicyAnswer"];

/** The outcome of one check. */
export interface LimitResult {
  /** Whether the call may go ahead (`allowed`, `shadow_limited`, `allowed_unchecked`). */
  success: boolean;
  /** The server's state: `allowed`, `limited`, `shadow_limited` or `allowed_unchecked`. */
  state: string;
  /** What is left of the tightest limit. */
  remaining: number;
  /** When the tightest limit is whole again (ms since the epoch, this machine's clock). */
  reset: number;
  /** How long to wait before trying again, ms (0 when allowed). */
  retryAfterMs: number;
  /** `primary`, `fallback` or `local`: where the count was kept. */
  mode: string;
  /** Every limit of the policy, as the server reported it. */
  limits: S["LimitEntry"][];
}

/** `/v1/ratelimit/…`: checks, peeks, policies. */
export class RateLimits {
  constructor(private readonly http: Http) {}

  /** One check of `cost` (default 1). Throws SafeBlockError for a `fail_closed` policy with
   * no tier, and InvalidRequestError (`cost_exceeds_capacity`) for a cost no wait can admit. */
  async check(policy: string, subject: string, cost = 1, call?: CallOptions): Promise<LimitResult> {
    const a = await this.http.send<RateLimitAnswer>(
      { method: "POST", path: `/v1/ratelimit/${seg(policy)}/${seg(subject)}/check`, body: { cost }, answers: [429] },
      call,
    );
    return result(a.body);
  }
  /** The counts now, without consuming. */
  async peek(policy: string, subject: string, call?: CallOptions): Promise<LimitResult> {
    const a = await this.http.send<RateLimitAnswer>({ method: "GET", path: `/v1/ratelimit/${seg(policy)}/${seg(subject)}` }, call);
    return result(a.body);
  }
  async reset(policy: string, subject: string, call?: CallOptions): Promise<RateLimitAnswer> {
    const path = `/v1/ratelimit/${seg(policy)}/${seg(subject)}/reset`;
    return (await this.http.send<RateLimitAnswer>({ method: "POST", path, repeatable: true }, call)).body;
  }
  /** Gives back `cost` (never above capacity), for a call that did not happen after all. */
  async refund(policy: string, subject: string, cost = 1, call?: CallOptions): Promise<RateLimitAnswer> {
    const path = `/v1/ratelimit/${seg(policy)}/${seg(subject)}/refund`;
    return (await this.http.send<RateLimitAnswer>({ method: "POST", path, body: { cost } }, call)).body;
  }
  /** Saves a policy; `ifMatch` (a version) makes it a compare-and-set (412 on mismatch). */
  async putPolicy(policy: string, body: S["Policy"], ifMatch?: number, call?: CallOptions): Promise<PolicyAnswer> {
    const headers = ifMatch === undefined ? undefined : { "if-match": `"${ifMatch}"` };
    return (await this.http.send<PolicyAnswer>({ method: "PUT", path: `/v1/ratelimit/policies/${seg(policy)}`, body, headers }, call)).body;
  }
  async getPolicy(policy: string, call?: CallOptions): Promise<PolicyAnswer> {
    return (await this.http.send<PolicyAnswer>({ method: "GET", path: `/v1/ratelimit/policies/${seg(policy)}` }, call)).body;
  }
  /** Other limits for one subject (for example 18 a minute for one clinic). */
  async putOverride(policy: string, subject: string, body: S["OverrideBody"], call?: CallOptions): Promise<PolicyAnswer> {
    const path = `/v1/ratelimit/policies/${seg(policy)}/overrides/${seg(subject)}`;
    return (await this.http.send<PolicyAnswer>({ method: "PUT", path, body }, call)).body;
  }
}

function result(a: RateLimitAnswer): LimitResult {
  const limits = a.limits ?? [];
  const tightest = limits.reduce<S["LimitEntry"] | undefined>((t, l) => (!t || l.remaining < t.remaining ? l : t), undefined);
  const state = a.state;
  return {
    success: state !== "limited",
    state,
    remaining: tightest?.remaining ?? 0,
    reset: Date.now() + (tightest?.reset_ms ?? 0),
    retryAfterMs: state === "limited" ? (a.retry_after_ms ?? 0) : 0,
    mode: a.mode,
    limits,
  };
}

/**
 * Checks until the call is admitted or `timeoutMs` passes, sleeping the server's retry time
 * between checks: the last result (with `success: false` at the deadline).
 */
export async function waitForLimit(
  limits: RateLimits,
  policy: string,
  subject: string,
  opts: { cost?: number; timeoutMs: number } & Omit<CallOptions, "timeoutMs">,
): Promise<LimitResult> {
  const deadline = Date.now() + opts.timeoutMs;
  // `timeoutMs` is the whole wait's, not each request's.
  const call: CallOptions = { correlationId: opts.correlationId, traceparent: opts.traceparent, signal: opts.signal };
  for (;;) {
    const r = await limits.check(policy, subject, opts.cost ?? 1, call);
    const left = deadline - Date.now();
    if (r.success || left <= 0 || r.retryAfterMs > left) return r;
    await sleep(Math.max(1, r.retryAfterMs), opts.signal);
  }
}
