//! Throwaway servers for `warden-bench all`: one `redis-server` and one PostgreSQL cluster on
//! free loopback ports in a temporary directory, and the release `warden` binary started on
//! them in either mode. Everything started here is stopped and removed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::client::Conn;

/// A free TCP port on 127.0.0.1.
fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// Runs `cmd`, failing with its stderr.
fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// The newest PostgreSQL server binaries Debian installed.
fn pg_bin() -> Result<PathBuf, String> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| "PostgreSQL is not installed (scripts/test.sh installs it)".to_owned())?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("postgres").exists())
        .collect();
    dirs.sort();
    dirs.pop()
        .ok_or_else(|| "no /usr/lib/postgresql/*/bin/postgres".into())
}

/// Redis and PostgreSQL for one benchmark session.
pub struct Servers {
    dir: PathBuf,
    pg_bin: PathBuf,
    root: bool,
    /// Redis port on 127.0.0.1.
    pub redis_port: u16,
    /// PostgreSQL port on 127.0.0.1.
    pub pg_port: u16,
}

impl Servers {
    /// Starts both servers (Redis without persistence, PostgreSQL with `fsync` on).
    pub fn start() -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!("warden-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let root = is_root();
        if root {
            run(Command::new("chown").arg("postgres").arg(&dir))?;
        }
        let servers = Self {
            pg_bin: pg_bin()?,
            root,
            redis_port: free_port()?,
            pg_port: free_port()?,
            dir,
        };
        run(Command::new("redis-server")
            .args(["--port", &servers.redis_port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&servers.dir)
            .args(["--daemonize", "yes"]))?;
        let data = servers.dir.join("data");
        run(servers
            .pg("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres"]))?;
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300",
            servers.pg_port,
            servers.dir.display()
        );
        run(servers
            .pg("pg_ctl")
            .arg("-D")
            .arg(&data)
            .args(["-o", &opts, "-w", "start", "-l"])
            .arg(servers.dir.join("pg.log")))?;
        Ok(servers)
    }

    /// The path of a PostgreSQL client tool (e.g. `pgbench`).
    pub fn pg_tool(&self, tool: &str) -> PathBuf {
        self.pg_bin.join(tool)
    }

    /// A PostgreSQL tool, run as `postgres` when this process is root.
    fn pg(&self, tool: &str) -> Command {
        let bin = self.pg_bin.join(tool);
        if self.root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin);
            c
        } else {
            Command::new(bin)
        }
    }

    /// Creates an empty database `name` and returns its URL. A checkpoint first, so the dirty
    /// pages of earlier rows are written now rather than during the next one.
    pub fn fresh_db(&self, name: &str) -> Result<String, String> {
        let port = self.pg_port.to_string();
        let at = ["-h", "127.0.0.1", "-p", &port, "-U", "postgres"];
        run(self.pg("dropdb").args(at).args(["--if-exists", name]))?;
        run(self.pg("createdb").args(at).arg(name))?;
        run(self
            .pg("psql")
            .args(at)
            .args(["-q", "-d", name, "-c", "CHECKPOINT"]))?;
        Ok(format!(
            "postgres://postgres@127.0.0.1:{}/{name}",
            self.pg_port
        ))
    }

    /// Empties Redis, so a Warden on a fresh database meets no copy of an earlier one.
    pub fn flush_redis(&self) -> Result<(), String> {
        run(Command::new("redis-cli")
            .args(["-p", &self.redis_port.to_string(), "FLUSHALL"])
            .stdout(Stdio::null()))
    }

    /// The Redis URL.
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.redis_port)
    }

    /// Where logs go.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        let _ = Command::new("redis-cli")
            .args(["-p", &self.redis_port.to_string(), "shutdown", "nosave"])
            .output();
        let data = self.dir.join("data");
        let _ = self
            .pg("pg_ctl")
            .arg("-D")
            .arg(&data)
            .args(["-m", "fast", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What serves the HTTP API under test.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// `warden serve`.
    Warden,
    /// `warden-bench bare`: the same service calls without Warden's HTTP layers.
    Bare,
}

/// A Warden process under test, killed when dropped.
pub struct Warden {
    child: Child,
    /// Its base URL.
    pub url: String,
}

impl Warden {
    /// Starts `server` (the `warden` binary next to this one, or this one's bare server) on
    /// `database`, on Redis when `redis` is
    /// given, with default settings but `env` (`VARIABLE=value`), and waits until `/readyz`
    /// names the tier.
    pub async fn start(
        server: Server,
        servers: &Servers,
        database: &str,
        redis: Option<String>,
        env: &[String],
    ) -> Result<Self, String> {
        let me = std::env::current_exe().map_err(|e| e.to_string())?;
        let (bin, arg) = match server {
            Server::Warden => (me.with_file_name("warden"), "serve"),
            Server::Bare => (me, "bare"),
        };
        let port = free_port()?;
        let log =
            std::fs::File::create(servers.dir().join("warden.log")).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(&bin);
        cmd.arg(arg)
            .env("WARDEN_LISTEN", format!("127.0.0.1:{port}"))
            .env("WARDEN_DATABASE_URL", database)
            .env("WARDEN_CONFIG", "/nonexistent")
            .env_remove("WARDEN_REDIS_URL")
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        for pair in env {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| format!("--warden-env {pair}: VARIABLE=value"))?;
            cmd.env(k, v);
        }
        let tier = match redis {
            Some(url) => {
                cmd.env("WARDEN_REDIS_URL", url);
                "redis"
            }
            None => "sql",
        };
        let child = cmd.spawn().map_err(|e| format!("{}: {e}", bin.display()))?;
        let warden = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(mut http) = Conn::connect(&warden.url).await {
                if let Ok((200, v)) = http.get("/readyz").await {
                    if v["tier"] == tier {
                        return Ok(warden);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!(
            "warden did not become ready on tier {tier}; see {}",
            servers.dir().join("warden.log").display()
        ))
    }

    /// The process id (for CPU accounting).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Warden {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
