//! A peer's server process: started in its own process group with its log in its directory,
//! waited for by polling its port with a deadline, and killed with all it forked on drop.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long a peer's server may take to accept connections.
const START_LIMIT: Duration = Duration::from_secs(20);

/// A running server, killed with its process group (the sessions it forked) on drop.
pub struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Starts `cmd` (logging to `log`) and waits until 127.0.0.1:`port` accepts.
    pub fn start(mut cmd: Command, log: &Path, port: u16) -> anyhow::Result<Daemon> {
        let out = fs::File::create(log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {cmd:?}"))?;
        let mut daemon = Daemon {
            child,
            log: log.to_path_buf(),
        };
        daemon.wait_for(port)?;
        Ok(daemon)
    }

    /// Polls the port until it accepts, the server exits or the deadline passes.
    fn wait_for(&mut self, port: u16) -> anyhow::Result<()> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("exited ({status}) before listening: {}", self.log_text());
            }
            if Instant::now() > deadline {
                bail!(
                    "not listening on {addr} after {START_LIMIT:?}: {}",
                    self.log_text()
                );
            }
            // Polling, with a deadline: the server says nothing when it is ready.
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .trim()
            .to_string()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // The whole group: vsftpd, sshd and rsync fork a process per session.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port on 127.0.0.1 free a moment ago (the peers cannot take port 0 and report it).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// The path of `name` in PATH or in the sbin directories (where sshd and vsftpd live).
pub fn find(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .with_context(|| format!("'{name}' is not installed (try --peers-install)"))
}

/// A new directory `dir` with an empty `root` inside, the directory a peer serves.
pub fn make_dirs(dir: &Path) -> anyhow::Result<PathBuf> {
    let root = dir.join("root");
    fs::create_dir_all(&root).with_context(|| format!("creating '{}'", root.display()))?;
    Ok(root)
}
