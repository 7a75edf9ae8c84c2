// Every failure the client reports is a WardenError: a problem document (bad input, access)
// by its `code`, or an answer whose `state` is not a success, by that state. Nothing is
// reported as a bare string, and nothing that may have happened on the server is reported as a
// plain network error (that is UnknownOutcomeError).

/** What every error carries: the HTTP status (0 when no answer came), the stable `code` (a
 * problem's `code`, or the answer's `state`), the server's `detail`, the correlation id the
 * request went out with, and how long the server asked to wait before retrying. */
export class WardenError extends Error {
  readonly status: number;
  readonly code: string;
  readonly detail: string;
  readonly correlationId: string;
  readonly retryAfterMs: number | undefined;
  /** The answer or problem document as the server sent it. */
  readonly body: unknown;

  constructor(init: {
    status: number;
    code: string;
    detail?: string;
    correlationId: string;
    retryAfterMs?: number;
    body?: unknown;
    message?: string;
    cause?: unknown;
  }) {
    super(init.message ?? `${init.code}${init.detail ? `: ${init.detail}` : ""}`, {
      cause: init.cause,
    });
    this.name = new.target.name;
    this.status = init.status;
    this.code = init.code;
    this.detail = init.detail ?? "";
    this.correlationId = init.correlationId;
    this.retryAfterMs = init.retryAfterMs;
    this.body = init.body;
  }
}

/** 400, 413, 415 or 422 problem: the request was wrong and changed nothing. Never retried. */
export class InvalidRequestError extends WardenError {}
/** 401 `unauthenticated`: no valid token. */
export class UnauthenticatedError extends WardenError {}
/** 403 `forbidden`: the token lacks the scope. */
export class ForbiddenError extends WardenError {}
/** 404: the object does not exist (or belongs to another tenant). */
export class NotFoundError extends WardenError {}
/** 410: the object existed and is gone for good (`expired`, `revoked`, `rotated`, …). */
export class GoneError extends WardenError {}
/** 409 or 412 that is a business conflict (a version, an owner, a token). Never retried. */
export class ConflictError extends WardenError {}
/** 503 with a `*safe_block` state: no tier may act now (safe mode, both tiers down). Never
 * retried by the client: the side effect must wait for an operator or a tier. `reason` says
 * why. */
export class SafeBlockError extends WardenError {
  get reason(): string {
    return String((this.body as { reason?: string } | undefined)?.reason ?? "");
  }
}
/** 503 the client kept getting after its retries (an instance starting, a proxy). */
export class UnavailableError extends WardenError {}
/** Any other answer the client did not expect. */
export class UnexpectedAnswerError extends WardenError {}

/** The request was sent and no answer came (a timeout, a reset connection): the server may or
 * may not have applied it. Never retried for a request that is not safe to repeat; repeat it
 * only with the same idempotency key. */
export class UnknownOutcomeError extends WardenError {}

/** The lock is held by another owner: it was never acquired. */
export class LockBusyError extends ConflictError {
  get blockedBy(): string | undefined {
    return (this.body as { blocked_by?: string } | undefined)?.blocked_by ?? undefined;
  }
}
/** The lock was held and is lost (`expired`, `superseded`, `tier_switched`,
 * `max_hold_exceeded`, or `lease_unconfirmed`: no renewal answered before the lease would
 * lapse). A side effect done under it after this point is not protected. */
export class LockLostError extends ConflictError {
  get reason(): string {
    return String((this.body as { reason?: string } | undefined)?.reason ?? "");
  }
}
/** This wait closed a deadlock cycle and this caller is its victim. */
export class DeadlockError extends ConflictError {}
/** `not_owner`: the lease belongs to someone else. */
export class NotOwnerError extends ConflictError {}
/** A fencing token older than the highest seen for the resource. */
export class StaleTokenError extends ConflictError {
  get highest(): number {
    return Number((this.body as { highest?: number } | undefined)?.highest ?? 0);
  }
}
/** A version check (`expected_version`, `If-Match`) did not match. */
export class VersionConflictError extends ConflictError {}
/** Idempotency: another caller runs this key now. */
export class InProgressError extends ConflictError {}
/** Idempotency: the key was used with another request fingerprint. */
export class FingerprintMismatchError extends ConflictError {}
/** Idempotency: completing with a token that no longer owns the key. */
export class IdempotencyConflictError extends ConflictError {}
/** 429 `limited`. */
export class RateLimitedError extends WardenError {}
/** A semaphore has no permits for this request. */
export class SemaphoreFullError extends ConflictError {}

type Ctor = new (init: ConstructorParameters<typeof WardenError>[0]) => WardenError;

/** The error class for a non-success answer `state`, where one is more precise than the
 * status's class. */
const BY_STATE: Record<string, Ctor> = {
  lock_busy: LockBusyError,
  lock_lost: LockLostError,
  deadlock_detected: DeadlockError,
  not_owner: NotOwnerError,
  stale_token: StaleTokenError,
  version_conflict: VersionConflictError,
  in_progress: InProgressError,
  fingerprint_mismatch: FingerprintMismatchError,
  conflict: IdempotencyConflictError,
  limited: RateLimitedError,
  semaphore_full: SemaphoreFullError,
};

/** The error class for a status, when the code names no closer one. */
export function errorClass(status: number, code: string): Ctor {
  const exact = BY_STATE[code];
  if (exact) return exact;
  if (status === 503 && code.endsWith("safe_block")) return SafeBlockError;
  switch (status) {
    case 400:
    case 413:
    case 415:
    case 422:
      return InvalidRequestError;
    case 401:
      return UnauthenticatedError;
    case 403:
      return ForbiddenError;
    case 404:
      return NotFoundError;
    case 410:
      return GoneError;
    case 409:
    case 412:
      return ConflictError;
    case 429:
      return RateLimitedError;
    case 503:
      return UnavailableError;
    default:
      return UnexpectedAnswerError;
  }
}
