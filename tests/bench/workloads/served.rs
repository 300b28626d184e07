//! The server's files, as the workloads place them before a download and check them after an
//! upload, never timed: a local root is read and written directly ([`LocalRoot`]); a bucket is
//! reached through `ferry` sessions of its own ([`Bucket`]).
//!
//! A workload names what it places or checks by the same name locally (below a local
//! directory) and on the server (below the root); a name may be a file or a directory tree.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use anyhow::Context;

use super::{link_or_copy, tree, verify};
use crate::process::{self, Ferryd};
use crate::trash::Trash;

/// How long one staging or checking `ferry` session may take: a guard, not a target.
const SESSION_LIMIT: Duration = Duration::from_secs(1800);

/// The server's files, whatever holds them.
pub trait Served {
    /// Places each of `names` (a file or a tree) in `local` on the server under that name.
    fn stage(&self, local: &Path, names: &[String]) -> anyhow::Result<()>;
    /// Fails unless each of `names` on the server matches its original in `local`, trees name
    /// by name; returns how many files it compared.
    fn verify(&self, local: &Path, names: &[String]) -> anyhow::Result<usize>;
    /// Removes each of `names` (trees whole) from the server; one that is not there is fine.
    fn remove(&self, names: &[String]) -> anyhow::Result<()>;
}

/// A server's local root, read and written in place.
pub struct LocalRoot {
    /// The directory the server serves.
    pub root: PathBuf,
    /// Where what is removed goes.
    pub trash: Trash,
}

impl Served for LocalRoot {
    /// Hard links (else copies): free on one filesystem.
    fn stage(&self, local: &Path, names: &[String]) -> anyhow::Result<()> {
        for name in names {
            let (from, to) = (local.join(name), self.root.join(name));
            match from.is_dir() {
                true => tree::link_tree(&from, &to)?,
                false => link_or_copy(&from, &to)?,
            }
        }
        Ok(())
    }

    fn verify(&self, local: &Path, names: &[String]) -> anyhow::Result<usize> {
        let mut files = 0;
        for name in names {
            let (original, copy) = (local.join(name), self.root.join(name));
            match original.is_dir() {
                true => files += tree::verify_tree(&original, &copy)?,
                false => {
                    verify(&original, &copy)?;
                    files += 1;
                }
            }
        }
        Ok(files)
    }

    /// Removes on a thread of its own: the pages a removal frees go to the freeing thread's
    /// CPU first, and must not favour the next writer (see `big::remove_elsewhere`).
    fn remove(&self, names: &[String]) -> anyhow::Result<()> {
        let paths: Vec<PathBuf> = names.iter().map(|n| self.root.join(n)).collect();
        let trash = self.trash.clone();
        thread::spawn(move || -> io::Result<()> {
            for path in paths {
                trash.remove(&path)?;
            }
            Ok(())
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("removing files panicked")))?;
        Ok(())
    }
}

/// A server whose root is a bucket, reached through `ferry` sessions that UPLOAD to stage,
/// DOWNLOAD into a scratch directory to check, and DELETE to remove.
pub struct Bucket {
    bin_dir: PathBuf,
    target: [String; 3],
    /// Where the checking downloads land, emptied after each check.
    scratch: PathBuf,
    /// Where the checked downloads go.
    trash: Trash,
    /// What may be on the server: staged, or checked after an upload. DELETE of a missing
    /// name fails the whole command, so only these are deleted.
    present: RefCell<BTreeSet<String>>,
}

impl Bucket {
    /// The files of `server`, checked through `scratch` (which must not exist), emptied into
    /// `trash`.
    pub fn new(bin_dir: &Path, server: &Ferryd, scratch: PathBuf, trash: Trash) -> Bucket {
        Bucket {
            bin_dir: bin_dir.to_path_buf(),
            target: server.target_args(),
            scratch,
            trash,
            present: RefCell::new(BTreeSet::new()),
        }
    }

    /// Runs `script` through one `ferry` session in `cwd`; `what` names it in errors.
    fn session(&self, cwd: &Path, script: String, what: &str) -> anyhow::Result<()> {
        let path = self.scratch.with_extension("script");
        fs::write(&path, script)?;
        let cmd = process::ferry(&self.bin_dir, &self.target, cwd, &[]);
        let stdin = fs::File::open(&path)?;
        let run = process::run_timed(cmd, stdin.into(), SESSION_LIMIT);
        let _ = fs::remove_file(&path);
        run?.check(what)
    }
}

impl Served for Bucket {
    fn stage(&self, local: &Path, names: &[String]) -> anyhow::Result<()> {
        let trees = kinds(local, names);
        self.present.borrow_mut().extend(names.iter().cloned());
        self.session(
            local,
            script("UPLOAD", names, &trees),
            "staging on the bucket",
        )
    }

    fn verify(&self, local: &Path, names: &[String]) -> anyhow::Result<usize> {
        // Whatever the check finds, the upload may have left these behind.
        self.present.borrow_mut().extend(names.iter().cloned());
        self.trash.renew_dir(&self.scratch)?;
        let trees = kinds(local, names);
        self.session(&self.scratch, script("DOWNLOAD", names, &trees), "checking")?;
        let files = LocalRoot {
            root: self.scratch.clone(),
            trash: self.trash.clone(),
        }
        .verify(local, names)
        .context("the bucket's copy");
        self.trash.remove(&self.scratch)?;
        files
    }

    fn remove(&self, names: &[String]) -> anyhow::Result<()> {
        let gone = take_present(&mut self.present.borrow_mut(), names);
        if gone.is_empty() {
            return Ok(());
        }
        let line = format!("DELETE -r {}\n", words(&gone));
        if self
            .session(&self.scratch_parent(), line, "deleting")
            .is_ok()
        {
            return Ok(());
        }
        // One missing name fails the whole command: try each alone, so the rest still go.
        let mut failed = Vec::new();
        for name in &gone {
            let line = format!("DELETE -r {}\n", quote(name));
            if let Err(e) = self.session(&self.scratch_parent(), line, "deleting") {
                failed.push(format!("{e:#}"));
            }
        }
        anyhow::ensure!(failed.is_empty(), "{}", failed.join("; "));
        Ok(())
    }
}

impl Bucket {
    /// A directory that exists, for the sessions that need no local files.
    fn scratch_parent(&self) -> PathBuf {
        self.scratch
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    }
}

/// Which of `names` in `local` are directories.
fn kinds(local: &Path, names: &[String]) -> Vec<bool> {
    names.iter().map(|n| local.join(n).is_dir()).collect()
}

/// Removes from `present` those of `names` it holds, and returns them.
fn take_present(present: &mut BTreeSet<String>, names: &[String]) -> Vec<String> {
    names
        .iter()
        .filter(|n| present.remove(*n))
        .cloned()
        .collect()
}

/// A script of one `verb` per name, from that name to the same name, `-r` for the trees.
fn script(verb: &str, names: &[String], trees: &[bool]) -> String {
    names
        .iter()
        .zip(trees)
        .map(|(name, &tree)| {
            let flag = if tree { "-r " } else { "" };
            format!("{verb} {flag}{0} {0}\n", quote(name))
        })
        .collect()
}

/// `names` as one line of quoted words.
fn words(names: &[String]) -> String {
    names.iter().map(|n| quote(n)).collect::<Vec<_>>().join(" ")
}

/// `word` in single quotes as a POSIX shell (and `ferry`'s parser) reads them.
fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn quoted_words_split_back_as_given() {
        for word in ["big", "with space", "it's", "a\"b", "ünï", "$HOME", "-r"] {
            assert_eq!(shlex::split(&quote(word)), Some(vec![word.to_string()]));
        }
    }

    #[test]
    fn scripts_give_each_name_its_verb_and_trees_their_flag() {
        let names = strings(&["f00000", "tree", "it's"]);
        let text = script("UPLOAD", &names, &[false, true, false]);
        let lines: Vec<_> = text.lines().map(|l| shlex::split(l).unwrap()).collect();
        assert_eq!(lines[0], ["UPLOAD", "f00000", "f00000"]);
        assert_eq!(lines[1], ["UPLOAD", "-r", "tree", "tree"]);
        assert_eq!(lines[2], ["UPLOAD", "it's", "it's"]);
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn only_what_may_be_present_is_deleted_and_only_once() {
        let mut present: BTreeSet<String> = strings(&["big", "x1"]).into_iter().collect();
        assert_eq!(take_present(&mut present, &strings(&["x1", "x2"])), ["x1"]);
        assert!(take_present(&mut present, &strings(&["x1"])).is_empty());
        assert_eq!(take_present(&mut present, &strings(&["big"])), ["big"]);
        assert!(present.is_empty());
    }

    #[test]
    fn the_local_root_stages_checks_and_removes_files_and_trees() {
        let dir = tempfile::tempdir().unwrap();
        let (local, root) = (dir.path().join("local"), dir.path().join("root"));
        for dir in [&local.join("tree/d"), &root] {
            fs::create_dir_all(dir).unwrap();
        }
        for (file, bytes) in [("a file", "one"), ("tree/d/f", "two")] {
            fs::write(local.join(file), bytes).unwrap();
        }
        let served = LocalRoot {
            root: root.clone(),
            trash: Trash::immediate(),
        };
        let names = strings(&["a file", "tree"]);
        served.stage(&local, &names).unwrap();
        assert_eq!(served.verify(&local, &names).unwrap(), 2);
        // A hard link: replace it, not write through it.
        fs::remove_file(root.join("a file")).unwrap();
        fs::write(root.join("a file"), b"One").unwrap();
        assert!(served.verify(&local, &names).is_err());
        served.remove(&names).unwrap();
        served.remove(&names).unwrap();
        assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
    }
}
