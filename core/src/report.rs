//! What a command reports on stdout: lines for a person, or, with `ferry --json`, JSON
//! objects for a program, one a line.
//!
//! Every object has `"verb"` (the verb's name, upper case) and `"ok"`; the rest are the
//! verb's own fields, defined where the verb reports them. Every command yields at least one
//! object: a command that reports nothing gives `{"verb": ..., "ok": true}`, and a failed one
//! `{"verb": ..., "ok": false, "error": {"code": ..., "message": ...}}`, with the protocol's
//! stable error codes (a failure the client found itself gets the code that fits it best).

use std::fmt::Display;
use std::io::{self, Write};

use serde_json::{Map, Value, json};

use crate::content::ContentError;
use crate::ctx::ClientCtx;
use crate::error::{ErrorKind, WireError};
use crate::verb::Flow;
use crate::words::UsageError;

/// How results are reported, and what the command under way has reported so far.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// JSON objects rather than lines.
    pub json: bool,
    /// A person at the prompt reads the lines (times in local time, an empty listing said).
    pub at_prompt: bool,
    /// Times in UTC even at the prompt (`ferry --utc`).
    pub utc: bool,
    verb: String,
    count: usize,
}

impl Report {
    /// Reports as JSON objects when `json`, else as lines.
    pub fn new(json: bool) -> Report {
        Report {
            json,
            ..Report::default()
        }
    }

    /// A command of `verb` (as its name, or as typed when unknown) begins.
    pub fn begin(&mut self, verb: &str) {
        self.verb = verb.to_ascii_uppercase();
        self.count = 0;
    }
    /// The verb of the command that began last.
    pub fn verb(&self) -> &str {
        &self.verb
    }
}

impl ClientCtx {
    /// Runs `report` as a result of the command of `verb`, whichever began since: a download
    /// reported when its group lands, after later commands were sent.
    pub fn reporting_as<R>(&mut self, verb: &str, report: impl FnOnce(&mut ClientCtx) -> R) -> R {
        let was = std::mem::replace(&mut self.report.verb, verb.to_string());
        let result = report(self);
        self.report.verb = was;
        result
    }

    /// Reports one result: the line `human` for a person, or the object of `fields` (a JSON
    /// object) with `"verb"` and `"ok": true` for a program.
    pub fn say(&mut self, human: impl Display, fields: Value) -> io::Result<()> {
        self.report.count += 1;
        if !self.report.json {
            return writeln!(self.out, "{human}");
        }
        let mut object = Map::new();
        object.insert("verb".into(), Value::from(self.report.verb.clone()));
        object.insert("ok".into(), Value::from(true));
        if let Value::Object(fields) = fields {
            object.extend(fields);
        }
        writeln!(self.out, "{}", Value::Object(object))
    }

    /// A line for a person only (how a transfer is going, say); nothing in JSON.
    pub fn tell(&mut self, human: impl Display) -> io::Result<()> {
        if self.report.json {
            return Ok(());
        }
        writeln!(self.out, "{human}")
    }

    /// Ends the command that `result` is the outcome of: in JSON, the object of a failure,
    /// or a bare success when the command reported nothing.
    pub fn conclude(&mut self, result: &anyhow::Result<Flow>) -> io::Result<()> {
        if !self.report.json {
            return Ok(());
        }
        let verb = self.report.verb.clone();
        let object = match result {
            Err(e) => json!({
                "verb": verb,
                "ok": false,
                "error": {"code": error_code(e), "message": format!("{e:#}")},
            }),
            Ok(_) if self.report.count == 0 => json!({"verb": verb, "ok": true}),
            Ok(_) => return Ok(()),
        };
        self.report.count += 1;
        writeln!(self.out, "{object}")?;
        self.out.flush()
    }
}

/// The protocol's error code that names `e` best: the server's own for a refusal, else what
/// the client found (a local file missing is `not-found`, a command line it could not take
/// is `bad-request`, a lost connection is `io`).
pub fn error_code(e: &anyhow::Error) -> &'static str {
    for cause in e.chain() {
        if let Some(wire) = cause.downcast_ref::<WireError>() {
            return wire_code(wire);
        }
        if let Some(content) = cause.downcast_ref::<ContentError>() {
            return match content {
                ContentError::Wire(wire) => wire_code(wire),
                ContentError::Mismatch(_) => ErrorKind::DigestMismatch.code(),
                ContentError::Cancelled => ErrorKind::Cancelled.code(),
                ContentError::Sink(io) => io_code(io),
            };
        }
        if let Some(usage) = cause.downcast_ref::<UsageError>() {
            let unknown = usage.0.starts_with("unknown verb");
            let kind = if unknown {
                ErrorKind::UnknownVerb
            } else {
                ErrorKind::BadRequest
            };
            return kind.code();
        }
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            return io_code(io);
        }
    }
    ErrorKind::BadRequest.code()
}

fn wire_code(e: &WireError) -> &'static str {
    match e {
        WireError::Remote(failure) => failure.kind.code(),
        _ => ErrorKind::Io.code(),
    }
}

fn io_code(e: &io::Error) -> &'static str {
    let kind = match e.kind() {
        io::ErrorKind::NotFound => ErrorKind::NotFound,
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => ErrorKind::Forbidden,
        io::ErrorKind::AlreadyExists => ErrorKind::Exists,
        io::ErrorKind::DirectoryNotEmpty => ErrorKind::NotEmpty,
        _ => ErrorKind::Io,
    };
    kind.code()
}
