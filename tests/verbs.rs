//! Each verb through the real client and server, and its error paths.

use std::fs;

use ferry_tests::{Daemon, text};

#[test]
fn upload_list_download_delete() {
    let server = Daemon::start(&[]);
    let client = server.client_dir();
    fs::write(client.join("notes.txt"), b"some notes\n").unwrap();
    let out = server.script(
        &[],
        "UPLOAD notes.txt\nLIST\nDOWNLOAD notes.txt copy.txt\nDELETE notes.txt\nLIST\n",
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("uploaded 'notes.txt' (11 B)"), "{stdout}");
    let listing: Vec<&str> = stdout
        .lines()
        .filter(|l| l.ends_with("  notes.txt"))
        .collect();
    assert_eq!(listing.len(), 1, "{stdout}");
    assert!(
        listing[0].contains("11 B") && listing[0].contains("Z"),
        "{}",
        listing[0]
    );
    assert!(
        stdout.contains("downloaded 'notes.txt' to 'copy.txt' (11 B)"),
        "{stdout}"
    );
    assert!(stdout.contains("deleted 'notes.txt'"), "{stdout}");
    assert_eq!(fs::read(client.join("copy.txt")).unwrap(), b"some notes\n");
    assert!(!server.root().join("notes.txt").exists());
}

#[test]
fn list_is_sorted_and_aligned_with_sizes_and_times() {
    let server = Daemon::start(&[]);
    fs::write(server.root().join("b.bin"), vec![0u8; 1536]).unwrap();
    fs::write(server.root().join("a longer name"), b"x").unwrap();
    fs::write(server.root().join("émoji-日本語-😀.txt"), b"wide").unwrap();
    let out = server.script(&["-c", "LIST"], "");
    let (stdout, _) = text(&out);
    // Size and time first, as `ls -l` has them, so that no name pushes the columns about.
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert_eq!(
        ferry_tests::listed(&stdout),
        ["a longer name", "b.bin", "émoji-日本語-😀.txt"]
    );
    for line in &lines {
        assert!(
            line[12..32].ends_with('Z') && &line[32..34] == "  ",
            "{line}"
        );
    }
    assert!(lines[0].starts_with("       1 B  "), "{stdout}");
    assert!(lines[1].starts_with("  1.50 KiB  "), "{stdout}");
    let time = |l: &str| l.split_whitespace().nth(2).unwrap().len();
    assert_eq!(time(lines[0]), "2026-01-01T00:00:00Z".len());
}

#[test]
fn upload_takes_an_explicit_name_and_replaces_atomically() {
    let server = Daemon::start(&[]);
    let client = server.client_dir();
    fs::write(client.join("v1"), b"first").unwrap();
    fs::write(client.join("v2"), b"second version").unwrap();
    let out = server.script(&[], "UPLOAD v1 target\nUPLOAD v2 target\n");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    // The source is named, and a replaced file is said to be.
    assert_eq!(
        stdout,
        "uploaded 'v1' to 'target' (5 B)\n\
         uploaded 'v2' to 'target' (14 B), replacing the file there\n"
    );
    assert_eq!(
        fs::read(server.root().join("target")).unwrap(),
        b"second version"
    );
    let partial: Vec<_> = fs::read_dir(server.root().join(".ferry-partial"))
        .unwrap()
        .collect();
    assert!(partial.is_empty(), "no temporaries left: {partial:?}");
}

#[test]
fn download_defaults_to_local_dir_and_fills_a_directory() {
    let server = Daemon::start(&[]);
    fs::write(server.root().join("report.pdf"), b"%PDF").unwrap();
    let client = server.client_dir();
    fs::create_dir(client.join("inbox")).unwrap();
    fs::create_dir(client.join("sub")).unwrap();
    let out = server.script(
        &["--local-dir", "inbox"],
        "DOWNLOAD report.pdf\nDOWNLOAD report.pdf sub\nDOWNLOAD report.pdf sub/renamed.pdf\n",
    );
    assert!(out.status.success(), "{}", text(&out).1);
    for path in ["inbox/report.pdf", "sub/report.pdf", "sub/renamed.pdf"] {
        assert_eq!(fs::read(client.join(path)).unwrap(), b"%PDF", "{path}");
    }
    assert!(
        !client.join("report.pdf").exists(),
        "--local-dir sets only the default"
    );
    // A destination ending in `/` is a directory, made when it is missing.
    let out = server.script(&["-c", "DOWNLOAD report.pdf new/"], "");
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(fs::read(client.join("new/report.pdf")).unwrap(), b"%PDF");
}

#[test]
fn downloads_keep_the_server_modification_time() {
    let server = Daemon::start(&[]);
    ferry_tests::write_dated(&server.root().join("old"), b"x", 1_000_000_000);
    let out = server.script(&["-c", "DOWNLOAD old"], "");
    assert!(out.status.success());
    let got = fs::metadata(server.client_dir().join("old"))
        .unwrap()
        .modified()
        .unwrap();
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    assert_eq!(got, when);
}

#[test]
fn a_time_past_the_year_9999_is_shown_and_kept_as_its_last_second() {
    // Only a file system in memory keeps such a time here (ext4 stops in 2446).
    let shm = std::path::Path::new("/dev/shm");
    assert!(
        ferry_tests::on_tmpfs(shm).unwrap(),
        "/dev/shm is not a tmpfs"
    );
    let root = ["--root", "data", "--port-file", "port"];
    let server = Daemon::start_in(tempfile::tempdir_in(shm).unwrap(), &root);
    ferry_tests::write_dated(&server.root().join("far"), b"x", 300_000_000_000);
    let out = server.script(&[], "LIST\nSTAT far\nDOWNLOAD far\n");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stdout.matches("9999-12-31T23:59:59Z").count(),
        2,
        "{stdout}"
    );
    let got = fs::metadata(server.client_dir().join("far"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(
        got,
        ferry_core::store::time_of(ferry_core::store::MAX_MTIME)
    );
}

#[test]
fn missing_files_are_reported_and_leave_nothing_behind() {
    let server = Daemon::start(&[]);
    for (command, expect) in [
        (
            "DOWNLOAD ghost",
            "error: line 1: downloading 'ghost': no such file '/ghost'",
        ),
        (
            "DELETE ghost",
            "error: line 1: deleting: no such file '/ghost'",
        ),
        ("UPLOAD ghost", "error: line 1: uploading 'ghost': "),
    ] {
        let out = server.script(&[], &format!("{command}\n"));
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{command}: {stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.starts_with(expect), "{command}: {stderr}");
    }
    let left: Vec<_> = fs::read_dir(server.client_dir()).unwrap().collect();
    assert!(
        left.is_empty(),
        "a failed download leaves no file: {left:?}"
    );
}

#[test]
fn dot_dot_at_the_root_stays_at_the_root() {
    let server = Daemon::start(&[]);
    fs::write(server.client_dir().join("f"), b"x").unwrap();
    let script = "UPLOAD f ../../escape\nSTAT /../escape\nDOWNLOAD ../escape back\n";
    let out = server.script(&[], script);
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(fs::read(server.root().join("escape")).unwrap(), b"x");
    assert!(!server.dir.path().join("escape").exists());
    assert_eq!(fs::read(server.client_dir().join("back")).unwrap(), b"x");
}

#[test]
fn bad_names_are_refused_before_anything_is_sent() {
    let server = Daemon::start(&[]);
    fs::write(server.client_dir().join("f"), b"x").unwrap();
    let long = "n".repeat(256);
    for name in ["a\\\\b", "dir/a\\\\b", &long, "dir/../x\\\\y"] {
        for command in [
            format!("DOWNLOAD '{name}'"),
            format!("DELETE '{name}'"),
            format!("UPLOAD f '{name}'"),
        ] {
            let out = server.script(&[], &format!("{command}\n"));
            let (_, stderr) = text(&out);
            assert_eq!(out.status.code(), Some(1), "{command}");
            assert!(stderr.contains("name '"), "{command}: {stderr}");
        }
    }
    assert!(
        server.log().lines().all(|l| !l.contains("bad-name")),
        "never reached the server"
    );
}

#[test]
fn a_name_of_255_bytes_works_both_ways() {
    let server = Daemon::start(&[]);
    let name = format!("{}.txt", "é".repeat(125)); // 250 + 4 = 254 bytes
    let name = format!("x{name}");
    assert_eq!(name.len(), 255);
    fs::write(server.client_dir().join("src"), b"long").unwrap();
    let out = server.script(&[], &format!("UPLOAD src '{name}'\nDOWNLOAD '{name}'\n"));
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(fs::read(server.client_dir().join(&name)).unwrap(), b"long");
}

#[test]
fn stat_shows_size_time_and_the_digest_of_the_content() {
    let server = Daemon::start(&[]);
    let content = ferry_tests::random_bytes(3 * 1024 * 1024 + 17);
    fs::write(server.root().join("blob bin"), &content).unwrap();
    let mut digest = ferry_core::Digest::new();
    digest.update(&content);
    let out = server.script(&[], "STAT 'blob bin'\n");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.starts_with("blob bin  3.00 MiB (3145745 bytes)  20"),
        "{stdout}"
    );
    assert!(
        stdout
            .trim_end()
            .ends_with(&format!("xxh3-128 {}", digest.hex())),
        "{stdout}"
    );
    let out = server.script(&[], "STAT ghost\n");
    assert_eq!(out.status.code(), Some(1));
    // The server's message names the path: the client does not say it again.
    assert!(text(&out).1.contains("stat: no such file '/ghost'"));
}

#[test]
fn help_lists_every_registered_verb_and_explains_one() {
    let server = Daemon::start(&[]);
    let out = server.script(&["-c", "HELP", "-c", "help download"], "");
    let (stdout, _) = text(&out);
    assert!(out.status.success());
    // This test binary also registers a test-only verb, which the real client does not have.
    let shipped = ferry_commands::registry()
        .iter()
        .filter(|v| v.module.starts_with("ferry_commands::"));
    for verb in shipped {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&verb.short_usage()))
            .unwrap_or_else(|| panic!("{} missing from HELP:\n{stdout}", verb.name));
        assert!(line.contains(verb.summary), "{line}");
    }
    assert!(
        stdout.contains(
            "usage:   DOWNLOAD [-r|--recursive] [-c|--continue] [-n|--no-clobber] [--sync] \
             [--delete] <remote-path-or-glob> [<local-path>]"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("example: DOWNLOAD"), "{stdout}");
    let out = server.script(&["-c", "HELP FROB"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("unknown verb 'FROB'"));
}

#[test]
fn verbs_are_case_insensitive_and_usage_is_checked() {
    let server = Daemon::start(&[]);
    let out = server.script(&[], "list\nLiSt\n");
    assert!(out.status.success());
    let out = server.script(&[], "DELETE\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out)
            .1
            .contains("usage: DELETE [-r|--recursive] <path-or-glob>..."),
        "{}",
        text(&out).1
    );
    let out = server.script(&[], "LIST a b\n");
    assert!(text(&out).1.contains("usage: LIST [<path-or-glob>]"));
}

#[test]
fn flags_are_declared_per_verb_and_checked_before_sending() {
    let server = Daemon::start(&[]);
    fs::write(server.client_dir().join("-dash"), b"dash").unwrap();
    let out = server.script(&[], "UPLOAD -x -dash\n");
    assert_eq!(out.status.code(), Some(1));
    let (_, stderr) = text(&out);
    assert!(
        stderr.contains(
            "unknown option '-x'; usage: UPLOAD [-r|--recursive] [-c|--continue] \
             [-n|--no-clobber] [--sync] [--delete] <local-path-or-glob> [<remote-path>]"
        ),
        "{stderr}"
    );
    let out = server.script(&[], "STAT -r x\n");
    assert!(
        text(&out).1.contains("unknown option '-r'"),
        "{}",
        text(&out).1
    );
    // Flags do not count as arguments; `--` lets a path start with a dash.
    let out = server.script(&[], "UPLOAD -c -- -dash plain\nDOWNLOAD plain -c\n");
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(fs::read(server.root().join("plain")).unwrap(), b"dash");
    let out = server.script(&["-c", "HELP DOWNLOAD"], "");
    assert!(text(&out).0.contains("-c, --continue"), "{}", text(&out).0);
    assert!(text(&out).0.contains("(also --resume)"), "{}", text(&out).0);
}

#[test]
fn logout_ends_the_session_cleanly() {
    let server = Daemon::start(&[]);
    let out = server.script(&[], "LOGOUT\nLIST\n");
    assert!(out.status.success());
    assert!(text(&out).0.is_empty(), "nothing runs after LOGOUT");
    // The server logs the end of a session after closing it, so the line may lag the client.
    ferry_tests::wait_until("the logout in the log", || {
        server.log().contains("disconnected: LOGOUT done")
    });
}

#[test]
fn a_double_dash_lets_a_name_begin_with_a_dash() {
    let server = Daemon::start(&[]);
    fs::write(server.root().join("-odd"), b"x").unwrap();
    let out = server.script(&[], "-DELETE -odd\nSTAT -- -odd\nDELETE -- -odd\n");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("unknown option '-odd'"), "{stderr}");
    assert!(stdout.contains("deleted '-odd'"), "{stdout}");
    assert!(!server.root().join("-odd").exists());
}

/// The digest of `bytes`, in hex.
fn xxh3(bytes: &[u8]) -> String {
    let mut digest = ferry_core::Digest::new();
    digest.update(bytes);
    digest.hex()
}

/// The digest STAT prints for `name`.
fn stat_digest(server: &Daemon, name: &str) -> String {
    let out = server.script(&[], &format!("STAT {name}\n"));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let digest = stdout.split("xxh3-128 ").nth(1).expect("a digest");
    digest.trim().to_string()
}

/// Rewrites `path` in place with `content` (same length), its modification time put back.
fn rewrite_behind_the_back(path: &std::path::Path, content: &[u8]) {
    let before = fs::metadata(path).unwrap().modified().unwrap();
    let mut file = fs::File::options().write(true).open(path).unwrap();
    std::io::Write::write_all(&mut file, content).unwrap();
    file.set_modified(before).unwrap();
}

#[test]
fn stat_answers_from_the_digest_kept_with_the_file_until_the_file_changes() {
    let server = Daemon::start(&[]);
    // Files of 1 MiB or more keep their digest (smaller ones are as quick to read).
    let big = |byte: u8| vec![byte; 1 << 20];
    let (first_content, upper_content) = (big(b'f'), big(b'F'));
    let (other_content, g_content) = (big(b'o'), big(b'g'));
    fs::write(server.client_dir().join("f"), &first_content).unwrap();
    let out = server.script(&[], "UPLOAD f\n");
    assert!(out.status.success(), "{}", text(&out).1);
    let first = stat_digest(&server, "f");
    assert_eq!(first, xxh3(&first_content));
    // Same size, same time: STAT does not read the file, so it still gives the kept digest.
    let stored = server.root().join("f");
    rewrite_behind_the_back(&stored, &upper_content);
    assert_eq!(stat_digest(&server, "f"), first);
    // A download reads it all, and puts the kept digest right.
    let out = server.script(&[], "DOWNLOAD f back\n");
    assert!(out.status.success(), "{}", text(&out).1);
    let upper = xxh3(&upper_content);
    assert_eq!(stat_digest(&server, "f"), upper);
    // An ordinary write moves the time: the next STAT reads the file again.
    fs::write(&stored, &other_content).unwrap();
    assert_eq!(stat_digest(&server, "f"), xxh3(&other_content));
    // A file put there behind the server's back is read, then its digest kept.
    fs::write(server.root().join("g"), &g_content).unwrap();
    let g = xxh3(&g_content);
    assert_eq!(stat_digest(&server, "g"), g);
    rewrite_behind_the_back(&server.root().join("g"), &big(b'G'));
    assert_eq!(stat_digest(&server, "g"), g);
}
