//! `warden bench profile --path <suite> --mode <primary|fallback>`: one suite's headline rows
//! at 64 clients on throwaway servers while `perf record -a` samples the whole machine, then
//! where the CPU went: per process and library, and per symbol inside Warden.

use std::process::Command;

use super::all::{against, suite_rows, warden};
use super::servers::Servers;
use super::{target, BenchArgs};

/// `perf report --stdio` of `file` (self costs, or with `children` inclusive ones) with
/// `extra` options: its raw text.
fn perf_report(file: &str, children: bool, extra: &[&str]) -> Result<String, String> {
    let costs = if children {
        "--children"
    } else {
        "--no-children"
    };
    let out = Command::new("perf")
        .args(["report", "--stdio", costs, "-g", "none", "-i", file])
        .args(extra)
        .output()
        .map_err(|e| format!("perf (Debian package linux-perf): {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The first `n` rows of a report (no comments, no blank lines).
fn top(text: &str, n: usize) -> String {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .take(n)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The crate or library a symbol of `perf report --sort sym` belongs to.
fn owner(line: &str) -> Option<(f64, String)> {
    let mut parts = line.split_whitespace();
    let pct: f64 = parts.next()?.strip_suffix('%')?.parse().ok()?;
    let kind = parts.next()?;
    let sym: String = parts.collect::<Vec<_>>().join(" ");
    if kind == "[k]" {
        return Some((pct, "kernel".into()));
    }
    let sym = sym
        .trim_start_matches("core::ptr::drop_in_place<")
        .trim_start_matches('<')
        .trim_start_matches('&');
    // `<Type as Trait>::f` runs the type's code, unless the type is a bare generic (`F`).
    let sym = match sym.split_once(" as ") {
        Some((ty, trait_path)) if !ty.contains("::") => trait_path,
        _ => sym,
    };
    let name = match sym.split_once("::") {
        Some((krate, _)) => krate.to_owned(),
        None if sym.starts_with("mi_") || sym.starts_with("_mi_") => "mimalloc".into(),
        None => "libc and other C".into(),
    };
    Some((pct, name))
}

/// Warden's samples per crate, as shares of Warden's own samples.
fn by_crate(file: &str, pid: &str) -> Result<String, String> {
    let text = perf_report(file, false, &["--pid", pid, "--sort", "sym"])?;
    let mut crates: Vec<(String, f64)> = Vec::new();
    for (pct, name) in text.lines().filter_map(owner) {
        match crates.iter_mut().find(|(n, _)| *n == name) {
            Some((_, total)) => *total += pct,
            None => crates.push((name, pct)),
        }
    }
    let total: f64 = crates.iter().map(|c| c.1).sum::<f64>().max(1e-9);
    crates.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(crates
        .iter()
        .filter(|c| c.1 / total >= 0.005)
        .map(|(name, pct)| format!("  {:5.1}%  {name}", 100.0 * pct / total))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// Runs the profile.
pub(crate) async fn run(args: &BenchArgs) -> Result<(), String> {
    let path = args.path.as_deref().ok_or("profile needs --path <suite>")?;
    let primary = match args.mode.as_str() {
        "primary" => true,
        "fallback" => false,
        other => return Err(format!("--mode {other}: primary or fallback")),
    };
    let servers = Servers::start()?;
    let w = warden(&servers, args, "profile", primary).await?;
    let (mode, epoch) = target(&w.url).await?;
    let run = against(&w, args, 64, None);
    let file = servers.dir().join("perf.data");
    let file = file.to_string_lossy().into_owned();
    // Sample a little less than the drive lasts, so setup and the read-back stay out.
    let secs = args.seconds.saturating_sub(1).max(1).to_string();
    let graph: &[&str] = if args.callers { &["-g"] } else { &[] };
    let mut perf = Command::new("perf")
        .args(["record", "-a", "-F", "499", "-o", &file])
        .args(graph)
        .args(["--", "sleep", &secs])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("perf (Debian package linux-perf): {e}"))?;
    let tag = format!("{}-profile", warden::runtime::clock::now_ms());
    let rows = suite_rows(path, &run, mode, epoch, &tag).await?;
    perf.wait().map_err(|e| e.to_string())?;
    println!("# warden bench profile: {path} {mode}, 64 clients, perf record -a -F 499");
    for row in &rows {
        println!("{}", row.line());
    }
    let pid = w.pid().to_string();
    println!("\n## CPU samples per process and library (all CPUs)");
    let extra = ["--sort", "comm,dso", "--percent-limit", "0.5"];
    println!("{}", top(&perf_report(&file, false, &extra)?, 40));
    println!("\n## Warden's samples per crate (of Warden's samples; inlined code counts where it landed)");
    println!("{}", by_crate(&file, &pid)?);
    println!("\n## Warden's samples per symbol (of all samples)");
    let extra = ["--pid", &pid, "--sort", "sym", "--percent-limit", "0.4"];
    println!("{}", top(&perf_report(&file, false, &extra)?, 40));
    if args.callers {
        println!("\n## Warden's inclusive costs (with callees, of all samples)");
        let extra = ["--pid", &pid, "--sort", "sym", "--percent-limit", "2"];
        println!("{}", top(&perf_report(&file, true, &extra)?, 60));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_are_charged_to_their_crate() {
        let cases = [
            ("  3.44%  [k] _raw_spin_unlock_irqrestore", "kernel"),
            (
                "  0.42%  [.] core::ptr::drop_in_place<warden::api::AppState>",
                "warden",
            ),
            (
                "  0.40%  [.] <hyper::proto::h1::role::Server as X>::parse",
                "hyper",
            ),
            (
                "  0.30%  [.] <F as axum::handler::Handler<T,S>>::call",
                "axum",
            ),
            ("  1.22%  [.] _mi_page_malloc_zero", "mimalloc"),
            ("  0.40%  [.] __vdso_clock_gettime", "libc and other C"),
        ];
        for (line, krate) in cases {
            assert_eq!(owner(line).map(|o| o.1).as_deref(), Some(krate), "{line}");
        }
        assert_eq!(owner("# comment"), None);
    }
}
