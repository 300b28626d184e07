// `automod::dir!` reads src/ when the crate compiles; this makes cargo rebuild the crate when a
// verb module is added or removed, not only when a known file changes.
fn main() {
    println!("cargo::rerun-if-changed=src");
}
