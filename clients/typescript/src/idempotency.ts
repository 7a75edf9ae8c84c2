// Idempotency keys, and `idempotent`: a function run at most once per key across processes,
// whose saved result every later caller gets back instead of running it again.

import type { components } from "./generated/openapi.js";
import { type CallOptions, type Http } from "./http.js";
import { seg } from "./locks.js";

type S = components["schemas"];
export type IdemAnswer = S["IdemAnswer"];

/** `/v1/idempotency/{key}/…`: the raw calls. */
export class Idempotency {
  constructor(private readonly http: Http) {}

  /** Claims `key`: `started` (201, with a `token`) or `completed` (200, the saved
   * `response`); throws InProgressError, FingerprintMismatchError or SafeBlockError. */
  async begin(key: string, body: S["BeginBody"] = {}, call?: CallOptions): Promise<IdemAnswer> {
    const holdMs = body.wait_ms ?? 0;
    return (await this.http.send<IdemAnswer>({ method: "POST", path: `/v1/idempotency/${seg(key)}/begin`, body, holdMs }, call)).body;
  }
  /** Saves the response; throws IdempotencyConflictError when the claim is no longer this token's. */
  async complete(key: string, token: number, response: unknown, call?: CallOptions): Promise<IdemAnswer> {
    const body = { token, response } as S["CompleteBody"];
    return (await this.http.send<IdemAnswer>({ method: "POST", path: `/v1/idempotency/${seg(key)}/complete`, body, repeatable: true }, call)).body;
  }
  /** Gives the claim up so the key may be begun again. */
  async fail(key: string, token: number, call?: CallOptions): Promise<IdemAnswer> {
    return (await this.http.send<IdemAnswer>({ method: "POST", path: `/v1/idempotency/${seg(key)}/fail`, body: { token }, repeatable: true }, call)).body;
  }
  /** Extends the claim's lease. */
  async extend(key: string, token: number, leaseMs: number, call?: CallOptions): Promise<IdemAnswer> {
    const body = { token, lease_ms: leaseMs };
    return (await this.http.send<IdemAnswer>({ method: "POST", path: `/v1/idempotency/${seg(key)}/extend`, body, repeatable: true }, call)).body;
  }
}

/** Options of [`idempotent`]. */
export interface IdempotentOptions extends CallOptions {
  /** A hash of the request: the same key with another fingerprint throws FingerprintMismatchError. */
  fingerprint?: string;
  /** The claim's lease in ms (default 30 000), renewed every third of it while `fn` runs. */
  leaseMs?: number;
  /** How long the saved result is kept, in ms (server default: a day). */
  ttlMs?: number;
  /** How long to wait for another caller's run of the same key to finish (default 0: throw
   * InProgressError at once; at most 60 000). */
  waitMs?: number;
}

/** What `fn` gets: the claim's token (larger than any earlier claim of the key). */
export interface IdempotentContext {
  key: string;
  token: number;
}

/**
 * Runs `fn` at most once for `key` across every process, and returns its result; a later (or
 * concurrent, with `waitMs`) caller gets the saved result without running `fn`. When `fn`
 * throws, the claim is released (so the key can be tried again) and `fn`'s error is thrown.
 * The result must be JSON. Throws InProgressError, FingerprintMismatchError,
 * IdempotencyConflictError (the claim lapsed and another caller completed the key) or
 * SafeBlockError.
 */
export async function idempotent<T>(
  api: Idempotency,
  key: string,
  opts: IdempotentOptions,
  fn: (ctx: IdempotentContext) => Promise<T> | T,
): Promise<T> {
  const call: CallOptions = { correlationId: opts.correlationId, traceparent: opts.traceparent, signal: opts.signal };
  const leaseMs = opts.leaseMs ?? 30_000;
  const begun = await api.begin(
    key,
    { fingerprint: opts.fingerprint, lease_ms: leaseMs, ttl_ms: opts.ttlMs, wait_ms: opts.waitMs ?? 0 },
    call,
  );
  if (begun.state === "completed") return begun.response as T;
  const token = Number(begun.token);
  let done = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const renew = () => {
    if (done) return;
    timer = setTimeout(() => {
      api.extend(key, token, leaseMs, { correlationId: opts.correlationId }).then(renew, renew);
    }, leaseMs / 3);
  };
  renew();
  let result: T;
  try {
    result = await fn({ key, token });
  } catch (error) {
    done = true;
    clearTimeout(timer);
    await api.fail(key, token, call).catch(() => undefined);
    throw error;
  } finally {
    done = true;
    clearTimeout(timer);
  }
  await api.complete(key, token, result === undefined ? null : result, call);
  return result;
}
