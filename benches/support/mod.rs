//! Helpers shared by the daemon benchmarks (`footprint`, `decision`): start-up
//! checks, a blocking HTTP GET over a plain socket, percentiles.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// Environment variables of the caller's shell that would change the daemon's
/// configuration; removed so the accounts file alone decides.
#[path = "../../tests/common/process.rs"]
mod process;
pub use process::{free_port, AMBIENT};

pub fn wait_healthy(child: &mut Child, addr: &str, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("vibex exited during start-up ({status})"));
        }
        if let Ok((200, _)) = http_get(addr, "/health", Duration::from_secs(2)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("vibex did not become healthy within {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A blocking `GET` over one connection; returns the status and the body.
pub fn http_get(addr: &str, path: &str, timeout: Duration) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|_| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(req.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let body = &raw[split + 4..];
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("no status code")?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok((code, String::from_utf8_lossy(&body).into_owned()))
}

pub fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("bad chunk header")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|e| format!("bad chunk size {size_text:?}: {e}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = data.get(..size).ok_or("truncated chunk")?;
        out.extend_from_slice(chunk);
        data = data.get(size + 2..).ok_or("truncated chunk")?;
    }
}

pub fn shorten(s: &str) -> String {
    // Group messages that only differ by numbers, ids or times; one line each.
    let mut out = String::new();
    let mut in_digits = false;
    for ch in s.split_whitespace().collect::<Vec<_>>().join(" ").chars() {
        if ch.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            in_digits = false;
            out.push(ch);
        }
    }
    out.chars().take(160).collect()
}

pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// What the daemon's log files say beyond the figures: errors and warnings, grouped.
#[derive(Debug, Default)]
pub struct LogScan {
    /// Lines of `errors.log`.
    pub error_lines: usize,
    /// The most frequent `errors.log` messages with their counts.
    pub errors: Vec<(String, usize)>,
    /// WARNING lines in the other files.
    pub warning_lines: usize,
    /// The most frequent warnings with their counts.
    pub warnings: Vec<(String, usize)>,
}

/// Reads every JSON line of `<dir>/logs/*`, groups errors and warnings (message, the
/// `what`/`error`/`reason`/`refusal` field, "(after SIGTERM)" when logged after it),
/// and hands every line outside `errors.log` to `each(file name, line)` for the
/// benchmark's own figures.
pub fn scan_logs(
    dir: &Path,
    keep: usize,
    mut each: impl FnMut(&str, &serde_json::Value),
) -> LogScan {
    use serde_json::Value;
    use std::collections::HashMap;
    use std::fmt::Write as _;
    let mut scan = LogScan::default();
    let mut errors: HashMap<String, usize> = HashMap::new();
    let mut warnings: HashMap<String, usize> = HashMap::new();
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir.join("logs"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    // `app.log` sorts first: the SIGTERM time is known before the other files are read.
    files.sort();
    let mut sigterm_at: Option<String> = None;
    for path in files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let is_errors = name.starts_with("errors.log");
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default();
            let msg = field("msg");
            if msg == "SIGTERM received" {
                sigterm_at = Some(field("ts").to_string());
            }
            let mut detail = msg.to_string();
            if let Some(what) = v.get("what").and_then(Value::as_str) {
                let _ = write!(detail, " [{what}]");
            }
            if let Some(d) = ["error", "reason", "refusal"]
                .iter()
                .find_map(|k| v.get(*k).and_then(Value::as_str))
            {
                let _ = write!(detail, ": {d}");
            }
            let mut detail = shorten(&detail);
            // Same RFC 3339 format in every file: text order is time order.
            if sigterm_at.as_deref().is_some_and(|t| field("ts") >= t) {
                detail.push_str(" (after SIGTERM)");
            }
            if is_errors {
                scan.error_lines += 1;
                *errors.entry(detail).or_default() += 1;
                continue;
            }
            if field("level") == "WARNING" {
                scan.warning_lines += 1;
                *warnings.entry(detail).or_default() += 1;
            }
            each(&name, &v);
        }
    }
    let top = |m: HashMap<String, usize>| {
        let mut v: Vec<(String, usize)> = m.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(keep);
        v
    };
    scan.errors = top(errors);
    scan.warnings = top(warnings);
    scan
}

/// Sends SIGTERM to the daemon and waits up to 120 s: the time it took to exit and its
/// exit status, or a note that it had to be killed.
pub fn terminate(child: &mut Child) -> (Option<Duration>, String) {
    let started = Instant::now();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let limit = Duration::from_secs(120);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return (Some(started.elapsed()), status.to_string());
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
            return (
                None,
                format!("did not exit within {limit:?} of SIGTERM; killed ({status})"),
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
