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
    /// Starts `ferryd` in `srv-peers`.
    pub fn start(bench: &Bench) -> anyhow::Result<Ferry> {
        Ok(Ferry {
            server: bench.server("peers", &[])?,
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
}
