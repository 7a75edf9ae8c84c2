// The Warden client: the story 1.5 interface (`set`, `get`, `del`, `lock`, `unlock`), the
// helpers that get the subtle parts right, and every API group under its own name.

import { Cache, type GetOrLoadOptions, getOrLoad } from "./cache.js";
import { Inventory, Review, Streams } from "./flows.js";
import { Http, type CallOptions, type WardenOptions } from "./http.js";
import { Idempotency, type IdempotentContext, type IdempotentOptions, idempotent } from "./idempotency.js";
import {
  type FenceAnswer,
  type LockContext,
  LockGroups,
  Locks,
  Semaphores,
  type WithLockOptions,
  fence,
  newOwner,
  withLock,
} from "./locks.js";
import { Admin, Guard, Incidents } from "./operations.js";
import { type LimitResult, RateLimits, waitForLimit } from "./ratelimit.js";
import { Kv, Sessions } from "./records.js";
import { LockBusyError } from "./errors.js";

/** A client of one Warden deployment. Safe to share: it holds no connection of its own
 * (fetch's keep-alive pool carries the requests) and no state but the locks `lock()` took. */
export class Warden {
  readonly http: Http;
  readonly locks: Locks;
  readonly lockGroups: LockGroups;
  readonly semaphores: Semaphores;
  readonly idempotency: Idempotency;
  readonly kv: Kv;
  readonly sessions: Sessions;
  readonly cache: Cache;
  readonly rateLimits: RateLimits;
  readonly streams: Streams;
  readonly review: Review;
  readonly inventory: Inventory;
  readonly incidents: Incidents;
  readonly guard: Guard;
  readonly admin: Admin;
  /** The owner id `lock()` and `unlock()` use: one per client. */
  readonly owner: string;
  private readonly held = new Map<string, number>();

  constructor(options: WardenOptions) {
    this.http = new Http(options);
    this.locks = new Locks(this.http);
    this.lockGroups = new LockGroups(this.http);
    this.semaphores = new Semaphores(this.http);
    this.idempotency = new Idempotency(this.http);
    this.kv = new Kv(this.http);
    this.sessions = new Sessions(this.http);
    this.cache = new Cache(this.http);
    this.rateLimits = new RateLimits(this.http);
    this.streams = new Streams(this.http);
    this.review = new Review(this.http);
    this.inventory = new Inventory(this.http);
    this.incidents = new Incidents(this.http);
    this.guard = new Guard(this.http);
    this.admin = new Admin(this.http);
    this.owner = newOwner();
  }

  // The story 1.5 interface (`src/lib/api/redis-client.ts`), over KV and locks.

  /** Stores `value` (any JSON) under `key`, expiring after `ttl` ms when given. */
  async set(key: string, value: unknown, ttl?: number): Promise<void> {
    await this.kv.put(key, value, { ttlMs: ttl });
  }

  /** The value under `key`, or `null` when there is none (or it expired). */
  async get(key: string): Promise<unknown> {
    const r = await this.kv.get(key);
    return r ? r.value : null;
  }

  /** Deletes `key` (nothing happens when it is absent). */
  async del(key: string): Promise<void> {
    await this.kv.delete(key);
  }

  /** Takes the lock `key` for `ttl` ms without waiting: `true` when this client holds it now,
   * `false` when another owner does. Keep the fencing token with `lockToken(key)`. */
  async lock(key: string, ttl: number): Promise<boolean> {
    try {
      const g = await this.locks.acquire(key, { owner: this.owner, ttl_ms: ttl, wait_ms: 0 });
      this.held.set(key, Number(g.fencing_token));
      return true;
    } catch (e) {
      if (e instanceof LockBusyError) return false;
      throw e;
    }
  }

  /** The fencing token of a lock `lock()` took, if this client holds it. */
  lockToken(key: string): number | undefined {
    return this.held.get(key);
  }

  /** Releases a lock `lock()` took, with the token it holds. Nothing happens when this client
   * does not hold `key`; a LockLostError says the lease had ended before the release (work
   * done under it near the end was not protected). */
  async unlock(key: string): Promise<void> {
    const token = this.held.get(key);
    if (token === undefined) return;
    this.held.delete(key);
    await this.locks.release(key, { owner: this.owner, fencing_token: token });
  }

  // Helpers.

  /** Runs `fn` under the lock `key` (see `withLock` in the README): the fencing token and an
   * AbortSignal for `fn`, renewal every third of the TTL, LockBusyError when never acquired
   * and LockLostError when lost during the call, never a release of a lost lock. */
  withLock<T>(key: string, opts: WithLockOptions, fn: (ctx: LockContext) => Promise<T> | T): Promise<T> {
    return withLock(this.locks, key, opts, fn);
  }

  /** Runs `fn` at most once for `key` across processes; later callers get its saved result. */
  idempotent<T>(key: string, opts: IdempotentOptions, fn: (ctx: IdempotentContext) => Promise<T> | T): Promise<T> {
    return idempotent(this.idempotency, key, opts, fn);
  }

  /** The cached value, loaded by one caller at a time across processes on a miss. */
  getOrLoad<T>(namespace: string, key: string, loader: () => Promise<T> | T, opts: GetOrLoadOptions): Promise<T> {
    return getOrLoad(this.cache, namespace, key, loader, opts);
  }

  /** One rate-limit check: `{ success, remaining, reset, retryAfterMs }`. */
  limit(policy: string, subject: string, opts: { cost?: number } & CallOptions = {}): Promise<LimitResult> {
    return this.rateLimits.check(policy, subject, opts.cost ?? 1, opts);
  }

  /** Checks until admitted or `timeoutMs` passes. */
  waitForLimit(policy: string, subject: string, opts: { cost?: number; timeoutMs: number } & Omit<CallOptions, "timeoutMs">): Promise<LimitResult> {
    return waitForLimit(this.rateLimits, policy, subject, opts);
  }

  /** Accepts `token` for `resource` unless a higher one was seen: call it right before the
   * side effect. Throws StaleTokenError for an old holder's token. */
  fence(resource: string, token: number, call?: CallOptions): Promise<FenceAnswer> {
    return fence(this.http, resource, token, call);
  }
}
