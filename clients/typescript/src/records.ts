// Records with versions: the key-value store and sessions. A version mismatch throws
// VersionConflictError; a missing record is `null`, a gone session a GoneError.

import type { components } from "./generated/openapi.js";
import { type CallOptions, type Http } from "./http.js";
import { seg } from "./locks.js";

type S = components["schemas"];
export type KvAnswer = S["KvAnswer"];
export type SessionAnswer = S["SessionAnswer"];

/** `/v1/kv/{key}`: durable JSON values with versions and an optional expiry. */
export class Kv {
  constructor(private readonly http: Http) {}

  /** Stores `value` (any JSON, ≤ 1 MiB); `expectedVersion` 0 means "only if absent". */
  async put(key: string, value: unknown, opts: { ttlMs?: number; expectedVersion?: number } = {}, call?: CallOptions): Promise<KvAnswer> {
    const body = { value, ttl_ms: opts.ttlMs, expected_version: opts.expectedVersion };
    return (await this.http.send<KvAnswer>({ method: "PUT", path: `/v1/kv/${seg(key)}`, body }, call)).body;
  }
  /** The record (`value`, `version`, `expires_at`), or `null`. */
  async get(key: string, call?: CallOptions): Promise<KvAnswer | null> {
    const a = await this.http.send<KvAnswer>({ method: "GET", path: `/v1/kv/${seg(key)}`, answers: [404] }, call);
    return a.status === 404 ? null : a.body;
  }
  async delete(key: string, expectedVersion?: number, call?: CallOptions): Promise<KvAnswer> {
    const body = expectedVersion === undefined ? undefined : { expected_version: expectedVersion };
    return (await this.http.send<KvAnswer>({ method: "DELETE", path: `/v1/kv/${seg(key)}`, body }, call)).body;
  }
}

/** `/v1/sessions/…`: server sessions whose ids are bearer secrets. */
export class Sessions {
  constructor(private readonly http: Http) {}

  /** Creates one; throws a ConflictError `session_limit_reached` past `max_per_principal`
   * with `on_limit: reject`. */
  async create(body: S["CreateBody"], call?: CallOptions): Promise<SessionAnswer> {
    return (await this.http.send<SessionAnswer>({ method: "POST", path: "/v1/sessions", body }, call)).body;
  }
  /** The live session, or `null` if it never existed; a GoneError (`expired`, `revoked`,
   * `rotated`) if it ended. `touch` slides its idle expiry. */
  async get(id: string, touch = false, call?: CallOptions): Promise<SessionAnswer | null> {
    const a = await this.http.send<SessionAnswer>({ method: "GET", path: `/v1/sessions/${seg(id)}`, query: { touch }, answers: [404] }, call);
    return a.status === 404 ? null : a.body;
  }
  async touch(id: string, call?: CallOptions): Promise<SessionAnswer> {
    return (await this.http.send<SessionAnswer>({ method: "POST", path: `/v1/sessions/${seg(id)}/touch`, repeatable: true }, call)).body;
  }
  /** Replaces the data if the version matches. */
  async put(id: string, data: Record<string, unknown>, expectedVersion: number, call?: CallOptions): Promise<SessionAnswer> {
    const body = { data, expected_version: expectedVersion } as S["SessionPutBody"];
    return (await this.http.send<SessionAnswer>({ method: "PUT", path: `/v1/sessions/${seg(id)}`, body }, call)).body;
  }
  /** Applies a JSON merge patch (RFC 7396), optionally under a version check. */
  async patch(id: string, data: Record<string, unknown>, expectedVersion?: number, call?: CallOptions): Promise<SessionAnswer> {
    const body = { data, expected_version: expectedVersion } as S["PatchBody"];
    return (await this.http.send<SessionAnswer>({ method: "PATCH", path: `/v1/sessions/${seg(id)}`, body }, call)).body;
  }
  /** A new id for the same session (after a login); the old one answers `rotated`. */
  async rotate(id: string, call?: CallOptions): Promise<SessionAnswer> {
    return (await this.http.send<SessionAnswer>({ method: "POST", path: `/v1/sessions/${seg(id)}/rotate` }, call)).body;
  }
  async revoke(id: string, call?: CallOptions): Promise<SessionAnswer> {
    return (await this.http.send<SessionAnswer>({ method: "DELETE", path: `/v1/sessions/${seg(id)}` }, call)).body;
  }
  /** A principal's live sessions. */
  async list(principal: string, call?: CallOptions): Promise<S["SessionPage"]> {
    return (await this.http.send<S["SessionPage"]>({ method: "GET", path: `/v1/principals/${seg(principal)}/sessions` }, call)).body;
  }
  /** "Log out everywhere": revokes every session of `principal`. */
  async revokeAll(principal: string, call?: CallOptions): Promise<SessionAnswer> {
    return (await this.http.send<SessionAnswer>({ method: "DELETE", path: `/v1/principals/${seg(principal)}/sessions` }, call)).body;
  }
  /** Session events after a cursor, at least once. */
  async events(after?: number, limit?: number, call?: CallOptions): Promise<S["SessionPage"]> {
    return (await this.http.send<S["SessionPage"]>({ method: "GET", path: "/v1/sessions/events", query: { after, limit } }, call)).body;
  }
}
