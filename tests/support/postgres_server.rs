//! Throwaway PostgreSQL clusters (as user `postgres` when run as root) on free ports in
//! temporary directories, each a copy of one template made by `initdb` once per machine:
//! stopped, killed and restarted to inject faults.

use super::*;

/// A throwaway PostgreSQL cluster (run as user `postgres` when we are root).
pub struct Postgres {
    pub port: u16,
    dir: tempfile::TempDir,
    running: bool,
}

fn pg_bin(name: &str) -> PathBuf {
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
fn template() -> PathBuf {
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

fn as_postgres(bin: &Path) -> Command {
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
    pub fn start() -> Self {
        Self::start_with(None)
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
            dir,
            running: false,
        };
        pg.resume();
        pg
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn ctl(&self, args: &[&str]) -> bool {
        as_postgres(&pg_bin("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
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
            self.dir.path().display()
        );
        let log = self.dir.path().join("log");
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
        self.running = true;
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`) on every PostgreSQL process of this cluster.
    pub fn stall(&self, on: bool) {
        let pidfile = self.dir.path().join("data").join("postmaster.pid");
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
        if self.running {
            self.ctl(&["-m", "immediate", "-w", "stop"]);
            self.running = false;
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
