//! A verb registered from outside `commands/`, and nothing else: the README's "Adding a verb"
//! sketch, compiled from the README itself (see `build.rs`) into this test binary. HELP,
//! `HELP <verb>`, completion, hints, the usage check and dispatch on a real server all pick it
//! up from the registry, with no other edit anywhere.
//!
//! The client is driven in-process against an in-process server: the `ferry` and `ferryd`
//! binaries are built without this crate, so they cannot see the verb.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use ferry_core::{Flow, Frame, Kind};
use ferry_repl::helper::FerryHelper;
use ferry_repl::remote::RemoteNames;
use ferry_repl::trust::Expect;
use ferry_repl::{Access, Client, connect};
use ferry_tests::InProcess;

#[allow(dead_code)]
mod readme {
    include!(concat!(env!("OUT_DIR"), "/readme_verb.rs"));
}

/// What the client printed, shared with the test.
#[derive(Clone, Default)]
struct Printed(Arc<Mutex<Vec<u8>>>);

impl Write for Printed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Printed {
    fn take(&self) -> String {
        String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
    }
}

/// A client of `server` printing into a buffer, and a prompt helper completing its names.
fn client(server: &InProcess) -> (Arc<Mutex<Client>>, Printed, FerryHelper) {
    let registry = ferry_commands::registry();
    let expect = Expect::Exactly {
        fingerprint: server.fingerprint.clone(),
        source: "the test".into(),
    };
    let access = Access {
        token: None,
        expect: &expect,
        ask: &mut |_| false,
    };
    let (conn, addr) = connect(&[server.addr], access).unwrap();
    let printed = Printed::default();
    let client = Client::new(conn, addr, registry, ".".into(), Box::new(printed.clone()));
    let client = Arc::new(Mutex::new(client));
    let remote = RemoteNames::new({
        let client = Arc::clone(&client);
        move |dir: &_| {
            let mut client = client.lock().unwrap_or_else(PoisonError::into_inner);
            ferry_commands::remote_names(&mut client.ctx, dir)
        }
    });
    (client, printed, FerryHelper::new(registry, remote))
}

#[test]
fn the_readme_verb_gets_completion_hints_and_the_usage_check() {
    let server = InProcess::start(|_| {});
    std::fs::write(server.root().join("report.pdf"), b"%PDF").unwrap();
    let verb = ferry_commands::registry().find("size").expect("registered");
    assert!(
        verb.module.ends_with("extension::readme"),
        "{}",
        verb.module
    );
    let (client, _, helper) = client(&server);
    let complete = |line: &str| -> Vec<String> {
        let (_, pairs) = helper.candidates(line, line.len());
        pairs.into_iter().map(|p| p.replacement).collect()
    };
    assert_eq!(complete("si"), ["SIZE "]);
    assert_eq!(
        complete("SIZE rep"),
        ["report.pdf "],
        "its parameter is remote"
    );
    assert_eq!(
        complete("sz -- rep"),
        ["report.pdf "],
        "by its alias, after --"
    );
    assert_eq!(complete("HELP si"), ["SIZE "]);
    let hint = |line: &str| helper.usage_hint(line).map(|h| h.display);
    assert_eq!(hint("SIZ").as_deref(), Some("E <path>"));
    assert_eq!(hint("size ").as_deref(), Some("<path>"));
    assert_eq!(hint("size report.pdf "), None);
    let mut client = client.lock().unwrap();
    for bad in ["SIZE", "SIZE a b", "SIZE -x a"] {
        let err = client.dispatch(bad).unwrap_err().to_string();
        assert!(err.ends_with("usage: SIZE <path>"), "{bad}: {err}");
    }
}

#[test]
fn the_readme_verb_is_in_help_and_runs_on_a_real_server() {
    let server = InProcess::start(|_| {});
    std::fs::write(server.root().join("report.pdf"), b"%PDF").unwrap();
    let (client, printed, _) = client(&server);
    let mut client = client.lock().unwrap();
    client.dispatch("HELP").unwrap();
    let table = printed.take();
    let line = table
        .lines()
        .find(|l| l.starts_with("SIZE <path> "))
        .unwrap();
    assert!(
        line.ends_with("  print the size of a file on the server (also sz)"),
        "{table}"
    );
    client.dispatch("help sz").unwrap();
    assert_eq!(
        printed.take(),
        "usage:   SIZE <path>\n         print the size of a file on the server\n\
         aliases: sz\nexample: SIZE photo.jpg\n"
    );
    assert_eq!(client.dispatch("size report.pdf").unwrap(), Flow::Continue);
    assert_eq!(printed.take(), "report.pdf: 4 bytes\n");
    let err = client.dispatch("SIZE missing").unwrap_err();
    assert_eq!(
        format!("{err:#}"),
        "sizing 'missing': no such file '/missing'"
    );
    // The server half answers clients of any language, and lists the verb over the wire.
    let mut raw = ferry_tests::connect(server.addr);
    raw.send(&Frame::new(Kind::Request, ["HELP", "SIZE"]))
        .unwrap();
    assert_eq!(raw.expect_ok().unwrap(), ["1"]);
    let item = raw.next_item().unwrap().unwrap();
    assert_eq!(item[..2], ["SIZE", "SIZE <path>"]);
    assert_eq!(raw.next_item().unwrap(), None);
    assert_eq!(raw.call(["SIZE", "/report.pdf"]).unwrap(), ["4"]);
}
