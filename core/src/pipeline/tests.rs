//! The pipeline's unit tests: the server's chain of requests, and the client's window of
//! commands sent ahead, which lands the files of downloads in groups.

use super::*;
use crate::batch::Landed;
use crate::frame::Frame;
use crate::socket::Memory;

fn wire(frames: &[Frame], tail: &[u8]) -> Connection<Memory> {
    let mut bytes = Vec::new();
    for frame in frames {
        frame.encode(&mut bytes).unwrap();
    }
    bytes.extend_from_slice(tail);
    Connection::new(Memory::new(bytes))
}

fn run(next: Result<Next, WireError>) -> Request {
    match next {
        Ok(Next::Run(request)) => request,
        other => panic!("{other:?}"),
    }
}

fn replies(conn: Connection<Memory>) -> Vec<Frame> {
    let mut back = Connection::new(Memory::new(conn.stream.into_inner().output));
    std::iter::from_fn(|| back.recv().ok()).collect()
}

#[test]
fn after_a_failed_chained_request_the_rest_of_the_chain_is_skipped_with_its_content() {
    let c = |words: &[&str]| Frame::new(Kind::Chained, words.iter().copied());
    let content = [b'D', 0, 0, 0, 2, b'h', b'i'];
    let mut end = Vec::new();
    Frame::new(Kind::End, ["xxh3-128", "0"])
        .encode(&mut end)
        .unwrap();
    let mut tail = content.to_vec();
    tail.extend_from_slice(&end);
    let mut after = Vec::new();
    Frame::new(Kind::Request, ["LIST"])
        .encode(&mut after)
        .unwrap();
    c(&["STAT", "b"]).encode(&mut after).unwrap();
    tail.extend_from_slice(&after);
    let mut conn = wire(
        &[c(&["STAT", "a"]), c(&["UPLOAD", "x", "2", "eager"])],
        &tail,
    );
    let mut chain = Chain::new();
    let first = run(chain.next(&mut conn, &mut |_| true));
    assert_eq!((first.words[1].as_str(), first.chained), ("a", true));
    chain.ran(&first, true);
    // The upload is skipped, and its content read past; the plain LIST runs.
    let list = run(chain.next(&mut conn, &mut |_| true));
    assert_eq!(
        (&list.words[..], list.chained),
        (&["LIST".to_string()][..], false)
    );
    chain.ran(&list, true);
    let next = run(chain.next(&mut conn, &mut |_| true));
    assert_eq!(
        next.words,
        ["STAT", "b"],
        "a plain request starts a new chain"
    );
    let skipped = replies(conn);
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].words[0], "skipped");
}

#[test]
fn a_late_cancel_is_dropped_and_anything_else_out_of_place_is_invalid() {
    let next = |conn: &mut Connection<Memory>| Chain::new().next(conn, &mut |_| true);
    let abort = Frame::new(Kind::Abort, ["cancelled", "late"]);
    let mut conn = wire(&[abort, Frame::new(Kind::Request, ["LIST"])], &[]);
    assert_eq!(run(next(&mut conn)).words, ["LIST"]);
    let mut conn = wire(&[Frame::new(Kind::Ok, [""; 0])], &[]);
    assert!(matches!(next(&mut conn), Err(WireError::Invalid(_))));
    let mut conn = wire(&[Frame::new(Kind::Request, [""; 0])], &[]);
    assert!(matches!(next(&mut conn), Err(WireError::Invalid(_))));
    assert!(matches!(next(&mut wire(&[], &[])), Err(WireError::Closed)));
}

#[test]
fn a_stopping_server_refuses_the_next_request_and_stops_after_a_skipped_one() {
    let c = Frame::new(Kind::Chained, ["STAT", "a"]);
    let mut conn = wire(&[c.clone(), c.clone(), c], &[]);
    let mut chain = Chain::new();
    let mut marks = Vec::new();
    let first = run(chain.next(&mut conn, &mut |busy| {
        marks.push(busy);
        true
    }));
    chain.ran(&first, true);
    // The next is skipped; going idle after it finds the server stopping.
    let stopped = chain.next(&mut conn, &mut |busy| {
        marks.push(busy);
        busy
    });
    assert_eq!(stopped.unwrap(), Next::Stopped);
    assert_eq!(marks, [true, true, false]);
    assert_eq!(
        chain.next(&mut conn, &mut |_| false).unwrap(),
        Next::Refused
    );
}

/// A log of what the commands of a window did, in order.
type Log = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// A received file that logs its rename, which fails for `bad`.
struct File(&'static str, Log);

impl crate::Pending for File {
    fn start(&mut self) {}
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
    fn place(self: Box<Self>) -> std::io::Result<Option<std::sync::Arc<crate::batch::Dir>>> {
        self.1.lock().unwrap().push(format!("place {}", self.0));
        match self.0 {
            "bad" => Err(std::io::Error::other("no room")),
            _ => Ok(None),
        }
    }
}

/// A command sent ahead: a download that lands `name`, or another that logs it.
fn sent(name: &'static str, lands: bool, log: &Log) -> Sent {
    let log = Log::clone(log);
    let finish = move |ctx: &mut ClientCtx| {
        log.lock().unwrap().push(format!("finish {name}"));
        if lands {
            let file = Box::new(File(name, Log::clone(&log)));
            let report = move |_: &mut ClientCtx| {
                log.lock().unwrap().push(format!("report {name}"));
                Ok(())
            };
            let report = Box::new(report);
            let dest = name.into();
            ctx.landing
                .push(file, name.into(), 1, Landed { dest, report });
        }
        Ok(Flow::Continue)
    };
    let finish = Box::new(finish);
    Sent {
        finish,
        unsettled: lands,
        lands: lands.then(|| name.into()),
    }
}

fn client() -> ClientCtx {
    ClientCtx {
        conn: Connection::boxed(Memory::new(Vec::new())),
        server: "127.0.0.1:1".parse().unwrap(),
        registry: Box::leak(Box::new(crate::Registry::new([]))),
        cwd: crate::RemotePath::root(),
        local_dir: ".".into(),
        out: Box::new(std::io::sink()),
        err: Box::new(std::io::sink()),
        meter: Box::new(crate::Silent),
        report: Default::default(),
        landing: Default::default(),
    }
}

/// Runs the commands through a window; the log, and each command's tag and outcome.
fn through_window(commands: &[(&'static str, bool)]) -> (Vec<String>, Vec<String>) {
    let (log, mut ctx, mut window) = (Log::default(), client(), Window::new(8));
    for &(name, lands) in commands {
        window.push(&mut ctx, name, sent(name, lands, &log));
    }
    let mut outcomes = Vec::new();
    while let Some((tag, outcome)) = window.finish_oldest(&mut ctx) {
        let failed = outcome.err().map(|e| format!(" {e:#}")).unwrap_or_default();
        outcomes.push(format!("{tag}{failed}"));
    }
    (log.lock().unwrap().clone(), outcomes)
}

#[test]
fn downloads_in_a_row_land_together_before_another_command_finishes_and_at_the_end() {
    let (log, outcomes) = through_window(&[("a", true), ("b", true), ("ls", false), ("c", true)]);
    let steps = [
        "finish a",
        "finish b",
        "place a",
        "place b",
        "report a",
        "report b",
        "finish ls",
        "finish c",
        "place c",
        "report c",
    ];
    assert_eq!(log, steps);
    assert_eq!(outcomes, ["a", "b", "ls", "c"]);
}

#[test]
fn a_download_to_a_destination_held_waits_until_the_one_before_it_lands() {
    let (log, outcomes) = through_window(&[("a", true), ("b", true), ("a", true)]);
    let steps = [
        "finish a", "finish b", "place a", "place b", "report a", "report b", "finish a",
        "place a", "report a",
    ];
    assert_eq!(log, steps);
    assert_eq!(outcomes, ["a", "b", "a"]);
}

#[test]
fn a_file_that_cannot_land_fails_its_own_command_after_the_files_before_it() {
    let (log, outcomes) = through_window(&[("a", true), ("bad", true), ("c", true)]);
    let steps = [
        "finish a",
        "finish bad",
        "finish c",
        "place a",
        "place bad",
        "report a",
    ];
    assert_eq!(log, steps, "c is not placed");
    assert_eq!(outcomes, ["a", "bad", "bad downloading 'bad': no room"]);
}

/// Downloads `f0`, `f1`, ... enough for two groups handed to a thread and a few more, the
/// one at `bad` (if any) named `bad`.
fn many(bad: Option<usize>) -> Vec<(&'static str, bool)> {
    let name = |i| match bad == Some(i) {
        true => "bad",
        false => &*Box::leak(format!("f{i}").into_boxed_str()),
    };
    (0..2 * crate::batch::PASS_AT + 3)
        .map(|i| (name(i), true))
        .collect()
}

fn at(log: &[String], step: &str) -> usize {
    log.iter()
        .position(|s| s == step)
        .unwrap_or_else(|| panic!("{step}: {log:?}"))
}

#[test]
fn while_more_downloads_follow_a_group_lands_on_a_thread_and_is_reported_before_the_next() {
    let commands = many(None);
    let (log, outcomes) = through_window(&commands);
    let names: Vec<_> = commands.iter().map(|c| c.0.to_string()).collect();
    assert_eq!(outcomes, names);
    for name in &names {
        assert!(at(&log, &format!("place {name}")) < at(&log, &format!("report {name}")));
    }
    let reports: Vec<_> = log
        .iter()
        .filter_map(|s| s.strip_prefix("report "))
        .collect();
    assert_eq!(reports, names);
    // The first group was reported before the second was placed: it was handed over alone.
    let last_of_first = format!("report f{}", crate::batch::PASS_AT - 1);
    let first_of_second = format!("place f{}", crate::batch::PASS_AT);
    assert!(
        at(&log, &last_of_first) < at(&log, &first_of_second),
        "{log:?}"
    );
}

#[test]
fn a_file_of_a_group_on_a_thread_that_cannot_land_fails_its_command_and_nothing_after_it_lands() {
    let (log, outcomes) = through_window(&many(Some(10)));
    let failure = "bad downloading 'bad': no room";
    assert_eq!(outcomes.iter().filter(|o| *o == failure).count(), 1);
    // The files before it are placed and reported, after it is found to fail.
    assert!(at(&log, "place f9") < at(&log, "place bad"));
    assert!(at(&log, "place bad") < at(&log, "report f9"));
    for after in ["place f11", "report f11", "place f70", "report f70"] {
        assert!(!log.contains(&after.to_string()), "{after}: {log:?}");
    }
}

/// Queues eight requests through `window`, as a transfer of many files does (the request,
/// then the wait, then the push); what was left unwritten after each.
fn held_back(window: &mut Window<usize>, ctx: &mut ClientCtx, log: &Log) -> Vec<usize> {
    let mut unwritten = Vec::new();
    for n in 0..8 {
        let request = crate::Frame::new(Kind::Chained, ["STAT", "a file"]);
        ctx.conn.queue(&request).unwrap();
        assert!(!window.must_wait(ctx), "request {n}");
        window.push(ctx, n, sent("stat", false, log));
        unwritten.push(ctx.conn.unwritten());
    }
    unwritten
}

#[test]
fn a_window_in_runs_holds_requests_back_until_the_server_runs_short() {
    let (log, mut ctx) = (Log::default(), client());
    let mut window = Window::new(8).in_runs();
    let unwritten = held_back(&mut window, &mut ctx, &log);
    // A quarter of the window goes at once; the rest waits for a run.
    assert_eq!(unwritten[..2], [0, 0]);
    assert!(unwritten[2] > 0 && unwritten.windows(2).skip(1).all(|w| w[0] < w[1]));
    assert!(window.must_wait(&mut ctx), "the window is full");
    window.finish_oldest(&mut ctx).unwrap().1.unwrap();
    assert_eq!(ctx.conn.unwritten(), unwritten[7]);
    // The server is down to one request to answer: the run goes before this side waits.
    window.finish_oldest(&mut ctx).unwrap().1.unwrap();
    assert_eq!(ctx.conn.unwritten(), 0);
    let (mut plain, mut ctx) = (Window::new(8), client());
    assert!(
        held_back(&mut plain, &mut ctx, &log)
            .iter()
            .all(|&n| n == 0)
    );
}
