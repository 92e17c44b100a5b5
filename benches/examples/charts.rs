//! The charts of docs/PERFORMANCE.md (issue #18): reads the small CSV files a benchmark
//! session leaves in a results directory and writes one SVG chart per input found.
//!
//! Run with
//! `cargo run -p streams-benches --example charts -- <results-dir> <out-dir>`
//! (the docs keep theirs in `docs/img/`). The output directory is created if needed.
//!
//! # Inputs
//!
//! Every file is optional: a chart is written only for the files present, and a missing
//! one is noted on stderr (finding none of them at all is an error: the directory is
//! most likely wrong). The first non-blank line of a CSV file is its header, which must
//! be exactly the one below; fields are split on `,` (no quoting) and trimmed; blank
//! lines and lines starting with `#` are skipped. Numbers are plain decimals (`1500000`,
//! `0.85`, `1.5e6`), finite and not negative. A malformed file stops the run with an
//! error naming the file and line.
//!
//! - `throughput.csv` → `throughput.svg`, one group of bars per workload on a log axis:
//!
//!   ```text
//!   workload,measured,goal,peer
//!   W1 filter+map,2100000,1000000,650000
//!   W3 windowed count,480000,500000,
//!   ```
//!
//!   records/s processed by one stream thread: `measured` (required), the issue's
//!   `goal` and a `peer`'s figure (e.g. Kafka Streams on the same machine); `goal` and
//!   `peer` may be empty.
//!
//! - `latency.csv` → `latency.svg`, the percentiles of each workload as a group of bars
//!   on a log axis:
//!
//!   ```text
//!   workload,rate,p50_ms,p90_ms,p99_ms,max_ms
//!   W1 filter+map,100000,0.8,1.6,4.2,19
//!   ```
//!
//!   `rate` is the offered load in records/s (shown in the workload's label; may be
//!   empty); the percentiles are end-to-end latencies in milliseconds and must not
//!   decrease from `p50_ms` to `max_ms`.
//!
//! - `rss.csv` → `rss.svg`, the resident set size over a soak as a line:
//!
//!   ```text
//!   seconds,rss_mib
//!   0,41.5
//!   60,57.2
//!   ```
//!
//!   `seconds` since the soak started (not decreasing) and RSS in MiB. An optional
//!   `rss_budget.txt` beside it holds one positive number, the RSS budget in MiB, drawn as a
//!   horizontal line.
//!
//! Keep workload names short (about 20 characters): they are the labels of the x axis.
//! Only plotters' SVG backend is used: text is written as SVG `<text>` elements (sans-serif,
//! rendered by the viewer), so no font library is needed to build or run this.

#![allow(missing_docs)]

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// What the command line must look like.
const USAGE: &str = "usage: charts <results-dir> <out-dir>";

/// The header of `throughput.csv`.
const THROUGHPUT_COLUMNS: &[&str] = &["workload", "measured", "goal", "peer"];
/// The header of `latency.csv`.
const LATENCY_COLUMNS: &[&str] = &["workload", "rate", "p50_ms", "p90_ms", "p99_ms", "max_ms"];
/// The header of `rss.csv`.
const RSS_COLUMNS: &[&str] = &["seconds", "rss_mib"];

/// The font family of every text (the SVG viewer picks the actual font).
const FONT: &str = "sans-serif";

/// Why a run failed, naming the file (and line) concerned.
#[derive(Debug)]
enum ChartError {
    /// The command line is wrong.
    Usage(String),
    /// Reading an input, creating the output directory or writing a chart failed.
    Io { path: PathBuf, source: io::Error },
    /// An input is malformed; `line` counts from 1.
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// Plotters could not lay out or draw a chart.
    Draw { path: PathBuf, message: String },
}

impl fmt::Display for ChartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(message) => write!(f, "{message}\n{USAGE}"),
            Self::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Self::Parse {
                path,
                line,
                message,
            } => write!(f, "{}:{line}: {message}", path.display()),
            Self::Draw { path, message } => {
                write!(f, "{}: drawing the chart failed: {message}", path.display())
            }
        }
    }
}

impl std::error::Error for ChartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// One data line of a CSV file.
#[derive(Debug)]
struct Row {
    /// Its line number in the file, from 1.
    line: usize,
    /// Its fields, trimmed, as many as the header has.
    fields: Vec<String>,
}

/// A CSV file read whole, its header checked.
#[derive(Debug)]
struct Table {
    /// Where it was read from (for error messages).
    path: PathBuf,
    /// The expected (and found) header.
    columns: &'static [&'static str],
    /// The data lines, at least one.
    rows: Vec<Row>,
}

impl Table {
    /// Reads `path`, whose header must be `columns`; `Ok(None)` if the file does not exist.
    fn read(path: &Path, columns: &'static [&'static str]) -> Result<Option<Self>, ChartError> {
        let Some(text) = read_optional(path)? else {
            return Ok(None);
        };
        Self::parse(path, &text, columns).map(Some)
    }

    /// Parses `text`, the contents of `path`.
    fn parse(
        path: &Path,
        text: &str,
        columns: &'static [&'static str],
    ) -> Result<Self, ChartError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut header_seen = false;
        let mut rows = Vec::new();
        let mut last_line = 0;
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            last_line = line;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let fields: Vec<String> = trimmed.split(',').map(|f| f.trim().to_owned()).collect();
            if !header_seen {
                if fields != columns {
                    return Err(parse_error(
                        path,
                        line,
                        format!(
                            "the header must be `{}`, found `{trimmed}`",
                            columns.join(",")
                        ),
                    ));
                }
                header_seen = true;
                continue;
            }
            if fields.len() != columns.len() {
                return Err(parse_error(
                    path,
                    line,
                    format!(
                        "{} fields expected ({}), found {}",
                        columns.len(),
                        columns.join(","),
                        fields.len()
                    ),
                ));
            }
            rows.push(Row { line, fields });
        }
        if !header_seen {
            return Err(parse_error(
                path,
                last_line.max(1),
                format!("empty file: the header `{}` is missing", columns.join(",")),
            ));
        }
        if rows.is_empty() {
            return Err(parse_error(
                path,
                last_line,
                "no data line after the header",
            ));
        }
        Ok(Self {
            path: path.to_owned(),
            columns,
            rows,
        })
    }

    /// Field `column` of `row` as text, which must not be empty.
    fn text(&self, row: &Row, column: usize) -> Result<String, ChartError> {
        let field = &row.fields[column];
        if field.is_empty() {
            return Err(self.error(row, format!("`{}` is empty", self.columns[column])));
        }
        Ok(field.clone())
    }

    /// Field `column` of `row` as a finite, non-negative number (required).
    fn number(&self, row: &Row, column: usize) -> Result<f64, ChartError> {
        self.optional_number(row, column)?
            .ok_or_else(|| self.error(row, format!("`{}` is empty", self.columns[column])))
    }

    /// Field `column` of `row` as a finite, non-negative number, `None` if empty.
    fn optional_number(&self, row: &Row, column: usize) -> Result<Option<f64>, ChartError> {
        let field = &row.fields[column];
        if field.is_empty() {
            return Ok(None);
        }
        parse_number(field).map(Some).map_err(|problem| {
            self.error(
                row,
                format!("`{}` = `{field}`: {problem}", self.columns[column]),
            )
        })
    }

    /// An error about `row`.
    fn error(&self, row: &Row, message: impl Into<String>) -> ChartError {
        parse_error(&self.path, row.line, message)
    }
}

/// A parse error at `path:line`.
fn parse_error(path: &Path, line: usize, message: impl Into<String>) -> ChartError {
    ChartError::Parse {
        path: path.to_owned(),
        line,
        message: message.into(),
    }
}

/// Parses a finite, non-negative number; the error says what is wrong with it.
fn parse_number(field: &str) -> Result<f64, &'static str> {
    let value: f64 = field.parse().map_err(|_| "not a number")?;
    if !value.is_finite() {
        return Err("not a finite number");
    }
    if value < 0.0 {
        return Err("negative");
    }
    Ok(value)
}

/// The contents of `path`, `None` if it does not exist.
fn read_optional(path: &Path) -> Result<Option<String>, ChartError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ChartError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Fails if `table` has more lines than a bar chart has room for ([`MAX_GROUPS`]).
fn check_groups(table: &Table) -> Result<(), ChartError> {
    match table.rows.get(MAX_GROUPS) {
        Some(row) => Err(table.error(
            row,
            format!("more than {MAX_GROUPS} workloads: too many for one chart"),
        )),
        None => Ok(()),
    }
}

/// One line of `throughput.csv`.
#[derive(Debug)]
struct Throughput {
    /// The workload's name.
    workload: String,
    /// Records/s we measured.
    measured: f64,
    /// Records/s the issue asks for, if set.
    goal: Option<f64>,
    /// Records/s of the peer, if measured.
    peer: Option<f64>,
}

/// Reads `throughput.csv`; `Ok(None)` if absent.
fn read_throughput(path: &Path) -> Result<Option<Vec<Throughput>>, ChartError> {
    let Some(table) = Table::read(path, THROUGHPUT_COLUMNS)? else {
        return Ok(None);
    };
    check_groups(&table)?;
    let mut out = Vec::with_capacity(table.rows.len());
    for row in &table.rows {
        out.push(Throughput {
            workload: table.text(row, 0)?,
            measured: table.number(row, 1)?,
            goal: table.optional_number(row, 2)?,
            peer: table.optional_number(row, 3)?,
        });
    }
    Ok(Some(out))
}

/// One line of `latency.csv`.
#[derive(Debug)]
struct Latency {
    /// The workload's name.
    workload: String,
    /// The offered load in records/s, if given.
    rate: Option<f64>,
    /// p50, p90, p99 and max, in milliseconds, in that order.
    percentiles: [f64; 4],
}

/// Reads `latency.csv`; `Ok(None)` if absent.
fn read_latency(path: &Path) -> Result<Option<Vec<Latency>>, ChartError> {
    let Some(table) = Table::read(path, LATENCY_COLUMNS)? else {
        return Ok(None);
    };
    check_groups(&table)?;
    let mut out = Vec::with_capacity(table.rows.len());
    for row in &table.rows {
        let percentiles = [
            table.number(row, 2)?,
            table.number(row, 3)?,
            table.number(row, 4)?,
            table.number(row, 5)?,
        ];
        if percentiles.windows(2).any(|pair| pair[0] > pair[1]) {
            return Err(table.error(
                row,
                "the percentiles decrease (p50_ms <= p90_ms <= p99_ms <= max_ms expected)",
            ));
        }
        out.push(Latency {
            workload: table.text(row, 0)?,
            rate: table.optional_number(row, 1)?,
            percentiles,
        });
    }
    Ok(Some(out))
}

/// `rss.csv` and `rss_budget.txt`.
#[derive(Debug)]
struct Rss {
    /// (seconds since the start, RSS in MiB), seconds not decreasing.
    samples: Vec<(f64, f64)>,
    /// The budget in MiB, if `rss_budget.txt` exists.
    budget_mib: Option<f64>,
}

/// Reads `rss.csv` and, if present, `budget` (`rss_budget.txt`); `Ok(None)` if `rss.csv`
/// is absent.
fn read_rss(path: &Path, budget: &Path) -> Result<Option<Rss>, ChartError> {
    let Some(table) = Table::read(path, RSS_COLUMNS)? else {
        return Ok(None);
    };
    let mut samples: Vec<(f64, f64)> = Vec::with_capacity(table.rows.len());
    for row in &table.rows {
        let seconds = table.number(row, 0)?;
        if let Some(&(previous, _)) = samples.last()
            && seconds < previous
        {
            return Err(table.error(
                row,
                format!("`seconds` goes back in time ({seconds} after {previous})"),
            ));
        }
        samples.push((seconds, table.number(row, 1)?));
    }
    let budget_mib = match read_optional(budget)? {
        None => None,
        Some(text) => {
            let field = text.trim();
            let value = parse_number(field)
                .and_then(|v| if v > 0.0 { Ok(v) } else { Err("not positive") })
                .map_err(|problem| {
                    parse_error(
                        budget,
                        1,
                        format!("one number of MiB expected, found `{field}`: {problem}"),
                    )
                })?;
            Some(value)
        }
    };
    Ok(Some(Rss {
        samples,
        budget_mib,
    }))
}

/// One series of a grouped bar chart: one bar per group.
#[derive(Debug)]
struct Series {
    /// Its name in the legend.
    name: &'static str,
    /// Its bars' colour.
    color: RGBColor,
    /// One value per group; `None` leaves the bar out.
    values: Vec<Option<f64>>,
}

/// A grouped bar chart on a logarithmic value axis.
#[derive(Debug)]
struct BarChart {
    /// The caption.
    title: &'static str,
    /// The value axis' description.
    y_desc: &'static str,
    /// The groups' labels, left to right.
    groups: Vec<String>,
    /// The bars of each group, left to right; series without any value are left out.
    series: Vec<Series>,
    /// Formats a value (bar labels and axis ticks).
    format: fn(f64) -> String,
}

/// `v` with three significant digits at most, trailing zeros dropped (`1.5`, `12.3`,
/// `450`, `0.125`).
fn sig3(v: f64) -> String {
    let decimals = if v >= 99.95 {
        0
    } else if v >= 9.995 {
        1
    } else if v >= 0.9995 {
        2
    } else {
        3
    };
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// `v` with a k/M/G suffix and three significant digits (`2.1M`, `480k`, `950`).
fn si(v: f64) -> String {
    for (scale, suffix) in [(1e9, "G"), (1e6, "M"), (1e3, "k")] {
        if v >= scale * 0.9995 {
            return format!("{}{suffix}", sig3(v / scale));
        }
    }
    sig3(v)
}

/// The log axis of a bar chart: from the power of ten at or below the smallest positive
/// value, with room above the largest for the bar labels and the legend; and its ticks
/// (1-2-5 per decade, or only the powers of ten when the axis spans many decades).
fn log_axis(values: impl Iterator<Item = f64>) -> ((f64, f64), Vec<f64>) {
    let (min, max) = values
        .filter(|v| *v > 0.0)
        .fold((f64::INFINITY, 0.0_f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    let (min, max) = if min.is_finite() {
        (min, max)
    } else {
        (1.0, 1.0)
    };
    let lo_exp = min.log10().floor();
    let span = (max.log10() - lo_exp).max(1.0);
    let hi = 10f64.powf(max.log10() + (0.25 * span).max(0.3));
    let lo = 10f64.powf(lo_exp);
    let steps: &[f64] = if span > 4.0 { &[1.0] } else { &[1.0, 2.0, 5.0] };
    let mut ticks = Vec::new();
    let mut exp = lo_exp;
    while 10f64.powf(exp) <= hi {
        for step in steps {
            let tick = step * 10f64.powf(exp);
            if tick >= lo && tick <= hi {
                ticks.push(tick);
            }
        }
        exp += 1.0;
    }
    ((lo, hi), ticks)
}

/// The most groups (workloads) a bar chart takes: its x axis counts thousandths of a group
/// in an `i32`, and past this the labels would be unreadable anyway.
const MAX_GROUPS: usize = 100;

/// `n` (at most [`MAX_GROUPS`] times a few) as an `i32`, saturating.
fn to_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Draws `chart` on `root`.
fn draw_bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &BarChart,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let series: Vec<&Series> = chart
        .series
        .iter()
        .filter(|s| s.values.iter().any(Option::is_some))
        .collect();
    let values = series
        .iter()
        .flat_map(|s| s.values.iter().flatten().copied());
    let ((lo, hi), ticks) = log_axis(values);
    // The x axis counts thousandths of a group: group `g` spans `g * 1000..(g + 1) * 1000`.
    let groups = to_i32(chart.groups.len());
    let group_centers: Vec<i32> = (0..groups).map(|g| g * 1000 + 500).collect();
    let mut ctx = ChartBuilder::on(root)
        .caption(chart.title, (FONT, 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(
            (0..groups * 1000).with_key_points(group_centers),
            (lo..hi).log_scale().with_key_points(ticks),
        )?;
    let format = chart.format;
    ctx.configure_mesh()
        .disable_x_mesh()
        .bold_line_style(BLACK.mix(0.12))
        .y_desc(chart.y_desc)
        .x_label_formatter(&|x| {
            usize::try_from(x / 1000)
                .ok()
                .and_then(|g| chart.groups.get(g).cloned())
                .unwrap_or_default()
        })
        .y_label_formatter(&|y| format(*y))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .draw()?;

    // The bars of a group take its middle 80 %, split evenly between the series; each bar
    // keeps 85 % of its slot. (The reads cap the groups at `MAX_GROUPS`.)
    let slot = 800 / i32::try_from(series.len().max(1)).unwrap_or(1);
    let bar = |group: usize, index: usize| {
        let left = to_i32(group) * 1000 + 100 + to_i32(index) * slot;
        (left + slot * 3 / 40, left + slot * 37 / 40)
    };
    let label_style = TextStyle::from((FONT, 11).into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Bottom));
    for (index, s) in series.iter().enumerate() {
        let color = s.color;
        let bars = s.values.iter().enumerate().filter_map(|(group, value)| {
            let (x0, x1) = bar(group, index);
            value.map(|v| Rectangle::new([(x0, lo), (x1, v.max(lo))], color.filled()))
        });
        ctx.draw_series(bars)?
            .label(s.name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 12, y + 6)], color.filled()));
        let labels = s.values.iter().enumerate().filter_map(|(group, value)| {
            let (x0, x1) = bar(group, index);
            value.map(|v| Text::new(format(v), ((x0 + x1) / 2, v.max(lo)), &label_style))
        });
        ctx.draw_series(labels)?;
    }
    ctx.configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.4))
        .draw()?;
    Ok(())
}

/// The width of a bar chart: wide enough for about 48 px per bar.
fn bar_chart_width(chart: &BarChart) -> u32 {
    let bars = chart.groups.len() * chart.series.len().max(1);
    (120 + 48 * bars).clamp(800, 4000) as u32
}

/// The throughput chart: measured, goal and peer per workload.
fn throughput_chart(rows: &[Throughput]) -> BarChart {
    BarChart {
        title: "Throughput per workload (records/s, one stream thread)",
        y_desc: "records/s (log scale)",
        groups: rows.iter().map(|r| r.workload.clone()).collect(),
        series: vec![
            Series {
                name: "measured",
                color: RGBColor(31, 119, 180),
                values: rows.iter().map(|r| Some(r.measured)).collect(),
            },
            Series {
                name: "goal",
                color: RGBColor(160, 160, 160),
                values: rows.iter().map(|r| r.goal).collect(),
            },
            Series {
                name: "peer",
                color: RGBColor(255, 127, 14),
                values: rows.iter().map(|r| r.peer).collect(),
            },
        ],
        format: si,
    }
}

/// The latency chart: the four percentiles per workload.
fn latency_chart(rows: &[Latency]) -> BarChart {
    let names = ["p50", "p90", "p99", "max"];
    let colors = [
        RGBColor(158, 202, 225),
        RGBColor(66, 146, 198),
        RGBColor(8, 69, 148),
        RGBColor(203, 24, 29),
    ];
    BarChart {
        title: "End-to-end latency percentiles per workload (ms)",
        y_desc: "latency (ms, log scale)",
        groups: rows
            .iter()
            .map(|r| match r.rate {
                Some(rate) => format!("{} @ {}/s", r.workload, si(rate)),
                None => r.workload.clone(),
            })
            .collect(),
        series: names
            .iter()
            .zip(colors)
            .enumerate()
            .map(|(i, (name, color))| Series {
                name,
                color,
                values: rows.iter().map(|r| Some(r.percentiles[i])).collect(),
            })
            .collect(),
        format: sig3,
    }
}

/// Draws the RSS of a soak over time, with its budget if known.
fn draw_rss<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    rss: &Rss,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let last_second = rss.samples.last().map_or(0.0, |s| s.0);
    // Minutes on the time axis past ten minutes, seconds before.
    let (unit, per_unit) = if last_second > 600.0 {
        ("min", 60.0)
    } else {
        ("s", 1.0)
    };
    let x_max = (last_second / per_unit).max(1.0);
    let peak = rss.samples.iter().map(|s| s.1).fold(0.0, f64::max);
    let y_max = (peak.max(rss.budget_mib.unwrap_or(0.0)) * 1.2).max(1.0);
    let mut ctx = ChartBuilder::on(root)
        .caption("Resident set size over the soak (MiB)", (FONT, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    let x_desc = format!("time since start ({unit})");
    ctx.configure_mesh()
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(TRANSPARENT)
        .x_desc(x_desc.as_str())
        .y_desc("RSS (MiB)")
        .x_label_formatter(&|x| sig3(*x))
        .y_label_formatter(&|y| sig3(*y))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .draw()?;
    let line_color = RGBColor(31, 119, 180);
    let points = rss.samples.iter().map(|&(s, mib)| (s / per_unit, mib));
    ctx.draw_series(LineSeries::new(points, line_color.stroke_width(2)))?
        .label(format!("RSS (peak {} MiB)", sig3(peak)))
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], line_color.stroke_width(2)));
    // Sparse samples (a short soak, or one sample, which draws no line) also get dots.
    if rss.samples.len() <= 60 {
        let dots = rss
            .samples
            .iter()
            .map(|&(s, mib)| Circle::new((s / per_unit, mib), 3, line_color.filled()));
        ctx.draw_series(dots)?;
    }
    if let Some(budget) = rss.budget_mib {
        let budget_color = RGBColor(203, 24, 29);
        ctx.draw_series(LineSeries::new(
            [(0.0, budget), (x_max, budget)],
            budget_color.stroke_width(2),
        ))?
        .label(format!("budget {} MiB", sig3(budget)))
        .legend(move |(x, y)| {
            PathElement::new([(x, y), (x + 16, y)], budget_color.stroke_width(2))
        });
    }
    ctx.configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.4))
        .draw()?;
    Ok(())
}

/// Draws an SVG of `size` pixels with `draw` and writes it to `out`.
fn write_svg(
    out: &Path,
    size: (u32, u32),
    draw: impl FnOnce(
        &DrawingArea<SVGBackend<'_>, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<io::Error>>,
) -> Result<(), ChartError> {
    let draw_error = |e: DrawingAreaErrorKind<io::Error>| ChartError::Draw {
        path: out.to_owned(),
        message: e.to_string(),
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        draw(&root).map_err(draw_error)?;
        root.present().map_err(draw_error)?;
    }
    fs::write(out, svg).map_err(|source| ChartError::Io {
        path: out.to_owned(),
        source,
    })?;
    println!("wrote {}", out.display());
    Ok(())
}

/// Notes on stderr that `input` is absent, so `chart` is not drawn.
fn skipped(input: &Path, chart: &str) {
    eprintln!("charts: {} not found: no {chart}", input.display());
}

/// Writes the charts of the inputs in `results` to `out`.
fn run(results: &Path, out: &Path) -> Result<(), ChartError> {
    if !results.is_dir() {
        return Err(ChartError::Usage(format!(
            "{} is not a directory",
            results.display()
        )));
    }
    fs::create_dir_all(out).map_err(|source| ChartError::Io {
        path: out.to_owned(),
        source,
    })?;
    let mut written = 0;

    let input = results.join("throughput.csv");
    match read_throughput(&input)? {
        Some(rows) => {
            let chart = throughput_chart(&rows);
            let size = (bar_chart_width(&chart), 520);
            write_svg(&out.join("throughput.svg"), size, |root| {
                draw_bars(root, &chart)
            })?;
            written += 1;
        }
        None => skipped(&input, "throughput.svg"),
    }

    let input = results.join("latency.csv");
    match read_latency(&input)? {
        Some(rows) => {
            let chart = latency_chart(&rows);
            let size = (bar_chart_width(&chart), 520);
            write_svg(&out.join("latency.svg"), size, |root| {
                draw_bars(root, &chart)
            })?;
            written += 1;
        }
        None => skipped(&input, "latency.svg"),
    }

    let input = results.join("rss.csv");
    let budget = results.join("rss_budget.txt");
    match read_rss(&input, &budget)? {
        Some(rss) => {
            if rss.budget_mib.is_none() {
                eprintln!(
                    "charts: {} not found: rss.svg has no budget line",
                    budget.display()
                );
            }
            write_svg(&out.join("rss.svg"), (900, 480), |root| {
                draw_rss(root, &rss)
            })?;
            written += 1;
        }
        None => skipped(&input, "rss.svg"),
    }

    if written == 0 {
        return Err(ChartError::Usage(format!(
            "none of throughput.csv, latency.csv, rss.csv is in {}",
            results.display()
        )));
    }
    Ok(())
}

/// Parses the command line and runs; errors go to stderr with a failing exit status.
fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if args
        .first()
        .is_some_and(|a| a.as_os_str() == "-h" || a.as_os_str() == "--help")
    {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let result = match args.as_slice() {
        [results, out] => run(results, out),
        _ => Err(ChartError::Usage(format!(
            "two arguments expected, got {}",
            args.len()
        ))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("charts: {e}");
            ExitCode::FAILURE
        }
    }
}
