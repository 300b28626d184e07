//! `--peers`: the same transfers through other servers and clients installed on this machine
//! (an rsync daemon, vsftpd with lftp, sshd with sftp), each on 127.0.0.1 with a private
//! configuration, port and directory inside the bench's own, and Ferry's rate over each.
//!
//! Layout: this file runs the jobs and makes the rows; `daemon` starts, waits for and kills
//! the servers; `ferry`, `rsync`, `ftp` and `ssh` turn a [`Job`] into each one's client command.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, ensure};

use crate::process;
use crate::stats::{Row, Stats};
use crate::trash::Trash;
use crate::workloads::small::small_names;
use crate::workloads::tree::{dirs_for, link_tree, verify_tree};
use crate::workloads::{Bench, human, link_or_copy, verify, write_random};

mod daemon;
mod ferry;
mod ftp;
mod rsync;
mod ssh;

/// The Debian packages that hold the peers, for `--peers-install`.
const PACKAGES: [&str; 5] = [
    "openssh-server",
    "openssh-client",
    "vsftpd",
    "lftp",
    "rsync",
];

/// What is moved: the client's tree, its small files one by one in one session, or its big file.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `client/tree` to `tree`, and back to `client/fetched-tree`.
    Tree,
    /// `client/small/NAME` to `NAME`, and back to `client/fetched/NAME`.
    Files,
    /// `client/big` to `big`, and back to `client/fetched-big`.
    Big,
    /// Many clients at once, each in its own session: `client/clients/NAME` to `NAME`, then
    /// back to `client/fetched-clients/NAME` (`up` is not used: each client does both).
    Clients,
}

/// One transfer, in one direction.
#[derive(Clone, Copy)]
pub struct Job {
    /// What is moved.
    pub kind: Kind,
    /// Client to server (else server to client).
    pub up: bool,
    /// How many files (trees and small files).
    pub count: usize,
    /// Size of each file.
    pub size: u64,
}

impl Job {
    fn label(&self) -> String {
        let dir = if self.up { "up" } else { "down" };
        let size = human(self.size);
        match self.kind {
            Kind::Tree => {
                let dirs = dirs_for(self.count);
                format!("tree {dir}, {} x {size} in {dirs} dirs", self.count)
            }
            Kind::Files => format!("small files {dir}, {} x {size} (one session)", self.count),
            Kind::Big => format!("big file {dir}, {size}"),
            Kind::Clients => format!("{} clients at once, each up and down {size}", self.count),
        }
    }

    fn unit(&self) -> &'static str {
        match self.kind {
            Kind::Big => "MiB/s",
            Kind::Clients => "clients/s",
            _ => "files/s",
        }
    }

    /// The rate of one run that took `time`.
    fn rate(&self, time: Duration) -> f64 {
        let amount = match self.kind {
            Kind::Big => self.size as f64 / f64::from(1 << 20),
            _ => self.count as f64,
        };
        amount / time.as_secs_f64()
    }

    fn names(&self) -> Vec<String> {
        small_names(self.count)
    }

    /// How long one run may take: generous, a guard rather than a target.
    fn limit(&self) -> Duration {
        let bytes = self.count as u64 * self.size + self.size;
        Duration::from_secs(120)
            + Duration::from_millis(20 * self.count as u64)
            + Duration::from_secs(bytes / (10 << 20))
    }
}

/// How a peer is started in its own directory.
type Start = fn(&Path) -> anyhow::Result<Box<dyn Peer>>;

/// A server and its client: Ferry itself or a peer.
pub trait Peer {
    /// Its name in the table, with the client that drives it.
    fn name(&self) -> &str;
    /// The directory its server reads and writes, as a local path.
    fn remote(&self) -> &Path;
    /// The client command that does `job` from `client` (the local directory), with its
    /// stdin; `None` when this peer is not measured on it.
    fn command(&self, job: &Job, client: &Path) -> anyhow::Result<Option<(Command, Stdio)>>;
    /// One client of a [`Kind::Clients`] job, run from `client`: uploads `clients/NAME` as
    /// `NAME`, then downloads it to `fetched-clients/NAME`, in one session; `None` when this
    /// peer is not measured on it.
    fn session(&self, _client: &Path, _name: &str) -> anyhow::Result<Option<Command>> {
        Ok(None)
    }
}

/// Installs the peers from Debian's packages (needs root and a reachable mirror).
pub fn install() -> anyhow::Result<()> {
    eprintln!("installing {}", PACKAGES.join(" "));
    let status = Command::new("apt-get")
        .args(["install", "-y"])
        .args(PACKAGES)
        .stdout(Stdio::null())
        .status()
        .context("running apt-get")?;
    ensure!(
        status.success(),
        "apt-get install {}: {status}",
        PACKAGES.join(" ")
    );
    Ok(())
}

/// Starts Ferry and every peer that is installed, runs each job through all of them and
/// returns a row for each: Ferry's, then each peer's with Ferry's rate over the peer's.
pub fn run(bench: &Bench, jobs: &[Job]) -> anyhow::Result<Vec<Row>> {
    let at_once = jobs
        .iter()
        .filter(|j| j.kind == Kind::Clients)
        .map(|j| j.count);
    let ferry = ferry::Ferry::start(bench, at_once.max().unwrap_or(1))?;
    let mut peers: Vec<Box<dyn Peer>> = vec![Box::new(ferry)];
    let dir = bench.dir.join("peers");
    let starts: [(&str, Start); 3] = [
        ("rsync", |d| Ok(Box::new(rsync::Rsync::start(d)?))),
        ("vsftpd", |d| Ok(Box::new(ftp::Vsftpd::start(d)?))),
        ("sshd", |d| Ok(Box::new(ssh::Sshd::start(d)?))),
    ];
    for (name, start) in starts {
        match start(&dir.join(name)) {
            Ok(peer) => peers.push(peer),
            Err(e) => eprintln!("peer {name} left out: {e:#}"),
        }
    }
    eprintln!(
        "peers: {}",
        peers
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut rows = Vec::new();
    for job in jobs {
        eprintln!("{}:", job.label());
        rows.extend(measure(bench, &peers, job));
    }
    drop(peers);
    let _ = bench.trash.remove(&dir);
    Ok(rows)
}

/// Each repetition runs the job once through every peer able to, starting with a different
/// one each time; a peer that fails is left out of the job's later repetitions.
fn measure(bench: &Bench, peers: &[Box<dyn Peer>], job: &Job) -> Vec<Row> {
    let mut rates: Vec<Result<Vec<f64>, String>> = peers.iter().map(|_| Ok(Vec::new())).collect();
    for rep in 0..bench.reps {
        if bench.interrupted.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        for i in (0..peers.len()).map(|i| (i + rep) % peers.len()) {
            let Ok(done) = &mut rates[i] else { continue };
            match once(bench, peers[i].as_ref(), job) {
                Ok(Some(rate)) => done.push(rate),
                Ok(None) => rates[i] = Err(String::new()),
                Err(e) => rates[i] = Err(format!("{e:#}")),
            }
            eprintln!(
                "  {} {}/{}: {}",
                peers[i].name(),
                rep + 1,
                bench.reps,
                shown(&rates[i])
            );
        }
    }
    rows(peers, job, &rates)
}

fn shown(rates: &Result<Vec<f64>, String>) -> String {
    match rates {
        Ok(r) => r.last().map_or("-".into(), |r| format!("{r:.0}")),
        Err(e) if e.is_empty() => "not measured".into(),
        Err(e) => format!("failed: {e}"),
    }
}

/// Ferry's row (the first peer), then each peer's, whose ratio is Ferry's median over its own
/// and whose note gives the paired ratios (each repetition's Ferry run over the peer's).
fn rows(peers: &[Box<dyn Peer>], job: &Job, rates: &[Result<Vec<f64>, String>]) -> Vec<Row> {
    let label = job.label();
    let ferry = rates[0].as_ref().ok().cloned().unwrap_or_default();
    let mut out = Vec::new();
    for (peer, rates) in peers.iter().zip(rates) {
        let name = format!("{}: {label}", peer.name());
        let mut row = match rates {
            Err(e) if e.is_empty() => continue,
            Err(e) => Row::failed(name, "", &anyhow::anyhow!("{e}")),
            Ok(r) => Row::new(name, r, job.unit()),
        };
        if let (false, Some(f), Some(p)) = (out.is_empty(), Stats::new(&ferry), row.stats) {
            row.ratio = Some(f.median / p.median);
            let paired: Vec<f64> = ferry
                .iter()
                .zip(rates.as_ref().unwrap())
                .map(|(f, p)| f / p)
                .collect();
            if let Some(s) = Stats::new(&paired) {
                row.add_note(format!(
                    "Ferry/peer, paired {:.3} ({:.3}-{:.3})",
                    s.median, s.min, s.max
                ));
            }
        }
        out.push(row);
    }
    out
}

/// One run of `job` through `peer`, staged and verified outside the timing; its rate, or
/// `None` when the peer does not do this job.
fn once(bench: &Bench, peer: &dyn Peer, job: &Job) -> anyhow::Result<Option<f64>> {
    let client = bench.client();
    let (local, copy) = stage(peer.remote(), &client, job, &bench.trash)?;
    if job.kind == Kind::Clients {
        return at_once(peer, job, &client, (&local, &copy));
    }
    let Some((cmd, stdin)) = peer.command(job, &client)? else {
        return Ok(None);
    };
    if job.kind == Kind::Big {
        process::warm_pages(job.size)?;
    }
    let run = process::run_timed(cmd, stdin, job.limit())?;
    ensure!(
        run.status.success(),
        "{}: {}: {}",
        peer.name(),
        run.status,
        run.stderr
    );
    match job.kind {
        Kind::Tree => {
            ensure!(verify_tree(&local, &copy)? == job.count, "files lost");
        }
        Kind::Files => {
            for name in job.names() {
                verify(&local.join(&name), &copy.join(&name))?;
            }
        }
        Kind::Big => verify(&local, &copy)?,
        Kind::Clients => unreachable!("run by at_once"),
    }
    Ok(Some(job.rate(run.elapsed)))
}

/// A [`Kind::Clients`] job: every client's session started at once, each one's download
/// compared with its original; the rate is clients per second of the whole run.
fn at_once(
    peer: &dyn Peer,
    job: &Job,
    client: &Path,
    (local, copy): (&Path, &Path),
) -> anyhow::Result<Option<f64>> {
    let mut cmds = Vec::new();
    for name in job.names() {
        match peer.session(client, &name)? {
            Some(cmd) => cmds.push(cmd),
            None => return Ok(None),
        }
    }
    let (wall, runs) = process::run_all(cmds, job.limit())?;
    for (run, name) in runs.iter().zip(job.names()) {
        ensure!(
            run.status.success(),
            "{}: client {name}: {}: {}",
            peer.name(),
            run.status,
            run.stderr
        );
        verify(&local.join(&name), &copy.join(&name))?;
    }
    Ok(Some(job.rate(wall)))
}

/// Removes what an earlier run left in the peer's directory and the client's, into `trash`
/// (a big file at once: kept, each copy would hold its size); for a download, puts the
/// originals (hard links) in the peer's directory. Returns the originals and where their
/// copies will be. Only the job's own paths are touched: a server may keep state beside them
/// (ferryd its temporary files).
fn stage(
    remote: &Path,
    client: &Path,
    job: &Job,
    trash: &Trash,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let (local, fetched, served) = match job.kind {
        Kind::Tree => (
            client.join("tree"),
            client.join("fetched-tree"),
            remote.join("tree"),
        ),
        Kind::Files => (
            client.join("small"),
            client.join("fetched"),
            remote.to_path_buf(),
        ),
        Kind::Big => (
            client.join("big"),
            client.join("fetched-big"),
            remote.join("big"),
        ),
        Kind::Clients => (
            client.join("clients"),
            client.join("fetched-clients"),
            remote.to_path_buf(),
        ),
    };
    let trash = match job.kind {
        Kind::Big => &Trash::immediate(),
        _ => trash,
    };
    trash.remove(&fetched)?;
    match job.kind {
        Kind::Files | Kind::Clients => {
            for name in job.names() {
                trash.remove(&served.join(name))?;
            }
        }
        _ => trash.remove(&served)?,
    }
    if job.kind == Kind::Clients {
        return clients_staged(job, local, fetched);
    }
    if job.up {
        return Ok((local, served));
    }
    match job.kind {
        Kind::Tree => link_tree(&local, &served)?,
        Kind::Files => {
            fs::create_dir(&fetched)?;
            for name in job.names() {
                link_or_copy(&local.join(&name), &served.join(&name))?;
            }
        }
        Kind::Big => link_or_copy(&local, &served)?,
        Kind::Clients => unreachable!("staged by clients_staged"),
    }
    Ok((local, fetched))
}

/// The clients' files, written once, and an empty directory for what they fetch.
fn clients_staged(
    job: &Job,
    local: PathBuf,
    fetched: PathBuf,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    fs::create_dir_all(&local)?;
    for name in job.names() {
        let path = local.join(&name);
        if !path.exists() {
            write_random(&path, job.size)?;
        }
    }
    fs::create_dir(&fetched)?;
    Ok((local, fetched))
}

/// `path` quoted for a client's script (double quotes; the bench's paths hold none).
fn quoted(path: &Path) -> String {
    format!("\"{}\"", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(kind: Kind, up: bool) -> Job {
        Job {
            kind,
            up,
            count: 3,
            size: 4096,
        }
    }

    #[test]
    fn rates_are_files_or_mebibytes_per_second() {
        let second = Duration::from_secs(1);
        assert_eq!(job(Kind::Tree, true).rate(second), 3.0);
        assert_eq!(job(Kind::Files, false).rate(second * 2), 1.5);
        let big = Job {
            size: 8 << 20,
            ..job(Kind::Big, true)
        };
        assert_eq!((big.rate(second), big.unit()), (8.0, "MiB/s"));
        assert_eq!(
            job(Kind::Tree, false).label(),
            "tree down, 3 x 4 KiB in 3 dirs"
        );
    }

    #[test]
    fn a_download_is_staged_in_the_peer_and_an_upload_clears_it() {
        let dir = tempfile::tempdir().unwrap();
        let (client, remote) = (dir.path().join("client"), dir.path().join("remote"));
        fs::create_dir_all(client.join("small")).unwrap();
        fs::create_dir(&remote).unwrap();
        let down = job(Kind::Files, false);
        for name in down.names() {
            fs::write(client.join("small").join(name), b"x").unwrap();
        }
        fs::write(remote.join(".state"), b"kept").unwrap();
        let (local, copy) = stage(&remote, &client, &down, &Trash::immediate()).unwrap();
        assert_eq!(
            (local, copy.clone()),
            (client.join("small"), client.join("fetched"))
        );
        assert!(copy.is_dir() && remote.join("f00002").is_file());
        let (_, copy) = stage(
            &remote,
            &client,
            &job(Kind::Files, true),
            &Trash::immediate(),
        )
        .unwrap();
        assert_eq!(copy, remote);
        assert!(!remote.join("f00002").exists() && !client.join("fetched").exists());
        assert!(
            remote.join(".state").is_file(),
            "the server's own files stay"
        );
    }

    #[test]
    fn many_clients_get_files_of_their_size_and_an_empty_place_to_fetch_into() {
        let dir = tempfile::tempdir().unwrap();
        let (client, remote) = (dir.path().join("client"), dir.path().join("remote"));
        fs::create_dir_all(client.join("fetched-clients")).unwrap();
        fs::create_dir(&remote).unwrap();
        let clients = job(Kind::Clients, true);
        fs::write(client.join("fetched-clients/f00001"), b"old").unwrap();
        fs::write(remote.join("f00001"), b"old").unwrap();
        let (local, copy) = stage(&remote, &client, &clients, &Trash::immediate()).unwrap();
        assert_eq!(local, client.join("clients"));
        assert_eq!(fs::read_dir(&copy).unwrap().count(), 0);
        assert!(!remote.join("f00001").exists());
        for name in clients.names() {
            assert_eq!(fs::metadata(local.join(name)).unwrap().len(), 4096);
        }
        assert_eq!(clients.rate(Duration::from_millis(500)), 6.0);
        assert_eq!(clients.unit(), "clients/s");
    }
}
