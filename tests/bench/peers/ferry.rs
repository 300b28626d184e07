//! Ferry itself as the first peer: `ferryd` with its own root, `ferry -c` for trees and the big
//! file, one `ferry` reading a script of UPLOAD or DOWNLOAD lines for the small files.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use super::{Job, Kind, Peer};
use crate::process::{self, Ferryd};
use crate::workloads::Bench;

/// `ferryd` and how to reach it.
pub struct Ferry {
    server: Ferryd,
    bin_dir: std::path::PathBuf,
    script: std::path::PathBuf,
}

impl Ferry {
    /// Starts `ferryd` in `srv-peers`, greeting `at_once` clients at once.
    pub fn start(bench: &Bench, at_once: usize) -> anyhow::Result<Ferry> {
        let extra = crate::workloads::concurrent::max_handshakes(at_once);
        Ok(Ferry {
            server: bench.server("peers", &extra)?,
            bin_dir: bench.bin_dir.clone(),
            script: bench.dir.join("peers-ferry-script"),
        })
    }
}

impl Peer for Ferry {
    fn name(&self) -> &str {
        "Ferry"
    }

    fn remote(&self) -> &Path {
        &self.server.root
    }

    fn command(&self, job: &Job, client: &Path) -> anyhow::Result<Option<(Command, Stdio)>> {
        let command = match (job.kind, job.up) {
            (Kind::Tree, true) => "UPLOAD -r tree",
            (Kind::Tree, false) => "DOWNLOAD -r tree fetched-tree",
            (Kind::Big, true) => "UPLOAD big",
            (Kind::Big, false) => "DOWNLOAD big fetched-big",
            (Kind::Clients, _) => return Ok(None),
            (Kind::Files, up) => {
                let lines: String = job
                    .names()
                    .iter()
                    .map(|name| match up {
                        true => format!("UPLOAD small/{name} {name}\n"),
                        false => format!("DOWNLOAD {name} fetched/{name}\n"),
                    })
                    .collect();
                fs::write(&self.script, lines)?;
                let cmd = process::ferry(&self.bin_dir, &self.server.target_args(), client, &[]);
                return Ok(Some((cmd, fs::File::open(&self.script)?.into())));
            }
        };
        let args = ["-c".to_string(), command.to_string()];
        let cmd = process::ferry(&self.bin_dir, &self.server.target_args(), client, &args);
        Ok(Some((cmd, Stdio::null())))
    }

    fn session(&self, client: &Path, name: &str) -> anyhow::Result<Option<Command>> {
        let args = [
            "-c".to_string(),
            format!("UPLOAD clients/{name} {name}"),
            "-c".to_string(),
            format!("DOWNLOAD {name} fetched-clients/{name}"),
        ];
        let target = self.server.target_args();
        Ok(Some(process::ferry(&self.bin_dir, &target, client, &args)))
    }
}
