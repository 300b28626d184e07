//! Where Ferry keeps a user's files: the XDG data directory's `ferry/`.

use std::ffi::OsString;
use std::path::PathBuf;

/// `$XDG_DATA_HOME/ferry/<name>`, else `$HOME/.local/share/ferry/<name>` (the XDG default),
/// with the environment read through `env`; none without a usable home. A relative
/// `XDG_DATA_HOME` is ignored, as the spec says.
pub fn data_file(name: &str, env: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let set = |var| env(var).filter(|v| !v.is_empty()).map(PathBuf::from);
    let data = match set("XDG_DATA_HOME").filter(|p| p.is_absolute()) {
        Some(dir) => dir,
        None => set("HOME")?.join(".local/share"),
    };
    Some(data.join("ferry").join(name))
}

/// [`data_file`] as this process's environment gives it.
pub fn user_file(name: &str) -> Option<PathBuf> {
    data_file(name, |var| std::env::var_os(var))
}
