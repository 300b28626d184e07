//! [`PortFile`]: the port file, the identity file beside it, and the lock that makes both one
//! server's for its whole life.
//!
//! A server first takes an exclusive `flock` on `<port file>.lock` and holds it until it
//! exits; the kernel lets go of it when the process dies, however it dies. So a second server
//! given the same port file finds the lock held and refuses to start, naming the first (its pid
//! and address, which the first writes into the lock file), while a port file left by a
//! server that crashed is simply replaced. At exit a server removes the port and identity files
//! only if they are still what it wrote (same inode, same content), then the lock file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rustix::fs::{FlockOperation, flock};

/// The lock file beside a port file: `<port file>.lock`.
pub fn lock_file(port_file: &Path) -> PathBuf {
    let mut name = port_file.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// A port file this server owns, with what it wrote there; removed (if still its own) on drop.
pub struct PortFile {
    port: PathBuf,
    lock_path: PathBuf,
    lock: File,
    /// The files written, each with its inode and content, to recognise them at exit.
    written: Vec<(PathBuf, (u64, u64), String)>,
}

impl PortFile {
    /// Takes the lock beside `port`, or says which server holds it.
    pub fn claim(port: &Path) -> anyhow::Result<PortFile> {
        let lock_path = lock_file(port);
        let context = || format!("locking '{}'", lock_path.display());
        // The lock file may be removed by its last owner between our open and our lock: then
        // we hold a lock on a file nobody else will open, so check and try again.
        loop {
            let lock = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&lock_path)
                .with_context(context)?;
            match flock(&lock, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {}
                Err(rustix::io::Errno::WOULDBLOCK) => {
                    let holder = fs::read_to_string(&lock_path).unwrap_or_default();
                    bail!(
                        "port file '{}' belongs to another ferryd ({}); stop that one first, or \
                         give this one another --port-file",
                        port.display(),
                        describe(&holder)
                    );
                }
                Err(e) => return Err(io::Error::from(e)).with_context(context),
            }
            let held = id(&lock.metadata().with_context(context)?);
            if fs::metadata(&lock_path).is_ok_and(|m| id(&m) == held) {
                let mut owned = PortFile {
                    port: port.to_path_buf(),
                    lock_path,
                    lock,
                    written: Vec::new(),
                };
                owned.note(&std::process::id().to_string())?;
                return Ok(owned);
            }
        }
    }

    /// Publishes the server: its pid and address in the lock file (for a second server's
    /// refusal), its fingerprint beside the port file, then the port.
    pub fn publish(&mut self, addr: SocketAddr, fingerprint: &str) -> anyhow::Result<()> {
        self.note(&format!("{} {addr}", std::process::id()))?;
        let beside = ferry_core::identity::fingerprint_file(&self.port);
        self.write(&beside, format!("{fingerprint}\n"))
            .with_context(|| format!("writing fingerprint file '{}'", beside.display()))?;
        let port = self.port.clone();
        self.write(&port, format!("{}\n", addr.port()))
            .with_context(|| format!("writing port file '{}'", port.display()))
    }

    /// Writes `pid [addr]` into the lock file.
    fn note(&mut self, text: &str) -> anyhow::Result<()> {
        let line = format!("{text}\n");
        self.lock.set_len(0)?;
        self.lock
            .write_all_at(line.as_bytes(), 0)
            .with_context(|| format!("writing '{}'", self.lock_path.display()))
    }

    /// Writes `text` atomically, a temporary beside the file then a rename, so a client never
    /// reads half a port; remembers what it wrote.
    fn write(&mut self, path: &Path, text: String) -> io::Result<()> {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let mut temp = tempfile::Builder::new().prefix(".port-").tempfile_in(dir)?;
        temp.write_all(text.as_bytes())?;
        let file = temp.persist(path).map_err(|e| e.error)?;
        let written = id(&file.metadata()?);
        self.written.push((path.to_path_buf(), written, text));
        Ok(())
    }
}

impl Drop for PortFile {
    fn drop(&mut self) {
        for (path, written, text) in self.written.drain(..).rev() {
            if !path.exists() {
                continue;
            }
            let ours = fs::metadata(&path).is_ok_and(|m| id(&m) == written)
                && fs::read_to_string(&path).is_ok_and(|now| now == text);
            if !ours {
                crate::log(format_args!(
                    "left '{}' alone: it is no longer the one this server wrote",
                    path.display()
                ));
                continue;
            }
            if let Err(e) = fs::remove_file(&path) {
                crate::log(format_args!("cannot remove '{}': {e}", path.display()));
            }
        }
        // Still holding the lock: whoever opens the file next either waits for nothing (it is
        // gone) or finds it replaced, and checks.
        let _ = fs::remove_file(&self.lock_path);
    }
}

/// A file's identity: device and inode.
fn id(meta: &fs::Metadata) -> (u64, u64) {
    (meta.dev(), meta.ino())
}

/// What the lock file says of its holder: `pid 123, listening on 127.0.0.1:40123`.
fn describe(holder: &str) -> String {
    let mut words = holder.split_whitespace();
    match (words.next(), words.next()) {
        (Some(pid), Some(addr)) => format!("pid {pid}, listening on {addr}"),
        (Some(pid), None) => format!("pid {pid}, starting"),
        _ => "starting".into(),
    }
}
