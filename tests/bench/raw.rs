//! The baselines: the least work that does what each workload does, measured in the same run
//! and interleaved with it, so that load from elsewhere on the machine hits both alike.
//!
//! - [`copy`]: one file over one 127.0.0.1 TCP connection, 1 MiB buffers on both sides.
//! - [`files`]: small files over one connection, one round trip each, each written to a
//!   temporary and renamed into place (what an atomic upload must do at least).
//! - [`tree`]: a directory tree streamed over one connection, as `tar c | nc` would, each
//!   directory made and each file written to a temporary, given its time and renamed.
//! - [`spawn`]: the same number of `ferry --version` processes at once (process start-up).
//! - [`connect`]: connections to a one-thread listener that exchanges a 3-byte greeting.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

use crate::process;

/// Buffer size of the raw copy's sender and receiver.
const BUF: usize = 1 << 20;
/// How long a baseline's socket may stay silent before it counts as failed.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(60);

/// A loopback listener and a connection to it, both ends with timeouts, Nagle off.
fn pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let client = TcpStream::connect(listener.local_addr()?)?;
    let (server, _) = listener.accept()?;
    for end in [&client, &server] {
        end.set_nodelay(true)?;
        end.set_read_timeout(Some(SOCKET_TIMEOUT))?;
        end.set_write_timeout(Some(SOCKET_TIMEOUT))?;
    }
    Ok((client, server))
}

/// Joins a sender thread, turning a panic into an error.
fn join(sender: thread::JoinHandle<anyhow::Result<()>>) -> anyhow::Result<()> {
    match sender.join() {
        Ok(sent) => sent.context("raw sender"),
        Err(_) => bail!("raw sender panicked"),
    }
}

/// Sends `src` from a thread reading it with 1 MiB buffers; receives it into `dst` with
/// 1 MiB buffers, and flushes it to the disk before the clock stops, as Ferry must before
/// it reports a file complete (on tmpfs the flush costs nothing). Socket buffers keep the
/// kernel's autotuning, as `ferryd`'s defaults do.
pub fn copy(src: &Path, dst: &Path) -> anyhow::Result<Duration> {
    process::settle()?;
    let start = Instant::now();
    let (mut tx, mut rx) = pair()?;
    let source = src.to_path_buf();
    let sender = thread::spawn(move || -> anyhow::Result<()> {
        let mut file = File::open(source)?;
        let mut buf = vec![0u8; BUF];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                tx.shutdown(std::net::Shutdown::Write)?;
                return Ok(());
            }
            tx.write_all(&buf[..n])?;
        }
    });
    let mut out = File::create(dst)?;
    let mut buf = vec![0u8; BUF];
    loop {
        let n = rx.read(&mut buf)?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])?;
    }
    out.sync_data()?;
    drop(out);
    let elapsed = start.elapsed();
    join(sender)?;
    Ok(elapsed)
}

/// Sends each file of `names` in `src_dir` as a length and its bytes, and waits for a one-byte
/// acknowledgement; the receiver writes it to a temporary in `dst_dir` and renames it to its
/// name before acknowledging.
pub fn files(src_dir: &Path, dst_dir: &Path, names: &[String]) -> anyhow::Result<Duration> {
    process::settle()?;
    let start = Instant::now();
    let (mut tx, mut rx) = pair()?;
    let (source, list) = (src_dir.to_path_buf(), names.to_vec());
    let sender = thread::spawn(move || -> anyhow::Result<()> {
        let mut buf = Vec::new();
        let mut ack = [0u8];
        for name in list {
            buf.clear();
            buf.extend_from_slice(&[0; 4]);
            File::open(source.join(name))?.read_to_end(&mut buf)?;
            let len = u32::try_from(buf.len() - 4)?;
            buf[..4].copy_from_slice(&len.to_be_bytes());
            tx.write_all(&buf)?;
            tx.read_exact(&mut ack)?;
        }
        Ok(())
    });
    let temp: PathBuf = dst_dir.join(".raw-part");
    let mut buf = Vec::new();
    for name in names {
        let mut len = [0u8; 4];
        rx.read_exact(&mut len)?;
        buf.resize(u32::from_be_bytes(len) as usize, 0);
        rx.read_exact(&mut buf)?;
        File::create(&temp)?.write_all(&buf)?;
        fs::rename(&temp, dst_dir.join(name))?;
        rx.write_all(b"k")?;
    }
    let elapsed = start.elapsed();
    join(sender)?;
    Ok(elapsed)
}

/// Sends the tree at `src` over one connection, entry after entry without waiting for the
/// receiver (as `tar c | nc` would): a directory as `d` and its path, a file as `f`, its path,
/// its modification time (seconds), its length and its bytes. The receiver makes each
/// directory under `dst` (which must exist) and writes each file to a temporary beside it,
/// gives it its time and renames it into place, then acknowledges the whole with one byte.
pub fn tree(src: &Path, dst: &Path) -> anyhow::Result<Duration> {
    process::settle()?;
    let start = Instant::now();
    let (tx, rx) = pair()?;
    let source = src.to_path_buf();
    let sender = thread::spawn(move || -> anyhow::Result<()> {
        let mut out = io::BufWriter::with_capacity(TREE_BUF, &tx);
        send_dir(&mut out, &source, "")?;
        out.write_all(b"e")?;
        out.flush()?;
        drop(out);
        (&tx).read_exact(&mut [0u8])?;
        Ok(())
    });
    let mut input = io::BufReader::with_capacity(TREE_BUF, &rx);
    let mut buf = Vec::new();
    loop {
        let mut kind = [0u8];
        input.read_exact(&mut kind)?;
        if kind[0] == b'e' {
            break;
        }
        let path = dst.join(read_text(&mut input)?);
        if kind[0] == b'd' {
            fs::create_dir(&path)?;
            continue;
        }
        ensure!(kind[0] == b'f', "raw tree: unknown entry {:?}", kind[0]);
        let mtime = u64::from_be_bytes(read_array(&mut input)?);
        buf.resize(u32::from_be_bytes(read_array(&mut input)?) as usize, 0);
        input.read_exact(&mut buf)?;
        let temp = path.with_file_name(".raw-part");
        let mut file = File::create(&temp)?;
        file.write_all(&buf)?;
        file.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(mtime))?;
        drop(file);
        fs::rename(&temp, &path)?;
    }
    (&rx).write_all(b"k")?;
    let elapsed = start.elapsed();
    join(sender)?;
    Ok(elapsed)
}

/// Buffer size of the raw tree's sender and receiver.
const TREE_BUF: usize = 256 << 10;

/// Sends the entries under `dir` (whose path from the top is `rel`), a directory before what
/// it holds.
fn send_dir(out: &mut impl Write, dir: &Path, rel: &str) -> anyhow::Result<()> {
    let mut buf = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name
            .to_str()
            .context("raw tree: a name that is not UTF-8")?;
        let path = match rel {
            "" => name.to_string(),
            _ => format!("{rel}/{name}"),
        };
        let meta = entry.metadata()?;
        if meta.is_dir() {
            out.write_all(b"d")?;
            write_text(out, &path)?;
            send_dir(out, &entry.path(), &path)?;
            continue;
        }
        buf.clear();
        File::open(entry.path())?.read_to_end(&mut buf)?;
        let mtime = meta.modified()?.duration_since(std::time::UNIX_EPOCH)?;
        out.write_all(b"f")?;
        write_text(out, &path)?;
        out.write_all(&mtime.as_secs().to_be_bytes())?;
        out.write_all(&u32::try_from(buf.len())?.to_be_bytes())?;
        out.write_all(&buf)?;
    }
    Ok(())
}

fn write_text(out: &mut impl Write, text: &str) -> anyhow::Result<()> {
    out.write_all(&u16::try_from(text.len())?.to_be_bytes())?;
    out.write_all(text.as_bytes())?;
    Ok(())
}

fn read_text(input: &mut impl Read) -> anyhow::Result<String> {
    let mut text = vec![0u8; u16::from_be_bytes(read_array(input)?) as usize];
    input.read_exact(&mut text)?;
    Ok(String::from_utf8(text)?)
}

fn read_array<const N: usize>(input: &mut impl Read) -> io::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    input.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// Starts `count` `ferry --version` at once and waits for all: what starting the processes
/// costs, without a server.
pub fn spawn(bin_dir: &Path, count: usize) -> anyhow::Result<Duration> {
    let cmds = (0..count)
        .map(|_| {
            let mut cmd = Command::new(bin_dir.join("ferry"));
            cmd.arg("--version")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped());
            cmd
        })
        .collect();
    let (wall, runs) = process::run_all(cmds, Duration::from_secs(120))?;
    for run in &runs {
        run.check("ferry --version")?;
    }
    Ok(wall)
}

/// Opens `count` connections, one after another, to a listener whose single thread sends a
/// byte, reads one, sends one (a greeting's three messages) and keeps each connection open
/// until all are made.
pub fn connect(count: usize) -> anyhow::Result<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = thread::spawn(move || -> anyhow::Result<Vec<TcpStream>> {
        let mut held = Vec::with_capacity(count);
        for _ in 0..count {
            let (mut stream, _) = listener.accept()?;
            stream.set_read_timeout(Some(SOCKET_TIMEOUT))?;
            let mut byte = [0u8];
            stream.write_all(b"H")?;
            stream.read_exact(&mut byte)?;
            stream.write_all(b"O")?;
            held.push(stream);
        }
        Ok(held)
    });
    let start = Instant::now();
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(SOCKET_TIMEOUT))?;
        let mut byte = [0u8];
        stream.read_exact(&mut byte)?;
        stream.write_all(b"H")?;
        stream.read_exact(&mut byte)?;
        held.push(stream);
    }
    let elapsed = start.elapsed();
    let accepted = match server.join() {
        Ok(held) => held.context("raw listener")?,
        Err(_) => bail!("raw listener panicked"),
    };
    ensure!(accepted.len() == count, "the raw listener lost connections");
    Ok(elapsed)
}
