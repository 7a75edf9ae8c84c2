//! One Redis connection handle for both deployments: a single node (multiplexed, reconnecting
//! `ConnectionManager`) or a Cluster (slot-routing `ClusterConnection`, connected on first use
//! so Warden starts while Redis is down).

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

/// A cheap clone of the shared connection.
#[derive(Clone)]
pub enum Handle {
    /// Single node.
    Single(ConnectionManager),
    /// Cluster.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Handle {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// How long one attempt to connect may take, for a per-call `timeout`: at least 250 ms, as
/// a TLS handshake takes several round trips.
pub(super) fn connect_timeout(timeout: Duration) -> Duration {
    timeout.max(Duration::from_millis(250))
}

/// How many times a failed connection attempt is retried at once.
pub(super) const CONNECT_RETRIES: u32 = 2;

/// The shared connection.
pub enum Conn {
    /// Single node, connected lazily and kept reconnecting by the manager.
    Single(ConnectionManager),
    /// Cluster, connected on first use.
    Cluster {
        /// The client (seed nodes and timeouts).
        client: Box<ClusterClient>,
        /// The connection, once made.
        conn: tokio::sync::RwLock<Option<ClusterConnection>>,
    },
}

impl Conn {
    /// `url` is one `redis://…` or `rediss://…` URL (single node) or a comma-separated seed
    /// list (Cluster). `ca` (PEM) is the root a `rediss://` server's certificate must chain
    /// to; without it the system's roots are used.
    pub fn open(url: &str, timeout: Duration, ca: Option<&[u8]>) -> RedisResult<Self> {
        let certs = || redis::TlsCertificates {
            client_tls: None,
            root_cert: ca.map(<[u8]>::to_vec),
        };
        let connect_timeout = connect_timeout(timeout);
        let seeds: Vec<&str> = url
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if seeds.len() > 1 {
            let mut builder = ClusterClient::builder(seeds)
                .connection_timeout(connect_timeout)
                .response_timeout(timeout)
                .retries(1);
            if ca.is_some() {
                builder = builder.certs(certs());
            }
            let client = builder.build()?;
            return Ok(Self::Cluster {
                client: Box::new(client),
                conn: tokio::sync::RwLock::new(None),
            });
        }
        let client = match ca {
            Some(_) => redis::Client::build_with_tls(url, certs())?,
            None => redis::Client::open(url)?,
        };
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(timeout))
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(1_000))
            .set_number_of_retries(CONNECT_RETRIES as usize);
        Ok(Self::Single(ConnectionManager::new_lazy_with_config(
            client, config,
        )?))
    }

    /// A handle on the shared connection (connecting a Cluster on first use).
    pub async fn handle(&self) -> RedisResult<Handle> {
        match self {
            Self::Single(c) => Ok(Handle::Single(c.clone())),
            Self::Cluster { client, conn } => {
                if let Some(c) = conn.read().await.as_ref() {
                    return Ok(Handle::Cluster(c.clone()));
                }
                let mut slot = conn.write().await;
                if let Some(c) = slot.as_ref() {
                    return Ok(Handle::Cluster(c.clone()));
                }
                let c = client.get_async_connection().await?;
                *slot = Some(c.clone());
                Ok(Handle::Cluster(c))
            }
        }
    }
}
