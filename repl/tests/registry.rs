//! A verb registered by a test crate, and nothing else, gets completion, a usage hint and
//! HELP: the REPL takes all of them from the registry.
//!
//! This drives the helper and `Client::dispatch` in-process, against an in-process server:
//! the `ferry` binary is built without this crate, so it cannot see the test verb.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use ferry_core::{Arg, ClientCtx, Failure, Flow, Reply, ServerCtx, Verb};
use ferry_repl::helper::FerryHelper;
use ferry_repl::remote::RemoteNames;
use ferry_repl::{Client, connect};
use ferry_tests::InProcess;

fn send(ctx: &mut ClientCtx, args: &[String]) -> anyhow::Result<Flow> {
    let words = ctx.conn.call(["STAMP", args[0].as_str()])?;
    writeln!(ctx.out, "stamped {}", words.join(" "))?;
    Ok(Flow::Continue)
}

fn receive(_ctx: &mut ServerCtx<'_>, args: &[String]) -> Result<Reply, Failure> {
    Ok(Reply::Ok(vec![format!("'{}'", args[0])]))
}

inventory::submit! {
    Verb {
        name: "STAMP",
        usage: "STAMP <name> [<local-path>]",
        summary: "a verb that only this test registers",
        example: "STAMP report.pdf",
        args: &[Arg::Remote, Arg::Local],
        required: 1,
        flags: &[],
        client: send,
        server: receive,
        ahead: None,
        module: module_path!(),
    }
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

#[test]
fn a_verb_from_a_test_crate_gets_completion_hint_and_help() {
    let server = InProcess::start(|_| {});
    std::fs::write(server.root().join("report.pdf"), b"%PDF").unwrap();
    let registry = ferry_commands::registry();
    assert!(
        registry.find("stamp").is_some(),
        "registered from this crate"
    );
    let (conn, addr) = connect(&[server.addr]).unwrap();
    let printed = Printed::default();
    let client = Client::new(conn, addr, registry, ".".into(), Box::new(printed.clone()));
    let client = Arc::new(Mutex::new(client));
    let remote = RemoteNames::new({
        let client = Arc::clone(&client);
        move || {
            let mut client = client.lock().unwrap_or_else(PoisonError::into_inner);
            ferry_commands::remote_names(&mut client.ctx)
        }
    });
    let helper = FerryHelper::new(registry, remote);
    let complete = |line: &str| -> Vec<String> {
        let (_, pairs) = helper.candidates(line, line.len());
        pairs.into_iter().map(|p| p.replacement).collect()
    };

    assert_eq!(complete("sta"), ["STAMP ", "STAT "]);
    assert_eq!(complete("stam"), ["STAMP "]);
    assert_eq!(
        complete("STAMP rep"),
        ["report.pdf "],
        "its first argument is remote"
    );
    let hint = helper.usage_hint("STAM").unwrap();
    assert_eq!(hint.display, "P <name> [<local-path>]");
    assert_eq!(
        helper.usage_hint("STAMP report.pdf ").unwrap().display,
        "[<local-path>]"
    );
    assert_eq!(complete("HELP stam"), ["STAMP "]);

    let mut client = client.lock().unwrap();
    client.dispatch("HELP").unwrap();
    let table = printed.take();
    let line = table.lines().find(|l| l.starts_with("STAMP")).unwrap();
    assert!(
        line.ends_with("  a verb that only this test registers"),
        "{table}"
    );
    let names: Vec<&str> = table
        .lines()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "sorted by verb");

    client.dispatch("help stamp").unwrap();
    assert_eq!(
        printed.take(),
        "usage:   STAMP <name> [<local-path>]\n         a verb that only this test registers\n\
         example: STAMP report.pdf\n"
    );
    assert_eq!(client.dispatch("stamp report.pdf").unwrap(), Flow::Continue);
    assert_eq!(printed.take(), "stamped 'report.pdf'\n");
}
