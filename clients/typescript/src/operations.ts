// The operator's side: incidents and their ACK, the guard, the audit log, tokens and status.

import type { components } from "./generated/openapi.js";
import { type CallOptions, type Http } from "./http.js";
import { seg } from "./locks.js";

type S = components["schemas"];
export type IncidentAnswer = S["IncidentAnswer"];
export type GuardAnswer = S["GuardAnswer"];

/** `/v1/incidents/…`. */
export class Incidents {
  constructor(private readonly http: Http) {}

  /** Triggers (or deduplicates, by `dedup_key`) an incident: `triggered` / `deduplicated`. */
  async trigger(body: Omit<S["IncidentBody"], "event_action">, call?: CallOptions): Promise<IncidentAnswer> {
    const b = { ...body, event_action: "trigger" } as S["IncidentBody"];
    return (await this.http.send<IncidentAnswer>({ method: "POST", path: "/v1/incidents", body: b, repeatable: !!body.dedup_key }, call)).body;
  }
  async list(state?: string, limit?: number, call?: CallOptions): Promise<IncidentAnswer> {
    return (await this.http.send<IncidentAnswer>({ method: "GET", path: "/v1/incidents", query: { state, limit } }, call)).body;
  }
  async get(id: string, call?: CallOptions): Promise<IncidentAnswer> {
    return (await this.http.send<IncidentAnswer>({ method: "GET", path: `/v1/incidents/${seg(id)}` }, call)).body;
  }
  /** Acknowledges (idempotent): stops the repeats and the no-ACK escalation to safe mode. */
  async ack(id: string, call?: CallOptions): Promise<IncidentAnswer> {
    return (await this.http.send<IncidentAnswer>({ method: "POST", path: `/v1/incidents/${seg(id)}/ack`, repeatable: true }, call)).body;
  }
  async resolve(id: string, call?: CallOptions): Promise<IncidentAnswer> {
    return (await this.http.send<IncidentAnswer>({ method: "POST", path: `/v1/incidents/${seg(id)}/resolve`, repeatable: true }, call)).body;
  }
  async note(id: string, note: string, call?: CallOptions): Promise<IncidentAnswer> {
    return (await this.http.send<IncidentAnswer>({ method: "POST", path: `/v1/incidents/${seg(id)}/notes`, body: { note } }, call)).body;
  }
  async evidence(id: string, call?: CallOptions): Promise<Record<string, unknown>> {
    return (await this.http.send({ method: "GET", path: `/v1/incidents/${seg(id)}/evidence` }, call)).body;
  }
}

/** `/v1/guard/…`: safe mode. */
export class Guard {
  constructor(private readonly http: Http) {}

  async get(call?: CallOptions): Promise<GuardAnswer> {
    return (await this.http.send<GuardAnswer>({ method: "GET", path: "/v1/guard" }, call)).body;
  }
  async enter(reason: string, call?: CallOptions): Promise<GuardAnswer> {
    return (await this.http.send<GuardAnswer>({ method: "POST", path: "/v1/guard/enter", body: { reason }, repeatable: true }, call)).body;
  }
  async recoveryAction(body: S["RecoveryBody"], call?: CallOptions): Promise<GuardAnswer> {
    return (await this.http.send<GuardAnswer>({ method: "POST", path: "/v1/guard/recovery-actions", body }, call)).body;
  }
  /** `normal` (200) or `exit_armed` (202); a ConflictError `exit_conditions_unmet`. */
  async exit(call?: CallOptions): Promise<GuardAnswer> {
    return (await this.http.send<GuardAnswer>({ method: "POST", path: "/v1/guard/exit", repeatable: true }, call)).body;
  }
}

/** `/v1/tokens`, `/v1/audit`, `/v1/status`. */
export class Admin {
  constructor(private readonly http: Http) {}

  /** Creates a token: its secret is in the answer, once. */
  async createToken(body: S["TokenBody"], call?: CallOptions): Promise<S["TokenAnswer"]> {
    return (await this.http.send<S["TokenAnswer"]>({ method: "POST", path: "/v1/tokens", body }, call)).body;
  }
  async listTokens(call?: CallOptions): Promise<S["TokenList"]> {
    return (await this.http.send<S["TokenList"]>({ method: "GET", path: "/v1/tokens" }, call)).body;
  }
  async revokeToken(id: string, call?: CallOptions): Promise<S["TokenAnswer"]> {
    return (await this.http.send<S["TokenAnswer"]>({ method: "DELETE", path: `/v1/tokens/${seg(id)}` }, call)).body;
  }
  async audit(after?: number, limit?: number, call?: CallOptions): Promise<S["AuditAnswer"]> {
    return (await this.http.send<S["AuditAnswer"]>({ method: "GET", path: "/v1/audit", query: { after, limit } }, call)).body;
  }
  async verifyAudit(call?: CallOptions): Promise<S["AuditAnswer"]> {
    return (await this.http.send<S["AuditAnswer"]>({ method: "GET", path: "/v1/audit/verify" }, call)).body;
  }
  /** Tier, breaker, guard and readiness of the instance answering. */
  async status(call?: CallOptions): Promise<S["StatusAnswer"]> {
    return (await this.http.send<S["StatusAnswer"]>({ method: "GET", path: "/v1/status" }, call)).body;
  }
}
