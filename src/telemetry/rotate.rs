//! A size-rotated, append-only log file that never splits a record.
//!
//! Backups are `<name>.1` (newest) to `<name>.<keep>` (oldest); older ones are deleted.
//! A record is written with one `write_all` on an unbuffered `O_APPEND` file, and the
//! size check happens *after* the write: the write that reaches `rotate_bytes` is the
//! last one in that file. A file is therefore at most `rotate_bytes` plus one record,
//! and a record is never split across two files.
//!
//! This replaces `file-rotate` 0.8, which `expect`s / `assert!`s on I/O conditions a
//! daemon can meet (a log directory that cannot be re-created, a current file that
//! vanished or failed to open), and panicking inside the logging thread would silently
//! end all logging. Here every I/O failure is an `io::Error` for the caller to report;
//! the next record retries opening the file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// One log file with size-based rotation.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    file: Option<File>,
    len: u64,
    rotate_bytes: u64,
    keep: usize,
}

impl RotatingFile {
    /// Opens (creating if needed) `path` for appending.
    pub fn open(path: PathBuf, rotate_bytes: u64, keep: usize) -> io::Result<Self> {
        let mut f = RotatingFile {
            path,
            file: None,
            len: 0,
            rotate_bytes,
            keep,
        };
        f.reopen()?;
        Ok(f)
    }

    /// The path of the current (newest) file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one complete record with a single write, then rotates if the file has
    /// reached its size limit.
    pub fn append(&mut self, record: &[u8]) -> io::Result<()> {
        if self.file.is_none() {
            self.reopen()?;
        }
        let written = match self.file.as_mut() {
            Some(file) => file.write_all(record),
            None => Err(io::Error::other("log file is not open")),
        };
        if let Err(e) = written {
            // Drop the handle so the next record reopens the file (it may have been
            // removed, or the disk may have been full).
            self.file = None;
            return Err(e);
        }
        self.len = self.len.saturating_add(record.len() as u64);
        if self.len >= self.rotate_bytes {
            self.rotate()?;
        }
        Ok(())
    }

    /// Moves the current file to `.1` (shifting older backups), deletes backups beyond
    /// `keep` and starts a new empty file.
    pub fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        let shifted = self.shift_backups();
        let reopened = self.reopen();
        shifted.and(reopened)
    }

    fn shift_backups(&self) -> io::Result<()> {
        if self.keep == 0 {
            return remove_if_exists(&self.path);
        }
        // Backups left by an earlier run with a larger `keep`.
        let mut n = self.keep + 1;
        while self.backup(n).exists() {
            remove_if_exists(&self.backup(n))?;
            n += 1;
        }
        remove_if_exists(&self.backup(self.keep))?;
        for n in (1..self.keep).rev() {
            rename_if_exists(&self.backup(n), &self.backup(n + 1))?;
        }
        rename_if_exists(&self.path, &self.backup(1))
    }

    fn backup(&self, n: usize) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn reopen(&mut self) -> io::Result<()> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.len = file.metadata()?.len();
        self.file = Some(file);
        Ok(())
    }
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn rename_if_exists(from: &Path, to: &Path) -> io::Result<()> {
    match fs::rename(from, to) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(path: &Path) -> Vec<String> {
        fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn rotation_keeps_whole_records_and_caps_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.log");
        let mut f = RotatingFile::open(path.clone(), 100, 2).unwrap();
        for i in 0..50 {
            f.append(format!("record-{i:03}-xxxxxxxxxxxxxxxxxxxx\n").as_bytes())
                .unwrap();
        }
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["t.log", "t.log.1", "t.log.2"]);
        let mut all = Vec::new();
        for name in ["t.log.2", "t.log.1", "t.log"] {
            let p = dir.path().join(name);
            assert!(fs::metadata(&p).unwrap().len() < 100 + 32);
            all.extend(lines(&p));
        }
        // The newest records, in order, each one whole.
        let first: usize = all[0][7..10].parse().unwrap();
        for (k, line) in all.iter().enumerate() {
            assert_eq!(
                line,
                &format!("record-{:03}-xxxxxxxxxxxxxxxxxxxx", first + k)
            );
        }
        assert_eq!(all.last().unwrap(), "record-049-xxxxxxxxxxxxxxxxxxxx");
    }

    #[test]
    fn reopening_continues_the_size_count_and_trims_old_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.log");
        {
            let mut f = RotatingFile::open(path.clone(), 1000, 5).unwrap();
            for _ in 0..30 {
                f.append(&[b'a'; 99]).unwrap();
                f.append(b"\n").unwrap();
            }
        }
        assert!(dir.path().join("t.log.3").exists());
        let mut f = RotatingFile::open(path.clone(), 1000, 1).unwrap();
        f.append(&[b'b'; 1000]).unwrap();
        assert!(dir.path().join("t.log.1").exists());
        assert!(!dir.path().join("t.log.2").exists());
        assert!(!dir.path().join("t.log.3").exists());
    }

    #[test]
    fn keep_zero_truncates_and_a_vanished_file_is_recreated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.log");
        let mut f = RotatingFile::open(path.clone(), 10, 0).unwrap();
        f.append(b"0123456789\n").unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), 0);
        fs::remove_file(&path).unwrap();
        f.rotate().unwrap();
        f.append(b"abc\n").unwrap();
        assert_eq!(lines(&path), ["abc"]);
    }
}
