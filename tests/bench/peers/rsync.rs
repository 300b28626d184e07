//! An rsync daemon (`rsync --daemon --no-detach`, a private config, one writable module) and
//! `rsync -a` as its client.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::daemon::{self, Daemon};
use super::{Job, Kind, Peer};

/// The daemon, its port and the module's directory.
pub struct Rsync {
    _daemon: Daemon,
    rsync: PathBuf,
    port: u16,
    root: PathBuf,
}

impl Rsync {
    /// Writes `dir/rsyncd.conf` (module `ferry` on `dir/root`, as the current user) and starts
    /// the daemon on a free port of 127.0.0.1.
    pub fn start(dir: &Path) -> anyhow::Result<Rsync> {
        let rsync = daemon::find("rsync")?;
        let root = daemon::make_dirs(dir)?;
        let meta = fs::metadata(&root)?;
        let config = dir.join("rsyncd.conf");
        fs::write(
            &config,
            format!(
                "use chroot = no\nlog file = {log}\n[ferry]\npath = {root}\nread only = no\n\
                 uid = {uid}\ngid = {gid}\n",
                log = dir.join("rsyncd.log").display(),
                root = root.display(),
                uid = meta.uid(),
                gid = meta.gid(),
            ),
        )?;
        let port = daemon::free_port()?;
        let mut cmd = Command::new(&rsync);
        cmd.args(["--daemon", "--no-detach", "--address=127.0.0.1"])
            .arg(format!("--config={}", config.display()))
            .arg(format!("--port={port}"));
        let daemon = Daemon::start(cmd, &dir.join("daemon.log"), port)?;
        Ok(Rsync {
            _daemon: daemon,
            rsync,
            port,
            root,
        })
    }
}

impl Peer for Rsync {
    fn name(&self) -> &str {
        "rsync daemon (rsync -a)"
    }

    fn remote(&self) -> &Path {
        &self.root
    }

    fn command(&self, job: &Job, client: &Path) -> anyhow::Result<Option<(Command, Stdio)>> {
        let module = format!("rsync://127.0.0.1:{}/ferry/", self.port);
        let (from, to) = match (job.kind, job.up) {
            (Kind::Tree, true) => ("tree".to_string(), module),
            (Kind::Tree, false) => (format!("{module}tree/"), "fetched-tree/".to_string()),
            (Kind::Big, true) => ("big".to_string(), module),
            (Kind::Big, false) => (format!("{module}big"), "fetched-big".to_string()),
            // rsync sends a list of files in one go; there is no per-file session to compare.
            (Kind::Files | Kind::Clients, _) => return Ok(None),
        };
        let mut cmd = Command::new(&self.rsync);
        cmd.args(["-a", &from, &to])
            .current_dir(client)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        Ok(Some((cmd, Stdio::null())))
    }
}
