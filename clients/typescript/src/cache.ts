// The cache, and `getOrLoad`: one loader per key across every process (the server hands out one
// lease per key), stale values served while a reload runs.

import type { components } from "./generated/openapi.js";
import { ConflictError, WardenError } from "./errors.js";
import { type CallOptions, type Http, sleep } from "./http.js";
import { seg } from "./locks.js";

type S = components["schemas"];
export type CacheAnswer = S["CacheAnswer"];

/** `/v1/cache/{ns}/…`: the raw calls. */
export class Cache {
  constructor(private readonly http: Http) {}

  /** The entry: `hit` or `stale` (with `allowStale`), or `null` on a miss. */
  async get(ns: string, key: string, allowStale = false, call?: CallOptions): Promise<CacheAnswer | null> {
    const a = await this.http.send<CacheAnswer>(
      { method: "GET", path: `/v1/cache/${seg(ns)}/${seg(key)}`, query: { allow_stale: allowStale }, answers: [404] },
      call,
    );
    return a.status === 404 ? null : a.body;
  }
  /** `hit`, `refresh` (value and a lease: reload early), `miss_lease` (load it), `stale`, or
   * `miss_wait` (202: another caller loads it; ask again after `retry_after_ms`). */
  async fetch(ns: string, key: string, body: S["FetchBody"] = {}, call?: CallOptions): Promise<CacheAnswer> {
    return (await this.http.send<CacheAnswer>({ method: "POST", path: `/v1/cache/${seg(ns)}/${seg(key)}/fetch`, body }, call)).body;
  }
  /** Stores a value; under a lease, throws a ConflictError `lease_invalid` when the key was
   * deleted or invalidated since the lease was given. */
  async put(ns: string, key: string, body: S["CachePutBody"], call?: CallOptions): Promise<CacheAnswer> {
    return (await this.http.send<CacheAnswer>({ method: "PUT", path: `/v1/cache/${seg(ns)}/${seg(key)}`, body }, call)).body;
  }
  async delete(ns: string, key: string, call?: CallOptions): Promise<CacheAnswer> {
    return (await this.http.send<CacheAnswer>({ method: "DELETE", path: `/v1/cache/${seg(ns)}/${seg(key)}` }, call)).body;
  }
  async invalidateTag(ns: string, tag: string, call?: CallOptions): Promise<CacheAnswer> {
    const path = `/v1/cache/${seg(ns)}/tags/${seg(tag)}/invalidate`;
    return (await this.http.send<CacheAnswer>({ method: "POST", path, repeatable: true }, call)).body;
  }
  async invalidateNamespace(ns: string, call?: CallOptions): Promise<CacheAnswer> {
    return (await this.http.send<CacheAnswer>({ method: "POST", path: `/v1/cache/${seg(ns)}/invalidate`, repeatable: true }, call)).body;
  }
  async warm(ns: string, body: S["WarmBody"], call?: CallOptions): Promise<CacheAnswer> {
    return (await this.http.send<CacheAnswer>({ method: "POST", path: `/v1/cache/${seg(ns)}/warm`, body, repeatable: true }, call)).body;
  }
  async stats(ns: string, call?: CallOptions): Promise<S["StatsAnswer"]> {
    return (await this.http.send<S["StatsAnswer"]>({ method: "GET", path: `/v1/cache/${seg(ns)}/stats` }, call)).body;
  }
}

/** Options of [`getOrLoad`]. */
export interface GetOrLoadOptions extends CallOptions {
  /** Fresh for this long, ms. */
  ttlMs: number;
  /** Served stale for this long after, ms, while one caller reloads. */
  staleTtlMs?: number;
  /** The loader's lease, ms (default: the server's): another caller may load after it lapses. */
  leaseMs?: number;
  tags?: string[];
  /** How long to wait for another caller's load before giving up, ms (default 30 000). */
  waitMs?: number;
  /** Called when a background reload (early recompute) fails; the cached value stays. */
  onRefreshError?: (error: unknown) => void;
}

/**
 * The cached value of `ns`/`key`, loading it with `loader` on a miss. Across processes, one
 * caller at a time loads a key (the one holding the server's lease); the others wait for its
 * value, or get the stale one while it reloads. When the server picks this caller to reload a
 * value early, the current value is returned at once and the reload runs in the background.
 * A value invalidated while it was loading is returned to this caller but not stored.
 */
export async function getOrLoad<T>(
  cache: Cache,
  ns: string,
  key: string,
  loader: () => Promise<T> | T,
  opts: GetOrLoadOptions,
): Promise<T> {
  const call: CallOptions = { correlationId: opts.correlationId, traceparent: opts.traceparent, signal: opts.signal };
  const deadline = Date.now() + (opts.waitMs ?? 30_000);
  const store = async (leaseToken: number, value: T, computeMs: number) => {
    try {
      await cache.put(
        ns,
        key,
        {
          value,
          ttl_ms: opts.ttlMs,
          stale_ttl_ms: opts.staleTtlMs,
          tags: opts.tags,
          lease_token: leaseToken,
          compute_ms: Math.max(0, Math.round(computeMs)),
        } as S["CachePutBody"],
        call,
      );
    } catch (e) {
      // Deleted or invalidated while loading: the caller keeps its value, the cache stays empty.
      if (!(e instanceof ConflictError && e.code === "lease_invalid")) throw e;
    }
  };
  for (;;) {
    const a = await cache.fetch(ns, key, { allow_stale: true, lease_ms: opts.leaseMs }, call);
    switch (a.state) {
      case "hit":
      case "stale":
        return a.value as T;
      case "refresh": {
        const token = Number(a.lease_token);
        const started = performance.now();
        Promise.resolve()
          .then(loader)
          .then((v) => store(token, v, performance.now() - started))
          .catch((e) => opts.onRefreshError?.(e));
        return a.value as T;
      }
      case "miss_lease": {
        const started = performance.now();
        const value = await loader();
        await store(Number(a.lease_token), value, performance.now() - started);
        return value;
      }
      case "miss_wait": {
        const left = deadline - Date.now();
        if (left <= 0) {
          throw new WardenError({
            status: 202,
            code: "miss_wait",
            detail: `another caller is still loading ${ns}/${key}`,
            correlationId: call.correlationId ?? "",
            body: a,
          });
        }
        await sleep(Math.min(left, Math.max(10, a.retry_after_ms ?? 50)), opts.signal);
        continue;
      }
      default:
        throw new WardenError({ status: 200, code: a.state, detail: "unexpected cache answer", correlationId: "", body: a });
    }
  }
}
