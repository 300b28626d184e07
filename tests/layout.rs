//! The workspace's shape, kept: no source file over 500 lines outside the tests, and no
//! function over 60 lines unless a comment just above it says why (`// Long: ...`).
//!
//! A file that grows past the limit holds two ideas; a function past it, several steps that
//! want names. The check reads the sources as rustfmt leaves them.

use std::fs;
use std::path::{Path, PathBuf};

/// Most lines in a source file that is not a test.
const MAX_FILE: usize = 500;
/// Most lines in a function, from `fn` to its closing brace.
const MAX_FN: usize = 60;

/// The workspace's Rust sources, outside `target/` and hidden directories.
fn sources() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut dirs = vec![root.to_path_buf()];
    let mut files = Vec::new();
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name == "target" {
                continue;
            }
            if path.is_dir() {
                dirs.push(path);
            } else if name.ends_with(".rs") {
                files.push(path);
            }
        }
    }
    assert!(files.len() > 40, "found the workspace's sources");
    files
}

/// True for a file that holds only tests: an integration test, or a `tests.rs` module.
fn is_test(path: &Path) -> bool {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let relative = path.strip_prefix(root).unwrap();
    let parts: Vec<_> = relative.iter().map(|p| p.to_string_lossy()).collect();
    let test_dir = parts.len() > 2 && parts[1] == "tests";
    // `tests/*.rs` at the top of the tests package are the end-to-end tests; its `src/`
    // (shared helpers), `bench/` and `build.rs` are not.
    let e2e = parts.len() == 2 && parts[0] == "tests" && parts[1] != "build.rs";
    test_dir || e2e || parts.last().is_some_and(|f| f == "tests.rs")
}

/// True for a line that opens a function: `fn` after any visibility (`pub`, `pub(super)`,
/// `pub(in a::b)`) and qualifiers (`const`, `async`, `unsafe`, `extern "C"`, `default`).
fn starts_fn(code: &str) -> bool {
    let mut rest = code;
    if let Some(inner) = rest.strip_prefix("pub(") {
        let Some(end) = inner.find(')') else {
            return false;
        };
        rest = inner[end + 1..].trim_start();
    } else if let Some(after) = rest.strip_prefix("pub ") {
        rest = after.trim_start();
    }
    while !rest.starts_with("fn ") {
        let Some((word, after)) = rest.split_once(' ') else {
            return false;
        };
        let abi = word.len() > 1 && word.starts_with('"') && word.ends_with('"');
        if !(abi || matches!(word, "const" | "async" | "unsafe" | "extern" | "default")) {
            return false;
        }
        rest = after.trim_start();
    }
    true
}

/// The functions in `text` longer than [`MAX_FN`] lines without a `// Long:` comment: their
/// first line's number and their length.
fn long_functions(text: &str) -> Vec<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut long = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let code = line.trim_start();
        if !starts_fn(code) {
            continue;
        }
        // Where the signature ends: a body's `{`, or a declaration's `;`.
        let Some(open) = (i..lines.len()).find(|&j| {
            let l = lines[j].trim_end();
            l.ends_with('{') || l.ends_with(';') || l.ends_with('}')
        }) else {
            continue;
        };
        if !lines[open].trim_end().ends_with('{') {
            continue;
        }
        let indent = line.len() - code.len();
        let close = format!("{}}}", " ".repeat(indent));
        let Some(end) = (open..lines.len()).find(|&j| lines[j] == close) else {
            continue;
        };
        let reason = lines[..i]
            .iter()
            .rev()
            .take_while(|l| l.trim_start().starts_with("//") || l.trim_start().starts_with("#["))
            .any(|l| {
                l.trim_start()
                    .trim_start_matches('/')
                    .trim_start()
                    .starts_with("Long:")
            });
        if end - i + 1 > MAX_FN && !reason {
            long.push((i + 1, end - i + 1));
        }
    }
    long
}

#[test]
fn no_source_file_outside_the_tests_is_over_the_limit() {
    let big: Vec<String> = sources()
        .into_iter()
        .filter(|p| !is_test(p))
        .filter_map(|p| {
            let lines = fs::read_to_string(&p).unwrap().lines().count();
            (lines > MAX_FILE).then(|| format!("{} ({lines} lines)", p.display()))
        })
        .collect();
    assert!(big.is_empty(), "over {MAX_FILE} lines: {big:#?}");
}

#[test]
fn no_function_is_over_the_limit_without_a_reason() {
    let long: Vec<String> = sources()
        .into_iter()
        .flat_map(|p| {
            let text = fs::read_to_string(&p).unwrap();
            long_functions(&text)
                .into_iter()
                .map(move |(line, len)| format!("{}:{line} ({len} lines)", p.display()))
        })
        .collect();
    assert!(long.is_empty(), "functions over {MAX_FN} lines: {long:#?}");
}

#[test]
fn the_checker_measures_functions_as_rustfmt_writes_them() {
    let body = "    let x = 1;\n".repeat(MAX_FN);
    let long = format!("fn long() {{\n{body}}}\n");
    assert_eq!(long_functions(&long), [(1, MAX_FN + 2)]);
    let excused = format!("// Long: one table, read top to bottom.\n{long}");
    assert!(long_functions(&excused).is_empty());
    let method =
        format!("impl X {{\n    pub fn f(\n        a: u8,\n    ) -> u8 {{\n{body}    }}\n}}\n");
    assert_eq!(long_functions(&method), [(2, MAX_FN + 4)]);
    assert!(long_functions("trait T {\n    fn f(&self);\n}\nfn g() {}\n").is_empty());
}

#[test]
fn the_checker_sees_every_form_of_function_head() {
    for head in [
        "fn f",
        "pub fn f",
        "pub(crate) fn f",
        "pub(super) fn f",
        "pub(in crate::a) fn f",
        "const fn f",
        "pub const fn f",
        "async fn f",
        "pub async fn f",
        "unsafe fn f",
        "pub(crate) const unsafe fn f",
        "pub async unsafe fn f",
        "extern \"C\" fn f",
        "pub unsafe extern \"C\" fn f",
    ] {
        assert!(starts_fn(head), "{head}");
    }
    for other in [
        "fnord()",
        "pub fnord",
        "const FN: fn() = f;",
        "let f = fn_x;",
        "pub struct F",
    ] {
        assert!(!starts_fn(other), "{other}");
    }
}
