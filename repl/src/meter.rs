//! [`Progress`], the interactive [`Meter`]: a progress bar on stderr for transfers that last
//! more than a moment, one summary line after them, and the user's Ctrl-C as a cancel.
//!
//! The verbs call the meter between chunked copies (once per 1 MiB), so the bar costs nothing
//! on the copy path itself.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ferry_core::Meter;
use std::fmt::Write;

use indicatif::{
    HumanDuration, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle, TermLike,
};

/// A transfer shows a bar once it has run this long; quicker ones print nothing extra.
pub const DELAY: Duration = Duration::from_millis(250);

/// Shows progress on stderr and reports a cancel requested through a shared flag.
pub struct Progress {
    cancel: Arc<AtomicBool>,
    bars: bool,
    delay: Duration,
    current: Option<Transfer>,
}

struct Transfer {
    label: String,
    /// What the bar says: the label, or for many files how many are done.
    message: String,
    total: u64,
    started: Instant,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A meter that cancels while `cancel` is set, and draws bars when `bars` (stderr is a
    /// terminal and the user did not ask for quiet).
    pub fn new(cancel: Arc<AtomicBool>, bars: bool) -> Progress {
        Progress {
            cancel,
            bars,
            delay: DELAY,
            current: None,
        }
    }

    /// Whether a bar is on screen now.
    pub fn showing(&self) -> bool {
        self.current.as_ref().is_some_and(|t| t.bar.is_some())
    }

    /// A bar for a transfer of `total` bytes that began at `started`. Its rate is the
    /// average since then, as the summary line gives it, rather than an estimate that starts
    /// when the bar appears (and sees the first moment's bytes as gigabytes a second); the
    /// bar takes the width the terminal has, and a long label is cut to leave it room.
    fn bar(label: &str, total: u64, started: Instant) -> ProgressBar {
        let human = |n: u64| humansize::format_size(n, humansize::BINARY);
        let rate = move |done: u64| done as f64 / started.elapsed().as_secs_f64().max(1e-3);
        let term = Margin(console::Term::stderr());
        let room = usize::from(term.width())
            .saturating_sub(REST_OF_LINE)
            .max(10);
        let style = ProgressStyle::with_template(
            "{msg} [{wide_bar}] {done} / {size}  {average}  ETA {left}",
        )
        .expect("the template is valid")
        .progress_chars("=> ")
        .with_key("done", move |s: &ProgressState, w: &mut dyn Write| {
            let _ = w.write_str(&human(s.pos()));
        })
        .with_key("size", move |s: &ProgressState, w: &mut dyn Write| {
            let _ = w.write_str(&human(s.len().unwrap_or(0)));
        })
        .with_key("average", move |s: &ProgressState, w: &mut dyn Write| {
            let _ = write!(w, "{}/s", human(rate(s.pos()) as u64));
        })
        .with_key("left", move |s: &ProgressState, w: &mut dyn Write| {
            let left = s.len().unwrap_or(0).saturating_sub(s.pos()) as f64;
            let secs = left / rate(s.pos()).max(1.0);
            let _ = write!(
                w,
                "{:#}",
                HumanDuration(Duration::from_secs_f64(secs.min(1e7)))
            );
        });
        let target = ProgressDrawTarget::term_like(Box::new(term));
        let bar = ProgressBar::with_draw_target(Some(total), target)
            .with_style(style)
            .with_message(cut(label, room));
        // A stalled transfer still redraws, so its rate and ETA say that it is stalled.
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }
}

/// Columns a bar's line needs beside its label: the brackets and a short bar, two sizes, a
/// rate and an ETA at their widest.
const REST_OF_LINE: usize = 60;

/// `label` cut to at most `room` characters, with an ellipsis where it was cut.
fn cut(label: &str, room: usize) -> String {
    if label.chars().count() <= room {
        return label.to_string();
    }
    let kept: String = label.chars().take(room.saturating_sub(1)).collect();
    format!("{kept}…")
}

/// The terminal on stderr, less its last columns. indicatif pads a bar to the right edge; the
/// `^C` a terminal echoes for Ctrl-C would then wrap to a new line, and clearing the bar would
/// clear that line and leave the bar on screen.
#[derive(Debug)]
struct Margin(console::Term);

impl TermLike for Margin {
    fn width(&self) -> u16 {
        self.0.size().1.saturating_sub(3).max(1)
    }
    fn height(&self) -> u16 {
        self.0.size().0
    }
    fn move_cursor_up(&self, n: usize) -> io::Result<()> {
        self.0.move_cursor_up(n)
    }
    fn move_cursor_down(&self, n: usize) -> io::Result<()> {
        self.0.move_cursor_down(n)
    }
    fn move_cursor_right(&self, n: usize) -> io::Result<()> {
        self.0.move_cursor_right(n)
    }
    fn move_cursor_left(&self, n: usize) -> io::Result<()> {
        self.0.move_cursor_left(n)
    }
    fn write_line(&self, s: &str) -> io::Result<()> {
        self.0.write_line(s)
    }
    fn write_str(&self, s: &str) -> io::Result<()> {
        self.0.write_str(s)
    }
    fn clear_line(&self) -> io::Result<()> {
        self.0.clear_line()
    }
    fn flush(&self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Meter for Progress {
    fn start(&mut self, label: &str, total: u64) {
        let label = ferry_core::name::escape(label);
        self.current = Some(Transfer {
            message: label.clone(),
            label,
            total,
            started: Instant::now(),
            bar: None,
        });
    }

    fn update(&mut self, done: u64) -> bool {
        if self.cancel.load(Ordering::SeqCst) {
            return false;
        }
        if let Some(t) = &mut self.current {
            if t.bar.is_none() && self.bars && done < t.total && t.started.elapsed() >= self.delay {
                t.bar = Some(Progress::bar(&t.message, t.total, t.started));
            }
            if let Some(bar) = &t.bar {
                bar.set_position(done);
            }
        }
        true
    }

    fn files(&mut self, done: usize, total: usize) {
        if let Some(t) = &mut self.current {
            t.message = format!("{done}/{total} files");
            if let Some(bar) = &t.bar {
                bar.set_message(t.message.clone());
            }
        }
    }

    fn finish(&mut self, done: u64, ok: bool) {
        let Some(t) = self.current.take() else {
            return;
        };
        if let Some(bar) = t.bar {
            bar.finish_and_clear();
            let cancelled = self.cancel.load(Ordering::SeqCst);
            let outcome = match (ok, cancelled) {
                (true, _) => Outcome::Done,
                (false, true) => Outcome::Cancelled,
                (false, false) => Outcome::Failed,
            };
            eprintln!(
                "{}",
                summary(&t.label, done, t.total, t.started.elapsed(), outcome)
            );
        }
    }
}

/// How a transfer ended, for its summary line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every byte moved.
    Done,
    /// The user cancelled it.
    Cancelled,
    /// It failed.
    Failed,
}

/// The line printed after a transfer that showed a bar: size, time and rate, or how far it got.
pub fn summary(label: &str, done: u64, total: u64, elapsed: Duration, outcome: Outcome) -> String {
    let human = |n: u64| humansize::format_size(n, humansize::BINARY);
    let secs = elapsed.as_secs_f64();
    match outcome {
        Outcome::Done => {
            let rate = if secs > 0.0 {
                human((done as f64 / secs) as u64)
            } else {
                human(done)
            };
            format!("{label}: {} in {secs:.1} s ({rate}/s)", human(done))
        }
        Outcome::Cancelled => format!(
            "{label}: cancelled after {} of {}",
            human(done),
            human(total)
        ),
        Outcome::Failed => format!("{label}: failed after {} of {}", human(done), human(total)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_cancels_and_nothing_shows_without_bars() {
        let cancel = Arc::new(AtomicBool::new(false));
        let mut meter = Progress::new(Arc::clone(&cancel), false);
        meter.delay = Duration::ZERO;
        meter.start("a", 100);
        assert!(meter.update(10));
        assert!(!meter.showing());
        cancel.store(true, Ordering::SeqCst);
        assert!(!meter.update(20));
        meter.finish(20, false);
        assert!(meter.current.is_none());
    }

    #[test]
    fn a_bar_appears_only_after_the_delay() {
        let cancel = Arc::new(AtomicBool::new(false));
        let mut meter = Progress::new(cancel, true);
        meter.delay = Duration::from_secs(3600);
        meter.start("quick", 100);
        assert!(meter.update(50));
        assert!(!meter.showing(), "a quick transfer shows no bar");
        meter.finish(100, true);
        meter.delay = Duration::ZERO;
        meter.start("slow", 100);
        assert!(meter.update(50));
        assert!(meter.showing());
        meter.finish(100, true);
        assert!(!meter.showing());
    }

    #[test]
    fn summaries_give_size_time_and_rate() {
        let mib = 1024 * 1024;
        assert_eq!(
            summary(
                "big.bin",
                10 * mib,
                10 * mib,
                Duration::from_secs(4),
                Outcome::Done
            ),
            "big.bin: 10 MiB in 4.0 s (2.50 MiB/s)"
        );
        assert_eq!(
            summary(
                "big.bin",
                mib,
                4 * mib,
                Duration::from_secs(1),
                Outcome::Cancelled
            ),
            "big.bin: cancelled after 1 MiB of 4 MiB"
        );
        assert_eq!(
            summary("x", 0, 5, Duration::ZERO, Outcome::Failed),
            "x: failed after 0 B of 5 B"
        );
    }
}
