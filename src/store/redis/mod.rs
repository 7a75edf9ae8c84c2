//! Redis tier: one multiplexed, auto-reconnecting connection; every call bounded by the
//! per-call timeout; every key carries a hash tag so one operation's keys share a slot.

mod lock;

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Script};

use super::StoreError;

/// Key of the epoch gate: the epoch Redis was armed for. Its absence means Redis lost its data.
pub const EPOCH_GATE: &str = "warden:epoch";

/// Source of the acquire script (benchmarks run it raw through `redis-benchmark`).
pub const ACQUIRE_LUA: &str = include_str!("lua/acquire.lua");

/// The Lua scripts, each one atomic step (loaded once, then run by EVALSHA).
struct Scripts {
    acquire: Script,
    extend: Script,
    release: Script,
    get: Script,
    seed_lease: Script,
    arm_epoch: Script,
}

impl Scripts {
    fn load() -> Self {
        Self {
            acquire: Script::new(ACQUIRE_LUA),
            extend: Script::new(include_str!("lua/extend.lua")),
            release: Script::new(include_str!("lua/release.lua")),
            get: Script::new(include_str!("lua/get.lua")),
            seed_lease: Script::new(include_str!("lua/seed_lease.lua")),
            arm_epoch: Script::new(include_str!("lua/arm_epoch.lua")),
        }
    }
}

/// The Redis primary tier.
pub struct RedisStore {
    conn: ConnectionManager,
    timeout: Duration,
    scripts: Scripts,
}

impl RedisStore {
    /// Connects lazily: the service starts even while Redis is down, and reconnects with
    /// jittered exponential backoff.
    pub fn connect(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(classify)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout.max(Duration::from_millis(250))))
            .set_response_timeout(Some(timeout))
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(1_000))
            .set_number_of_retries(2);
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(classify)?;
        Ok(Self {
            conn,
            timeout,
            scripts: Scripts::load(),
        })
    }

    /// Runs one Redis call under the per-call timeout.
    async fn run<T, F>(&self, call: F) -> Result<T, StoreError>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result.map_err(classify),
            Err(_) => Err(StoreError::Timeout),
        }
    }

    /// A fresh handle on the shared multiplexed connection.
    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Health probe: `PING`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn();
        self.run(async move { redis::cmd("PING").query_async::<String>(&mut conn).await })
            .await
            .map(drop)
    }

    /// The epoch Redis is armed for, or `None` if the gate is missing.
    pub async fn armed_epoch(&self) -> Result<Option<i64>, StoreError> {
        let mut conn = self.conn();
        self.run(async move {
            redis::cmd("GET")
                .arg(EPOCH_GATE)
                .query_async::<Option<i64>>(&mut conn)
                .await
        })
        .await
    }

    /// Raises the epoch gate to `epoch` (never lowers it); returns the gate's value.
    pub async fn arm_epoch(&self, epoch: i64) -> Result<i64, StoreError> {
        let mut conn = self.conn();
        let mut inv = self.scripts.arm_epoch.key(EPOCH_GATE);
        inv.arg(epoch);
        self.run(async move { inv.invoke_async::<i64>(&mut conn).await })
            .await
    }
}

/// Maps a Redis error to a store error. Only infrastructure failures reach here: domain
/// answers come back as script values, never as errors.
fn classify(e: RedisError) -> StoreError {
    if e.is_timeout() {
        StoreError::Timeout
    } else {
        StoreError::Unavailable(e.to_string())
    }
}

/// `warden:{key}:suffix`: the hash tag keeps all of one key's Redis keys in one Cluster slot.
fn tagged(key: &str, suffix: &str) -> String {
    format!("warden:{{{key}}}:{suffix}")
}
