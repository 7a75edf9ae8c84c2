//! Metric names, in one place so dashboards, alert rules and code agree.

/// Counter: answers by `op` and terminal `state`.
pub const ANSWERS: &str = "warden_answers_total";
/// Histogram (seconds): operation latency by `op` and `mode`.
pub const OP_SECONDS: &str = "warden_op_duration_seconds";
/// Gauge: 0 closed, 1 open, 2 half-open.
pub const BREAKER_STATE: &str = "warden_breaker_state";
/// Gauge: the current tier epoch.
pub const TIER_EPOCH: &str = "warden_tier_epoch";
/// Gauge: 1 for the active tier (`tier` label), 0 otherwise.
pub const TIER_ACTIVE: &str = "warden_tier_active";
/// Counter: tier switches by `reason`.
pub const TIER_SWITCHES: &str = "warden_tier_switches_total";
/// Counter: Redis calls that failed on infrastructure, by `kind`.
pub const REDIS_FAILURES: &str = "warden_redis_failures_total";
/// Counter: requests refused as malformed, by `code`.
pub const BAD_INPUT: &str = "warden_bad_input_total";
/// Requests refused for their credentials (`code`: `unauthenticated`, `forbidden`).
pub const ACCESS_DENIED: &str = "warden_access_denied_total";
/// Counter: expired SQL lease rows of earlier epochs, expired permit rows and emptied semaphore
/// rows deleted by the reaper.
pub const LEASES_REAPED: &str = "warden_leases_reaped_total";
/// Counter: deadlocks found among waiting lock owners, by `found` (`enqueue`, `sweep`).
pub const DEADLOCKS: &str = "warden_deadlocks_total";
/// Histogram: writes per group-commit transaction, by `writer`.
pub const GROUP_COMMIT_BATCH: &str = "warden_group_commit_batch_size";
/// Histogram (seconds): group-commit transaction latency, by `writer`.
pub const GROUP_COMMIT_SECONDS: &str = "warden_group_commit_duration_seconds";
/// Counter: expired idempotency records removed, by `tier`.
pub const IDEM_REAPED: &str = "warden_idempotency_reaped_total";
/// Counter: Redis hot copies corrected from SQL (the durable record won), by `op`.
pub const IDEM_RESEEDED: &str = "warden_idempotency_reseeded_total";
/// Counter: holds returned to stock by the expiry reaper.
pub const HOLDS_EXPIRED: &str = "warden_holds_expired_total";
/// Counter: Redis inventory copies found to differ from SQL, by `fixed` ("true"/"false").
pub const RECONCILE_MISMATCHES: &str = "warden_reconcile_mismatches_total";
/// Counter: SKU hot copies (re)seeded from SQL.
pub const STOCK_SEEDED: &str = "warden_stock_seeded_total";
/// Counter: intents leased to workers by dispatch claims.
pub const DISPATCHED: &str = "warden_stream_dispatched_total";
/// Gauge: causal commits parked, waiting for their predecessor.
pub const STREAM_WAITING: &str = "warden_stream_waiting_commits";
/// Gauge: open items in the manual review queue.
pub const REVIEW_OPEN: &str = "warden_review_open";
/// Gauge: intents not yet committed nor parked (ready or leased): the dispatch backlog.
pub const DISPATCH_BACKLOG: &str = "warden_stream_dispatch_backlog";
/// Counter: review items created, by `reason`.
pub const REVIEW_CREATED: &str = "warden_review_created_total";
/// Counter: PostgreSQL stream batches read and decided again after losing a race.
pub const STREAM_BATCH_RETRIES: &str = "warden_stream_batch_retries_total";
/// Counter: streams a PostgreSQL stream batch needed, by `result`: `hit` (taken from what this
/// instance last wrote, checked by the write) or `miss` (read).
pub const STREAM_CACHE: &str = "warden_stream_cache_total";
/// Counter: PostgreSQL tables analyzed because they outgrew their planner statistics, by
/// `table`.
pub const SQL_ANALYZED: &str = "warden_sql_analyze_total";
/// Counter: log lines dropped because the writer's queue was full.
pub const LOG_DROPPED: &str = "warden_log_lines_dropped_total";
/// Counter: side effects held back by the guard (dispatch answered empty), by `op`.
pub const GUARD_HELD: &str = "warden_guard_held_total";
/// Gauge: the guard's state as this instance acts on it (0 normal, 1 degraded, 2 safe mode,
/// 3 recovering).
pub const GUARD_STATE: &str = "warden_guard_state";
/// Counter: guard moves, by `to` and `reason`.
pub const GUARD_MOVES: &str = "warden_guard_moves_total";
/// Counter: incident events, by `event` (`triggered`, `deduplicated`, `acknowledged`,
/// `resolved`, `notify`, `safe_mode`, `ticket`).
pub const INCIDENT_EVENTS: &str = "warden_incident_events_total";
/// Gauge: open incidents not yet acknowledged, by `severity`.
pub const INCIDENTS_UNACKED: &str = "warden_incidents_unacknowledged";
/// Gauge: age of the oldest unacknowledged critical incident, seconds (0 when none).
pub const INCIDENT_UNACKED_AGE: &str = "warden_incident_oldest_unacknowledged_seconds";
/// Counter: webhook delivery tries, by `role` and `outcome` (`delivered`, `retry`, `dead`,
/// `dropped`).
pub const DELIVERIES: &str = "warden_deliveries_total";
/// Histogram: webhook delivery latency, seconds.
pub const DELIVERY_SECONDS: &str = "warden_delivery_duration_seconds";
/// Gauge: outbox rows waiting to be delivered.
pub const OUTBOX_PENDING: &str = "warden_outbox_pending";
/// Gauge: share of answered operations served in fallback mode over the guard's window.
pub const FALLBACK_RATE: &str = "warden_fallback_rate";
/// Gauge: p95 of fallback lock operations over the guard's window, seconds.
pub const FALLBACK_LOCK_P95: &str = "warden_fallback_lock_p95_seconds";
/// Counter: health samples, by `result` (`green`, `red`).
pub const HEALTH_SAMPLES: &str = "warden_health_samples_total";
/// Counter: audit entries appended.
pub const AUDIT_APPENDED: &str = "warden_audit_appended_total";
/// Gauge: age of the oldest intent taken in but not yet claimed, seconds (the intake→claim
/// gap of S-PC-04-002; it grows in safe mode, where nothing is dispatched).
pub const OLDEST_UNCLAIMED: &str = "warden_stream_oldest_unclaimed_seconds";
/// Gauge: how long the oldest expired dispatch lease has waited for a worker to take it over,
/// seconds (0: none waiting).
pub const TAKEOVER_PENDING: &str = "warden_stream_takeover_pending_seconds";
/// Gauge: expired replays waiting in manual review.
pub const REPLAY_BACKLOG: &str = "warden_stream_replay_backlog";
/// Counter: rate-limit decisions by `policy` (`tenant/policy`), `state` and `mode`
/// (`primary`, `local`, `none`).
pub const RL_DECISIONS: &str = "warden_ratelimit_decisions_total";
/// Histogram (seconds): rate-limit check latency by `mode`.
pub const RL_CHECK_SECONDS: &str = "warden_ratelimit_check_duration_seconds";
/// Counter: rate-limit steps that failed on Redis, by `kind` (`timeout`, `error`,
/// `bad_reply`); the check was then counted locally.
pub const RL_SCRIPT_ERRORS: &str = "warden_ratelimit_script_errors_total";
/// Counter: SQL writes made for rate limiting, by `kind` (`heartbeat`: the instance lease
/// row; `usage`: one aggregate flush of one policy's `local` decisions).
pub const RL_SQL_WRITES: &str = "warden_ratelimit_sql_writes_total";
/// Gauge: rate-limit policies this instance holds in memory (every saved one, refreshed in
/// the background).
pub const RL_POLICIES_HELD: &str = "warden_ratelimit_policies_held";
/// Gauge: share of each limit applied now, by `policy`.
pub const RL_FACTOR: &str = "warden_ratelimit_effective_factor";
/// Counter: KV reads by what the hot copy gave, by `result` (`hit`, `miss`: absent or of an
/// older epoch, reseeded; `held`: a write in flight, answered from SQL).
pub const KV_COPY: &str = "warden_kv_copy_total";
/// Session reads by what the hot copy offered (`result`: hit, miss, held, error).
pub const SESSION_COPY: &str = "warden_session_copy_total";
/// Counter: KV writes refused for their `expected_version`.
pub const KV_CONFLICTS: &str = "warden_kv_version_conflicts_total";
/// Counter: KV tombstones and expired records deleted by the reaper.
pub const KV_REAPED: &str = "warden_kv_reaped_total";
/// Counter: session lifecycle events, by `kind` (`created`, `rotated`, `revoked`, `expired`,
/// `evicted`).
pub const SESSION_EVENTS: &str = "warden_session_events_total";
/// Counter: session writes refused for their `expected_version`.
pub const SESSION_CONFLICTS: &str = "warden_session_version_conflicts_total";
/// Counter: session touches, by `written` (`false`: within a tenth of the idle TTL of the last
/// written one, so SQL was spared).
pub const SESSION_TOUCH_WRITES: &str = "warden_session_touches_total";
/// Gauge: live sessions, by `tenant` (counted every `sessions.gauge_every_ms`).
pub const SESSIONS_LIVE: &str = "warden_sessions_live";
/// Counter: cache reads by namespace and `result` (a read's or a read-through read's state).
pub const CACHE_READS: &str = "warden_cache_reads_total";
/// Counter: cache entries evicted for a namespace's `max_bytes`.
pub const CACHE_EVICTIONS: &str = "warden_cache_evictions_total";
/// Counter: bytes of cache values stored, by `form` (`raw`, `kept` after compression).
pub const CACHE_STORED_BYTES: &str = "warden_cache_stored_bytes_total";
/// Counter: cache puts refused with `lease_invalid`.
pub const CACHE_LEASE_INVALID: &str = "warden_cache_lease_invalid_total";
/// Counter: cache invalidations by namespace and `kind` (key, tag, namespace).
pub const CACHE_INVALIDATIONS: &str = "warden_cache_invalidations_total";
/// Counter: SQL statements the cache issued, by `statement` (invalidation, pending,
/// replayed, forget): none per read, ever.
pub const CACHE_SQL: &str = "warden_cache_sql_statements_total";
/// Counter: expired or invalidated cache entries forgotten by the reclaimer.
pub const CACHE_RECLAIMED: &str = "warden_cache_reclaimed_total";
/// Gauge: bytes a namespace holds in Redis (refreshed by each reclaim pass and stats call).
pub const CACHE_BYTES: &str = "warden_cache_bytes";
/// Gauge: raw over stored bytes of a namespace's values (refreshed by each reclaim pass and stats call).
pub const CACHE_COMPRESSION: &str = "warden_cache_compression_ratio";
