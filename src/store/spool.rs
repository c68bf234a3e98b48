//! The append-only spool (`<data_dir>/spool/batches.spool`) and the dead-letter file
//! (`<data_dir>/spool/rejected.jsonl`).
//!
//! Entry points: [`Spool::open`] (a spool left by an earlier run, checked and its torn
//! tail dropped), [`Spool::create`], [`Spool::append`], [`Spool::front`] /
//! [`Spool::pop_front`] (replay in order), [`Spool::remove`], [`reject`].
//!
//! Format: the 8-byte magic `VXSPOOL1`, then one frame per batch:
//! `len: u32 LE | crc32: u32 LE | batch_id: i64 LE | rows: u32 LE | payload (len bytes)`,
//! where the payload is the batch as JSON and the CRC covers batch id, rows and
//! payload. Every append is followed by `fdatasync` before the batch is acknowledged.
//!
//! Invariants:
//! - A frame is acknowledged only after it is whole on disk, so a frame cut short (a
//!   crash or SIGKILL mid-append, or a failed append) was never acknowledged: it is
//!   dropped with a warning when the spool is opened (and a failed append truncates
//!   its partial frame at once).
//! - A frame that fails its CRC with more data after it is damage, not a torn tail:
//!   everything from it on is copied to `batches.spool.damaged-<time>` (never silently
//!   deleted) before the spool is cut there.
//! - Frames are replayed in file order, which is enqueue order.

use super::Rows;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// File name of the spool inside the spool directory.
pub(crate) const SPOOL_FILE: &str = "batches.spool";
/// File name of the dead-letter file inside the spool directory.
pub(crate) const REJECTED_FILE: &str = "rejected.jsonl";
const MAGIC: &[u8; 8] = b"VXSPOOL1";
const HEADER: u64 = 20;
/// A frame longer than this is damage, not data.
const MAX_FRAME: u32 = 1 << 30;

/// One batch as spooled: its writes in order, the first numbered `first`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SpoolBatch {
    /// The batch id (increasing over the writer's life).
    pub id: i64,
    /// Index of the first write (a batch whose first writes reached PostgreSQL before
    /// an outage is spooled from the first one that did not).
    pub first: u32,
    /// The rows of each write.
    pub writes: Vec<Vec<Rows>>,
}

/// Where a frame is and what it holds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Frame {
    offset: u64,
    len: u32,
    /// The batch id.
    pub batch_id: i64,
    /// Rows in the batch.
    pub rows: u32,
}

/// What opening an existing spool found.
#[derive(Debug, Default)]
pub(crate) struct OpenReport {
    /// Bytes of a frame cut short at the end (never acknowledged), dropped.
    pub torn_bytes: u64,
    /// Where damaged data was copied before the spool was cut, if any.
    pub damaged: Option<PathBuf>,
}

/// An open spool: frames not yet replayed, in order.
pub(crate) struct Spool {
    path: PathBuf,
    file: File,
    end: u64,
    frames: VecDeque<Frame>,
}

fn crc(batch_id: i64, rows: u32, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&batch_id.to_le_bytes());
    h.update(&rows.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Makes a new or removed directory entry durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Spool {
    /// The spool file's path under `dir`.
    pub(crate) fn path_in(dir: &Path) -> PathBuf {
        dir.join(SPOOL_FILE)
    }

    /// Opens the spool left in `dir`, if any: checks every frame, drops a torn tail
    /// (and sets damaged data aside), and returns the frames to replay.
    pub(crate) fn open(dir: &Path) -> io::Result<Option<(Spool, OpenReport)>> {
        let path = Self::path_in(dir);
        let file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let size = file.metadata()?.len();
        let mut report = OpenReport::default();
        let mut magic = [0u8; 8];
        if size < MAGIC.len() as u64 || {
            file.read_exact_at(&mut magic, 0)?;
            &magic != MAGIC
        } {
            if size >= MAGIC.len() as u64 {
                // Not ours or damaged from the first byte: keep it aside, start over.
                report.damaged = Some(set_aside(&path, &file, 0, size)?);
            } else {
                report.torn_bytes = size;
            }
            file.set_len(0)?;
            file.write_all_at(MAGIC, 0)?;
            file.sync_all()?;
            let spool = Spool {
                path,
                file,
                end: MAGIC.len() as u64,
                frames: VecDeque::new(),
            };
            return Ok(Some((spool, report)));
        }
        let mut frames = VecDeque::new();
        let mut offset = MAGIC.len() as u64;
        while offset < size {
            let mut head = [0u8; HEADER as usize];
            if offset + HEADER > size {
                report.torn_bytes = size - offset;
                break;
            }
            file.read_exact_at(&mut head, offset)?;
            let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
            let sum = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
            let mut id = [0u8; 8];
            id.copy_from_slice(&head[8..16]);
            let batch_id = i64::from_le_bytes(id);
            let rows = u32::from_le_bytes([head[16], head[17], head[18], head[19]]);
            let frame_end = offset + HEADER + u64::from(len);
            if len > MAX_FRAME || frame_end > size {
                if len > MAX_FRAME {
                    report.damaged = Some(set_aside(&path, &file, offset, size)?);
                } else {
                    report.torn_bytes = size - offset;
                }
                break;
            }
            let mut payload = vec![0u8; len as usize];
            file.read_exact_at(&mut payload, offset + HEADER)?;
            if crc(batch_id, rows, &payload) != sum {
                if frame_end == size {
                    report.torn_bytes = size - offset;
                } else {
                    report.damaged = Some(set_aside(&path, &file, offset, size)?);
                }
                break;
            }
            frames.push_back(Frame {
                offset,
                len,
                batch_id,
                rows,
            });
            offset = frame_end;
        }
        if offset < size {
            file.set_len(offset)?;
            file.sync_all()?;
        }
        let spool = Spool {
            path,
            file,
            end: offset,
            frames,
        };
        Ok(Some((spool, report)))
    }

    /// Creates an empty spool in `dir` (the file and its directory entry are synced).
    pub(crate) fn create(dir: &Path) -> io::Result<Spool> {
        fs::create_dir_all(dir)?;
        let path = Self::path_in(dir);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        file.write_all_at(MAGIC, 0)?;
        file.sync_all()?;
        sync_dir(dir)?;
        Ok(Spool {
            path,
            file,
            end: MAGIC.len() as u64,
            frames: VecDeque::new(),
        })
    }

    /// Appends batch `batch_id` (`rows` rows; `batch` serialises like a [`SpoolBatch`])
    /// and syncs it to disk; on failure the partial frame is cut off again and nothing
    /// was appended.
    pub(crate) fn append<T: Serialize>(
        &mut self,
        batch_id: i64,
        rows: u32,
        batch: &T,
    ) -> io::Result<()> {
        let payload = serde_json::to_vec(batch).map_err(io::Error::other)?;
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|l| *l <= MAX_FRAME)
            .ok_or_else(|| io::Error::other("a batch larger than 1 GiB cannot be spooled"))?;
        let mut frame = Vec::with_capacity(HEADER as usize + payload.len());
        frame.extend_from_slice(&len.to_le_bytes());
        frame.extend_from_slice(&crc(batch_id, rows, &payload).to_le_bytes());
        frame.extend_from_slice(&batch_id.to_le_bytes());
        frame.extend_from_slice(&rows.to_le_bytes());
        frame.extend_from_slice(&payload);
        let written = self
            .file
            .write_all_at(&frame, self.end)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Never leave a partial frame behind a later good one.
            let _ = self.file.set_len(self.end);
            return Err(e);
        }
        self.frames.push_back(Frame {
            offset: self.end,
            len,
            batch_id,
            rows,
        });
        self.end += frame.len() as u64;
        Ok(())
    }

    /// The oldest frames not yet replayed, up to about `max_rows` rows (at least one),
    /// each with its batch or why it cannot be read back.
    pub(crate) fn front(&self, max_rows: usize) -> Vec<(Frame, Result<SpoolBatch, String>)> {
        let mut out = Vec::new();
        let mut rows = 0usize;
        for frame in &self.frames {
            if !out.is_empty() && rows + frame.rows as usize > max_rows {
                break;
            }
            rows += frame.rows as usize;
            out.push((*frame, self.read(frame)));
        }
        out
    }

    fn read(&self, frame: &Frame) -> Result<SpoolBatch, String> {
        let mut payload = vec![0u8; frame.len as usize];
        self.file
            .read_exact_at(&mut payload, frame.offset + HEADER)
            .map_err(|e| format!("reading the spool at byte {}: {e}", frame.offset))?;
        let mut head = [0u8; 4];
        self.file
            .read_exact_at(&mut head, frame.offset + 4)
            .map_err(|e| format!("reading the spool at byte {}: {e}", frame.offset))?;
        if crc(frame.batch_id, frame.rows, &payload) != u32::from_le_bytes(head) {
            return Err(format!(
                "the frame at byte {} no longer matches its checksum",
                frame.offset
            ));
        }
        serde_json::from_slice(&payload).map_err(|e| {
            format!(
                "the batch at byte {} cannot be read back ({e}); raw: {}",
                frame.offset,
                String::from_utf8_lossy(&payload)
            )
        })
    }

    /// Forgets the `n` oldest frames (they reached PostgreSQL).
    pub(crate) fn pop_front(&mut self, n: usize) {
        for _ in 0..n {
            self.frames.pop_front();
        }
    }

    /// True when every frame was replayed.
    pub(crate) fn is_drained(&self) -> bool {
        self.frames.is_empty()
    }

    /// Frames not yet replayed.
    pub(crate) fn pending_batches(&self) -> usize {
        self.frames.len()
    }

    /// Rows not yet replayed.
    pub(crate) fn pending_rows(&self) -> u64 {
        self.frames.iter().map(|f| u64::from(f.rows)).sum()
    }

    /// The newest batch id in the spool.
    pub(crate) fn last_batch_id(&self) -> Option<i64> {
        self.frames.back().map(|f| f.batch_id)
    }

    /// The oldest batch id not yet replayed.
    pub(crate) fn first_batch_id(&self) -> Option<i64> {
        self.frames.front().map(|f| f.batch_id)
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Deletes the spool file (everything in it is in PostgreSQL).
    pub(crate) fn remove(self) -> io::Result<()> {
        let Spool { path, file, .. } = self;
        drop(file);
        fs::remove_file(&path)?;
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    }
}

/// Copies bytes `from..to` of the spool aside before it is cut; returns the copy's path.
fn set_aside(path: &Path, file: &File, from: u64, to: u64) -> io::Result<PathBuf> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let aside = path.with_file_name(format!("{SPOOL_FILE}.damaged-{stamp}"));
    let mut bytes = vec![0u8; usize::try_from(to - from).map_err(io::Error::other)?];
    file.read_exact_at(&mut bytes, from)?;
    let mut out = File::create(&aside)?;
    out.write_all(&bytes)?;
    out.sync_all()?;
    Ok(aside)
}

/// One write PostgreSQL refused for its content, as kept in the dead-letter file.
#[derive(Serialize)]
pub(crate) struct Rejected<'a> {
    /// When it was set aside.
    pub at: chrono::DateTime<chrono::Utc>,
    /// Its batch and place in the batch.
    pub batch_id: i64,
    /// Index of the write in its batch.
    pub write_index: u32,
    /// What PostgreSQL said.
    pub error: &'a str,
    /// The rows, as they would have been written.
    pub rows: &'a [Rows],
}

/// Appends `entry` to `<dir>/rejected.jsonl` and syncs it; returns the file's path.
pub(crate) fn reject(dir: &Path, entry: &Rejected<'_>) -> io::Result<PathBuf> {
    let mut line = serde_json::to_vec(entry).map_err(io::Error::other)?;
    line.push(b'\n');
    append_line(dir, REJECTED_FILE, &line)
}

/// Appends raw text that cannot be parsed back (a damaged spool frame) to the
/// dead-letter file, so that it is kept where an operator looks.
pub(crate) fn reject_raw(dir: &Path, batch_id: i64, error: &str) -> io::Result<PathBuf> {
    let mut line = serde_json::to_vec(&serde_json::json!({
        "at": chrono::Utc::now(), "batch_id": batch_id, "error": error,
    }))
    .map_err(io::Error::other)?;
    line.push(b'\n');
    append_line(dir, REJECTED_FILE, &line)
}

fn append_line(dir: &Path, name: &str, line: &[u8]) -> io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let path = dir.join(name);
    let mut f = OpenOptions::new().create(true).append(true).open(&path)?;
    if let Err(e) = f.write_all(line).and_then(|()| f.sync_data()) {
        // A partial line would corrupt the next one: cut it off again.
        if let Ok(meta) = f.metadata() {
            let _ = f.set_len(meta.len().saturating_sub(line.len() as u64));
        }
        return Err(e);
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(id: i64) -> SpoolBatch {
        SpoolBatch {
            id,
            first: 0,
            writes: vec![vec![Rows::AccountStatus {
                account_id: format!("a{id}"),
                status: "active".into(),
            }]],
        }
    }

    #[test]
    fn appended_batches_come_back_in_order_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::create(dir.path()).unwrap();
        for id in 1..=3 {
            s.append(id, 1, &batch(id)).unwrap();
        }
        drop(s);
        let (s, report) = Spool::open(dir.path()).unwrap().unwrap();
        assert_eq!(report.torn_bytes, 0);
        assert!(report.damaged.is_none());
        assert_eq!(s.pending_batches(), 3);
        let front = s.front(2);
        let ids: Vec<i64> = front.iter().map(|(_, b)| b.as_ref().unwrap().id).collect();
        assert_eq!(ids, [1, 2]);
    }

    #[test]
    fn a_torn_tail_is_dropped_and_appends_continue_after_the_last_good_frame() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::create(dir.path()).unwrap();
        s.append(1, 1, &batch(1)).unwrap();
        s.append(2, 1, &batch(2)).unwrap();
        let good = s.end;
        drop(s);
        // A crash in the middle of the third append: half a frame.
        let mut f = OpenOptions::new()
            .append(true)
            .open(Spool::path_in(dir.path()))
            .unwrap();
        f.write_all(&[200, 0, 0, 0, 1, 2, 3]).unwrap();
        drop(f);
        let (mut s, report) = Spool::open(dir.path()).unwrap().unwrap();
        assert_eq!(report.torn_bytes, 7);
        assert_eq!(s.pending_batches(), 2);
        assert_eq!(
            fs::metadata(Spool::path_in(dir.path())).unwrap().len(),
            good
        );
        s.append(3, 1, &batch(3)).unwrap();
        drop(s);
        let (s, report) = Spool::open(dir.path()).unwrap().unwrap();
        assert_eq!(report.torn_bytes, 0);
        assert_eq!(s.last_batch_id(), Some(3));
    }

    #[test]
    fn a_damaged_frame_before_good_data_is_set_aside_not_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::create(dir.path()).unwrap();
        s.append(1, 1, &batch(1)).unwrap();
        let second = s.end;
        s.append(2, 1, &batch(2)).unwrap();
        s.append(3, 1, &batch(3)).unwrap();
        drop(s);
        // Flip a payload byte of the second frame.
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(Spool::path_in(dir.path()))
            .unwrap();
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, second + HEADER + 3).unwrap();
        f.write_all_at(&[b[0] ^ 0xff], second + HEADER + 3).unwrap();
        drop(f);
        let (s, report) = Spool::open(dir.path()).unwrap().unwrap();
        assert_eq!(s.pending_batches(), 1, "only the frame before the damage");
        let aside = report.damaged.expect("damaged data kept");
        assert!(fs::metadata(aside).unwrap().len() > HEADER * 2);
    }

    #[test]
    fn removing_the_spool_deletes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::create(dir.path()).unwrap();
        s.append(1, 1, &batch(1)).unwrap();
        s.remove().unwrap();
        assert!(Spool::open(dir.path()).unwrap().is_none());
    }
}
