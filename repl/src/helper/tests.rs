//! Completion and hints, against the shipped verbs and a fixed list of remote names.

use std::fs;

use super::*;

fn helper(names: &'static [&'static str]) -> FerryHelper {
    let remote = RemoteNames::new(move |_: &_| Ok(names.iter().map(|n| n.to_string()).collect()));
    FerryHelper::new(ferry_commands::registry(), remote)
}

fn complete(helper: &FerryHelper, line: &str) -> (usize, Vec<String>) {
    let (start, pairs) = helper.candidates(line, line.len());
    (start, pairs.into_iter().map(|p| p.replacement).collect())
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
    assert_eq!(
        complete(&h, "D"),
        (0, vec!["DELETE ".into(), "DOWNLOAD ".into()])
    );
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
        complete(&h, "delete my"),
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
        Some("OAD [-r|--resume] <local-path> [<remote-path>]")
    );
    assert_eq!(
        hint("upl").as_deref(),
        Some("oad [-r|--resume] <local-path> [<remote-path>]")
    );
    assert_eq!(
        hint("UPLOAD").as_deref(),
        Some(" [-r|--resume] <local-path> [<remote-path>]")
    );
    // A flag takes no argument's place.
    assert_eq!(
        hint("UPLOAD -r ").as_deref(),
        Some("<local-path> [<remote-path>]")
    );
    assert_eq!(
        hint("UPLOAD --resume a.txt").as_deref(),
        Some(" [<remote-path>]")
    );
    assert_eq!(
        hint("UPLOAD ").as_deref(),
        Some("<local-path> [<remote-path>]")
    );
    assert_eq!(hint("UPLOAD a.txt").as_deref(), Some(" [<remote-path>]"));
    assert_eq!(hint("upload a.txt ").as_deref(), Some("[<remote-path>]"));
    assert_eq!(hint("UPLOAD a.txt b"), None);
    assert_eq!(hint("D"), None, "DELETE or DOWNLOAD");
    assert_eq!(hint("LIST").as_deref(), Some(" [<dir>]"));
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
        Some("<local-path> [<remote-path>]")
    );
    assert_eq!(hint("UPLOAD -- -x").as_deref(), Some(" [<remote-path>]"));
    assert_eq!(hint("UPLOAD -- a ").as_deref(), Some("[<remote-path>]"));
}

#[test]
fn flags_complete_after_a_dash() {
    let h = helper(&["notes.txt"]);
    assert_eq!(complete(&h, "UPLOAD --r"), (7, vec!["--resume ".into()]));
    assert_eq!(complete(&h, "DOWNLOAD -"), (9, vec!["--resume ".into()]));
    assert_eq!(complete(&h, "DOWNLOAD -r").1, ["-r "]);
    assert!(complete(&h, "DELETE -").1.is_empty(), "DELETE has no flags");
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
        Some(" [-r|--resume] <local-path> [<remote-path>]")
    );
    assert_eq!(hint("rm ").as_deref(), Some("<path>"));
}
