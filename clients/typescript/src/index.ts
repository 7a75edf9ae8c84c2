// @warden/client: a zero-dependency client for Warden (Node >= 18.18, global fetch).

export { Warden } from "./client.js";
export * from "./errors.js";
export type { Answer, CallOptions, WardenOptions } from "./http.js";
export { Locks, LockGroups, Semaphores, withLock } from "./locks.js";
export type { LockContext, WithLockOptions, LockAnswer, LockGroupAnswer, SemaphoreAnswer, FenceAnswer } from "./locks.js";
export { Idempotency, idempotent } from "./idempotency.js";
export type { IdempotentOptions, IdempotentContext, IdemAnswer } from "./idempotency.js";
export { Cache, getOrLoad } from "./cache.js";
export type { GetOrLoadOptions, CacheAnswer } from "./cache.js";
export { RateLimits, waitForLimit } from "./ratelimit.js";
export type { LimitResult, RateLimitAnswer, PolicyAnswer } from "./ratelimit.js";
export { Kv, Sessions } from "./records.js";
export type { KvAnswer, SessionAnswer } from "./records.js";
export { Streams, Review, Inventory } from "./flows.js";
export type { StreamAnswer, ReservationAnswer, StockAnswer } from "./flows.js";
export { Incidents, Guard, Admin } from "./operations.js";
export type { IncidentAnswer, GuardAnswer } from "./operations.js";
export type { components } from "./generated/openapi.js";
