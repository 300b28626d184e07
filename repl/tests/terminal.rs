//! The interactive REPL in a real pseudo-terminal: prompt, completion, hints, history,
//! progress, Ctrl-C and Ctrl-D, colour, and a server that goes away.

mod pty;

use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use ferry_core::{Frame, Kind};
use ferry_tests::{DEADLINE, InProcess, names_in};
use pty::{Term, key};
use tempfile::TempDir;

/// A server with its own root, and a client side: a home directory and a working directory.
struct Setup {
    server: InProcess,
    home: TempDir,
}

impl Setup {
    fn new() -> Setup {
        let setup = Setup {
            server: InProcess::start(|_| {}),
            home: tempfile::tempdir().unwrap(),
        };
        fs::create_dir(setup.cwd()).unwrap();
        setup
    }

    fn cwd(&self) -> PathBuf {
        self.home.path().join("work")
    }

    fn root(&self) -> PathBuf {
        self.server.root()
    }

    fn history_file(&self) -> PathBuf {
        self.home.path().join("data/ferry/history")
    }

    /// `ferry` connected to this server, at its prompt.
    fn ferry(&self, args: &[&str]) -> Term {
        self.ferry_to(self.server.addr, args)
    }

    /// `ferry` connected to `addr` (a slow link to this server, say), at its prompt.
    fn ferry_to(&self, addr: SocketAddr, args: &[&str]) -> Term {
        let addr = addr.to_string();
        let fingerprint = self.server.fingerprint.to_string();
        let mut all = vec![addr.as_str(), "--fingerprint", &fingerprint];
        all.extend_from_slice(args);
        let mut term = Term::ferry(self.home.path(), &self.cwd(), &all);
        term.prompt = prompt(&addr);
        term.ready();
        term
    }
}

fn prompt(addr: &str) -> String {
    format!("ferry {addr}:/> ")
}

/// Waits until the prompt's line reads `ferry ADDR> LINE` (the hint may follow).
fn expect_line(term: &mut Term, addr: SocketAddr, line: &str) {
    let want = format!("{}{line}", prompt(&addr.to_string()));
    term.expect_that(&format!("the line {want:?}"), |screen| {
        screen
            .contents()
            .lines()
            .rev()
            .find(|l| l.starts_with("ferry "))
            .is_some_and(|l| l.starts_with(&want))
    });
}

fn sparse(path: &Path, len: u64) {
    fs::File::create(path).unwrap().set_len(len).unwrap();
}

/// A relay to `server` that moves at most `rate` bytes a second each way, as a slow network
/// would, so that a transfer on loopback lasts long enough to watch and to cancel. (Its
/// pauses set the pace of the link; no test waits on them.)
fn slow_link(server: SocketAddr, rate: u64) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let Ok((client, _)) = listener.accept() else {
            return;
        };
        let upstream = TcpStream::connect(server).unwrap();
        let (client2, upstream2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
        thread::spawn(move || pump(client2, upstream, rate));
        pump(upstream2, client, rate);
    });
    addr
}

fn pump(mut from: TcpStream, mut to: TcpStream, rate: u64) {
    from.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut buf = vec![0; 64 * 1024];
    let start = Instant::now();
    let mut moved = 0u64;
    while let Ok(n @ 1..) = from.read(&mut buf) {
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        moved += n as u64;
        let due = Duration::from_secs_f64(moved as f64 / rate as f64);
        if let Some(early) = due.checked_sub(start.elapsed()) {
            thread::sleep(early);
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

const MIB: u64 = 1024 * 1024;

#[test]
fn the_prompt_names_the_server_and_ctrl_d_exits_0() {
    let setup = Setup::new();
    let mut term = setup.ferry(&[]);
    term.logout();
    assert_eq!(term.wait(), 0);
}

#[test]
fn the_prompt_shows_the_remote_working_directory() {
    let setup = Setup::new();
    fs::create_dir_all(setup.root().join("photos/été")).unwrap();
    let mut term = setup.ferry(&[]);
    let addr = setup.server.addr;
    term.send("CD photos/été\r");
    term.prompt = format!("ferry {addr}:/photos/été> ");
    term.ready();
    term.send("CD ..\r");
    term.prompt = format!("ferry {addr}:/photos> ");
    term.ready();
    term.send("CD\r");
    term.prompt = prompt(&addr.to_string());
    term.ready();
    term.logout();
    assert_eq!(term.wait(), 0);
}

#[test]
fn tab_completes_verbs_ignoring_case() {
    let setup = Setup::new();
    let addr = setup.server.addr;
    let mut term = setup.ferry(&[]);
    term.send("dow");
    term.send(key::TAB);
    expect_line(&mut term, addr, "DOWNLOAD ");
    term.send(key::CTRL_U);
    term.send("D");
    term.send(key::TAB);
    term.send(key::TAB);
    term.expect("DELETE    DOWNLOAD");
    term.send(key::CTRL_U);
    term.logout();
    assert_eq!(term.wait(), 0);
}

#[test]
fn tab_completes_remote_names_refreshed_after_an_upload() {
    let setup = Setup::new();
    let addr = setup.server.addr;
    fs::write(setup.root().join("readme"), b"r").unwrap();
    fs::write(setup.cwd().join("report.txt"), b"report").unwrap();
    let mut term = setup.ferry(&[]);
    term.send("DOWNLOAD re");
    term.send(key::TAB);
    expect_line(&mut term, addr, "DOWNLOAD readme ");
    term.send(key::CTRL_U);
    term.send("UPLOAD report.txt\r");
    term.expect("uploaded 'report.txt'");
    // The upload changed the listing; the cache must not offer the old one.
    term.send("delete rep");
    term.send(key::TAB);
    expect_line(&mut term, addr, "delete report.txt ");
    term.send(key::ENTER);
    term.expect("deleted 'report.txt'");
    assert!(!setup.root().join("report.txt").exists());
    term.logout();
    assert_eq!(term.wait(), 0);
}

#[test]
fn tab_completes_local_paths() {
    let setup = Setup::new();
    let addr = setup.server.addr;
    fs::write(setup.cwd().join("local-notes.md"), b"notes").unwrap();
    fs::create_dir(setup.cwd().join("photos")).unwrap();
    fs::write(setup.cwd().join("photos/cat.jpg"), b"cat").unwrap();
    fs::write(setup.root().join("remote.txt"), b"remote").unwrap();
    let mut term = setup.ferry(&[]);
    term.send("UPLOAD lo");
    term.send(key::TAB);
    expect_line(&mut term, addr, "UPLOAD local-notes.md ");
    term.send(key::CTRL_U);
    term.send("UPLOAD ph");
    term.send(key::TAB);
    expect_line(&mut term, addr, "UPLOAD photos/");
    term.send(key::TAB);
    expect_line(&mut term, addr, "UPLOAD photos/cat.jpg ");
    term.send(key::ENTER);
    term.expect("uploaded 'photos/cat.jpg' to 'cat.jpg'");
    // DOWNLOAD: the first argument is remote, the second local.
    term.send("DOWNLOAD rem");
    term.send(key::TAB);
    expect_line(&mut term, addr, "DOWNLOAD remote.txt ");
    term.send("pho");
    term.send(key::TAB);
    expect_line(&mut term, addr, "DOWNLOAD remote.txt photos/");
    term.send(key::ENTER);
    term.expect("downloaded 'remote.txt' to 'photos/remote.txt'");
    assert_eq!(
        fs::read(setup.cwd().join("photos/remote.txt")).unwrap(),
        b"remote"
    );
    term.logout();
    assert_eq!(term.wait(), 0);
}

#[test]
fn tab_completes_inside_remote_directories() {
    let setup = Setup::new();
    let addr = setup.server.addr;
    fs::create_dir_all(setup.root().join("photos/2024")).unwrap();
    fs::create_dir_all(setup.root().join("photos/2025")).unwrap();
    fs::write(setup.root().join("photos/2024/été.jpg"), b"summer").unwrap();
    fs::write(setup.root().join("photos/cat.jpg"), b"cat").unwrap();
    fs::create_dir(setup.root().join("my dir")).unwrap();
    fs::write(setup.root().join("my dir/x y.txt"), b"spaced").unwrap();
    let mut term = setup.ferry(&[]);
    term.send("DOWNLOAD pho");
    term.send(key::TAB);
    expect_line(&mut term, addr, "DOWNLOAD photos/");
    term.send("20");
    term.send(key::TAB);
    expect_line(&mut term, addr, "DOWNLOAD photos/202");
    term.send("4");
    term.send(key::TAB);
    expect_line(&mut term, addr, "DOWNLOAD photos/2024/");
    term.send(key::TAB);
    expect_line(&mut term, addr, "DOWNLOAD photos/2024/été.jpg ");
    term.send(key::ENTER);
    term.expect("downloaded 'photos/2024/été.jpg'");
    assert_eq!(fs::read(setup.cwd().join("été.jpg")).unwrap(), b"summer");
    // From another working directory, only directories for CD, `..` and quotes.
    term.send("CD photos\r");
    term.prompt = format!("ferry {addr}:/photos> ");
    term.ready();
    term.send("CD ");
    term.send(key::TAB);
    term.expect(&format!("{}CD 202", term.prompt));
    term.send(key::TAB);
    term.expect("2024/  2025/");
    assert!(!term.contents().contains("cat.jpg"), "{}", term.contents());
    term.send(key::CTRL_U);
    term.send("DOWNLOAD ../my");
    term.send(key::TAB);
    term.expect(&format!("{}DOWNLOAD \"../my dir/", term.prompt));
    term.send(key::TAB);
    term.expect(&format!("{}DOWNLOAD \"../my dir/x y.txt\" ", term.prompt));
    term.send(key::ENTER);
    term.expect("downloaded '/my dir/x y.txt'");
    assert_eq!(fs::read(setup.cwd().join("x y.txt")).unwrap(), b"spaced");
    term.logout();
    assert_eq!(term.wait(), 0);
}

#[test]
fn tab_completes_local_directories_from_home() {
    let setup = Setup::new();
    let addr = setup.server.addr;
    let docs = setup.home.path().join("docs");
    fs::create_dir(&docs).unwrap();
    fs::write(setup.home.path().join("dot.txt"), b"not a directory").unwrap();
    let mut term = setup.ferry(&[]);
    term.send("LCD ~/do");
    term.send(key::TAB);
    expect_line(&mut term, addr, "LCD ~/docs/");
    term.send(key::ENTER);
    term.send("LPWD\r");
    term.expect(&docs.display().to_string());
    term.logout();
    assert_eq!(term.wait(), 0);
}

#[test]
fn a_first_tab_among_names_needing_quotes_lists_them() {
    let setup = Setup::new();
    let addr = setup.server.addr;
    fs::write(setup.cwd().join("read me.txt"), b"").unwrap();
    fs::write(setup.cwd().join("notes.md"), b"").unwrap();
    let mut term = setup.ferry(&[]);
    term.send("UPLOAD ");
    term.send(key::TAB);
    term.send(key::TAB);
    term.expect_that("the list", |screen| {
        let text = screen.contents();
        text.lines()
            .any(|l| l.starts_with("notes.md  ") && l.trim_end().ends_with("  read me.txt"))
    });
    // Nothing was inserted: not even a lone quote.
    let want = format!(
        "{}UPLOAD <local-path-or-glob> [<remote-path>]",
        prompt(&addr.to_string())
    );
    term.expect_that(&format!("the line {want:?}"), |screen| {
        screen.contents().lines().any(|l| l.trim_end() == want)
    });
    term.send(key::CTRL_U);
    term.logout();
    assert_eq!(term.wait(), 0);
}

#[test]
fn a_name_with_a_space_completes_quoted_and_runs() {
    let setup = Setup::new();
    let addr = setup.server.addr;
    fs::write(setup.root().join("my file.txt"), b"spaced").unwrap();
    let mut term = setup.ferry(&[]);
    term.send("DOWNLOAD my");
    term.send(key::TAB);
    expect_line(&mut term, addr, "DOWNLOAD \"my file.txt\" ");
    term.send(key::ENTER);
    term.expect("downloaded 'my file.txt'");
    assert_eq!(
        fs::read(setup.cwd().join("my file.txt")).unwrap(),
        b"spaced"
    );
    term.logout();
    assert_eq!(term.wait(), 0);
}

#[test]
fn the_usage_hint_is_shown_dimmed_after_the_cursor() {
    let setup = Setup::new();
    let mut term = setup.ferry(&[]);
    hint_is_dimmed(&mut term, setup.server.addr);
    // Dim is a style, not a colour: NO_COLOR keeps it, so the hint never looks typed.
    let mut term = no_color(&setup);
    hint_is_dimmed(&mut term, setup.server.addr);
}

/// `ferry` at the prompt with `NO_COLOR=1`.
fn no_color(setup: &Setup) -> Term {
    spawn_with(setup, ("NO_COLOR", "1"), &[])
}

/// `ferry` with `args` at the prompt, with one more variable in its environment.
fn spawn_with(setup: &Setup, (key, value): (&str, &str), args: &[&str]) -> Term {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.arg(setup.server.addr.to_string())
        .args(["--fingerprint", setup.server.fingerprint.as_str()])
        .args(args);
    let mut cmd = pty::setup(cmd, setup.home.path(), &setup.cwd());
    cmd.env(key, value);
    let mut term = Term::spawn(cmd);
    term.prompt = prompt(&setup.server.addr.to_string());
    term.ready();
    term
}

fn hint_is_dimmed(term: &mut Term, addr: std::net::SocketAddr) {
    term.send("REN");
    expect_line(term, addr, "RENAME [-f|--force] <from> <to>");
    assert!(term.cell_style("AME [-f|--force]").1, "the hint is dim");
    assert!(
        !term.cell_style("RENAME [-f|--force]").1,
        "the typed part is not"
    );
    term.send("AME x");
    expect_line(term, addr, "RENAME x <to>");
    term.send(key::CTRL_U);
    term.logout();
    assert_eq!(term.wait(), 0);
}

#[test]
fn history_is_there_in_a_second_session() {
    let setup = Setup::new();
    let addr = setup.server.addr;
    let mut first = setup.ferry(&[]);
    for line in ["LIST\r", "HELP\r", "HELP\r"] {
        first.send(line);
        first.ready();
    }
    first.logout();
    assert_eq!(first.wait(), 0);
    let saved = fs::read_to_string(setup.history_file()).unwrap();
    let entries: Vec<&str> = saved.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(entries, ["LIST", "HELP"], "a repeated line is kept once");

    let mut second = setup.ferry(&[]);
    second.send(key::UP);
    expect_line(&mut second, addr, "HELP");
    second.send(key::UP);
    expect_line(&mut second, addr, "LIST");
    second.send(key::CTRL_U);
    second.send(key::CTRL_R);
    second.send("LI");
    second.expect("(reverse-i-search)`LI': LIST");
    second.send(key::ENTER);
    second.ready();
    second.logout();
    assert_eq!(second.wait(), 0);
}

#[test]
fn list_at_the_prompt_shows_local_times_and_says_when_a_directory_is_empty() {
    let setup = Setup::new();
    ferry_tests::write_dated(&setup.root().join("f"), b"x", 1_600_000_000);
    fs::create_dir(setup.root().join("empty")).unwrap();
    let mut term = spawn_with(&setup, ("TZ", "JST-9"), &[]);
    term.send("LIST\r");
    term.expect("1 B  2020-09-13 21:26:40 JST  f");
    term.send("LIST empty\r");
    term.expect("'empty' is empty");
    term.logout();
    assert_eq!(term.wait(), 0);
    let mut term = spawn_with(&setup, ("TZ", "JST-9"), &["--utc"]);
    term.send("LIST\r");
    term.expect("1 B  2020-09-13T12:26:40Z  f");
    term.logout();
    assert_eq!(term.wait(), 0);
}

#[test]
fn each_line_is_saved_as_entered_so_a_crash_loses_nothing() {
    let setup = Setup::new();
    let mut term = setup.ferry(&[]);
    term.send("LIST\r");
    term.ready();
    term.send("HELP LIST\r");
    term.expect("example: LIST");
    term.kill();
    let saved = fs::read_to_string(setup.history_file()).unwrap();
    assert!(saved.ends_with("LIST\nHELP LIST\n"), "{saved:?}");
}

#[test]
fn no_history_and_an_explicit_history_file() {
    let setup = Setup::new();
    let mut term = setup.ferry(&["--no-history"]);
    term.send("LIST\r");
    term.logout();
    assert_eq!(term.wait(), 0);
    assert!(!setup.history_file().exists());
    let chosen = setup.home.path().join("chosen history");
    let chosen_arg = chosen.to_str().unwrap();
    let mut term = setup.ferry(&["--history", chosen_arg]);
    term.send("LIST\r");
    term.logout();
    assert_eq!(term.wait(), 0);
    assert!(fs::read_to_string(&chosen).unwrap().ends_with("LIST\n"));
    assert!(!setup.history_file().exists());
}

#[test]
fn a_pasted_block_of_lines_runs_each_line_as_a_command() {
    let setup = Setup::new();
    fs::write(setup.root().join("a"), "a").unwrap();
    fs::write(setup.root().join("bb"), "bb").unwrap();
    let mut term = setup.ferry(&[]);
    // A terminal brackets a paste when the program asks (rustyline does): the block arrives
    // whole, newlines included, and Enter follows.
    term.send("\x1b[200~STAT a\nSTAT bb\n\x1b[201~\r");
    term.expect("bb  2 B (2 bytes)");
    term.ready();
    let screen = term.contents();
    assert!(screen.contains("a  1 B (1 bytes)"), "{screen}");
    assert!(!screen.contains("error"), "{screen}");
    term.logout();
    assert_eq!(term.wait(), 0);
    let saved = fs::read_to_string(setup.history_file()).unwrap();
    assert!(saved.ends_with("STAT a\nSTAT bb\n"), "{saved:?}");
}

#[test]
fn ctrl_c_at_the_prompt_clears_the_line() {
    let setup = Setup::new();
    let addr = setup.server.addr;
    let mut term = setup.ferry(&[]);
    term.send("DELETE nothing");
    expect_line(&mut term, addr, "DELETE nothing");
    term.send(key::CTRL_C);
    term.ready();
    term.send("HELP DELETE\r");
    term.expect("example: DELETE");
    assert!(!term.contents().contains("error"), "{}", term.contents());
    term.logout();
    assert_eq!(term.wait(), 0);
}

#[test]
fn a_long_transfer_shows_a_bar_then_a_summary() {
    let setup = Setup::new();
    sparse(&setup.root().join("big.bin"), 12 * MIB);
    let link = slow_link(setup.server.addr, 8 * MIB);
    let mut term = setup.ferry_to(link, &[]);
    term.send("DOWNLOAD big.bin\r");
    // The link moves 8 MiB a second: the rate shown is never a burst's gigabytes a second.
    let mut rates = Vec::new();
    let mut seen = |s: &vt100::Screen| {
        let text = s.contents();
        rates.extend(text.lines().filter(|l| l.contains("ETA ")).map(rate_shown));
        text
    };
    term.expect_that("a progress bar", |s| {
        let text = seen(s);
        text.contains("big.bin [") && text.contains(" / 12 MiB") && text.contains("/s  ETA ")
    });
    term.expect_that("the summary: size, time and rate", |s| {
        seen(s)
            .lines()
            .any(|l| l.starts_with("big.bin: 12 MiB in ") && l.ends_with(" MiB/s)"))
    });
    assert!(
        rates.iter().all(|&r| r < 64.0 * MIB as f64),
        "rates shown: {rates:?}"
    );
    term.expect("downloaded 'big.bin'");
    let screen = term.contents();
    assert!(!screen.contains("ETA"), "the bar is cleared:\n{screen}");
    term.logout();
    assert_eq!(term.wait(), 0);
}

/// The rate on a progress bar's line, in bytes a second.
fn rate_shown(line: &str) -> f64 {
    let before = line.split("/s  ETA").next().unwrap_or("");
    let mut words = before.split_whitespace().rev();
    let (unit, number) = (words.next().unwrap_or(""), words.next().unwrap_or("0"));
    let scale = match unit {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => MIB as f64,
        "GiB" => 1024.0 * MIB as f64,
        _ => 1024.0 * 1024.0 * MIB as f64,
    };
    number.parse::<f64>().unwrap_or(f64::MAX) * scale
}

#[test]
fn a_long_name_is_cut_so_that_the_bar_fits_the_terminal() {
    let setup = Setup::new();
    let name = format!("{}.bin", "n".repeat(150));
    sparse(&setup.root().join(&name), 12 * MIB);
    let link = slow_link(setup.server.addr, 8 * MIB);
    let mut term = setup.ferry_to(link, &[]);
    term.send(&format!("DOWNLOAD {name}\r"));
    // Rows as the terminal shows them (`contents` would join a wrapped line back up).
    term.expect_that("a bar on one row, its name cut", |s| {
        s.rows(0, s.size().1.get())
            .any(|row| row.starts_with("nnnn") && row.contains("…") && row.contains("ETA "))
    });
    term.expect("downloaded");
    term.logout();
    assert_eq!(term.wait(), 0);
}

#[test]
fn quiet_shows_no_bar() {
    let setup = Setup::new();
    sparse(&setup.root().join("big.bin"), 4 * MIB);
    let link = slow_link(setup.server.addr, 8 * MIB);
    let mut term = setup.ferry_to(link, &["--quiet"]);
    term.send("DOWNLOAD big.bin\r");
    term.expect("downloaded 'big.bin'");
    let raw = String::from_utf8_lossy(&term.raw()).into_owned();
    assert!(!raw.contains("ETA") && !raw.contains("big.bin: "), "{raw}");
    term.logout();
    assert_eq!(term.wait(), 0);
}

#[test]
fn ctrl_c_cancels_a_download_and_the_session_goes_on() {
    let setup = Setup::new();
    sparse(&setup.root().join("big.bin"), 256 * MIB);
    let link = slow_link(setup.server.addr, 16 * MIB);
    let mut term = setup.ferry_to(link, &[]);
    term.send("DOWNLOAD big.bin\r");
    term.expect("ETA");
    term.interrupt();
    term.expect("big.bin: cancelled after ");
    cancelled_on_its_own_line(&mut term, "downloading 'big.bin': cancelled");
    term.ready();
    let screen = term.contents();
    assert!(!screen.contains("ETA"), "the bar is cleared:\n{screen}");
    assert!(names_in(&setup.cwd()).is_empty(), "no partial file is left");
    term.send("LIST\r");
    term.expect("256 MiB");
    term.logout();
    assert_eq!(term.wait(), 0);
}

/// A cancel is not an error: its line is not red, says no `error:`, and starts a line of its
/// own rather than follow the `^C` the terminal echoed.
fn cancelled_on_its_own_line(term: &mut Term, message: &str) {
    term.expect_that(&format!("{message:?} at the start of a row"), |s| {
        s.rows(0, s.size().1.get())
            .any(|row| row.starts_with(message))
    });
    assert_eq!(term.cell_style(message).0, vt100::Color::Default);
    assert!(!term.contents().contains("error:"), "{}", term.contents());
}

#[test]
fn ctrl_c_before_the_bar_shows_still_starts_a_line_of_its_own() {
    let setup = Setup::new();
    sparse(&setup.root().join("big.bin"), 256 * MIB);
    let link = slow_link(setup.server.addr, 16 * MIB);
    let mut term = setup.ferry_to(link, &[]);
    term.send("DOWNLOAD big.bin\r");
    // The part appears as the download begins, before the bar (which waits a moment).
    ferry_tests::wait_until("the download to begin", || {
        fs::read_dir(setup.cwd()).is_ok_and(|mut d| d.next().is_some())
    });
    term.interrupt();
    cancelled_on_its_own_line(&mut term, "downloading 'big.bin': cancelled");
    term.ready();
    term.logout();
    assert_eq!(term.wait(), 0);
}

#[test]
fn ctrl_c_during_a_pasted_block_drops_the_lines_not_yet_run() {
    let setup = Setup::new();
    sparse(&setup.root().join("big.bin"), 256 * MIB);
    let link = slow_link(setup.server.addr, 16 * MIB);
    let mut term = setup.ferry_to(link, &[]);
    term.send("\x1b[200~DOWNLOAD big.bin\nDOWNLOAD big.bin again\nLIST\n\x1b[201~\r");
    term.expect("ETA");
    term.interrupt();
    cancelled_on_its_own_line(&mut term, "downloading 'big.bin': cancelled");
    term.expect("2 pasted lines not run");
    term.ready();
    assert!(
        names_in(&setup.cwd()).is_empty(),
        "the second download never ran"
    );
    let screen = term.contents();
    let listed = screen.lines().any(|l| l.trim_end().ends_with("Z  big.bin"));
    assert!(!listed, "nor the LIST:\n{screen}");
    term.logout();
    assert_eq!(term.wait(), 0);
}

#[test]
fn ctrl_c_cancels_an_upload_and_leaves_nothing_on_the_server() {
    let setup = Setup::new();
    sparse(&setup.cwd().join("big.bin"), 256 * MIB);
    let link = slow_link(setup.server.addr, 16 * MIB);
    let mut term = setup.ferry_to(link, &[]);
    term.send("UPLOAD big.bin\r");
    term.expect("ETA");
    term.interrupt();
    cancelled_on_its_own_line(&mut term, "uploading 'big.bin': cancelled");
    term.ready();
    assert_eq!(names_in(&setup.root()), [".ferry-partial"]);
    assert!(names_in(&setup.root().join(".ferry-partial")).is_empty());
    term.send("HELP\r");
    term.expect("UPLOAD [options] <local-path-or-glob> [<remote-path>]");
    term.logout();
    assert_eq!(term.wait(), 0);
}

#[test]
fn a_tree_shows_one_bar_and_ctrl_c_keeps_the_complete_files_only() {
    let setup = Setup::new();
    let tree = setup.cwd().join("tree");
    fs::create_dir(&tree).unwrap();
    fs::write(tree.join("a small"), b"small").unwrap();
    for name in ["b big", "c big"] {
        sparse(&tree.join(name), 128 * MIB);
    }
    let link = slow_link(setup.server.addr, 16 * MIB);
    let mut term = setup.ferry_to(link, &[]);
    term.send("UPLOAD -r tree\r");
    // One bar for the whole tree: its files and total size.
    term.expect("/3 files [");
    term.expect("/ 256.00 MiB");
    term.interrupt();
    term.expect("3 files: cancelled after ");
    term.expect("cancelled");
    term.ready();
    let stored = setup.root().join("tree");
    for name in names_in(&stored) {
        let want = fs::read(tree.join(&name)).unwrap();
        assert_eq!(
            fs::read(stored.join(&name)).unwrap(),
            want,
            "{name} is whole"
        );
    }
    assert!(
        !stored.join("c big").exists(),
        "the one not begun is not there"
    );
    assert!(names_in(&setup.root().join(".ferry-partial")).is_empty());
    term.logout();
    assert_eq!(term.wait(), 0);
}

#[test]
fn errors_are_red_on_a_terminal_unless_no_color() {
    let setup = Setup::new();
    let mut term = setup.ferry(&[]);
    term.send("FROB\r");
    term.expect("error: unknown verb 'FROB'");
    assert_eq!(
        term.cell_style("error: unknown verb").0,
        vt100::Color::Idx(1)
    );
    term.logout();
    assert_eq!(term.wait(), 0);

    let mut term = no_color(&setup);
    term.send("FROB\r");
    term.expect("error: unknown verb 'FROB'");
    assert_eq!(
        term.cell_style("error: unknown verb").0,
        vt100::Color::Default
    );
    term.logout();
    assert_eq!(term.wait(), 0);
}

#[test]
fn help_prints_the_sorted_table_and_one_verb_in_detail() {
    let setup = Setup::new();
    let mut term = setup.ferry(&[]);
    term.send("HELP\r");
    let screen = term.expect("UPLOAD [options] <local-path-or-glob> [<remote-path>]");
    let table: Vec<&str> = screen
        .lines()
        .skip_while(|l| !l.ends_with("> HELP"))
        .skip(1)
        .take_while(|l| !l.starts_with("ferry "))
        .collect();
    let names: Vec<&str> = table.iter().map(|l| l.split(' ').next().unwrap()).collect();
    let registry = ferry_commands::registry();
    let registered: Vec<&str> = registry.iter().map(|v| v.name).collect();
    assert_eq!(names, registered, "sorted by verb:\n{screen}");
    let columns: Vec<Option<usize>> = table
        .iter()
        .zip(registry.iter())
        .map(|(line, verb)| line.find(verb.summary))
        .collect();
    assert!(columns[0].is_some(), "{screen}");
    assert!(
        columns.iter().all(|c| *c == columns[0]),
        "aligned:\n{screen}"
    );
    term.send("help download\r");
    term.expect("usage:   DOWNLOAD [-r|--recursive] [-c|--continue] [-n|--no-clobber] [--sync]");
    term.expect("-c, --continue     continue an interrupted transfer");
    term.expect("example: DOWNLOAD ");
    term.logout();
    assert_eq!(term.wait(), 0);
}

/// The lines after the last one that starts with `typed` (a prompt and what was typed after
/// it; a hint may follow): what the REPL printed then.
fn printed_after(screen: &str, typed: &str) -> Vec<String> {
    let lines: Vec<&str> = screen.lines().collect();
    let at = lines.iter().rposition(|l| l.starts_with(typed)).unwrap();
    lines[at + 1..]
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.to_string())
        .collect()
}

#[test]
fn a_server_shutdown_ends_an_idle_session_at_once_with_exit_1() {
    let setup = Setup::new();
    let addr = setup.server.addr;
    let mut term = setup.ferry(&[]);
    term.send("LIST\r");
    term.ready();
    term.send("DEL");
    expect_line(&mut term, addr, "DEL");
    let mut other = ferry_tests::connect(addr);
    other.call(["SHUTDOWN"]).unwrap();
    // Nothing typed: the REPL notices by itself.
    term.expect(&format!(
        "error: the server at {addr} closed the connection"
    ));
    assert_eq!(term.wait(), 1);
    let screen = term.contents();
    assert_eq!(
        printed_after(&screen, &format!("{}DEL", prompt(&addr.to_string()))).len(),
        1,
        "one line:\n{screen}"
    );
    assert!(!screen.contains("panicked"), "{screen}");
}

#[test]
fn a_crashed_server_ends_the_session_with_exit_1() {
    let mut daemon = ferry_tests::Daemon::start(&[]);
    let home = tempfile::tempdir().unwrap();
    let addr = daemon.addr.to_string();
    let fingerprint = daemon.fingerprint.to_string();
    let args = [addr.as_str(), "--fingerprint", &fingerprint];
    let mut term = Term::ferry(home.path(), &daemon.client_dir(), &args);
    term.prompt = prompt(&addr);
    term.ready();
    daemon.kill();
    term.expect(&format!(
        "error: the server at {addr} closed the connection"
    ));
    assert_eq!(term.wait(), 1);
}

#[test]
fn a_server_lost_during_a_transfer_ends_the_session_with_exit_1() {
    let mut daemon = ferry_tests::Daemon::start(&[]);
    sparse(&daemon.root().join("big.bin"), 256 * MIB);
    let link = slow_link(daemon.addr, 16 * MIB);
    let home = tempfile::tempdir().unwrap();
    let fingerprint = daemon.fingerprint.to_string();
    let args = [&link.to_string(), "--fingerprint", &fingerprint];
    let mut term = Term::ferry(home.path(), &daemon.client_dir(), &args);
    term.prompt = prompt(&link.to_string());
    term.ready();
    term.send("DOWNLOAD big.bin\r");
    term.expect("ETA");
    daemon.kill();
    term.expect(&format!(
        "error: lost the connection to {link}: downloading 'big.bin': "
    ));
    assert_eq!(term.wait(), 1);
    let screen = term.contents();
    let typed = format!("{}DOWNLOAD big.bin", prompt(&link.to_string()));
    let printed = printed_after(&screen, &typed);
    assert!(printed[0].starts_with("big.bin: failed after"), "{screen}");
    let errors = printed.iter().filter(|l| l.starts_with("error")).count();
    assert_eq!(errors, 1, "one error line:\n{screen}");
    // A download cut by a lost server keeps its received part hidden beside the destination,
    // for `DOWNLOAD -r`; nothing appears under the file's own name.
    let left = names_in(&daemon.client_dir());
    assert!(
        left.iter()
            .all(|n| n.starts_with(".ferry-") && n.ends_with(".part")),
        "only a hidden resumable part is left: {left:?}"
    );
}

/// A server that starts a download, sends a little of it, and then nothing more.
fn stalling_server() -> (SocketAddr, String) {
    let fake = ferry_tests::Fake::start(|conn| {
        conn.recv().unwrap();
        conn.send(&Frame::new(Kind::Ok, ["1000000000", "0", "0"]))
            .unwrap();
        // A trickle for a second, long enough for the progress bar to show, then nothing.
        let mut piece = vec![b'D', 0, 1, 0, 0];
        piece.resize(5 + 65536, 0);
        for _ in 0..50 {
            if conn.stream_mut().write_all(&piece).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        // Holds the connection open, silent, until the client goes (or the deadline), whatever
        // the client sends (its cancel included).
        while conn.recv().is_ok() {}
    });
    (fake.addr, fake.fingerprint.to_string())
}

#[test]
fn a_second_ctrl_c_ends_a_transfer_that_stalls_with_exit_130() {
    let (addr, fingerprint) = stalling_server();
    let home = tempfile::tempdir().unwrap();
    let args = [&addr.to_string(), "--fingerprint", &fingerprint];
    let mut term = Term::ferry(home.path(), home.path(), &args);
    term.prompt = prompt(&addr.to_string());
    term.ready();
    term.send("DOWNLOAD big\r");
    term.expect("ETA");
    // The first Ctrl-C asks the transfer to stop, which it can only do when the next piece
    // arrives, and none does; the next one ends the program. Two presses close together may
    // reach it as one signal, so press until it is gone, giving each press a moment.
    let mut presses = 0;
    while term.try_wait().is_none() {
        assert!(presses < 10, "still running after {presses} Ctrl-C");
        term.interrupt();
        presses += 1;
        let deadline = Instant::now() + Duration::from_millis(500);
        while term.try_wait().is_none() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
    }
    assert!(
        presses >= 2,
        "one Ctrl-C cannot end a stalled transfer: exit {:?}\n{}",
        term.try_wait(),
        term.contents()
    );
    assert_eq!(term.wait(), 130);
    let left = names_in(home.path());
    assert!(
        left.iter().all(|n| n.starts_with(".ferry-") || n == "data"),
        "no file under the download's own name: {left:?}"
    );
}

/// A server that says what a hostile one might: names and messages carrying terminal escapes.
fn hostile_server() -> (SocketAddr, String) {
    let fake = ferry_tests::Fake::start(|conn| {
        let names = ["evil\x1b[2Jcleared", "title\x1b]0;pwned\x07", "fine.txt"];
        while let Ok(request) = conn.recv() {
            if request.words[0] == "LIST" {
                conn.queue(&Frame::new(Kind::Ok, ["3"])).unwrap();
                for name in names {
                    conn.queue(&Frame::new(Kind::Item, [name, "file", "1", "0"]))
                        .unwrap();
                }
                conn.send(&Frame::new(Kind::End, [""; 0])).unwrap();
            } else {
                let message = "no such file '\x1b[31mred'";
                conn.send(&Frame::new(Kind::Error, ["not-found", message]))
                    .unwrap();
            }
        }
    });
    (fake.addr, fake.fingerprint.to_string())
}

#[test]
fn a_hostile_server_cannot_send_terminal_escapes() {
    let (addr, fingerprint) = hostile_server();
    let home = tempfile::tempdir().unwrap();
    let args = [&addr.to_string(), "--fingerprint", &fingerprint];
    let mut term = Term::ferry(home.path(), home.path(), &args);
    term.prompt = prompt(&addr.to_string());
    term.ready();
    term.send("LIST\r");
    term.expect("fine.txt");
    term.expect("evil\\u{1b}[2Jcleared");
    term.expect("title\\u{1b}]0;pwned\\u{7}");
    term.send("DOWNLOAD ");
    term.send(key::TAB);
    // Only the usable name is offered, and it is the only candidate, so it is taken.
    expect_line(&mut term, addr, "DOWNLOAD fine.txt ");
    term.send(key::ENTER);
    term.expect("no such file '\\u{1b}[31mred'");
    let raw = term.raw();
    for escape in [&b"\x1b[2J"[..], b"\x1b]0;", b"\x1b[31mred"] {
        assert!(
            !raw.windows(escape.len()).any(|w| w == escape),
            "{escape:?} reached the terminal"
        );
    }
    term.logout();
    assert_eq!(term.wait(), 0);
}

#[test]
fn script_mode_on_a_terminal_has_no_prompt_bars_colour_or_history() {
    let setup = Setup::new();
    sparse(&setup.root().join("big.bin"), 12 * MIB);
    let link = slow_link(setup.server.addr, 8 * MIB);
    // stdin is a pipe, stdout and stderr the terminal.
    let script = format!(
        "printf 'DOWNLOAD big.bin\\n-FROB\\nLIST\\n' | {} {link} --fingerprint {}",
        env!("CARGO_BIN_EXE_ferry"),
        setup.server.fingerprint
    );
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script]);
    let mut term = Term::spawn(pty::setup(cmd, setup.home.path(), &setup.cwd()));
    assert_eq!(term.wait(), 0);
    term.expect("Z  big.bin");
    let raw = String::from_utf8_lossy(&term.raw()).into_owned();
    assert!(raw.contains("downloaded 'big.bin'"), "{raw}");
    assert!(
        raw.contains("warning: line 2: unknown verb 'FROB'"),
        "{raw}"
    );
    assert!(
        !raw.contains('\x1b'),
        "no colour, no bar, no prompt: {raw:?}"
    );
    assert!(!raw.contains("ferry "), "{raw}");
    assert!(!setup.history_file().exists());
}

#[test]
fn a_new_server_is_asked_about_at_the_prompt_and_yes_pins_it() {
    let setup = Setup::new();
    let addr = setup.server.addr.to_string();
    let fingerprint = setup.server.fingerprint.to_string();
    // No: nothing is pinned and the program ends.
    let mut term = Term::ferry(setup.home.path(), &setup.cwd(), &[&addr]);
    term.expect("Trust it and remember it? [yes/no]");
    term.expect(&fingerprint);
    term.send("no\r");
    assert_eq!(term.wait(), 2);
    let pins = setup.home.path().join("data/ferry/known_servers");
    assert!(!pins.exists());
    // Yes: pinned, and the prompt comes.
    let mut term = Term::ferry(setup.home.path(), &setup.cwd(), &[&addr]);
    term.expect("Trust it and remember it? [yes/no]");
    term.send("yes\r");
    term.prompt = prompt(&addr);
    term.ready();
    term.logout();
    assert_eq!(term.wait(), 0);
    assert_eq!(
        fs::read_to_string(&pins).unwrap(),
        format!("{addr} {fingerprint}\n")
    );
    // The next time, nothing is asked.
    let mut term = setup.ferry(&[]);
    term.logout();
    assert_eq!(term.wait(), 0);
    let mut term = Term::ferry(setup.home.path(), &setup.cwd(), &[&addr]);
    term.prompt = prompt(&addr);
    term.ready();
    assert!(!term.contents().contains("Trust it"), "{}", term.contents());
    term.logout();
    assert_eq!(term.wait(), 0);
}
