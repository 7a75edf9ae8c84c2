//! Throwaway PostgreSQL clusters (as user `postgres` when run as root) on free ports in
//! temporary directories, each a copy of one template made by `initdb` once per machine:
//! stopped, killed and restarted to inject faults. A test that breaks nothing takes a fresh
//! database on the run's shared cluster instead ([`Postgres::database`]).

use super::*;

/// A throwaway PostgreSQL cluster (run as user `postgres` when we are root), or a database of
/// one's own on the run's shared cluster.
pub struct Postgres {
    pub port: u16,
    own: Own,
}

/// What a [`Postgres`] owns.
enum Own {
    /// A whole cluster: it may be stopped, stalled and restarted.
    Cluster {
        dir: tempfile::TempDir,
        running: bool,
    },
    /// One database on the shared cluster, dropped with this value.
    Database(String),
}

pub(super) fn pg_bin(name: &str) -> PathBuf {
    let dir = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|d| d.flatten().map(|e| e.path()).max())
        .unwrap_or_else(|| panic!("PostgreSQL not installed: run scripts/test.sh"));
    dir.join("bin").join(name)
}

/// A pristine cluster's data directory, made by one `initdb` per machine and PostgreSQL
/// version under the target directory and shared by every test binary: each cluster starts
/// as a copy of it. Made in a directory of its own, then renamed into place, so binaries that
/// race to make it never see half of one.
pub(super) fn template() -> PathBuf {
    let bin = pg_bin("initdb");
    let version = bin
        .parent()
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .map_or("pg".into(), |v| v.to_string_lossy().into_owned());
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pg-template");
    let done = root.join(&version);
    if done.join("PG_VERSION").exists() {
        return done;
    }
    std::fs::create_dir_all(&root).unwrap();
    let making = tempfile::tempdir_in(&root).unwrap();
    let _ = Command::new("chown")
        .arg("-R")
        .arg("postgres")
        .arg(making.path())
        .status();
    let data = making.path().join("data");
    let status = as_postgres(&bin)
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", "postgres", "--no-sync"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("initdb");
    assert!(status.success(), "initdb failed");
    // Another binary may have won the race: its template is as good as ours.
    let _ = std::fs::rename(&data, &done);
    assert!(done.join("PG_VERSION").exists(), "no template cluster");
    done
}

pub(super) fn as_postgres(bin: &Path) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

impl Postgres {
    /// A private cluster, for a test that stops, stalls or restarts PostgreSQL.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// A fresh, migrated database on the run's shared cluster, for a test that breaks nothing
    /// in PostgreSQL: tens of milliseconds instead of a cluster's start.
    pub fn database() -> Self {
        let port = super::shared_postgres::port();
        Postgres {
            port,
            own: Own::Database(super::shared_postgres::create_database()),
        }
    }

    /// A cluster that accepts TLS connections only (`hostssl`), with `cert`/`key` (PEM).
    pub fn start_tls(cert: &str, key: &str) -> Self {
        Self::start_with(Some((cert, key)))
    }

    fn start_with(tls: Option<(&str, &str)>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let _ = Command::new("chown")
            .arg("-R")
            .arg("postgres")
            .arg(dir.path())
            .status();
        // A copy of a pristine cluster: the same files an initdb writes, in a tenth of the time.
        let status = Command::new("cp")
            .arg("-a")
            .arg(template())
            .arg(dir.path().join("data"))
            .status()
            .expect("cp");
        assert!(status.success(), "copying the template cluster failed");
        if let Some((cert, key)) = tls {
            let data = dir.path().join("data");
            std::fs::write(data.join("server.crt"), cert).unwrap();
            std::fs::write(data.join("server.key"), key).unwrap();
            let mut conf = std::fs::OpenOptions::new()
                .append(true)
                .open(data.join("postgresql.conf"))
                .unwrap();
            std::io::Write::write_all(&mut conf, b"\nssl = on\n").unwrap();
            let hba = "local all all trust\nhostssl all all 127.0.0.1/32 trust\n";
            std::fs::write(data.join("pg_hba.conf"), hba).unwrap();
            for f in ["server.crt", "server.key", "pg_hba.conf"] {
                let _ = Command::new("chown")
                    .arg("postgres")
                    .arg(data.join(f))
                    .status();
            }
            let _ = Command::new("chmod")
                .arg("600")
                .arg(data.join("server.key"))
                .status();
        }
        let mut pg = Postgres {
            port: free_port(),
            own: Own::Cluster {
                dir,
                running: false,
            },
        };
        pg.resume();
        pg
    }

    pub fn url(&self) -> String {
        let db = match &self.own {
            Own::Cluster { .. } => "postgres",
            Own::Database(name) => name,
        };
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// The private cluster's directory; a shared database cannot be broken on purpose.
    fn dir(&self) -> &Path {
        match &self.own {
            Own::Cluster { dir, .. } => dir.path(),
            Own::Database(_) => {
                panic!("a shared database cannot be faulted: use Postgres::start()")
            }
        }
    }

    fn set_running(&mut self, on: bool) {
        if let Own::Cluster { running, .. } = &mut self.own {
            *running = on;
        }
    }

    fn ctl(&self, args: &[&str]) -> bool {
        as_postgres(&pg_bin("pg_ctl"))
            .arg("-D")
            .arg(self.dir().join("data"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// Starts the cluster (keeping its data).
    pub fn resume(&mut self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir().display()
        );
        let log = self.dir().join("log");
        let args = [
            "-o",
            &opts,
            "-w",
            "-t",
            "30",
            "-l",
            log.to_str().unwrap(),
            "start",
        ];
        assert!(
            self.ctl(&args),
            "pg_ctl start failed; its log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        self.set_running(true);
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`) on every PostgreSQL process of this cluster.
    pub fn stall(&self, on: bool) {
        let pidfile = self.dir().join("data").join("postmaster.pid");
        let pid: u32 = std::fs::read_to_string(pidfile)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let out = Command::new("pgrep")
            .args(["-P", &pid.to_string()])
            .output()
            .unwrap();
        let children = String::from_utf8_lossy(&out.stdout).into_owned();
        let sig = if on { "-STOP" } else { "-CONT" };
        signal(pid, sig);
        for child in children.split_whitespace() {
            signal(child.parse().unwrap(), sig);
        }
    }

    /// Immediate shutdown (like a crash).
    pub fn stop(&mut self) {
        if matches!(self.own, Own::Cluster { running: true, .. }) {
            self.ctl(&["-m", "immediate", "-w", "stop"]);
            self.set_running(false);
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        match &self.own {
            Own::Cluster { .. } => self.stop(),
            Own::Database(name) => super::shared_postgres::drop_database(name),
        }
    }
}
