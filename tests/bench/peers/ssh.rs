//! A private `sshd -D` (its own host key, config and port; key authentication for the current
//! user with a new key) and `sftp -b` as its client, with the AES-GCM cipher.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, ensure};

use super::daemon::{self, Daemon};
use super::{Job, Kind, Peer, quoted};

/// The cipher of every sftp run (the fastest on this machine's AES-NI, as FINDINGS measured).
const CIPHER: &str = "aes128-gcm@openssh.com";

/// The server, its port, the client's key and the directory it writes to.
pub struct Sshd {
    _daemon: Daemon,
    sftp: PathBuf,
    port: u16,
    key: PathBuf,
    user: String,
    root: PathBuf,
    script: PathBuf,
}

impl Sshd {
    /// Makes a host key and a client key in `dir`, writes `dir/sshd_config` and starts sshd
    /// on a free port of 127.0.0.1.
    pub fn start(dir: &Path) -> anyhow::Result<Sshd> {
        let (sshd, sftp) = (daemon::find("sshd")?, daemon::find("sftp")?);
        let root = daemon::make_dirs(dir)?;
        let (host, key) = (dir.join("host_key"), dir.join("client_key"));
        keygen(&host)?;
        keygen(&key)?;
        fs::copy(key.with_extension("pub"), dir.join("authorized_keys"))?;
        // sshd's privilege separation needs this directory; the package's service makes it.
        fs::create_dir_all("/run/sshd")?;
        let port = daemon::free_port()?;
        let config = dir.join("sshd_config");
        fs::write(&config, config_text(dir, &host, port))?;
        let mut cmd = Command::new(sshd);
        cmd.args(["-D", "-e", "-f"]).arg(&config);
        let daemon = Daemon::start(cmd, &dir.join("daemon.log"), port)?;
        Ok(Sshd {
            _daemon: daemon,
            sftp,
            port,
            key,
            user: current_user()?,
            root,
            script: dir.join("sftp-batch"),
        })
    }
}

/// A new ed25519 key without passphrase at `path` (and `path.pub`).
fn keygen(path: &Path) -> anyhow::Result<()> {
    let status = Command::new(daemon::find("ssh-keygen")?)
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .stdout(Stdio::null())
        .status()?;
    ensure!(status.success(), "ssh-keygen: {status}");
    Ok(())
}

fn current_user() -> anyhow::Result<String> {
    let out = Command::new("id")
        .arg("-un")
        .output()
        .context("running id -un")?;
    ensure!(out.status.success(), "id -un: {}", out.status);
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

fn config_text(dir: &Path, host: &Path, port: u16) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "Port {port}\nListenAddress 127.0.0.1");
    let _ = writeln!(text, "HostKey {}", host.display());
    let _ = writeln!(
        text,
        "AuthorizedKeysFile {}",
        dir.join("authorized_keys").display()
    );
    let _ = writeln!(
        text,
        "PidFile none\nUsePAM no\nStrictModes no\nLogLevel ERROR"
    );
    let _ = writeln!(text, "PubkeyAuthentication yes\nPasswordAuthentication no");
    let _ = writeln!(
        text,
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password"
    );
    let _ = writeln!(text, "Ciphers {CIPHER}\nSubsystem sftp internal-sftp");
    // Many clients at once (`Kind::Clients`): the default drops logins past ten in progress.
    let _ = writeln!(text, "MaxStartups 2000");
    text
}

impl Peer for Sshd {
    fn name(&self) -> &str {
        "sshd (sftp, AES-GCM)"
    }

    fn remote(&self) -> &Path {
        &self.root
    }

    fn command(&self, job: &Job, client: &Path) -> anyhow::Result<Option<(Command, Stdio)>> {
        let mut batch = format!("cd {}\nlcd {}\n", quoted(&self.root), quoted(client));
        match (job.kind, job.up) {
            (Kind::Tree, true) => batch.push_str("put -r tree\n"),
            (Kind::Tree, false) => batch.push_str("get -r tree fetched-tree\n"),
            (Kind::Big, true) => batch.push_str("put big big\n"),
            (Kind::Big, false) => batch.push_str("get big fetched-big\n"),
            (Kind::Clients, _) => return Ok(None),
            (Kind::Files, up) => {
                for name in job.names() {
                    let _ = match up {
                        true => writeln!(batch, "put small/{name} {name}"),
                        false => writeln!(batch, "get {name} fetched/{name}"),
                    };
                }
            }
        }
        fs::write(&self.script, batch)?;
        Ok(Some((self.sftp(&self.script, client), Stdio::null())))
    }

    fn session(&self, client: &Path, name: &str) -> anyhow::Result<Option<Command>> {
        let script = self.script.with_file_name(format!("sftp-batch-{name}"));
        let batch = format!(
            "cd {}\nlcd {}\nput clients/{name} {name}\nget {name} fetched-clients/{name}\n",
            quoted(&self.root),
            quoted(client)
        );
        fs::write(&script, batch)?;
        Ok(Some(self.sftp(&script, client)))
    }
}

impl Sshd {
    /// `sftp -b SCRIPT` to this server, with its key and cipher, run from `client`.
    fn sftp(&self, script: &Path, client: &Path) -> Command {
        let mut cmd = Command::new(&self.sftp);
        cmd.args(["-q", "-b"])
            .arg(script)
            .arg("-i")
            .arg(&self.key)
            .args(["-P", &self.port.to_string(), "-F", "/dev/null"])
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
            ])
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "LogLevel=ERROR",
            ])
            .args(["-o", &format!("Ciphers={CIPHER}")])
            .arg(format!("{}@127.0.0.1", self.user))
            .current_dir(client)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd
    }
}
