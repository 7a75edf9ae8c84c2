//! Redis tier: one multiplexed, auto-reconnecting connection; every call bounded by the
//! per-call timeout; every key carries a hash tag so one operation's keys share a slot.

mod cache;
mod conn;
mod copy;
mod idem;
mod lock;
mod lock_group;
mod ratelimit;
mod reserve;
mod semaphore;
mod slots;
mod stream;

use std::time::Duration;

use redis::{FromRedisValue, RedisError, Script, ScriptInvocation};

pub use cache::{CacheEntry, CacheFetched, CacheRead, CacheStats, CacheWrite};
use conn::Conn;
pub use slots::{all_slots, slot_keys, SlotKeys};

use super::{bounded, StoreError};

/// Prepends the shared lease functions (`lua/lease.lua`, for shared holders
/// `lua/sem_common.lua` and `lua/shares.lua`, for tree keys `lua/tree.lua`) to a script that
/// reads a lease.
macro_rules! lease_script {
    ($file:literal) => {
        concat!(
            include_str!("lua/lease.lua"),
            include_str!("lua/sem_common.lua"),
            include_str!("lua/shares.lua"),
            include_str!("lua/tree.lua"),
            include_str!($file)
        )
    };
}

/// Prepends the token and semaphore functions (`lua/token.lua`, `lua/sem_common.lua`) to a
/// semaphore step.
macro_rules! sem_script {
    ($file:literal) => {
        Script::new(concat!(
            include_str!("lua/token.lua"),
            include_str!("lua/sem_common.lua"),
            include_str!($file)
        ))
    };
}

/// Prepends the shared cache functions (`lua/cache_common.lua`) to a cache step.
macro_rules! cache_script {
    ($file:literal) => {
        Script::new(concat!(
            include_str!("lua/cache_common.lua"),
            include_str!($file)
        ))
    };
}

/// Source of the acquire script (benchmarks run it raw through `redis-benchmark`).
pub const ACQUIRE_LUA: &str = concat!(
    include_str!("lua/token.lua"),
    include_str!("lua/lease.lua"),
    include_str!("lua/tree.lua"),
    include_str!("lua/acquire.lua")
);
/// Source of the shared-lease acquire script (benchmarks run it raw too).
pub const SHARED_LUA: &str = concat!(
    include_str!("lua/token.lua"),
    lease_script!("lua/lock_shared.lua")
);
/// Source of the one-slot lock group script (benchmarks run it raw too).
pub const GROUP_LUA: &str = concat!(
    include_str!("lua/token.lua"),
    lease_script!("lua/lock_group.lua")
);
/// Source of the semaphore acquire script (benchmarks run it raw too).
pub const SEM_ACQUIRE_LUA: &str = concat!(
    include_str!("lua/token.lua"),
    include_str!("lua/sem_common.lua"),
    include_str!("lua/sem_acquire.lua")
);
/// Source of the reserve script (benchmarks run it raw too).
pub const RESERVE_LUA: &str = include_str!("lua/res_reserve.lua");
/// Source of the rate-limit check script (benchmarks run it raw too).
pub const RL_CHECK_LUA: &str = concat!(
    include_str!("lua/rl_state.lua"),
    include_str!("lua/rl_check.lua")
);
/// Source of the hot-copy hold script (benchmarks run it raw too).
pub const COPY_HOLD_LUA: &str = include_str!("lua/copy_hold.lua");
/// Source of the stream copy raise script (benchmarks run it raw too).
pub const STREAM_RAISE_LUA: &str = include_str!("lua/stream_raise.lua");

/// The Lua scripts, each one atomic step (loaded once, then run by EVALSHA).
struct Scripts {
    acquire: Script,
    extend: Script,
    release: Script,
    get: Script,
    seed_lease: Script,
    tree_seed: Script,
    lock_group: Script,
    arm_epoch: Script,
    idem_seed: Script,
    res_reserve: Script,
    res_settle: Script,
    res_seed: Script,
    res_total: Script,
    stream_raise: Script,
    rl_check: Script,
    rl_peek: Script,
    copy_hold: Script,
    copy_seed: Script,
    rl_refund: Script,
    cache_get: Script,
    cache_fetch: Script,
    cache_put: Script,
    cache_delete: Script,
    cache_invalidate: Script,
    cache_reclaim: Script,
    cache_stats: Script,
    sem_acquire: Script,
    sem_extend: Script,
    sem_release: Script,
    sem_read: Script,
    sem_seed: Script,
    lock_shared: Script,
}

impl Scripts {
    fn load() -> Self {
        Self {
            acquire: Script::new(ACQUIRE_LUA),
            extend: Script::new(lease_script!("lua/extend.lua")),
            release: Script::new(lease_script!("lua/release.lua")),
            get: Script::new(lease_script!("lua/get.lua")),
            seed_lease: Script::new(lease_script!("lua/seed_lease.lua")),
            tree_seed: Script::new(lease_script!("lua/tree_seed.lua")),
            lock_group: Script::new(GROUP_LUA),
            arm_epoch: Script::new(include_str!("lua/arm_epoch.lua")),
            idem_seed: Script::new(include_str!("lua/idem_seed.lua")),
            res_reserve: Script::new(RESERVE_LUA),
            res_settle: Script::new(include_str!("lua/res_settle.lua")),
            res_seed: Script::new(include_str!("lua/res_seed.lua")),
            res_total: Script::new(include_str!("lua/res_total.lua")),
            stream_raise: Script::new(STREAM_RAISE_LUA),
            rl_check: Script::new(RL_CHECK_LUA),
            copy_hold: Script::new(COPY_HOLD_LUA),
            copy_seed: Script::new(include_str!("lua/copy_seed.lua")),
            cache_get: cache_script!("lua/cache_get.lua"),
            cache_fetch: cache_script!("lua/cache_fetch.lua"),
            cache_put: cache_script!("lua/cache_put.lua"),
            cache_delete: cache_script!("lua/cache_delete.lua"),
            cache_invalidate: cache_script!("lua/cache_invalidate.lua"),
            cache_reclaim: cache_script!("lua/cache_reclaim.lua"),
            cache_stats: cache_script!("lua/cache_stats.lua"),
            sem_acquire: Script::new(SEM_ACQUIRE_LUA),
            sem_extend: sem_script!("lua/sem_extend.lua"),
            sem_release: sem_script!("lua/sem_release.lua"),
            sem_read: sem_script!("lua/sem_read.lua"),
            sem_seed: sem_script!("lua/sem_seed.lua"),
            lock_shared: Script::new(SHARED_LUA),
            rl_peek: Script::new(concat!(
                include_str!("lua/rl_state.lua"),
                include_str!("lua/rl_peek.lua")
            )),
            rl_refund: Script::new(concat!(
                include_str!("lua/rl_state.lua"),
                include_str!("lua/rl_refund.lua")
            )),
        }
    }
}

/// The Redis primary tier.
pub struct RedisStore {
    conn: Conn,
    timeout: Duration,
    scripts: Scripts,
    /// How long a release of an older epoch's lease is remembered (see `lua/release.lua`).
    release_mark: Duration,
    /// How many slot gates are armed at once.
    arm_concurrency: usize,
}

impl RedisStore {
    /// Connects lazily: the service starts even while Redis is down, and reconnects with
    /// jittered exponential backoff. A comma-separated seed list selects Redis Cluster.
    pub fn connect(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        Self::connect_tls(url, timeout, None)
    }

    /// [`RedisStore::connect`], trusting `ca` (PEM) for a `rediss://` server's certificate.
    pub fn connect_tls(
        url: &str,
        timeout: Duration,
        ca: Option<&[u8]>,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            conn: Conn::open(url, timeout, ca).map_err(classify)?,
            timeout,
            scripts: Scripts::load(),
            release_mark: Duration::from_secs(10),
            arm_concurrency: 64,
        })
    }

    /// Makes the first connection (TCP, TLS, handshake) within the connect timeout and its
    /// retries, not the per-call timeout: a handshake slower than one call (a TLS server across
    /// a network) would otherwise be a string of timed-out calls at start-up that opens the
    /// breaker and keeps SQL for its open period. An unreachable Redis is this call's error;
    /// the service starts anyway and the supervisor finds Redis when it comes.
    pub async fn warm_up(&self) -> Result<(), StoreError> {
        let limit = conn::connect_timeout(self.timeout) * (conn::CONNECT_RETRIES + 1);
        self.query_within::<()>(limit, &redis::cmd("PING")).await
    }

    /// Remembers releases of older epochs' leases for `window`: as long as an arming may
    /// still copy such a lease in from SQL.
    pub fn marking_releases_for(mut self, window: Duration) -> Self {
        self.release_mark = window;
        self
    }

    /// Arms `n` slot gates at once (at least one).
    pub fn arming_concurrently(mut self, n: usize) -> Self {
        self.arm_concurrency = n.max(1);
        self
    }

    /// Runs one script invocation under the per-call timeout.
    async fn eval<T: FromRedisValue>(&self, inv: &ScriptInvocation<'_>) -> Result<T, StoreError> {
        bounded(self.timeout, async {
            let mut conn = self.conn.handle().await.map_err(classify)?;
            inv.invoke_async(&mut conn).await.map_err(classify)
        })
        .await
    }

    /// Health probe: the gate of `key`'s slot (or of one fixed slot), read with a plain `GET`.
    /// `None` means the gate is missing.
    pub async fn gate_epoch(&self, key: Option<&str>) -> Result<Option<i64>, StoreError> {
        let gate = slot_keys(&tagged(key.unwrap_or(""), "lock")).gate;
        let mut get = redis::cmd("GET");
        get.arg(gate);
        self.query(&get).await
    }

    /// The run id of the Redis process (`INFO server`), new at every start of the process,
    /// also one that reloads older data. `None` on a Cluster, where each node has its own
    /// (a gap: see docs/design.md).
    pub async fn run_id(&self) -> Result<Option<String>, StoreError> {
        if matches!(self.conn, conn::Conn::Cluster { .. }) {
            return Ok(None);
        }
        let mut info = redis::cmd("INFO");
        info.arg("server");
        let text: String = self.query(&info).await?;
        let found = text
            .lines()
            .find_map(|l| l.strip_prefix("run_id:"))
            .map(|id| id.trim().to_owned());
        found
            .map(Some)
            .ok_or_else(|| StoreError::Corrupt("INFO server without a run_id".into()))
    }

    /// Runs one plain command under the per-call timeout.
    async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        self.query_within(self.timeout, cmd).await
    }

    /// Runs one command under `limit`.
    async fn query_within<T: FromRedisValue>(
        &self,
        limit: Duration,
        cmd: &redis::Cmd,
    ) -> Result<T, StoreError> {
        bounded(limit, async {
            let mut conn = self.conn.handle().await.map_err(classify)?;
            cmd.query_async(&mut conn).await.map_err(classify)
        })
        .await
    }

    /// Raises every slot's gate to `epoch` (never lowers one), restarting its counter.
    pub async fn arm_epoch(&self, epoch: i64) -> Result<(), StoreError> {
        use futures::stream::{self, StreamExt, TryStreamExt};
        stream::iter(all_slots())
            .map(|slot| async move {
                let mut inv = self.scripts.arm_epoch.key(slot.gate);
                inv.key(slot.counter).arg(epoch);
                self.eval::<i64>(&inv).await
            })
            .buffer_unordered(self.arm_concurrency)
            .try_for_each(|_| async { Ok(()) })
            .await
    }
}

/// Maps a Redis error to a store error. Only infrastructure failures reach here: domain
/// answers come back as script values, never as errors.
fn classify(e: RedisError) -> StoreError {
    if e.is_timeout() {
        StoreError::Timeout
    } else {
        StoreError::Redis(std::sync::Arc::new(e))
    }
}

/// A script answered something it never returns: a bug or a foreign script under our name.
fn unexpected(v: &redis::Value) -> StoreError {
    StoreError::Corrupt(format!("unexpected script reply: {v:?}"))
}

/// `warden:{key}:suffix`: the hash tag keeps all of one key's Redis keys in one Cluster slot.
/// A tree key (stored as `<tenant>\x1e<root>/<rest>`) is tagged by its root,
/// `warden:{<tenant>\x1e<root>}/<rest>:suffix`, so a whole tree is one slot: one atomic step
/// reaches every level, and its tokens come from one counter.
pub fn tagged(key: &str, suffix: &str) -> String {
    if let Some(mark) = key.find(crate::key::TREE_MARK) {
        if let Some(at) = key[mark..].find(crate::key::TREE_SEP) {
            let (root, rest) = key.split_at(mark + at);
            return format!("warden:{{{root}}}{rest}:{suffix}");
        }
    }
    format!("warden:{{{key}}}:{suffix}")
}
