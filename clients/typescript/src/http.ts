// The transport: one request at a time over fetch's keep-alive pool, with a correlation id on
// every request, retries only where repeating cannot apply anything twice, and every failure
// turned into a typed WardenError.

import { randomUUID } from "node:crypto";
import { UnknownOutcomeError, UnavailableError, WardenError, errorClass } from "./errors.js";

/** How the client reaches Warden. */
export interface WardenOptions {
  /** Where Warden listens, for example `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** A bearer token (`warden token create`). Without one, only loopback in protected mode. */
  token?: string;
  /** Per-request timeout in ms (default 10 000). A long poll adds its own wait to it. */
  timeoutMs?: number;
  /** Retries after the first attempt for a retryable failure (default 3). */
  retries?: number;
  /** First backoff in ms (default 100); doubles per retry, with full jitter. */
  backoffMs?: number;
  /** Largest backoff in ms (default 5 000); a longer `Retry-After` is honoured as sent. */
  maxBackoffMs?: number;
  /** A fetch to use instead of the global one (a custom undici dispatcher, a test double). */
  fetch?: typeof fetch;
  /** Extra headers on every request. */
  headers?: Record<string, string>;
}

/** Per-call options every method accepts. */
export interface CallOptions {
  /** The correlation id to send (else one is made): it is echoed, logged and stored by Warden. */
  correlationId?: string;
  /** A W3C `traceparent` to pass through. */
  traceparent?: string;
  /** Cancels the call (the outcome is then unknown if it was already sent). */
  signal?: AbortSignal;
  /** Overrides the client's timeout for this call. */
  timeoutMs?: number;
}

/** One answer: status, parsed JSON body, headers and the correlation id used. */
export interface Answer<T = Record<string, unknown>> {
  status: number;
  body: T;
  headers: Headers;
  correlationId: string;
}

/** A request as the client methods describe it. */
export interface Req {
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  headers?: Record<string, string>;
  /** Statuses whose JSON answer is returned rather than thrown (2xx always is). */
  answers?: number[];
  /** Whether repeating the request after an unknown outcome is harmless (GET, PUT and DELETE
   * are; a POST only when the method says so). */
  repeatable?: boolean;
  /** Added to the timeout: the server holds the request this long on purpose. */
  holdMs?: number;
}

/** Network failures where the request provably never reached the server. */
const NOT_SENT = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "UND_ERR_CONNECT_TIMEOUT",
]);

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
export { sleep };

/** `Retry-After` (seconds or an HTTP date) in ms, if present. */
export function retryAfterMs(headers: Headers, body?: unknown): number | undefined {
  const fromBody = (body as { retry_after_ms?: unknown } | undefined)?.retry_after_ms;
  if (typeof fromBody === "number") return fromBody;
  const h = headers.get("retry-after");
  if (!h) return undefined;
  const secs = Number(h);
  if (Number.isFinite(secs)) return Math.max(0, secs * 1000);
  const at = Date.parse(h);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/** A signal that aborts when any of `signals` does (`AbortSignal.any` needs Node 20.3). */
export function anySignal(signals: AbortSignal[]): AbortSignal {
  const c = new AbortController();
  for (const s of signals) {
    if (s.aborted) {
      c.abort(s.reason);
      break;
    }
    s.addEventListener("abort", () => c.abort(s.reason), { once: true, signal: c.signal });
  }
  return c.signal;
}

function networkCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let i = 0; i < 4 && e; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** The transport every part of the client shares. */
export class Http {
  private readonly base: string;
  private readonly fetch: typeof fetch;

  constructor(private readonly opts: WardenOptions) {
    this.base = opts.baseUrl.replace(/\/+$/, "");
    this.fetch = opts.fetch ?? globalThis.fetch.bind(globalThis);
  }

  /** Sends `req`: the answer for a 2xx or an expected status, else a typed error. */
  async send<T = Record<string, unknown>>(req: Req, call: CallOptions = {}): Promise<Answer<T>> {
    const correlationId = call.correlationId ?? randomUUID();
    const retries = this.opts.retries ?? 3;
    const repeatable = req.repeatable ?? req.method !== "POST";
    for (let attempt = 0; ; attempt++) {
      const last = attempt >= retries;
      let answer: Answer<T>;
      try {
        answer = await this.once<T>(req, call, correlationId);
      } catch (err) {
        if (call.signal?.aborted) throw call.signal.reason ?? err;
        const code = networkCode(err);
        const sent = !(code && NOT_SENT.has(code));
        if (sent && !repeatable) {
          throw new UnknownOutcomeError({
            status: 0,
            code: "unknown_outcome",
            detail: `${req.method} ${req.path}: ${code ?? (err as Error).name ?? "error"} after the request was sent`,
            correlationId,
            cause: err,
          });
        }
        if (last) {
          const Err = sent ? UnknownOutcomeError : UnavailableError;
          throw new Err({
            status: 0,
            code: sent ? "unknown_outcome" : "unreachable",
            detail: `${req.method} ${req.path}: ${code ?? (err as Error).name}`,
            correlationId,
            cause: err,
          });
        }
        await sleep(this.backoff(attempt), call.signal);
        continue;
      }
      if (answer.status >= 200 && answer.status < 300) return answer;
      if (req.answers?.includes(answer.status) && isAnswer(answer.body)) return answer;
      const error = toError(answer);
      // Only a 503 that is not a safe block (an instance starting, a proxy) is retried.
      if (answer.status === 503 && !(error.code.endsWith("safe_block")) && !last) {
        const wait = Math.max(error.retryAfterMs ?? 0, this.backoff(attempt));
        await sleep(wait, call.signal);
        continue;
      }
      throw error;
    }
  }

  private backoff(attempt: number): number {
    const base = this.opts.backoffMs ?? 100;
    const max = this.opts.maxBackoffMs ?? 5_000;
    return Math.random() * Math.min(max, base * 2 ** attempt);
  }

  private async once<T>(req: Req, call: CallOptions, correlationId: string): Promise<Answer<T>> {
    let url = this.base + req.path;
    if (req.query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(req.query)) {
        if (v !== undefined) q.set(k, String(v));
      }
      const text = q.toString();
      if (text) url += `?${text}`;
    }
    const headers: Record<string, string> = {
      accept: "application/json, application/problem+json",
      "x-correlation-id": correlationId,
      ...this.opts.headers,
      ...req.headers,
    };
    if (this.opts.token) headers.authorization = `Bearer ${this.opts.token}`;
    if (call.traceparent) headers.traceparent = call.traceparent;
    let body: string | undefined;
    if (req.body !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(req.body);
    }
    const timeout = AbortSignal.timeout((call.timeoutMs ?? this.opts.timeoutMs ?? 10_000) + (req.holdMs ?? 0));
    const signal = call.signal ? anySignal([call.signal, timeout]) : timeout;
    const res = await this.fetch(url, { method: req.method, headers, body, signal });
    const text = await res.text();
    let parsed: unknown = undefined;
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    return {
      status: res.status,
      body: parsed as T,
      headers: res.headers,
      correlationId: res.headers.get("x-correlation-id") ?? correlationId,
    };
  }
}

function isAnswer(body: unknown): body is { state: string } {
  return typeof body === "object" && body !== null && typeof (body as { state?: unknown }).state === "string";
}

/** The typed error for a non-success answer or a problem document. */
export function toError(answer: Answer<unknown>): WardenError {
  const b = (answer.body ?? {}) as Record<string, unknown>;
  const code = typeof b.code === "string" ? b.code : typeof b.state === "string" ? b.state : `http_${answer.status}`;
  const detail = typeof b.detail === "string" ? b.detail : typeof b.reason === "string" ? b.reason : "";
  const Err = errorClass(answer.status, code);
  return new Err({
    status: answer.status,
    code,
    detail,
    correlationId: answer.correlationId,
    retryAfterMs: retryAfterMs(answer.headers, answer.body),
    body: answer.body,
  });
}

