//! vsftpd with a private config (anonymous writes into `root/pub`, loopback only, its own
//! passive ports) and `lftp` as its client: `mirror` for trees, `put`/`get` for files.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context;

use super::daemon::{self, Daemon};
use super::{Job, Kind, Peer, quoted};

/// Passive data ports above the control port: enough for a hundred clients at once, each
/// with a data connection open and another in TIME_WAIT.
const PASV_PORTS: u16 = 400;

/// The server, its port, and the directory anonymous clients write to.
pub struct Vsftpd {
    _daemon: Daemon,
    lftp: PathBuf,
    port: u16,
    public: PathBuf,
    script: PathBuf,
}

impl Vsftpd {
    /// Writes `dir/vsftpd.conf` (anonymous root `dir/root`, writable `pub` owned by `ftp`)
    /// and starts vsftpd on a free port of 127.0.0.1.
    pub fn start(dir: &Path) -> anyhow::Result<Vsftpd> {
        let (vsftpd, lftp) = (daemon::find("vsftpd")?, daemon::find("lftp")?);
        let root = daemon::make_dirs(dir)?;
        // vsftpd refuses a writable anonymous root, so writes go to a directory below it.
        let public = root.join("pub");
        fs::create_dir(&public)?;
        let (uid, gid) = ftp_user()?;
        std::os::unix::fs::chown(&public, Some(uid), Some(gid))?;
        let port = daemon::free_port()?;
        let config = dir.join("vsftpd.conf");
        fs::write(&config, config_text(&root, &dir.join("vsftpd.log"), port))?;
        let mut cmd = Command::new(vsftpd);
        cmd.arg(&config);
        let daemon = Daemon::start(cmd, &dir.join("daemon.log"), port)?;
        Ok(Vsftpd {
            _daemon: daemon,
            lftp,
            port,
            public,
            script: dir.join("lftp-script"),
        })
    }
}

/// The `ftp` user's ids, as the account anonymous sessions run as.
fn ftp_user() -> anyhow::Result<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd")?;
    let line = passwd
        .lines()
        .find(|l| l.starts_with("ftp:"))
        .context("no 'ftp' user (the vsftpd package makes it)")?;
    let fields: Vec<&str> = line.split(':').collect();
    Ok((fields[2].parse()?, fields[3].parse()?))
}

fn config_text(root: &Path, log: &Path, port: u16) -> String {
    let mut text = String::new();
    for line in [
        "listen=YES\nlisten_ipv6=NO\nlisten_address=127.0.0.1\nbackground=NO",
        "anonymous_enable=YES\nlocal_enable=NO\nno_anon_password=YES\nwrite_enable=YES",
        "anon_upload_enable=YES\nanon_mkdir_write_enable=YES\nanon_other_write_enable=YES",
        "anon_world_readable_only=NO\nanon_umask=022\nconnect_from_port_20=NO",
        "pasv_enable=YES\npasv_address=127.0.0.1\nseccomp_sandbox=NO",
        "isolate=NO\nisolate_network=NO\nxferlog_enable=NO\ndual_log_enable=NO",
    ] {
        let _ = writeln!(text, "{line}");
    }
    let _ = writeln!(text, "listen_port={port}\nanon_root={}", root.display());
    let _ = writeln!(text, "vsftpd_log_file={}", log.display());
    let _ = writeln!(
        text,
        "pasv_min_port={}\npasv_max_port={}",
        port.saturating_add(1),
        port.saturating_add(PASV_PORTS)
    );
    text
}

impl Peer for Vsftpd {
    fn name(&self) -> &str {
        "vsftpd (lftp)"
    }

    fn remote(&self) -> &Path {
        &self.public
    }

    fn command(&self, job: &Job, client: &Path) -> anyhow::Result<Option<(Command, Stdio)>> {
        let mut script = self.opening(client);
        match (job.kind, job.up) {
            (Kind::Tree, true) => script.push_str("mirror -R --no-perms tree tree\n"),
            (Kind::Tree, false) => script.push_str("mirror tree fetched-tree\n"),
            (Kind::Big, true) => script.push_str("put big -o big\n"),
            (Kind::Big, false) => script.push_str("get big -o fetched-big\n"),
            (Kind::Clients, _) => return Ok(None),
            (Kind::Files, up) => {
                for name in job.names() {
                    let _ = match up {
                        true => writeln!(script, "put small/{name} -o {name}"),
                        false => writeln!(script, "get {name} -o fetched/{name}"),
                    };
                }
            }
        }
        script.push_str("bye\n");
        fs::write(&self.script, script)?;
        Ok(Some((
            self.lftp(&["-f".as_ref(), self.script.as_os_str()], client),
            Stdio::null(),
        )))
    }

    fn session(&self, client: &Path, name: &str) -> anyhow::Result<Option<Command>> {
        let mut script = self.opening(client);
        let _ = writeln!(
            script,
            "put clients/{name} -o {name}\nget {name} -o fetched-clients/{name}\nbye"
        );
        Ok(Some(self.lftp(&["-c".as_ref(), script.as_ref()], client)))
    }
}

impl Vsftpd {
    /// The start of every lftp script: its settings, the login, and the directories.
    fn opening(&self, client: &Path) -> String {
        format!(
            "set cmd:fail-exit yes\nset ftp:ssl-allow no\nset net:max-retries 1\n\
             set net:timeout 30\nset xfer:clobber yes\n\
             open -u anonymous,ferry -p {} 127.0.0.1\ncd pub\nlcd {}\n",
            self.port,
            quoted(client)
        )
    }

    /// `lftp ARGS`, run from `client`.
    fn lftp(&self, args: &[&std::ffi::OsStr], client: &Path) -> Command {
        let mut cmd = Command::new(&self.lftp);
        cmd.args(args)
            .current_dir(client)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd
    }
}
