// Causal streams (intake, dispatch, ordered commits, replay), the manual review queue, and
// flash-sale inventory with reservations.

import type { components } from "./generated/openapi.js";
import { type CallOptions, type Http } from "./http.js";
import { seg } from "./locks.js";

type S = components["schemas"];
export type StreamAnswer = S["StreamAnswer"];
export type ReservationAnswer = S["ReservationAnswer"];
export type StockAnswer = S["StockAnswer"];

/** `/v1/streams/…` and `/v1/dispatch/claim`: per-stream commits in causal order. */
export class Streams {
  constructor(private readonly http: Http) {}

  /** Accepts an intent (201) or recognises an identical repeat (200, the same sequence).
   * Allowed in safe mode. Safe to repeat: intents are idempotent by `intent_id`. */
  async intake(stream: string, body: S["IntakeBody"], call?: CallOptions): Promise<StreamAnswer> {
    const path = `/v1/streams/${seg(stream)}/intents`;
    return (await this.http.send<StreamAnswer>({ method: "POST", path, body, repeatable: true }, call)).body;
  }
  /** Leases up to `limit` intents to `worker`, by priority then arrival. */
  async claim(body: S["ClaimBody"], call?: CallOptions): Promise<StreamAnswer> {
    return (await this.http.send<StreamAnswer>({ method: "POST", path: "/v1/dispatch/claim", body }, call)).body;
  }
  /** Commits in sequence: `committed_causal` (200) or `waiting_previous_commit` (202, when
   * the wait ended first); throws a ConflictError `blocked_conflict` (sent to review). */
  async commit(stream: string, body: S["CommitBody"], call?: CallOptions): Promise<StreamAnswer> {
    const path = `/v1/streams/${seg(stream)}/commits`;
    return (await this.http.send<StreamAnswer>({ method: "POST", path, body, holdMs: body.wait_ms ?? 0, repeatable: true }, call)).body;
  }
  /** Replays an intent as of a version: `replayed`; a ConflictError `conflict_blocked`; a
   * GoneError `expired_manual`. */
  async replay(stream: string, intentId: string, asOfVersion: number, call?: CallOptions): Promise<StreamAnswer> {
    const path = `/v1/streams/${seg(stream)}/intents/${seg(intentId)}/replay`;
    return (await this.http.send<StreamAnswer>({ method: "POST", path, body: { as_of_version: asOfVersion } }, call)).body;
  }
  async get(stream: string, call?: CallOptions): Promise<StreamAnswer> {
    return (await this.http.send<StreamAnswer>({ method: "GET", path: `/v1/streams/${seg(stream)}` }, call)).body;
  }
}

/** `/v1/review`: intents that need a person. */
export class Review {
  constructor(private readonly http: Http) {}

  async list(state?: string, limit?: number, call?: CallOptions): Promise<S["ReviewAnswer"]> {
    return (await this.http.send<S["ReviewAnswer"]>({ method: "GET", path: "/v1/review", query: { state, limit } }, call)).body;
  }
  async resolve(id: string, body: S["ResolveBody"], call?: CallOptions): Promise<S["ReviewAnswer"]> {
    return (await this.http.send<S["ReviewAnswer"]>({ method: "POST", path: `/v1/review/${seg(id)}/resolve`, body }, call)).body;
  }
}

/** `/v1/inventory/…` and `/v1/reservations/…`: stock that is never oversold. */
export class Inventory {
  constructor(private readonly http: Http) {}

  async setTotal(sku: string, total: number, call?: CallOptions): Promise<StockAnswer> {
    return (await this.http.send<StockAnswer>({ method: "PUT", path: `/v1/inventory/${seg(sku)}`, body: { total } }, call)).body;
  }
  async get(sku: string, call?: CallOptions): Promise<StockAnswer | null> {
    const a = await this.http.send<StockAnswer>({ method: "GET", path: `/v1/inventory/${seg(sku)}`, answers: [404] }, call);
    return a.status === 404 ? null : a.body;
  }
  /** Holds `quantity` for `user_id`: `reserved` (201), or the answer `out_of_stock` /
   * `already_reserved` (409, returned, not thrown: a sold-out sale is not an error). With an
   * `idempotencyKey`, the request is safe to repeat and repeats return the same hold. */
  async reserve(sku: string, body: S["ReserveBody"], idempotencyKey?: string, call?: CallOptions): Promise<ReservationAnswer> {
    const headers = idempotencyKey ? { "idempotency-key": idempotencyKey } : undefined;
    const a = await this.http.send<ReservationAnswer>(
      { method: "POST", path: `/v1/inventory/${seg(sku)}/reservations`, body, headers, answers: [409], repeatable: !!idempotencyKey },
      call,
    );
    return a.body;
  }
  /** Confirms a hold (`confirmed`); a GoneError `expired` when it lapsed first. */
  async confirm(id: string, call?: CallOptions): Promise<ReservationAnswer> {
    return (await this.http.send<ReservationAnswer>({ method: "POST", path: `/v1/reservations/${seg(id)}/confirm`, repeatable: true }, call)).body;
  }
  async release(id: string, call?: CallOptions): Promise<ReservationAnswer> {
    return (await this.http.send<ReservationAnswer>({ method: "POST", path: `/v1/reservations/${seg(id)}/release`, repeatable: true }, call)).body;
  }
}
