//! Files as tests make them, and listings as `ferry` prints them.

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

/// The names in a listing as `ferry` prints it in a script (size, time, name a line; a
/// directory's name with a trailing `/`), in order; lines of other kinds are left out.
pub fn listed(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|line| {
            let (size, rest) = line.trim_start().split_once("  ")?;
            let (when, name) = rest.split_once("  ")?;
            let sized = size == "-" || size.ends_with('B');
            (sized && when.ends_with('Z')).then(|| name.to_string())
        })
        .collect()
}

/// Writes `content` to `path` with the modification time `secs` (Unix seconds).
pub fn write_dated(path: &Path, content: &[u8], secs: u64) {
    std::fs::write(path, content).unwrap();
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap();
}
