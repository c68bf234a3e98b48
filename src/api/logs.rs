//! `GET /logs?file=NAME&lines=N[&download=true]`: the domain log files over HTTP (admin).
//!
//! Entry points: [`logs`] (the handler), [`LogFile`] (the names a request may ask for).
//! Invariants: the file is chosen from a closed list of names ([`LogFile::parse`]:
//! `app`, `trading`, `market_data`, `llm`, `errors`) mapped to the file names of
//! `telemetry`; nothing from the request ever becomes part of a path. Lines are served
//! as written (already masked by the logging drain). A tail reads at most
//! [`MAX_TAIL_BYTES`] from the end of the file whatever `lines` asks; a download streams
//! the current file (not its rotated backups) in chunks up to the size it had when the
//! request arrived, never the whole file in memory.

use crate::api::access::{Caller, Role};
use crate::api::error::ApiError;
use crate::api::ApiState;
use crate::telemetry::{LogDomain, ERRORS_FILE};
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

/// Lines of a tail when `lines` is absent.
pub const DEFAULT_LINES: usize = 100;
/// Most lines of a tail.
pub const MAX_LINES: usize = 10_000;
/// Most bytes a tail reads from the end of a file.
pub const MAX_TAIL_BYTES: u64 = 8 * 1024 * 1024;
/// Chunk size of a download.
const CHUNK: usize = 64 * 1024;

/// A log file a request may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFile {
    /// One domain's file (`app`, `trading`, `market_data`, `llm`).
    Domain(LogDomain),
    /// The copy of every error (`errors`).
    Errors,
}

impl LogFile {
    /// Every name accepted in `?file=`.
    pub const NAMES: [&'static str; 5] = ["app", "trading", "market_data", "llm", "errors"];

    /// The file named `name`, if it is one of [`LogFile::NAMES`].
    pub fn parse(name: &str) -> Option<LogFile> {
        if name == "errors" {
            return Some(LogFile::Errors);
        }
        LogDomain::parse(name).map(LogFile::Domain)
    }

    /// The file's name in the log directory.
    pub fn file_name(self) -> &'static str {
        match self {
            LogFile::Domain(d) => d.file_name(),
            LogFile::Errors => ERRORS_FILE,
        }
    }
}

/// Query of `/logs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    /// Which file (default `app`).
    pub file: Option<String>,
    /// How many of the last lines (default 100, at most 10,000).
    pub lines: Option<usize>,
    /// `true`: the whole file as an attachment.
    pub download: Option<bool>,
}

/// The handler of `GET /logs`.
pub async fn logs(
    state: web::Data<ApiState>,
    caller: Caller,
    q: web::Query<LogsQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let name = q.file.as_deref().unwrap_or("app");
    let file = LogFile::parse(name).ok_or_else(|| {
        ApiError::bad_request(format!(
            "query parameter file must be one of {}, got {name:?}",
            LogFile::NAMES.join(", ")
        ))
    })?;
    let lines = q.lines.unwrap_or(DEFAULT_LINES);
    if !(1..=MAX_LINES).contains(&lines) {
        return Err(ApiError::bad_request(format!(
            "query parameter lines must be between 1 and {MAX_LINES}, got {lines}"
        )));
    }
    let path = state.log_dir.join(file.file_name());
    if q.download.unwrap_or(false) {
        return download(path, name).await;
    }
    let tail = web::block(move || tail(&path, lines))
        .await
        .map_err(|_| ApiError::unavailable("the log file could not be read"))?
        .map_err(|e| {
            slog::warn!(state.log, "log tail failed"; "file" => file.file_name(), "error" => e.to_string());
            ApiError::unavailable(format!("{} could not be read", file.file_name()))
        })?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "file": name,
        "count": tail.len(),
        "lines": tail,
    })))
}

/// The last `n` complete lines of the file (fewer when the file is shorter or the lines
/// are longer than [`MAX_TAIL_BYTES`] together); a missing file has none.
pub fn tail(path: &std::path::Path, n: usize) -> std::io::Result<Vec<String>> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let start = len.saturating_sub(MAX_TAIL_BYTES);
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::with_capacity(usize::try_from(len - start).unwrap_or(0));
    f.take(len - start).read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let mut body: &str = &text;
    // A line cut by the start of the window, or being written, is left out.
    if start > 0 {
        body = body.split_once('\n').map_or("", |(_, rest)| rest);
    }
    let complete = match body.rfind('\n') {
        Some(i) => &body[..i],
        None => "",
    };
    let mut out: Vec<String> = complete
        .rsplit('\n')
        .filter(|l| !l.is_empty())
        .take(n)
        .map(str::to_string)
        .collect();
    out.reverse();
    Ok(out)
}

async fn download(path: PathBuf, name: &str) -> Result<HttpResponse, ApiError> {
    let opened = web::block(move || -> std::io::Result<Option<(std::fs::File, u64)>> {
        match std::fs::File::open(&path) {
            Ok(f) => {
                let len = f.metadata()?.len();
                Ok(Some((f, len)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    })
    .await
    .map_err(|_| ApiError::unavailable("the log file could not be opened"))?
    .map_err(|_| ApiError::unavailable(format!("the {name} log could not be opened")))?;
    let Some((file, len)) = opened else {
        return Err(ApiError::not_found(format!(
            "the {name} log has no file yet (nothing was logged to it)"
        )));
    };
    let chunks = futures_util::stream::unfold((Some(file), len), |(file, remaining)| async move {
        let mut file = file?;
        if remaining == 0 {
            return None;
        }
        let want = usize::try_from(remaining).unwrap_or(CHUNK).min(CHUNK);
        let read = web::block(move || {
            let mut buf = vec![0u8; want];
            let n = file.read(&mut buf)?;
            buf.truncate(n);
            Ok::<_, std::io::Error>((file, buf))
        })
        .await;
        match read {
            Ok(Ok((file, buf))) if !buf.is_empty() => {
                let left = remaining - buf.len() as u64;
                Some((
                    Ok::<_, std::io::Error>(web::Bytes::from(buf)),
                    (Some(file), left),
                ))
            }
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some((Err(e), (None, 0))),
            Err(_) => Some((
                Err(std::io::Error::other("log read task failed")),
                (None, 0),
            )),
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"vibex-{name}.log\""),
        ))
        .body(actix_web::body::SizedStream::new(len, chunks)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_names_map_to_files() {
        assert_eq!(
            LogFile::parse("trading").map(LogFile::file_name),
            Some("trading.log")
        );
        assert_eq!(
            LogFile::parse("errors").map(LogFile::file_name),
            Some("errors.log")
        );
        for bad in ["../etc/passwd", "trading.log", "/tmp/x", "", "TRADING"] {
            assert_eq!(LogFile::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_tail_keeps_the_last_complete_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.log");
        std::fs::write(&p, "a\nb\nc\npartial").unwrap();
        assert_eq!(tail(&p, 2).unwrap(), vec!["b", "c"]);
        assert_eq!(tail(&p, 10).unwrap(), vec!["a", "b", "c"]);
        assert!(tail(&dir.path().join("missing.log"), 5).unwrap().is_empty());
    }
}
