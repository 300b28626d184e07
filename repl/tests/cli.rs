//! `ferry`'s command line, through the real binary against an in-process server.

use std::process::Command;

/// Runs `ferry ARGS`, no stream a terminal and `COLUMNS=100`: help wrapped at 100 columns.
fn ferry(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env("COLUMNS", "100")
        .output()
        .unwrap()
}

#[test]
fn version_and_help() {
    let out = ferry(&["--version"]);
    assert!(out.status.success());
    let out = ferry(&["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for option in [
        "--port-file",
        "--command",
        "--local-dir",
        "--history",
        "--no-history",
        "--quiet",
        "--token-file",
        "HOST[:PORT]",
    ] {
        assert!(help.contains(option), "{option} in:\n{help}");
    }
}

#[test]
fn a_history_file_and_no_history_conflict() {
    let out = ferry(&["--history", "h", "--no-history", "-c", "LIST"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
}

#[test]
fn runs_commands_against_a_server() {
    let server = ferry_tests::InProcess::start(|_| {});
    std::fs::write(server.root().join("hello"), b"hi").unwrap();
    let fingerprint = server.fingerprint.to_string();
    let out = ferry(&[
        &server.addr.to_string(),
        "--fingerprint",
        &fingerprint,
        "-c",
        "LIST",
    ]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("  hello\n"));
}

#[test]
fn help_lists_the_verbs_after_the_options() {
    let help = String::from_utf8(ferry(&["--help"]).stdout).unwrap();
    let options = help.find("Options:").expect("options");
    let verbs = help.find("Verbs").expect("a verb list");
    assert!(options < verbs, "{help}");
    for verb in ferry_commands::registry().iter() {
        let line = format!("\n  {:<10}{}", verb.name, verb.summary);
        assert!(help[verbs..].contains(&line), "{} in:\n{help}", verb.name);
    }
}

#[test]
fn completions_and_the_manual_come_from_the_same_definitions_as_help() {
    let help = String::from_utf8(ferry(&["--help"]).stdout).unwrap();
    let options: Vec<&str> = help
        .split_whitespace()
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .collect();
    assert!(options.len() > 8, "{options:?}");
    for shell in ["bash", "zsh", "fish"] {
        let out = ferry(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        for option in &options {
            assert!(
                script.contains(&option[2..]),
                "{option} in the {shell} script"
            );
        }
    }
    let out = ferry(&["man"]);
    assert!(out.status.success());
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.contains(".TH ferry 1"), "{page}");
    for option in &options {
        assert!(page.contains(&option.replace('-', "\\-")), "{option}");
    }
    assert!(page.contains("\n.SH VERBS\n"));
    assert!(
        !page.contains("ferry\\-completions(1)"),
        "no page of its own: {page}"
    );
    for verb in ferry_commands::registry().iter() {
        assert!(
            page.contains(&format!(".TP\n\\fB{}", verb.name)),
            "{}",
            verb.name
        );
    }
}

#[test]
fn a_host_named_like_a_command_goes_after_dashes() {
    // `man` is the subcommand; after `--` it is a host, whose port file is missing here.
    let dir = tempfile::tempdir().unwrap();
    let out = ferry(&[
        "--port-file",
        dir.path().join("port").to_str().unwrap(),
        "--",
        "man",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read port file"));
}

#[test]
fn a_command_may_start_with_a_dash_with_or_without_dashes_before_it() {
    let server = ferry_tests::InProcess::start(|_| {});
    std::fs::write(server.root().join("keep"), b"k").unwrap();
    let fingerprint = server.fingerprint.to_string();
    let addr = server.addr.to_string();
    for args in [
        &["-c", "-DELETE nosuch", "-c", "LIST"][..],
        &["-c", "--", "-DELETE nosuch", "-c", "LIST"],
        &["--command", "--", "-DELETE nosuch", "--command=LIST"],
    ] {
        let mut all = vec![addr.as_str(), "--fingerprint", fingerprint.as_str()];
        all.extend_from_slice(args);
        let out = ferry(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(
            String::from_utf8_lossy(&out.stdout).ends_with("  keep\n"),
            "{args:?}"
        );
        assert!(stderr.contains("nosuch"), "{args:?}: {stderr}");
    }
}

#[test]
fn the_readme_shows_the_help_as_ferry_prints_it() {
    let help = String::from_utf8(ferry(&["--help"]).stdout).unwrap();
    let readme = include_str!("../../README.md");
    let heading = "## ferry\n\n```text\n";
    let start = readme.find(heading).expect("the ferry section") + heading.len();
    let block = &readme[start..];
    let block = &block[..block.find("```").expect("the end of the block")];
    assert_eq!(block, help, "README.md's ferry --help block is out of date");
}
