//! Extracts the verb sketch from the README's "Adding a verb" section, so that a test can
//! compile it, register it and run it: the README's code cannot fall behind the code.

use std::path::Path;

fn main() {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    println!("cargo:rerun-if-changed={}", readme.display());
    let text = std::fs::read_to_string(&readme).expect("README.md is readable");
    let section = text
        .split("\n## ")
        .find(|s| s.starts_with("Adding a verb"))
        .expect("README.md has an 'Adding a verb' section");
    let (_, rest) = section
        .split_once("```rust\n")
        .expect("the section holds a rust code block");
    // The block's own ```text fence ends with a line of just ``` too, inside doc comments.
    let code: Vec<&str> = rest.lines().take_while(|line| *line != "```").collect();
    // Inner doc comments cannot stand in an `include!`d module; they become plain comments.
    let code: String = code
        .iter()
        .map(|line| match line.strip_prefix("//!") {
            Some(doc) => format!("//{doc}\n"),
            None => format!("{line}\n"),
        })
        .collect();
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR is set")).join("readme_verb.rs");
    std::fs::write(out, code).expect("OUT_DIR is writable");
    // The start-up test (tests/startup.rs) expects static programs only when cargo links
    // them through the workspace's wrapper, on Linux; an explicit RUSTC_WRAPPER (sccache)
    // replaces that script, and the programs are then dynamic.
    println!("cargo:rerun-if-env-changed=RUSTC_WRAPPER");
    let wrapper = std::env::var("RUSTC_WRAPPER").unwrap_or_default();
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    if linux && wrapper.ends_with("static-bins.sh") {
        println!("cargo:rustc-env=FERRY_STATIC_BINS=1");
    }
    // Said out loud rather than skipped in silence: the object-store suite needs the feature
    // (and SeaweedFS's `weed`), which `.ci/run` gives it.
    if std::env::var_os("CARGO_FEATURE_S3").is_none() {
        println!(
            "cargo:warning=the object-store suite (tests/objectstore.rs) is not built: run \
             `cargo test -p ferry-tests --features s3 -- objectstore` with SeaweedFS's `weed` \
             on PATH, as .ci/run does"
        );
    }
}
