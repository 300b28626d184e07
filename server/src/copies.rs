//! [`vector_copies`]: the server starts itself once more, so that glibc copies memory with
//! vector moves rather than `rep movsb`.
//!
//! glibc's memcpy on x86-64 copies 2,112 bytes or more with `rep movsb`, which on AMD Zen 4
//! (the machines Ferry is measured on) runs some 30 times slower when the destination lies 1
//! to 15 bytes further into its 4 KiB page than the source does. rustls copies every record
//! it decrypts from 5 bytes into its receive buffer to a new block, and in a client thread's
//! heap that block often lands right after the buffer, 11 bytes further into its page: one
//! upload in three measured had nearly all its records copied on the slow path
//! (docs/PERFORMANCE.md, "Copies that cross a page 1 to 15 bytes apart"). Where the blocks
//! land is glibc's business, and the allocators that place them better hold a thousand idle
//! connections' threads in three to thirty times the memory; so instead memcpy is told,
//! through the tunable glibc reads only when a program starts, to keep `rep movsb` for copies
//! larger than any the server makes. The client does not start twice (every short session
//! would pay a second start-up): it has an allocator of its own.

use std::ffi::OsString;

/// The tunable, and the value that leaves `rep movsb` to copies of 1 GiB or more.
const TUNABLE: &str = "glibc.cpu.x86_rep_movsb_threshold";
const THRESHOLD: &str = "0x40000000";
/// Set in the second start's environment, so that it never starts a third: glibc may drop
/// `GLIBC_TUNABLES` itself (in a program started with more privileges than its caller).
const RESTARTED: &str = "FERRYD_VECTOR_COPIES";

/// Replaces the process by the same program, same arguments, with glibc's tunable set, unless
/// this is already that second start, or `GLIBC_TUNABLES` already names the tunable (the
/// user's choice stands). Returns only when it does not restart, or cannot (the server then
/// runs with glibc's choice); the process id, its descriptors and everything else stay.
#[cfg(all(target_os = "linux", target_env = "gnu", target_arch = "x86_64"))]
pub fn vector_copies() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os(RESTARTED).is_some() {
        return;
    }
    let Some(tunables) = with_threshold(std::env::var_os("GLIBC_TUNABLES")) else {
        return;
    };
    // The program's own path, not /proc/self/exe, so that it is still called `ferryd` (its
    // name in `ps` and `pkill` is the file's). A program deleted since it started cannot be
    // found: it serves on without.
    let Ok(program) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let mut command = std::process::Command::new(program);
    if let Some(name) = args.next() {
        command.arg0(name);
    }
    // `exec` returns only when it failed.
    let _ = command
        .args(args)
        .env("GLIBC_TUNABLES", tunables)
        .env(RESTARTED, "1")
        .exec();
}

/// Elsewhere memcpy has no such cliff that Ferry knows of: nothing to do.
#[cfg(not(all(target_os = "linux", target_env = "gnu", target_arch = "x86_64")))]
pub fn vector_copies() {}

#[cfg_attr(
    not(all(target_os = "linux", target_env = "gnu", target_arch = "x86_64")),
    allow(dead_code)
)]
/// `GLIBC_TUNABLES` with the threshold added, or `None` when it already sets the threshold.
fn with_threshold(current: Option<OsString>) -> Option<OsString> {
    let setting = format!("{TUNABLE}={THRESHOLD}");
    match current {
        Some(current) if current.to_string_lossy().contains(TUNABLE) => None,
        Some(mut current) if !current.is_empty() => {
            current.push(":");
            current.push(setting);
            Some(current)
        }
        _ => Some(setting.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_is_added_to_what_the_user_set_and_never_replaces_their_own() {
        let setting = "glibc.cpu.x86_rep_movsb_threshold=0x40000000";
        assert_eq!(with_threshold(None), Some(setting.into()));
        assert_eq!(with_threshold(Some("".into())), Some(setting.into()));
        assert_eq!(
            with_threshold(Some("glibc.malloc.check=1".into())),
            Some(format!("glibc.malloc.check=1:{setting}").into())
        );
        assert_eq!(
            with_threshold(Some("glibc.cpu.x86_rep_movsb_threshold=4096".into())),
            None
        );
    }
}
