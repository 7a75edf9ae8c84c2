// Locks, lock groups, semaphores and fences; and withLock, which never lets a callback believe
// it still holds a lease the server may have given to someone else.

import { hostname } from "node:os";
import { randomUUID } from "node:crypto";
import type { components } from "./generated/openapi.js";
import { LockLostError, WardenError } from "./errors.js";
import { type CallOptions, type Http, anySignal, sleep } from "./http.js";

type S = components["schemas"];
export type LockAnswer = S["LockAnswer"];
export type LockGroupAnswer = S["LockGroupAnswer"];
export type SemaphoreAnswer = S["SemaphoreAnswer"];
export type FenceAnswer = S["FenceAnswer"];
export type AcquireBody = S["AcquireBody"];

/** A path segment: keys may hold `/` (lock trees) and any UTF-8. */
export const seg = (s: string) => encodeURIComponent(s);

/** An owner id unique to this process and call: host, pid and a random part. */
export const newOwner = () => `${hostname()}:${process.pid}:${randomUUID()}`;

/** `POST/GET /v1/locks/…`: the raw calls. A busy or lost lock throws its typed error. */
export class Locks {
  constructor(private readonly http: Http) {}

  /** Acquires `key` for `body.owner`; throws LockBusyError (never acquired), DeadlockError
   * or SafeBlockError. */
  async acquire(key: string, body: AcquireBody, call?: CallOptions): Promise<LockAnswer> {
    const a = await this.http.send<LockAnswer>(
      { method: "POST", path: `/v1/locks/${seg(key)}/acquire`, body, holdMs: body.wait_ms ?? 0, repeatable: true },
      call,
    );
    return a.body;
  }

  /** Extends the lease; throws LockLostError (with `reason`) or NotOwnerError. */
  async extend(key: string, body: S["ExtendBody"], call?: CallOptions): Promise<LockAnswer> {
    return (await this.http.send<LockAnswer>({ method: "POST", path: `/v1/locks/${seg(key)}/extend`, body, repeatable: true }, call)).body;
  }

  /** Releases the lease; throws LockLostError when it had already ended. */
  async release(key: string, body: S["ReleaseBody"], call?: CallOptions): Promise<LockAnswer> {
    return (await this.http.send<LockAnswer>({ method: "POST", path: `/v1/locks/${seg(key)}/release`, body, repeatable: true }, call)).body;
  }

  /** The holders of `key`, or `null` when nobody holds it. */
  async get(key: string, call?: CallOptions): Promise<LockAnswer | null> {
    const a = await this.http.send<LockAnswer>({ method: "GET", path: `/v1/locks/${seg(key)}`, answers: [404] }, call);
    return a.status === 404 ? null : a.body;
  }

  /** Long poll: answers `held` when the wait ends with the lease still held, `lost` (with a
   * `reason`) as soon as it is lost. */
  async watch(key: string, owner: string, fencingToken: number, waitMs: number, call?: CallOptions): Promise<LockAnswer> {
    const a = await this.http.send<LockAnswer>(
      {
        method: "GET",
        path: `/v1/locks/${seg(key)}/watch`,
        query: { owner, fencing_token: fencingToken, wait_ms: waitMs },
        answers: [409],
        holdMs: waitMs,
      },
      call,
    );
    return a.body;
  }
}

/** `POST /v1/lock-groups/…`: several locks, all or nothing. */
export class LockGroups {
  constructor(private readonly http: Http) {}

  async acquire(body: S["GroupAcquireBody"], call?: CallOptions): Promise<LockGroupAnswer> {
    return (await this.http.send<LockGroupAnswer>({ method: "POST", path: "/v1/lock-groups/acquire", body, holdMs: body.wait_ms ?? 0 }, call)).body;
  }
  async extend(id: string, body: S["GroupTouchBody"], call?: CallOptions): Promise<LockGroupAnswer> {
    return (await this.http.send<LockGroupAnswer>({ method: "POST", path: `/v1/lock-groups/${seg(id)}/extend`, body, repeatable: true }, call)).body;
  }
  async release(id: string, body: S["GroupTouchBody"], call?: CallOptions): Promise<LockGroupAnswer> {
    return (await this.http.send<LockGroupAnswer>({ method: "POST", path: `/v1/lock-groups/${seg(id)}/release`, body, repeatable: true }, call)).body;
  }
}

/** `/v1/semaphores/…`: counted permits, each with its own fencing token. */
export class Semaphores {
  constructor(private readonly http: Http) {}

  /** Takes permits; throws SemaphoreFullError, a ConflictError `limit_mismatch` or SafeBlockError. */
  async acquire(name: string, body: S["PermitAcquireBody"], call?: CallOptions): Promise<SemaphoreAnswer> {
    return (await this.http.send<SemaphoreAnswer>({ method: "POST", path: `/v1/semaphores/${seg(name)}/acquire`, body, holdMs: body.wait_ms ?? 0 }, call)).body;
  }
  async extend(name: string, permitId: string, body: S["PermitExtendBody"], call?: CallOptions): Promise<SemaphoreAnswer> {
    const path = `/v1/semaphores/${seg(name)}/permits/${seg(permitId)}/extend`;
    return (await this.http.send<SemaphoreAnswer>({ method: "POST", path, body, repeatable: true }, call)).body;
  }
  async release(name: string, permitId: string, body: S["PermitReleaseBody"], call?: CallOptions): Promise<SemaphoreAnswer> {
    const path = `/v1/semaphores/${seg(name)}/permits/${seg(permitId)}/release`;
    return (await this.http.send<SemaphoreAnswer>({ method: "POST", path, body, repeatable: true }, call)).body;
  }
  async get(name: string, call?: CallOptions): Promise<SemaphoreAnswer> {
    return (await this.http.send<SemaphoreAnswer>({ method: "GET", path: `/v1/semaphores/${seg(name)}` }, call)).body;
  }
}

/** `POST /v1/fences/{resource}/check`: accepts `token` if no higher one was seen (and records
 * it); throws StaleTokenError (with `highest`) otherwise. Call it right before the side
 * effect, with the lock's fencing token. */
export async function fence(http: Http, resource: string, token: number, call?: CallOptions): Promise<FenceAnswer> {
  const a = await http.send<FenceAnswer>({ method: "POST", path: `/v1/fences/${seg(resource)}/check`, body: { token }, repeatable: true }, call);
  return a.body;
}

/** Options of [`withLock`]. */
export interface WithLockOptions extends CallOptions {
  /** The lease, in ms: renewed every third of it while the callback runs. */
  ttlMs: number;
  /** How long to wait for the lock (FIFO on the server); 0 (default) fails at once when busy. */
  waitMs?: number;
  /** `exclusive` (default) or `shared`. */
  mode?: "exclusive" | "shared";
  /** The owner id (default: unique per call). */
  owner?: string;
  /** The longest the lease may be held through renewals, in ms. */
  maxHoldMs?: number;
  /** Also hold a watch long poll, so a loss the server sees is known at once rather than at
   * the next renewal. */
  watch?: boolean;
  /** Called when the release after a successful callback fails (the lease then ends at its
   * TTL); the callback's result is returned regardless. */
  onReleaseError?: (error: unknown) => void;
}

/** What the callback of [`withLock`] gets. */
export interface LockContext {
  key: string;
  owner: string;
  /** Pass it to the side effect (and check it with `fence`). */
  fencingToken: number;
  /** Aborts, with a LockLostError as its reason, the moment the lease is lost or could lapse
   * before a renewal answers. */
  signal: AbortSignal;
}

/**
 * Runs `fn` under the lock `key`. Throws LockBusyError when the lock was never acquired, and
 * LockLostError when it was lost while `fn` ran — even if `fn` resolved — without sending a
 * release for a lease that is no longer this caller's. When `fn` throws, its error is what
 * this throws (the release is still attempted, and its failure never masks `fn`'s error). No
 * timer or request outlives the call.
 */
export async function withLock<T>(
  locks: Locks,
  key: string,
  opts: WithLockOptions,
  fn: (ctx: LockContext) => Promise<T> | T,
): Promise<T> {
  const owner = opts.owner ?? newOwner();
  const ttl = opts.ttlMs;
  const call: CallOptions = { correlationId: opts.correlationId, traceparent: opts.traceparent, signal: opts.signal };
  const sentAt = Date.now();
  const grant = await locks.acquire(
    key,
    { owner, ttl_ms: ttl, wait_ms: opts.waitMs ?? 0, mode: opts.mode, max_hold_ms: opts.maxHoldMs },
    call,
  );
  const token = Number(grant.fencing_token);
  // The lease is counted from when its request was sent: never later than the server's own
  // count, so it lapses here no later than there.
  let leaseEnds = sentAt + Math.min(ttl, grant.ttl_ms_remaining ?? ttl);
  const lostCtl = new AbortController();
  const done = new AbortController();
  let lost: LockLostError | undefined;
  const lose = (reason: string, body?: unknown, correlationId = "") => {
    if (lost) return;
    lost = new LockLostError({
      status: 409,
      code: "lock_lost",
      detail: reason,
      correlationId,
      body: { state: "lock_lost", reason, ...(body as object | undefined) },
    });
    lostCtl.abort(lost);
  };
  const margin = Math.min(100, ttl / 10);
  let lapse: ReturnType<typeof setTimeout> | undefined;
  let renewTimer: ReturnType<typeof setTimeout> | undefined;
  const armLapse = () => {
    clearTimeout(lapse);
    lapse = setTimeout(() => lose("lease_unconfirmed"), Math.max(0, leaseEnds - Date.now() - margin));
  };
  const renew = async () => {
    if (done.signal.aborted || lost) return;
    const sent = Date.now();
    try {
      await locks.extend(key, { owner, fencing_token: token, ttl_ms: ttl }, {
        signal: done.signal,
        timeoutMs: Math.max(1, leaseEnds - sent),
        correlationId: opts.correlationId,
      });
      leaseEnds = sent + ttl;
      armLapse();
    } catch (e) {
      if (done.signal.aborted) return;
      if (e instanceof WardenError && (e.code === "lock_lost" || e.code === "not_owner")) {
        return lose(String((e.body as { reason?: string })?.reason ?? e.code), e.body, e.correlationId);
      }
      // Unreachable or refused for now: try again sooner, until the lease would lapse.
      renewTimer = setTimeout(renew, Math.max(20, Math.min(ttl / 3, (leaseEnds - Date.now()) / 3)));
      return;
    }
    renewTimer = setTimeout(renew, ttl / 3);
  };
  armLapse();
  renewTimer = setTimeout(renew, ttl / 3);
  const watching = opts.watch ? watchLoop(locks, key, owner, token, done.signal, lose) : undefined;

  const signal = opts.signal ? anySignal([lostCtl.signal, opts.signal]) : lostCtl.signal;
  let result: T | undefined;
  let failure: { error: unknown } | undefined;
  try {
    result = await fn({ key, owner, fencingToken: token, signal });
  } catch (error) {
    failure = { error };
  } finally {
    done.abort();
    clearTimeout(lapse);
    clearTimeout(renewTimer);
  }
  await watching;
  if (lost) {
    const l = lost as LockLostError;
    if (failure && failure.error !== l) Object.defineProperty(l, "cause", { value: failure.error, enumerable: false });
    throw l;
  }
  try {
    await locks.release(key, { owner, fencing_token: token }, call);
  } catch (e) {
    if (failure) throw failure.error;
    if (e instanceof LockLostError) throw e;
    opts.onReleaseError?.(e);
  }
  if (failure) throw failure.error;
  return result as T;
}

async function watchLoop(
  locks: Locks,
  key: string,
  owner: string,
  token: number,
  stop: AbortSignal,
  lose: (reason: string, body?: unknown, correlationId?: string) => void,
): Promise<void> {
  while (!stop.aborted) {
    try {
      const a = await locks.watch(key, owner, token, 30_000, { signal: stop });
      if (a.state !== "held") return lose(String(a.reason ?? a.state), a);
    } catch (e) {
      if (stop.aborted) return;
      if (e instanceof WardenError && e.status >= 400 && e.status < 500 && e.status !== 429) {
        return lose(String((e.body as { reason?: string })?.reason ?? e.code), e.body, e.correlationId);
      }
      await sleep(200, stop).catch(() => undefined);
    }
  }
}

