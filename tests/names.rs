//! Deceptive names: names holding invisible formatting characters (bidi controls, zero-width
//! characters, a BOM) or not in NFC are refused on creation unless `--allow-any-name`, and are
//! shown escaped wherever they appear.

use std::fs;

use ferry_core::name::needs_escape;
use ferry_tests::{Daemon, text};

/// Shows as `invoiceexe.jpg` when printed raw.
const RLO: &str = "invoice\u{202e}gpj.exe";
const RLO_SHOWN: &str = "invoice\\u{202e}gpj.exe";
/// `café` in NFC and in NFD (`e` and a combining acute accent).
const NFC: &str = "caf\u{e9}";
const NFD: &str = "cafe\u{301}";

/// What the server's root holds, its hidden directory apart.
fn stored(server: &Daemon) -> Vec<String> {
    let mut names = ferry_tests::names_in(&server.root());
    names.retain(|n| n != ".ferry-partial");
    names
}

/// Nothing in `out` a terminal would show as something else (line ends apart).
fn all_visible(out: &str) -> bool {
    !out.chars().any(|c| c != '\n' && needs_escape(c))
}

#[test]
fn a_deceptive_name_is_refused_on_upload_mkdir_and_rename() {
    let server = Daemon::start(&[]);
    fs::write(server.client_dir().join(RLO), b"MZ").unwrap();
    fs::write(server.client_dir().join("plain.txt"), b"x").unwrap();
    let script = format!(
        "-UPLOAD {RLO}\n-MKDIR 'dir\u{2066}x'\nUPLOAD plain.txt\n-RENAME plain.txt 'zw\u{200b}j'\n-UPLOAD plain.txt '\u{feff}bom'\n"
    );
    let out = server.script(&[], &script);
    let (stdout, stderr) = text(&out);
    assert!(
        stderr.contains(&format!("name '{RLO_SHOWN}' contains")),
        "{stderr}"
    );
    assert!(
        stderr.contains("U+202E") && stderr.contains("U+2066"),
        "{stderr}"
    );
    assert!(
        stderr.contains("U+200B") && stderr.contains("U+FEFF"),
        "{stderr}"
    );
    assert!(
        all_visible(&stdout) && all_visible(&stderr),
        "{stdout}{stderr}"
    );
    assert_eq!(stored(&server), ["plain.txt"]);
}

#[test]
fn with_allow_any_name_it_is_stored_and_listed_escaped() {
    let server = Daemon::start(&["--allow-any-name"]);
    fs::write(server.client_dir().join(RLO), b"MZ").unwrap();
    let out = server.script(&[], &format!("UPLOAD {RLO}\nLIST\nSTAT {RLO}\n"));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(fs::read(server.root().join(RLO)).unwrap(), b"MZ");
    assert!(
        stdout.contains(&format!("uploaded '{RLO_SHOWN}'")),
        "{stdout}"
    );
    assert_eq!(ferry_tests::listed(&stdout), [RLO_SHOWN], "LIST: {stdout}");
    let stat = stdout.lines().filter(|l| l.starts_with(RLO_SHOWN)).count();
    assert_eq!(stat, 1, "STAT: {stdout}");
    assert!(
        !stdout.contains("invoiceexe.jpg") && all_visible(&stdout),
        "{stdout}"
    );
}

#[test]
fn names_already_on_disk_stay_listable_and_downloadable() {
    let server = Daemon::start(&[]);
    fs::create_dir(server.root().join("tree")).unwrap();
    fs::write(server.root().join("tree").join(RLO), b"MZ").unwrap();
    fs::write(server.root().join("tree").join("ok.txt"), b"ok").unwrap();
    let script = format!("LIST tree\nDOWNLOAD tree/{RLO} named.exe\nDOWNLOAD -r tree\n");
    let out = server.script(&[], &script);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        ferry_tests::listed(&stdout).iter().any(|l| l == RLO_SHOWN),
        "{stdout}"
    );
    assert_eq!(
        fs::read(server.client_dir().join("named.exe")).unwrap(),
        b"MZ"
    );
    // A tree's names come from the server: this one is not made locally, and said so.
    let client_tree = server.client_dir().join("tree");
    assert_eq!(ferry_tests::names_in(&client_tree), ["ok.txt"]);
    let warning = format!("skipping 'tree/{RLO_SHOWN}': its name holds an invisible");
    assert!(stderr.contains(&warning), "{stderr}");
    assert!(
        all_visible(&stdout) && all_visible(&stderr),
        "{stdout}{stderr}"
    );
}

#[test]
fn new_names_must_be_in_nfc_unless_any_name_is_allowed() {
    let strict = Daemon::start(&[]);
    for name in [NFC, NFD] {
        fs::write(strict.client_dir().join(name), name).unwrap();
    }
    let script = format!("UPLOAD {NFC}\n-UPLOAD {NFD}\n-MKDIR {NFD}\n-RENAME {NFC} {NFD}\n");
    let out = strict.script(&[], &script);
    let (_, stderr) = text(&out);
    assert_eq!(
        stderr
            .matches("not in Unicode normalization form C")
            .count(),
        3,
        "{stderr}"
    );
    assert_eq!(stored(&strict), [NFC]);

    let any = Daemon::start(&["--allow-any-name"]);
    for name in [NFC, NFD] {
        fs::write(any.client_dir().join(name), name).unwrap();
    }
    let out = any.script(&[], &format!("UPLOAD {NFC}\nUPLOAD {NFD}\n"));
    assert!(out.status.success(), "{}", text(&out).1);
    let mut both = vec![NFC, NFD];
    both.sort_unstable();
    assert_eq!(stored(&any), both);
}
