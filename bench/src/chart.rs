//! PNG charts of a `bench all` summary, drawn with plotters: each target criterion's
//! attainment (1.0 is the target), and throughput against clients and against working set.
//! Text uses DejaVu Sans from the system (Debian's `fonts-dejavu-core`).

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::combinators::IntoLogRange;
use plotters::coord::ranged1d::{IntoSegmentedCoord, SegmentValue};
use plotters::prelude::*;

use super::scaling::{CLIENTS, KEYS, PATHS};
use super::summary::Summary;

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Registers the font once; charts need it for every label.
fn font() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let bytes = std::fs::read(FONT)
            .map_err(|e| format!("{FONT} (apt-get install fonts-dejavu-core): {e}"))?;
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes.leak())
            .map_err(|_| format!("{FONT} is not a font"))
    })
    .clone()
}

fn err(e: impl std::fmt::Display) -> String {
    format!("chart: {e}")
}

/// Bars of every target criterion's attainment of the fresh-database medians.
pub fn targets(rows: &[Summary], file: &Path) -> Result<(), String> {
    font()?;
    let bars: Vec<(String, f64)> = rows
        .iter()
        .filter(|s| s.database == "fresh")
        .flat_map(|s| {
            s.attainment
                .iter()
                .map(move |(what, a)| (format!("{} {}: {what}", s.path, s.mode), *a))
        })
        .collect();
    let n = bars.len().max(2);
    let root = BitMapBackend::new(file, (1100, 80 + 34 * n as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let top = (bars.iter().map(|b| b.1).fold(1.8, f64::max) * 1.12).min(5.0);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Attainment of each target (median of rounds, fresh database; 1.0 = target)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(430)
        .build_cartesian_2d(0f64..top, (0..n - 1).into_segmented())
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(WHITE)
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => bars.get(*i).map(|b| b.0.clone()).unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc("measured / target (p99: target / measured)")
        .draw()
        .map_err(err)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (_, a))| {
            let color = if *a >= 1.0 {
                GREEN.mix(0.7)
            } else {
                RED.mix(0.7)
            };
            let mut bar = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(i)),
                    (a.min(top), SegmentValue::Exact(i + 1)),
                ],
                color.filled(),
            );
            bar.set_margin(5, 5, 0, 0);
            bar
        }))
        .map_err(err)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (_, a))| {
            let at = (a.min(top) + 0.02 * top, SegmentValue::CenterOf(i));
            Text::new(format!("{a:.2}"), at, ("sans-serif", 13))
        }))
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(
            [(1.0, SegmentValue::Exact(0)), (1.0, SegmentValue::Last)],
            BLACK.stroke_width(2),
        ))
        .map_err(err)?;
    root.present().map_err(err)
}

/// One panel: throughput of `path` against `xs` in both modes.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    series: &[(&str, Vec<(f64, f64)>)],
    x_max: f64,
    x_desc: &str,
) -> Result<(), String> {
    let y_max = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .fold(1.0, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 15))
        .margin(8)
        .x_label_area_size(32)
        .y_label_area_size(56)
        .build_cartesian_2d((1f64..x_max).log_scale(), 0f64..y_max)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc("ops/s")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, (name, points)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(*name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
        chart
            .draw_series(points.iter().map(|p| Circle::new(*p, 3, color.filled())))
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}

/// How a suite's row paths start.
fn prefix(suite: &str) -> &'static str {
    match suite {
        "locks" => "lock",
        "idempotency" => "idempotency",
        "streams" => "streams",
        _ => "flash sale",
    }
}

/// The medians of `suite`'s rows in `mode` along one dimension (`scaling-clients` or
/// `scaling-keys`).
fn points(rows: &[Summary], suite: &str, mode: &str, database: &str) -> Vec<(f64, f64)> {
    let mut pts: Vec<(f64, f64)> = rows
        .iter()
        .filter(|s| s.database == database && s.mode == mode && s.path.starts_with(prefix(suite)))
        .map(|s| {
            let x = if database == "scaling-keys" {
                s.keys.unwrap_or(1)
            } else {
                s.clients
            };
            (x as f64, s.rate)
        })
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    pts
}

/// Throughput against clients (top row) and against working set (bottom row), per path.
pub fn scaling(rows: &[Summary], file: &Path) -> Result<(), String> {
    font()?;
    let root = BitMapBackend::new(file, (1600, 760)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let panels = root.split_evenly((2, PATHS.len()));
    let x_clients = *CLIENTS.last().unwrap_or(&256) as f64 * 1.5;
    let x_keys = *KEYS.last().unwrap_or(&100_000) as f64 * 1.5;
    for (i, suite) in PATHS.iter().enumerate() {
        for (row, (database, x_max, x_desc)) in [
            ("scaling-clients", x_clients, "clients"),
            ("scaling-keys", x_keys, "keys, streams or SKUs (64 clients)"),
        ]
        .into_iter()
        .enumerate()
        {
            let series: Vec<(&str, Vec<(f64, f64)>)> = ["primary", "fallback"]
                .iter()
                .map(|m| (*m, points(rows, suite, m, database)))
                .collect();
            let title = rows
                .iter()
                .find(|s| s.database == database && s.path.starts_with(prefix(suite)))
                .map_or(suite.to_string(), |s| format!("{} ({})", s.path, s.unit));
            panel(
                &panels[row * PATHS.len() + i],
                &title,
                &series,
                x_max,
                x_desc,
            )?;
        }
    }
    root.present().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(path: &str, mode: &str, database: &str, clients: usize, keys: usize) -> Summary {
        Summary {
            path: path.into(),
            mode: mode.into(),
            clients,
            keys: Some(keys),
            database: database.into(),
            unit: "ops/s".into(),
            rates: vec![1.0],
            rate: (clients * 100 + keys) as f64,
            p50_ms: 1.0,
            p99_ms: 2.0,
            baseline: None,
            ratio: None,
            vs_bare: None,
            cpu: None,
            target: Some("≥ 1".into()),
            attainment: vec![("throughput".into(), 1.2), ("p99".into(), 0.8)],
            met: Some(false),
        }
    }

    #[test]
    fn both_charts_are_drawn_as_png() {
        let mut rows = vec![point("lock acquire (new keys)", "primary", "fresh", 64, 1)];
        for suite in ["lock", "idempotency", "streams", "flash sale"] {
            for mode in ["primary", "fallback"] {
                for c in CLIENTS {
                    rows.push(point(suite, mode, "scaling-clients", c, 1_000));
                }
                for k in KEYS {
                    rows.push(point(suite, mode, "scaling-keys", 64, k));
                }
            }
        }
        let dir = std::env::temp_dir().join(format!("warden-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (file, draw) in [
            (
                "t.png",
                targets as fn(&[Summary], &Path) -> Result<(), String>,
            ),
            ("s.png", scaling),
        ] {
            let path = dir.join(file);
            draw(&rows, &path).unwrap();
            assert!(
                std::fs::read(&path).unwrap().starts_with(b"\x89PNG"),
                "{file}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
