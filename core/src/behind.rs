//! [`Behind`]: writeback started behind a file written front to back from the network, a
//! window at a time, so that the flush that makes the file durable at the end waits for
//! little: the disk writes while the network delivers.

use std::fs::File;
use std::io::{self, Write};
use std::num::NonZeroU64;

/// How much is started at once, and how far behind the writer: the window before the one
/// being written goes to the disk while the next fills.
pub const WINDOW: u64 = 8 * 1024 * 1024;

/// Where a file's writer is and how far its writeback has been started.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Behind {
    pos: u64,
    started: u64,
}

impl Behind {
    /// A writer at `pos`: what lies before it is left as it is.
    pub fn at(pos: u64) -> Behind {
        Behind {
            pos,
            started: pos - pos % WINDOW,
        }
    }

    /// The writer moved to `pos` (a seek, or a file emptied to start over).
    pub fn moved_to(&mut self, pos: u64) {
        *self = Behind::at(pos);
    }

    /// The position moved on by `n` bytes read, not written (a kept part read back to
    /// resume it): nothing is started for them.
    pub fn skipped(&mut self, n: usize) {
        self.moved_to(self.pos + n as u64);
    }

    /// Counts `n` bytes written at the writer's position; returns the range (offset and
    /// length) whose writeback is now due, if one is: the window before the one in writing.
    pub fn wrote(&mut self, n: usize) -> Option<(u64, u64)> {
        self.pos += n as u64;
        if self.pos < self.started + 2 * WINDOW {
            return None;
        }
        // A write far past (many windows at once) starts everything behind the last one.
        let end = self.pos - self.pos % WINDOW - WINDOW;
        let range = (self.started, end - self.started);
        self.started = end;
        Some(range)
    }

    /// [`Behind::wrote`], then starts the writeback due in `file`, without waiting.
    /// `POSIX_FADV_DONTNEED` starts writing a range's dirty pages and leaves the pages under
    /// writeback cached; on tmpfs it does nothing.
    pub fn wrote_to(&mut self, file: &File, n: usize) {
        if let Some((offset, len)) = self.wrote(n) {
            let _ = rustix::fs::fadvise(
                file,
                offset,
                NonZeroU64::new(len),
                rustix::fs::Advice::DontNeed,
            );
        }
    }
}

/// A file written at its position (`Behind::at`) with its writeback started behind it.
pub struct WriteBehind<'f> {
    pub file: &'f mut File,
    pub behind: Behind,
}

impl Write for WriteBehind<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.behind.wrote_to(self.file, n);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    #[test]
    fn the_window_before_the_one_in_writing_is_started_once() {
        let mut behind = Behind::at(0);
        // A frame at a time: nothing is due until the writer is two windows in.
        let mut due = Vec::new();
        for _ in 0..40 {
            due.extend(behind.wrote(MIB));
        }
        let window = WINDOW;
        assert_eq!(
            due,
            [
                (0, window),
                (window, window),
                (2 * window, window),
                (3 * window, window)
            ],
            "five windows written: all but the last are started, each once"
        );
    }

    #[test]
    fn a_writer_that_starts_or_moves_mid_file_starts_from_its_window() {
        let mut behind = Behind::at(20 * MIB as u64);
        assert_eq!(behind.wrote(12 * MIB), Some((16 * MIB as u64, WINDOW)));
        behind.moved_to(0);
        assert_eq!(behind, Behind::at(0));
        // A part read back first: writing goes on from its end.
        behind.skipped(17 * MIB);
        assert_eq!(behind, Behind::at(17 * MIB as u64));
        behind.moved_to(0);
        // One large write past several windows starts all but the last one.
        assert_eq!(behind.wrote(30 * MIB), Some((0, 2 * WINDOW)));
        assert_eq!(behind.wrote(1), None);
    }

    #[test]
    fn what_is_written_behind_is_the_file_as_written() {
        let mut file = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..20 * MIB).map(|i| (i % 251) as u8).collect();
        let mut writer = WriteBehind {
            file: &mut file,
            behind: Behind::at(0),
        };
        for chunk in data.chunks(MIB + 7) {
            writer.write_all(chunk).unwrap();
        }
        assert_eq!(writer.behind.started, WINDOW);
        let mut back = Vec::new();
        use std::io::{Read, Seek};
        file.rewind().unwrap();
        file.read_to_end(&mut back).unwrap();
        assert!(back == data);
    }
}
