//! The tree workloads: a directory tree of many small files moved by one `UPLOAD -r` and one
//! `DOWNLOAD -r`, against a raw stream of the same tree.

use std::fs;
use std::io;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::ensure;

use super::{Bench, human, link_or_copy, rate_rows, rated_reps, verify, write_random};
use crate::process;
use crate::raw;
use crate::stats::Row;

/// The target as the table shows it: the issue sets none; the rate is reported.
pub const TARGET: &str = "none (reported)";
/// Directories the tree's files are spread over (fewer if there are fewer files).
pub const TREE_DIRS: usize = 100;

/// How many directories a tree of `count` files has.
pub fn dirs_for(count: usize) -> usize {
    TREE_DIRS.min(count)
}

/// Where file `i` of a tree with `dirs` directories lives, from the tree's top.
fn tree_path(i: usize, dirs: usize) -> String {
    format!("d{:03}/f{i:05}", i % dirs)
}

/// Creates `count` random files of `size` bytes in `client/tree`, spread evenly over
/// [`dirs_for`] directories.
pub fn make_files(bench: &Bench, count: usize, size: u64) -> anyhow::Result<()> {
    let top = bench.client().join("tree");
    let dirs = dirs_for(count);
    for d in 0..dirs {
        fs::create_dir_all(top.join(format!("d{d:03}")))?;
    }
    for i in 0..count {
        write_random(&top.join(tree_path(i, dirs)), size)?;
    }
    Ok(())
}

/// Hard-links (else copies) the tree at `from` to `to`, which must not exist.
pub fn link_tree(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        match entry.file_type()?.is_dir() {
            true => link_tree(&src, &dst)?,
            false => link_or_copy(&src, &dst)?,
        }
    }
    Ok(())
}

/// Fails unless `copy` holds the same names as `original`, level by level, and every file has
/// its original's bytes; returns how many files it compared.
pub fn verify_tree(original: &Path, copy: &Path) -> anyhow::Result<usize> {
    let names = |dir: &Path| -> io::Result<Vec<_>> {
        let mut names: Vec<_> = fs::read_dir(dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        names.sort();
        Ok(names)
    };
    let expected = names(original)?;
    ensure!(
        names(copy)? == expected,
        "'{}' does not hold the names of '{}'",
        copy.display(),
        original.display()
    );
    let mut files = 0;
    for name in expected {
        let (a, b) = (original.join(&name), copy.join(&name));
        if a.is_dir() {
            files += verify_tree(&a, &b)?;
        } else {
            verify(&a, &b)?;
            files += 1;
        }
    }
    Ok(files)
}

/// The raw stream of the client's tree into a new directory: one baseline repetition, in
/// files per second.
fn raw_tree(bench: &Bench, count: usize) -> anyhow::Result<f64> {
    let (src, dst) = (bench.client().join("tree"), bench.dir.join("raw-tree"));
    bench.trash.renew_dir(&dst)?;
    let time = raw::tree(&src, &dst)?;
    ensure!(verify_tree(&src, &dst)? == count, "the raw tree lost files");
    bench.trash.remove(&dst)?;
    Ok(count as f64 / time.as_secs_f64())
}

/// The client's tree of `count` files uploaded by one `ferry -c "UPLOAD -r tree"`.
pub fn upload(bench: &Bench, count: usize, size: u64) -> anyhow::Result<Vec<Row>> {
    transfer(bench, count, size, true)
}

/// The same tree, on the server, downloaded by one `ferry -c "DOWNLOAD -r tree fetched-tree"`.
pub fn download(bench: &Bench, count: usize, size: u64) -> anyhow::Result<Vec<Row>> {
    transfer(bench, count, size, false)
}

/// One tree workload: the whole tree in one `ferry` command, up (`upload`) or down, timed from
/// spawn to exit, then compared with the original, name by name and byte by byte.
fn transfer(bench: &Bench, count: usize, size: u64, upload: bool) -> anyhow::Result<Vec<Row>> {
    let verb = if upload { "UPLOAD" } else { "DOWNLOAD" };
    let label = format!(
        "{verb} -r {count} x {} in {} dirs (one command)",
        human(size),
        dirs_for(count)
    );
    let client = bench.client();
    let local = client.join("tree");
    let mut server = bench.server(&format!("tree-{}", verb.to_ascii_lowercase()), &[])?;
    let files = bench.files(&server);
    let tree = ["tree".to_string()];
    let fetched = client.join("fetched-tree");
    let command = match upload {
        true => "UPLOAD -r tree",
        false => {
            files.stage(&client, &tree)?;
            "DOWNLOAD -r tree fetched-tree"
        }
    };
    let limit = Duration::from_secs(60) + Duration::from_millis(10 * count as u64);
    let repeated = rated_reps(bench, &label, || {
        let baseline = raw_tree(bench, count)?;
        match upload {
            true => files.remove(&tree)?,
            false => bench.trash.remove(&fetched)?,
        }
        let cmd = bench.ferry(&server, &client, &[command.to_string()]);
        let run = process::run_timed(cmd, Stdio::null(), limit)?;
        run.check(command)?;
        let rate = count as f64 / run.elapsed.as_secs_f64();
        let copied = match upload {
            true => files.verify(&client, &tree)?,
            false => verify_tree(&local, &fetched)?,
        };
        ensure!(copied == count, "'{command}' lost files");
        Ok((baseline, rate))
    });
    let status = server.status();
    files.remove(&tree)?;
    bench.trash.remove(&fetched)?;
    drop(files);
    bench.discard(server);
    let (raw, rates) = repeated?;
    let status = status?;
    let baseline = format!("raw tree stream (vs {label})");
    Ok(rate_rows((baseline, label), &raw, &rates, status, TARGET))
}
