//! `ferryd`'s command line, through the real binary.

use std::process::Command;

/// Runs `ferryd ARGS` in `dir`, no stream a terminal and `COLUMNS=100`, so that its help is
/// wrapped at 100 columns wherever the tests run.
fn ferryd(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ferryd"))
        .args(args)
        .current_dir(dir)
        .env("COLUMNS", "100")
        .output()
        .unwrap()
}

/// The long options `--help` lists.
fn options(help: &str) -> Vec<String> {
    help.split_whitespace()
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| {
            w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
                .to_string()
        })
        .collect()
}

#[test]
fn help_wraps_to_the_width_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferryd"))
        .arg("--help")
        .env("COLUMNS", "60")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for line in help.lines() {
        assert!(line.chars().count() <= 60, "{line:?} in:\n{help}");
    }
    // Words are kept whole: every option is there, unbroken.
    assert!(options(&help).contains(&"--max-partial-bytes".to_string()));
}

#[test]
fn completions_and_the_manual_come_from_the_same_options_as_help() {
    let dir = tempfile::tempdir().unwrap();
    let help = String::from_utf8(ferryd(&["--help"], dir.path()).stdout).unwrap();
    let options = options(&help);
    assert!(options.len() > 20, "{options:?}");
    for shell in ["bash", "zsh", "fish"] {
        let out = ferryd(&["completions", shell], dir.path());
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        for option in &options {
            let name = option.trim_start_matches('-');
            assert!(script.contains(name), "{option} in the {shell} script");
        }
    }
    let out = ferryd(&["man"], dir.path());
    assert!(out.status.success());
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.contains(".TH ferryd 1"), "{page}");
    assert!(
        !page.contains("ferryd\\-man(1)"),
        "no page of its own: {page}"
    );
    for option in &options {
        // roff writes a hyphen as `\-`.
        assert!(
            page.contains(&option.replace('-', "\\-")),
            "{option} in the manual"
        );
    }
    renders_with_man(&page);
    assert!(!dir.path().join("port").exists(), "a tool starts no server");
}

/// Checks a manual page with `man -l` when the machine has `man`: it renders without warnings.
fn renders_with_man(page: &str) {
    {
        use std::io::Write;
        let file = tempfile::NamedTempFile::new().unwrap();
        file.as_file().write_all(page.as_bytes()).unwrap();
        let out = std::process::Command::new("man")
            .arg("-l")
            .arg(file.path())
            .env("MANWIDTH", "80")
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .output();
        let Ok(out) = out else {
            return; // no man here
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.is_empty(),
            "man -l: {stderr}"
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("OPTIONS"));
    }
}

#[test]
fn version_and_help() {
    let dir = tempfile::tempdir().unwrap();
    let out = ferryd(&["--version"], dir.path());
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        concat!("ferryd ", env!("CARGO_PKG_VERSION"))
    );
    let out = ferryd(&["--help"], dir.path());
    let help = String::from_utf8_lossy(&out.stdout);
    for option in [
        "--root",
        "--bind",
        "--port",
        "--port-file",
        "--max-clients",
        "--max-handshakes",
        "--max-per-address",
        "--handshake-timeout",
        "--idle-timeout",
        "--min-rate",
        "--grace",
        "--max-file-size",
        "--partial-max-age",
        "--token-file",
    ] {
        assert!(help.contains(option), "{option} in:\n{help}");
    }
}

#[test]
fn bad_arguments_exit_2_without_publishing_a_port() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["--bind", "not-an-ip"][..],
        &["--port", "70000"],
        &["--max-clients", "0"],
        &["--frobnicate"],
    ] {
        let out = ferryd(args, dir.path());
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    std::fs::write(dir.path().join("a-file"), b"").unwrap();
    let out = ferryd(&["--root", "a-file/sub"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("opening root 'a-file/sub'"), "{stderr}");
    assert!(
        !dir.path().join("port").exists(),
        "no port file for a server that failed"
    );
}

#[test]
fn the_readme_shows_the_help_as_ferryd_prints_it() {
    let dir = tempfile::tempdir().unwrap();
    let help = String::from_utf8(ferryd(&["--help"], dir.path()).stdout).unwrap();
    let readme = include_str!("../../README.md");
    let start = readme
        .find("## ferryd\n\n```text\n")
        .expect("the ferryd section")
        + 19;
    let block = &readme[start..];
    let block = &block[..block.find("```").expect("the end of the block")];
    assert_eq!(
        block, help,
        "README.md's ferryd --help block is out of date"
    );
}
