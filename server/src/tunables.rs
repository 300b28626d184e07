//! [`tune_glibc`]: the server starts itself once more, with two of glibc's tunables set, which
//! glibc reads only when a program starts.
//!
//! **Vector copies.** glibc's memcpy on x86-64 copies 2,112 bytes or more with `rep movsb`,
//! which on AMD Zen 4 (some of the machines Ferry is measured on) runs some 30 times slower
//! when the destination lies 1 to 15 bytes further into its 4 KiB page than the source does.
//! rustls copies every record it decrypts from 5 bytes into its receive buffer to a new block,
//! and in a client thread's heap that block often lands right after the buffer, 11 bytes
//! further into its page: one upload in three measured had nearly all its records copied on
//! the slow path (docs/PERFORMANCE.md, "Copies that cross a page 1 to 15 bytes apart"). Where
//! the blocks land is glibc's business, and the allocators that place them better hold a
//! thousand idle connections' threads in three to thirty times the memory; so instead memcpy
//! is told to keep `rep movsb` for copies larger than any the server makes.
//!
//! **Large blocks from the system.** A session lets go of the buffers a transfer grew once it
//! sits idle (`Connection::rest_if_idle` in ferry-core): the content buffer (1 MiB) and TLS
//! read-ahead (256 KiB). glibc serves blocks that large from the system (`mmap`) and gives
//! them back on `free`, but only until the first is freed: then it raises its threshold to
//! that block's size and carves the next ones from the thread's heap, where a block freed
//! below a smaller one stays resident. Sixteen sessions idle after a 64 MiB transfer each held
//! 25.5 MiB in all, 17.4 MiB with the buffers let go, 7.0 MiB with the threshold fixed at 256
//! KiB, which also stops it from moving.
//!
//! The client does not start twice (every short session would pay a second start-up): it has
//! an allocator of its own.

use std::ffi::OsString;

/// The tunables set, and their values: `rep movsb` left to copies of 1 GiB or more, and
/// blocks of 256 KiB or more taken from the system and given back when freed.
const TUNABLES: [(&str, &str); 2] = [
    ("glibc.cpu.x86_rep_movsb_threshold", "0x40000000"),
    ("glibc.malloc.mmap_threshold", "262144"),
];
/// Set in the second start's environment, so that it never starts a third: glibc may drop
/// `GLIBC_TUNABLES` itself (in a program started with more privileges than its caller).
const RESTARTED: &str = "FERRYD_GLIBC_TUNED";

/// Replaces the process by the same program, same arguments, with glibc's tunables set, unless
/// this is already that second start, or `GLIBC_TUNABLES` already names both (the user's
/// choice stands, tunable by tunable). Returns only when it does not restart, or cannot (the server then
/// runs with glibc's choice); the process id, its descriptors and everything else stay.
#[cfg(all(target_os = "linux", target_env = "gnu", target_arch = "x86_64"))]
pub fn tune_glibc() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os(RESTARTED).is_some() {
        return;
    }
    let Some(tunables) = with_defaults(std::env::var_os("GLIBC_TUNABLES")) else {
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

/// Elsewhere memcpy has no such cliff that Ferry knows of, and the server does not start
/// twice for the threshold alone: nothing to do.
#[cfg(not(all(target_os = "linux", target_env = "gnu", target_arch = "x86_64")))]
pub fn tune_glibc() {}

#[cfg_attr(
    not(all(target_os = "linux", target_env = "gnu", target_arch = "x86_64")),
    allow(dead_code)
)]
/// `GLIBC_TUNABLES` with each of [`TUNABLES`] it does not name added, or `None` when it names
/// them all.
fn with_defaults(current: Option<OsString>) -> Option<OsString> {
    let current = current.unwrap_or_default();
    let text = current.to_string_lossy();
    let named: Vec<&str> = text
        .split(':')
        .filter_map(|setting| setting.split('=').next())
        .collect();
    let missing: Vec<String> = TUNABLES
        .iter()
        .filter(|(name, _)| !named.contains(name))
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    if missing.is_empty() {
        return None;
    }
    let mut tunables = current.clone();
    for setting in missing {
        if !tunables.is_empty() {
            tunables.push(":");
        }
        tunables.push(setting);
    }
    Some(tunables)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_are_added_to_what_the_user_set_and_never_replace_their_own() {
        let copies = "glibc.cpu.x86_rep_movsb_threshold=0x40000000";
        let blocks = "glibc.malloc.mmap_threshold=262144";
        let both = format!("{copies}:{blocks}");
        assert_eq!(with_defaults(None), Some(both.clone().into()));
        assert_eq!(with_defaults(Some("".into())), Some(both.clone().into()));
        assert_eq!(
            with_defaults(Some("glibc.malloc.check=1".into())),
            Some(format!("glibc.malloc.check=1:{both}").into())
        );
        assert_eq!(
            with_defaults(Some("glibc.cpu.x86_rep_movsb_threshold=4096".into())),
            Some(format!("glibc.cpu.x86_rep_movsb_threshold=4096:{blocks}").into())
        );
        assert_eq!(
            with_defaults(Some(
                format!("glibc.malloc.mmap_threshold=1:{copies}").into()
            )),
            None
        );
    }
}
