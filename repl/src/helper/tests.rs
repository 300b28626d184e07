//! Completion and hints, against the shipped verbs and fixed listings of remote directories.

use std::fs;

use ferry_core::RemotePath;

use super::*;

/// A remote directory's path (wire form) and its names, a directory's with a trailing `/`.
type Listing = (&'static str, &'static [&'static str]);

/// A helper whose server holds `names` in its root.
fn helper(names: &'static [&'static str]) -> FerryHelper {
    tree(&[("/", names)])
}

/// A helper whose server holds these directories; listing any other fails.
fn tree(listings: &[Listing]) -> FerryHelper {
    let listings = listings.to_vec();
    let remote = RemoteNames::new(move |dir: &RemotePath| {
        let Some((_, names)) = listings.iter().find(|(path, _)| *path == dir.wire()) else {
            anyhow::bail!("no such directory '{dir}'");
        };
        Ok(names.iter().map(|n| n.to_string()).collect())
    });
    FerryHelper::new(ferry_commands::registry(), remote)
}

fn complete(helper: &FerryHelper, line: &str) -> (usize, Vec<String>) {
    let (start, pairs) = helper.candidates(line, line.len());
    (start, pairs.into_iter().map(|p| p.replacement).collect())
}

/// What the candidates are shown as, when Tab lists them.
fn shown(helper: &FerryHelper, line: &str) -> Vec<String> {
    let (_, pairs) = helper.candidates(line, line.len());
    pairs.into_iter().map(|p| p.display).collect()
}

/// What a first Tab inserts in place of the word: the candidates' common prefix, when it is
/// longer than what it replaces (or the one candidate), as rustyline's list completion does.
fn first_tab(helper: &FerryHelper, line: &str) -> Option<String> {
    let (start, pairs) = helper.candidates(line, line.len());
    let common = rustyline::completion::longest_common_prefix(&pairs)?;
    (common.len() > line.len() - start || pairs.len() == 1).then(|| common.to_string())
}

#[test]
fn quoting_round_trips_through_the_parser() {
    for name in [
        "plain.txt",
        "my file.txt",
        "it's",
        "say \"hi\"",
        "back\\slash",
        "#hash",
        "tab\there",
        "ünï ✓",
        "$HOME",
    ] {
        let words = ferry_core::words::split(&quote(name)).unwrap();
        assert_eq!(words, [name]);
    }
    assert_eq!(quote("plain.txt"), "plain.txt");
    assert_eq!(quote("my file.txt"), "\"my file.txt\"");
}

#[test]
fn the_first_word_completes_verbs_ignoring_case() {
    let h = helper(&[]);
    assert_eq!(complete(&h, "down"), (0, vec!["DOWNLOAD ".into()]));
    assert_eq!(shown(&h, "D"), ["DELETE", "DOWNLOAD"]);
    assert_eq!(first_tab(&h, "de").as_deref(), Some("DELETE "));
    assert_eq!(complete(&h, "  upl"), (2, vec!["UPLOAD ".into()]));
    assert_eq!(
        complete(&h, "").1.len(),
        ferry_commands::registry().iter().count()
    );
    assert_eq!(complete(&h, "HELP up"), (5, vec!["UPLOAD ".into()]));
    assert!(complete(&h, "FROB x").1.is_empty());
    assert!(complete(&h, "LIST x").1.is_empty(), "LIST takes nothing");
}

#[test]
fn remote_arguments_complete_server_names_quoted_when_needed() {
    let h = helper(&["notes.txt", "my file.txt", "my-other", "say \"hi\""]);
    assert_eq!(complete(&h, "DOWNLOAD no"), (9, vec!["notes.txt ".into()]));
    assert_eq!(
        complete(&h, "delete m"),
        (7, vec!["\"my file.txt\" ".into(), "\"my-other\" ".into()])
    );
    assert_eq!(
        complete(&h, "DOWNLOAD 'my f"),
        (9, vec!["\"my file.txt\" ".into()])
    );
    assert_eq!(
        complete(&h, "DOWNLOAD say"),
        (9, vec!["\"say \\\"hi\\\"\" ".into()])
    );
    assert_eq!(complete(&h, "UPLOAD a.txt no").1, ["notes.txt "]);
    assert!(complete(&h, "DOWNLOAD x").1.is_empty());
}

#[test]
fn local_arguments_complete_paths() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().to_str().unwrap();
    fs::write(dir.path().join("report.pdf"), b"").unwrap();
    fs::write(dir.path().join("read me.txt"), b"").unwrap();
    fs::write(dir.path().join(".hidden"), b"").unwrap();
    fs::create_dir(dir.path().join("photos")).unwrap();
    fs::write(dir.path().join("photos/cat.jpg"), b"").unwrap();
    let h = helper(&["remote.txt"]);
    let line = format!("UPLOAD {base}/rep");
    assert_eq!(
        complete(&h, &line),
        (7, vec![format!("{base}/report.pdf ")])
    );
    let line = format!("UPLOAD {base}/read");
    assert_eq!(complete(&h, &line).1, [format!("\"{base}/read me.txt\" ")]);
    let line = format!("UPLOAD {base}/ph");
    assert_eq!(complete(&h, &line).1, [format!("{base}/photos/")]);
    let line = format!("UPLOAD {base}/photos/");
    assert_eq!(complete(&h, &line).1, [format!("{base}/photos/cat.jpg ")]);
    let line = format!("UPLOAD {base}/");
    let (_, pairs) = h.candidates(&line, line.len());
    let shown: Vec<_> = pairs.iter().map(|p| p.display.as_str()).collect();
    assert_eq!(shown, ["photos/", "read me.txt", "report.pdf"]);
    let line = format!("UPLOAD {base}/.h");
    assert_eq!(complete(&h, &line).1, [format!("{base}/.hidden ")]);
    // DOWNLOAD's second argument is local, its first remote.
    let line = format!("DOWNLOAD remote.txt {base}/ph");
    assert_eq!(complete(&h, &line).1, [format!("{base}/photos/")]);
    assert_eq!(complete(&h, "DOWNLOAD rem").1, ["remote.txt "]);
    // Flags take no argument's place.
    assert_eq!(complete(&h, "DOWNLOAD -r rem").1, ["remote.txt "]);
    let line = format!("DOWNLOAD --resume remote.txt {base}/ph");
    assert_eq!(complete(&h, &line).1, [format!("{base}/photos/")]);
}

#[test]
fn the_hint_is_the_rest_of_the_usage() {
    let h = helper(&[]);
    let hint = |line| h.usage_hint(line).map(|u| u.display);
    assert_eq!(
        hint("UPL").as_deref(),
        Some(
            "OAD [-r|--recursive] [-c|--continue] [-n|--no-clobber] [--sync] [--delete] <local-path-or-glob> [<remote-path>]"
        )
    );
    assert_eq!(
        hint("upl").as_deref(),
        Some(
            "oad [-r|--recursive] [-c|--continue] [-n|--no-clobber] [--sync] [--delete] <local-path-or-glob> [<remote-path>]"
        )
    );
    assert_eq!(
        hint("UPLOAD").as_deref(),
        Some(
            " [-r|--recursive] [-c|--continue] [-n|--no-clobber] [--sync] [--delete] <local-path-or-glob> [<remote-path>]"
        )
    );
    // A flag takes no argument's place.
    assert_eq!(
        hint("UPLOAD -r ").as_deref(),
        Some("<local-path-or-glob> [<remote-path>]")
    );
    assert_eq!(
        hint("UPLOAD --resume a.txt").as_deref(),
        Some(" [<remote-path>]")
    );
    assert_eq!(
        hint("UPLOAD ").as_deref(),
        Some("<local-path-or-glob> [<remote-path>]")
    );
    assert_eq!(hint("UPLOAD a.txt").as_deref(), Some(" [<remote-path>]"));
    assert_eq!(hint("upload a.txt ").as_deref(), Some("[<remote-path>]"));
    assert_eq!(hint("UPLOAD a.txt b"), None);
    assert_eq!(hint("D"), None, "DELETE or DOWNLOAD");
    assert_eq!(hint("LIST").as_deref(), Some(" [<path-or-glob>]"));
    assert_eq!(hint("LOGOUT"), None);
    assert_eq!(hint("FROB "), None);
    assert_eq!(hint(""), None);
    let upl = h.usage_hint("upl").unwrap();
    assert_eq!(
        upl.completion(),
        Some("oad "),
        "Right-arrow takes the name only"
    );
    assert_eq!(h.usage_hint("UPLOAD ").unwrap().completion(), None);
}

#[test]
fn after_a_double_dash_every_word_is_an_argument_for_completion_and_hints() {
    let h = helper(&["notes.txt", "-odd"]);
    assert_eq!(complete(&h, "DOWNLOAD -- no").1, ["notes.txt "]);
    assert_eq!(complete(&h, "DOWNLOAD -- -o").1, ["-odd "]);
    let hint = |line| h.usage_hint(line).map(|u| u.display);
    assert_eq!(
        hint("UPLOAD -- ").as_deref(),
        Some("<local-path-or-glob> [<remote-path>]")
    );
    assert_eq!(hint("UPLOAD -- -x").as_deref(), Some(" [<remote-path>]"));
    assert_eq!(hint("UPLOAD -- a ").as_deref(), Some("[<remote-path>]"));
}

#[test]
fn flags_complete_after_a_dash() {
    let h = helper(&["notes.txt"]);
    assert_eq!(complete(&h, "UPLOAD --r"), (7, vec!["--recursive ".into()]));
    assert_eq!(
        complete(&h, "DOWNLOAD -").1,
        [
            "--continue ",
            "--delete ",
            "--no-clobber ",
            "--recursive ",
            "--sync "
        ]
    );
    assert_eq!(complete(&h, "DOWNLOAD -c").1, ["-c "]);
    assert_eq!(complete(&h, "DELETE -").1, ["--recursive "]);
    assert!(complete(&h, "STAT -").1.is_empty(), "STAT has no flags");
}

#[test]
fn aliases_complete_and_hint_as_their_verb() {
    let h = helper(&["notes.txt"]);
    assert_eq!(complete(&h, "pu").1, ["put "]);
    assert_eq!(complete(&h, "get no").1, ["notes.txt "]);
    assert_eq!(complete(&h, "? up").1, ["UPLOAD "]);
    let hint = |line| h.usage_hint(line).map(|u| u.display);
    assert_eq!(
        hint("put").as_deref(),
        Some(
            " [-r|--recursive] [-c|--continue] [-n|--no-clobber] [--sync] [--delete] <local-path-or-glob> [<remote-path>]"
        )
    );
    assert_eq!(hint("rm ").as_deref(), Some("<path-or-glob>..."));
}

/// A server's tree: the root, a directory of photos, one in it, and one needing quotes.
const TREE: &[Listing] = &[
    ("/", &["notes.txt", "photos/", "my dir/", "music/"]),
    ("/photos", &["2024/", "2025/", "cat.jpg", "été 1.jpg"]),
    ("/photos/2024", &["a.jpg", "b.jpg"]),
    ("/my dir", &["x y.txt"]),
];

#[test]
fn remote_paths_complete_inside_directories() {
    let h = tree(TREE);
    assert_eq!(complete(&h, "DOWNLOAD ph"), (9, vec!["photos/".into()]));
    assert_eq!(
        complete(&h, "DOWNLOAD photos/20"),
        (9, vec!["photos/2024/".into(), "photos/2025/".into()])
    );
    assert_eq!(first_tab(&h, "DOWNLOAD photos/20").unwrap(), "photos/202");
    assert_eq!(
        complete(&h, "DOWNLOAD photos/2024/a").1,
        ["photos/2024/a.jpg "]
    );
    assert_eq!(
        shown(&h, "DOWNLOAD photos/"),
        ["2024/", "2025/", "cat.jpg", "été 1.jpg"]
    );
    // The directory is kept as typed: absolute, with `.`, `..` and doubled slashes.
    assert_eq!(complete(&h, "get /photos/c").1, ["/photos/cat.jpg "]);
    assert_eq!(complete(&h, "get ./photos//c").1, ["./photos//cat.jpg "]);
    assert_eq!(
        complete(&h, "get photos/2024/../c").1,
        ["photos/2024/../cat.jpg "]
    );
    // Quoted as a whole, the directory included; a directory stays open inside its quote.
    assert_eq!(
        complete(&h, "DOWNLOAD photos/é").1,
        ["\"photos/été 1.jpg\" "]
    );
    assert_eq!(complete(&h, "DOWNLOAD my").1, ["\"my dir/"]);
    assert_eq!(
        complete(&h, "DOWNLOAD \"my dir/"),
        (9, vec!["\"my dir/x y.txt\" ".into()])
    );
    assert_eq!(complete(&h, "STAT my\\ dir/x").1, ["\"my dir/x y.txt\" "]);
    assert!(complete(&h, "DOWNLOAD nothere/").1.is_empty());
    assert!(complete(&h, "DOWNLOAD bad\\\\name/").1.is_empty());
}

#[test]
fn remote_paths_complete_from_the_working_directory_a_command_left() {
    let h = tree(TREE);
    h.remote
        .after_command(&RemotePath::root().resolve("photos").unwrap());
    assert_eq!(complete(&h, "DELETE c").1, ["cat.jpg "]);
    assert_eq!(complete(&h, "DELETE 2024/b").1, ["2024/b.jpg "]);
    assert_eq!(complete(&h, "DELETE ../n").1, ["../notes.txt "]);
    assert_eq!(complete(&h, "DELETE ../../../n").1, ["../../../notes.txt "]);
    assert_eq!(complete(&h, "DELETE /n").1, ["/notes.txt "]);
    assert_eq!(complete(&h, "UPLOAD x.txt 20").1, ["2024/", "2025/"]);
}

#[test]
fn directory_parameters_offer_only_directories() {
    let h = tree(TREE);
    assert_eq!(shown(&h, "CD "), ["music/", "my dir/", "photos/"]);
    assert_eq!(complete(&h, "CD ph").1, ["photos/"]);
    assert_eq!(
        complete(&h, "CD photos/").1,
        ["photos/2024/", "photos/2025/"]
    );
    assert_eq!(shown(&h, "RMDIR m"), ["music/", "my dir/"]);
    assert_eq!(
        complete(&h, "MKDIR photos/2").1,
        ["photos/2024/", "photos/2025/"]
    );
    assert_eq!(
        complete(&h, "LIST -- photos/2").1,
        ["photos/2024/", "photos/2025/"]
    );
    assert!(complete(&h, "CD n").1.is_empty(), "notes.txt is a file");
    // A path parameter takes both.
    assert_eq!(
        shown(&h, "RENAME "),
        ["music/", "my dir/", "notes.txt", "photos/"]
    );
    assert_eq!(shown(&h, "RENAME notes.txt "), shown(&h, "RENAME "));
    // So do local ones.
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().to_str().unwrap();
    fs::create_dir(dir.path().join("docs")).unwrap();
    fs::create_dir(dir.path().join("docs/old")).unwrap();
    fs::write(dir.path().join("docs/letter.txt"), b"").unwrap();
    fs::write(dir.path().join("dot.txt"), b"").unwrap();
    assert_eq!(
        complete(&h, &format!("LCD {base}/d")).1,
        [format!("{base}/docs/")]
    );
    let line = format!("LLS {base}/docs/");
    assert_eq!(complete(&h, &line).1, [format!("{base}/docs/old/")]);
    let line = format!("UPLOAD {base}/docs/");
    assert_eq!(shown(&h, &line), ["letter.txt", "old/"]);
}

#[test]
fn a_home_directory_path_completes_inside_it() {
    // The test cannot set HOME for itself (this process's environment is shared); without one
    // it would check nothing, so it says so rather than pass.
    let home = std::env::var_os("HOME")
        .expect("HOME must be set: this test completes `~/` against the home directory");
    let h = helper(&[]);
    let expanded = format!("{}/", home.to_str().unwrap());
    assert_eq!(shown(&h, "LCD ~/"), shown(&h, &format!("LCD {expanded}")));
    for word in complete(&h, "LCD ~/").1 {
        assert!(word.trim_start_matches('"').starts_with("~/"), "{word}");
    }
}

#[test]
fn a_first_tab_lists_rather_than_inserting_a_lone_quote() {
    // Issue 14, rough edge 7: with any choice needing quotes, all were quoted, and their
    // common prefix was the quote alone.
    let h = helper(&["my file.txt", "my-other", "a b", "a", "c"]);
    assert_eq!(first_tab(&h, "DOWNLOAD "), None);
    assert_eq!(first_tab(&h, "DOWNLOAD my"), None);
    assert_eq!(shown(&h, "DOWNLOAD my"), ["my file.txt", "my-other"]);
    assert_eq!(first_tab(&h, "DOWNLOAD \"my"), None);
    // Nor a space, closing a name that others go on from.
    assert_eq!(first_tab(&h, "DOWNLOAD a"), None);
    assert_eq!(shown(&h, "DOWNLOAD a"), ["a", "a b"]);
    let h = helper(&["my file.txt", "my fish"]);
    assert_eq!(first_tab(&h, "DOWNLOAD my").as_deref(), Some("\"my fi"));
    assert_eq!(first_tab(&h, "DOWNLOAD my\\ fi"), None);
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().to_str().unwrap();
    fs::write(dir.path().join("read me.txt"), b"").unwrap();
    fs::write(dir.path().join("report.pdf"), b"").unwrap();
    // What they share goes in, quoted since what follows needs it; then Tab lists.
    let shared = format!("\"{base}/re");
    assert_eq!(first_tab(&h, &format!("UPLOAD {base}/")), Some(shared));
    assert_eq!(first_tab(&h, &format!("UPLOAD {base}/re")), None);
    assert_eq!(
        shown(&h, &format!("UPLOAD {base}/")),
        ["read me.txt", "report.pdf"]
    );
    let quoted = format!("\"{base}/read me.txt\" ");
    assert_eq!(first_tab(&h, &format!("UPLOAD {base}/rea")), Some(quoted));
}

#[test]
fn flags_still_complete_beside_paths() {
    let h = tree(TREE);
    assert_eq!(complete(&h, "MKDIR -").1, ["--parents "]);
    assert_eq!(complete(&h, "MKDIR -p ph").1, ["photos/"]);
    assert_eq!(complete(&h, "RENAME --f").1, ["--force "]);
    assert_eq!(complete(&h, "DOWNLOAD -r photos/c").1, ["photos/cat.jpg "]);
}
