//! The parser's unit tests: splitting as `shlex` splits, flags and `--`, parameters, and what
//! the word at the cursor is for.

use proptest::prelude::*;

use super::*;
use crate::verb::{ParamKind, Reply};
use crate::{ClientCtx, Flow, ServerCtx};

fn client(_: &mut ClientCtx, _: &Args) -> anyhow::Result<Flow> {
    Ok(Flow::Continue)
}

fn server(_: &mut ServerCtx<'_>, _: &[String]) -> Result<Reply, Failure> {
    Ok(Reply::Done)
}

const FLAGS: [Flag; 3] = [
    Flag::new('r', "resume", "continue"),
    Flag::new('f', "force", "overwrite"),
    Flag::long("rate", "at most this fast").taking("N"),
];

static COPY: Verb = Verb {
    name: "COPY",
    summary: "a test verb",
    example: "COPY a b",
    params: &[
        Param::one("from", ParamKind::RemotePath),
        Param::one("to", ParamKind::LocalPath).optional(),
    ],
    flags: &FLAGS,
    ..Verb::new(client, server, module_path!())
};

static REMOVE: Verb = Verb {
    name: "REMOVE",
    summary: "a test verb",
    example: "REMOVE a",
    params: &[Param::one("path", ParamKind::RemoteGlob).repeated()],
    ..Verb::new(client, server, module_path!())
};

fn words(line: &str) -> Vec<String> {
    split(line).unwrap()
}

#[test]
fn lines_split_as_shlex_splits_them() {
    for line in [
        "",
        "LIST",
        "UPLOAD a b",
        "UPLOAD 'my file' \"x\\\"y\"",
        "a\\ b c",
        "x\"a b\"'c d'e  f",
        "DOWNLOAD \"a\\$b\\n\"",
        "LIST # a comment",
        "# only a comment",
        "a#b c",
        "''",
        "a '' b",
    ] {
        assert_eq!(Some(words(line)), shlex::split(line), "{line:?}");
    }
    for open in ["'my fi", "\"x", "a\\"] {
        assert_eq!(split(open).unwrap_err().0, "unbalanced quotes");
    }
}

proptest! {
    #[test]
    fn any_line_splits_as_shlex_splits_it(line in "[ a-z'\"\\\\#\t\n$`é]{0,24}") {
        prop_assert_eq!(split(&line).ok(), shlex::split(&line));
    }
}

#[test]
fn a_line_cut_at_the_cursor_gives_the_word_being_typed() {
    let open = split_partial("DOWNLOAD 'my fi").unwrap();
    assert_eq!(
        (open.current.as_str(), open.start, open.open_quote),
        ("my fi", 9, true)
    );
    let after = split_partial("UPLOAD a ").unwrap();
    assert_eq!(
        (after.done.len(), after.current.as_str(), after.start),
        (2, "", 9)
    );
    assert_eq!(split_partial("LIST # UPLOAD"), None);
    let past = split_partial("LIST # x\nSTAT a").unwrap();
    assert_eq!(
        (past.done, past.current.as_str()),
        (vec!["LIST".into(), "STAT".into()], "a")
    );
}

#[test]
fn the_usage_line_comes_from_the_parameters_and_flags() {
    assert_eq!(
        COPY.usage(),
        "COPY [-r|--resume] [-f|--force] [--rate <N>] <from> [<to>]"
    );
    assert_eq!(REMOVE.usage(), "REMOVE <path>...");
    assert_eq!(COPY.rest_of_usage(1), " [<to>]");
    assert_eq!(COPY.rest_of_usage(2), "");
    assert_eq!(REMOVE.rest_of_usage(1), " [<path>...]");
}

#[test]
fn flags_are_split_from_parameters_wherever_they_stand() {
    let args = COPY.parse(&words("a -r b")).unwrap();
    assert_eq!((args.one("from"), args.get("to")), ("a", Some("b")));
    assert!(args.flag("resume") && !args.flag("force"));
    let args = COPY.parse(&words("--force --resume a")).unwrap();
    assert!(args.flag("resume") && args.flag("force"));
    assert_eq!(args.get("to"), None);
    // `--` ends the flags; a lone `-` is a parameter.
    let args = COPY.parse(&words("-r -- -f -")).unwrap();
    assert_eq!((args.one("from"), args.get("to")), ("-f", Some("-")));
    assert!(args.flag("resume") && !args.flag("force"));
}

#[test]
fn a_flag_takes_its_value_attached_or_as_the_next_word() {
    let args = COPY.parse(&words("--rate 5 a")).unwrap();
    assert_eq!((args.value("rate"), args.one("from")), (Some("5"), "a"));
    let args = COPY.parse(&words("a --rate=7")).unwrap();
    assert_eq!(args.value("rate"), Some("7"));
    let err = COPY.parse(&words("a --rate")).unwrap_err().0;
    assert!(
        err.starts_with("option '--rate' needs a value; usage: COPY"),
        "{err}"
    );
    let err = COPY.parse(&words("a --resume=yes")).unwrap_err().0;
    assert!(err.starts_with("option '--resume' takes no value"), "{err}");
}

#[test]
fn counts_and_unknown_flags_are_checked_with_the_usage_line() {
    let usage = format!("usage: {}", COPY.usage());
    assert_eq!(COPY.parse(&words("-r")).unwrap_err().0, usage);
    assert_eq!(COPY.parse(&words("a b c")).unwrap_err().0, usage);
    for bad in ["-x", "--frob", "-rf", "---"] {
        let err = COPY.parse(&words(&format!("a {bad}"))).unwrap_err().0;
        assert_eq!(err, format!("unknown option '{bad}'; {usage}"));
    }
    assert!(
        REMOVE.parse(&[]).is_err(),
        "a repeated required parameter needs one"
    );
    let args = REMOVE.parse(&words("a b c")).unwrap();
    assert_eq!(args.all("path").collect::<Vec<_>>(), ["a", "b", "c"]);
}

#[test]
#[should_panic(expected = "COPY has no parameter 'name'")]
fn asking_for_an_undeclared_parameter_is_a_bug_named() {
    let _ = COPY.parse(&words("a")).unwrap().get("name");
}

#[test]
fn parameters_are_assigned_left_to_right_with_surplus_to_the_optional_ones() {
    let params = [
        Param::one("a", ParamKind::Text).optional(),
        Param::one("b", ParamKind::Text),
        Param::one("c", ParamKind::Text).optional(),
    ];
    assert_eq!(assign(&params, 1), Some(vec![1]));
    assert_eq!(assign(&params, 2), Some(vec![0, 1]));
    assert_eq!(assign(&params, 3), Some(vec![0, 1, 2]));
    assert_eq!(assign(&params, 4), None);
    assert_eq!(assign(&params, 0), None);
    let params = [
        Param::one("from", ParamKind::Text).repeated(),
        Param::one("to", ParamKind::Text),
    ];
    assert_eq!(assign(&params, 3), Some(vec![0, 0, 1]));
}

#[test]
fn the_cursor_is_located_by_the_same_rules() {
    let at = |line: &str| {
        let p = split_partial(line).unwrap();
        COPY.locate(&p.done[1..], &p.current)
    };
    let param = |name| At::Param(COPY.params.iter().find(|p| p.name == name).unwrap());
    assert_eq!(at("COPY ").at, param("from"));
    assert_eq!(at("COPY a ").at, param("to"));
    assert_eq!(at("COPY -r a ").at, param("to"));
    assert_eq!(at("COPY a b ").at, At::Nothing);
    assert_eq!(at("COPY -").at, At::Flag);
    assert_eq!(at("COPY --re").at, At::Flag);
    // After `--`, a word starting with `-` is a parameter, as when the command runs.
    assert_eq!(at("COPY -- -").at, param("from"));
    assert_eq!(at("COPY -- no").at, param("from"));
    assert_eq!(at("COPY -- a ").positionals, 1);
    assert_eq!(at("COPY --rate ").at, At::FlagValue(&FLAGS[2]));
    assert_eq!(at("COPY --rate 5 ").at, param("from"));
    let p = split_partial("REMOVE a b ").unwrap();
    assert_eq!(
        REMOVE.locate(&p.done[1..], "").at,
        At::Param(&REMOVE.params[0])
    );
}
