//! Repetitions summarised (median, min, max) and the table rows they become.

use std::fmt::Write as _;

/// Median, minimum and maximum of a workload's repetitions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    /// The middle value (the mean of the two middle values for an even count).
    pub median: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
}

impl Stats {
    /// Summarises `samples`; `None` when there are none.
    pub fn new(samples: &[f64]) -> Option<Stats> {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = match n {
            0 => return None,
            _ if n % 2 == 1 => sorted[n / 2],
            _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        };
        Some(Stats {
            median,
            min: sorted[0],
            max: sorted[n - 1],
        })
    }
}

/// Whether a row met its target.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// No target applies (a baseline).
    None,
    /// Met.
    Pass,
    /// Missed; says which part.
    Fail(String),
    /// The workload did not complete; says why.
    Error(String),
}

/// One line of the table.
#[derive(Clone, Debug)]
pub struct Row {
    /// What was measured; stable text that the smoke test looks for.
    pub workload: String,
    /// The repetitions, in `unit`.
    pub stats: Option<Stats>,
    /// Unit of the figures.
    pub unit: &'static str,
    /// Median throughput over the median of the raw baseline measured alongside.
    pub ratio: Option<f64>,
    /// The baseline's CPU time over Ferry's (client and server), medians; above 1 means
    /// Ferry spends less CPU than the baseline. Less sensitive to load than `ratio`.
    pub cpu_ratio: Option<f64>,
    /// The target, as text.
    pub target: String,
    /// Met or not.
    pub verdict: Verdict,
    /// The server's peak resident set (VmHWM) over the workload, in KiB.
    pub vmhwm_kib: Option<u64>,
    /// Anything else worth a glance (threads, failures, latency).
    pub note: String,
}

impl Row {
    /// A row with figures and nothing else yet.
    pub fn new(workload: impl Into<String>, samples: &[f64], unit: &'static str) -> Row {
        Row {
            workload: workload.into(),
            stats: Stats::new(samples),
            unit,
            ratio: None,
            cpu_ratio: None,
            target: String::new(),
            verdict: Verdict::None,
            vmhwm_kib: None,
            note: String::new(),
        }
    }

    /// A row for a workload that could not complete.
    pub fn failed(workload: impl Into<String>, target: &str, error: &anyhow::Error) -> Row {
        let mut row = Row::new(workload, &[], "");
        row.target = target.into();
        row.verdict = Verdict::Error(format!("{error:#}"));
        row
    }

    /// Appends to the note.
    pub fn add_note(&mut self, text: impl AsRef<str>) {
        self.note = join(&self.note, text.as_ref());
    }

    fn cells(&self) -> [String; COLUMNS] {
        let figure =
            |pick: fn(&Stats) -> f64| self.stats.as_ref().map_or("-".into(), |s| fmt(pick(s)));
        let (result, note) = match &self.verdict {
            Verdict::None => ("", self.note.clone()),
            Verdict::Pass => ("pass", self.note.clone()),
            Verdict::Fail(why) => ("FAIL", join(why, &self.note)),
            Verdict::Error(why) => ("ERROR", join(why, &self.note)),
        };
        [
            self.workload.clone(),
            figure(|s| s.median),
            figure(|s| s.min),
            figure(|s| s.max),
            self.unit.into(),
            self.ratio.map_or(String::new(), |r| format!("{r:.3}")),
            self.cpu_ratio.map_or(String::new(), |r| format!("{r:.3}")),
            self.target.clone(),
            result.into(),
            self.vmhwm_kib
                .map_or(String::new(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
            note,
        ]
    }
}

const COLUMNS: usize = 11;

const HEADINGS: [&str; COLUMNS] = [
    "workload",
    "median",
    "min",
    "max",
    "unit",
    "vs raw",
    "CPU vs raw",
    "target",
    "result",
    "ferryd VmHWM",
    "note",
];

/// Columns holding numbers, aligned right.
const NUMERIC: [bool; COLUMNS] = [
    false, true, true, true, false, true, true, false, false, true, false,
];

/// The heading of the ratio column: `vs raw`, or what `ratio` names instead.
fn headings(ratio: &str) -> [String; COLUMNS] {
    let mut headings = HEADINGS.map(String::from);
    headings[5] = ratio.to_string();
    headings
}

/// The rows as an aligned plain-text table, the ratio column headed `ratio`.
pub fn plain(rows: &[Row], ratio: &str) -> String {
    let cells: Vec<[String; COLUMNS]> = rows.iter().map(Row::cells).collect();
    let heading = headings(ratio);
    let mut widths = heading.clone().map(|h| h.len());
    for line in &cells {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for line in std::iter::once(&heading).chain(&cells) {
        let mut text = String::new();
        for (i, cell) in line.iter().enumerate() {
            let pad = widths[i] - cell.chars().count();
            if i > 0 {
                text.push_str("  ");
            }
            if NUMERIC[i] {
                text.extend(std::iter::repeat_n(' ', pad));
                text.push_str(cell);
            } else {
                text.push_str(cell);
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    }
    out
}

/// The rows as a markdown table, the ratio column headed `ratio`.
pub fn markdown(rows: &[Row], ratio: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| {} |", headings(ratio).join(" | "));
    let rule: Vec<&str> = NUMERIC
        .iter()
        .map(|&n| if n { "---:" } else { "---" })
        .collect();
    let _ = writeln!(out, "|{}|", rule.join("|"));
    for row in rows {
        let cells = row.cells().map(|c| c.replace('|', "\\|"));
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out
}

/// Three significant figures or so, without exponent notation.
fn fmt(value: f64) -> String {
    match value.abs() {
        v if v >= 100.0 => format!("{value:.0}"),
        v if v >= 10.0 => format!("{value:.1}"),
        _ => format!("{value:.2}"),
    }
}

fn join(first: &str, second: &str) -> String {
    match (first.is_empty(), second.is_empty()) {
        (_, true) => first.into(),
        (true, false) => second.into(),
        (false, false) => format!("{first}; {second}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let odd = Stats::new(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((odd.median, odd.min, odd.max), (2.0, 1.0, 3.0));
        let even = Stats::new(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!((even.median, even.min, even.max), (2.5, 1.0, 4.0));
        assert_eq!(Stats::new(&[]), None);
    }

    #[test]
    fn tables_have_a_line_per_row() {
        let mut row = Row::new("upload | 1 MiB", &[1.0, 2.0], "MiB/s");
        row.verdict = Verdict::Fail("ratio".into());
        let plain = plain(&[row.clone()], "vs raw");
        assert_eq!(plain.lines().count(), 2);
        assert!(plain.contains("FAIL"));
        let md = markdown(&[row], "Ferry/peer");
        assert_eq!(md.lines().count(), 3);
        assert!(md.contains("upload \\| 1 MiB"));
        assert!(md.contains("| Ferry/peer |"));
    }
}
