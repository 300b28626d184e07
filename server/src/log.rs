//! The server's log: one timestamped line per event, as text or as JSON (one object a line,
//! for log shippers), on stderr or appended to a file (`--log-file`).
//!
//! Every line is formatted whole, then written with one call, so that lines from client
//! threads never interleave.

use std::fs::File;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use ferry_core::Done;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `2026-01-02T03:04:05Z message`, paths escaped as `ferry` shows them.
    #[default]
    Text,
    /// `{"time":"...","message":"..."}`, and for a completed request the fields of
    /// [`log_done`].
    Json,
}

struct Sink {
    format: LogFormat,
    /// `None`: stderr.
    file: Option<Mutex<File>>,
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Sets how and where the log is written, for the life of the process; the first call wins.
/// Without it, text goes to stderr.
pub fn init_log(format: LogFormat, file: Option<File>) {
    let _ = SINK.set(Sink {
        format,
        file: file.map(Mutex::new),
    });
}

fn sink() -> &'static Sink {
    SINK.get_or_init(|| Sink {
        format: LogFormat::Text,
        file: None,
    })
}

fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

fn write(line: String) {
    let bytes = line.as_bytes();
    let _ = match &sink().file {
        Some(file) => file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_all(bytes),
        None => io::stderr().lock().write_all(bytes),
    };
}

/// Writes one timestamped line to the log.
pub fn log(message: std::fmt::Arguments<'_>) {
    let line = match sink().format {
        LogFormat::Text => format!("{} {message}\n", now()),
        LogFormat::Json => {
            let object = serde_json::json!({ "time": now(), "message": message.to_string() });
            format!("{object}\n")
        }
    };
    write(line);
}

/// Logs a completed request that changed something or moved content: who, the verb, the path,
/// and for content its bytes, the time it took, the rate and the file's digest.
pub fn log_done(peer: SocketAddr, verb: &str, done: &Done, took: Duration) {
    let seconds = took.as_secs_f64();
    // A transfer faster than the clock's resolution has no meaningful rate.
    let rate = done
        .bytes
        .filter(|_| seconds > 0.0)
        .map(|b| (b as f64 / seconds).round() as u64);
    let line = match sink().format {
        LogFormat::Text => {
            // Written into one string: a line for every request, each intermediate string an
            // allocation on the session's thread.
            use std::fmt::Write as _;
            let path = ferry_core::name::escape_full(&done.path);
            let time = humantime::format_rfc3339_seconds(SystemTime::now());
            let mut line = String::with_capacity(128 + path.len());
            let _ = write!(line, "{time} {peer} {verb} '{path}'");
            if let Some(bytes) = done.bytes {
                let _ = write!(line, " {bytes} bytes in {seconds:.6} s");
                if let Some(rate) = rate {
                    let _ = write!(line, " ({rate} bytes/s)");
                }
            }
            if let Some(digest) = &done.digest {
                let _ = write!(line, " {digest}");
            }
            line.push('\n');
            line
        }
        LogFormat::Json => {
            let object = serde_json::json!({
                "time": now(),
                "peer": peer.to_string(),
                "verb": verb,
                "path": done.path,
                "bytes": done.bytes,
                "seconds": seconds,
                "rate": rate,
                "digest": done.digest,
            });
            format!("{object}\n")
        }
    };
    write(line);
}
