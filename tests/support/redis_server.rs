//! Throwaway `redis-server` processes, single and as a three-master Cluster, on free ports in
//! temporary directories: killed, stalled and restarted (with or without their data) to inject
//! faults.

use super::*;

/// A throwaway `redis-server`.
pub struct Redis {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Redis {
    pub fn start() -> Self {
        let mut r = Redis {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts (again) on the same port, with no data.
    pub fn restart(&mut self) {
        kill9(&mut self.child);
        let child = Command::new(require("redis-server"))
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let port = self.port;
        wait_until("redis", Duration::from_secs(10), || {
            redis_cli(port, &["PING"]).is_some_and(|s| s.contains("PONG"))
        });
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        kill9(&mut self.child);
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`): a server that accepts nothing and answers nothing.
    pub fn stall(&self, on: bool) {
        let pid = self.child.as_ref().expect("running").id();
        signal(pid, if on { "-STOP" } else { "-CONT" });
    }

    pub fn cli(&self, args: &[&str]) -> Option<String> {
        redis_cli(self.port, args)
    }
}

fn redis_cli(port: u16, args: &[&str]) -> Option<String> {
    let out = Command::new(require("redis-cli"))
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Drop for Redis {
    fn drop(&mut self) {
        kill9(&mut self.child);
    }
}

/// A throwaway Redis Cluster of three masters.
pub struct RedisCluster {
    pub ports: Vec<u16>,
    _dir: tempfile::TempDir,
    children: Vec<Child>,
}

impl RedisCluster {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<u16> = (0..3).map(|_| free_cluster_port()).collect();
        let mut children = Vec::new();
        for p in &ports {
            let d = dir.path().join(p.to_string());
            std::fs::create_dir_all(&d).unwrap();
            children.push(
                Command::new(require("redis-server"))
                    .args(["--port", &p.to_string(), "--bind", "127.0.0.1"])
                    .args([
                        "--cluster-enabled",
                        "yes",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                    ])
                    .arg("--dir")
                    .arg(&d)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("spawn redis-server"),
            );
        }
        for p in &ports {
            let p = *p;
            wait_until("cluster node", Duration::from_secs(10), || {
                redis_cli(p, &["PING"]).is_some_and(|s| s.contains("PONG"))
            });
        }
        let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let status = Command::new(require("redis-cli"))
            .arg("--cluster")
            .arg("create")
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli --cluster create");
        assert!(status.success(), "cluster create failed");
        for p in &ports {
            let p = *p;
            wait_until("cluster_state:ok", Duration::from_secs(20), || {
                redis_cli(p, &["CLUSTER", "INFO"]).is_some_and(|s| s.contains("cluster_state:ok"))
            });
        }
        RedisCluster {
            ports,
            _dir: dir,
            children,
        }
    }

    /// Runs `redis-cli` with `args` on every master; their outputs.
    pub fn cli_all(&self, args: &[&str]) -> Vec<Option<String>> {
        self.ports.iter().map(|p| redis_cli(*p, args)).collect()
    }

    /// Seed list for `WARDEN_REDIS_URL`.
    pub fn url(&self) -> String {
        let urls: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}/"))
            .collect();
        urls.join(",")
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
