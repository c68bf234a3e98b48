//! Helpers shared by the daemon benchmarks (`footprint`, `decision`, `scale`): starting
//! the release daemon in a directory, start-up checks, a blocking HTTP GET over a plain
//! socket, `/status` readers, `/proc` samples of the daemon and its postgres, log scans,
//! percentiles.
#![allow(dead_code)]

use serde_json::Value;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Environment variables of the caller's shell that would change the daemon's
/// configuration; removed so the accounts file alone decides.
#[path = "../../tests/common/process.rs"]
mod process;
// `free_port` is for benches that need a port nobody listens on (benches/store.rs).
#[allow(unused_imports)]
pub use process::{free_port, AMBIENT};

/// Starts `vibex --accounts accounts.yaml run` in `dir` (which holds the accounts file)
/// on a loopback port of the daemon's own choosing (port 0: no other process can take
/// it between a pick and the bind), stdout and stderr to `dir/stdout.txt` and
/// `dir/stderr.txt`, the caller's configuring variables removed. `nofile` limits its
/// open files like a shell's `ulimit -n` (soft and hard). Returns the child and the
/// `127.0.0.1:PORT` of its `vibex listening on` line; panics with its stderr if it
/// exits or does not listen within 5 minutes.
pub fn spawn_daemon(dir: &Path, log_level: &str, nofile: Option<u64>) -> (Child, String) {
    spawn_daemon_with(dir, log_level, nofile, &[])
}

/// [`spawn_daemon`] with more environment variables (`DATABASE_URL`, ...).
pub fn spawn_daemon_with(
    dir: &Path,
    log_level: &str,
    nofile: Option<u64>,
    env: &[(&str, &str)],
) -> (Child, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vibex"));
    cmd.args(["--accounts", "accounts.yaml", "run"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("stdout.txt")).expect("stdout file"))
        .stderr(std::fs::File::create(dir.join("stderr.txt")).expect("stderr file"));
    for var in AMBIENT {
        cmd.env_remove(var);
    }
    cmd.env("API_HOST", "127.0.0.1")
        .env("API_PORT", "0")
        .env("VIBEX_LOG_LEVEL", log_level);
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(n) = nofile {
        use nix::sys::resource::{setrlimit, Resource};
        use std::os::unix::process::CommandExt;
        // SAFETY: only setrlimit (async-signal-safe) runs between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                setrlimit(Resource::RLIMIT_NOFILE, n, n)?;
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn().expect("spawn vibex");
    match listening_addr(&mut child, dir, Duration::from_secs(300)) {
        Ok(addr) => (child, addr),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{e}; stderr:\n{}", tail(&dir.join("stderr.txt"), 30));
        }
    }
}

/// The address of the daemon's `vibex listening on http://ADDR` line in `dir/stdout.txt`.
fn listening_addr(child: &mut Child, dir: &Path, timeout: Duration) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let stdout = std::fs::read_to_string(dir.join("stdout.txt")).unwrap_or_default();
        if let Some(addr) = stdout
            .lines()
            .find_map(|l| l.strip_prefix("vibex listening on http://"))
        {
            return Ok(addr.trim().to_string());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("vibex exited before listening ({status})"));
        }
        if Instant::now() > deadline {
            return Err(format!("vibex did not listen within {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

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

// ---- /status ----------------------------------------------------------------------------

/// The `accounts` array of a `GET /status` body.
pub fn accounts(status: &Value) -> &[Value] {
    status
        .get("accounts")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// How many accounts of a `GET /status` body have completed at least one cycle.
pub fn accounts_cycling(status: &Value) -> usize {
    accounts(status)
        .iter()
        .filter(|a| {
            a.get("cycles_completed")
                .and_then(Value::as_u64)
                .unwrap_or(0)
                > 0
        })
        .count()
}

/// Whether all `n` accounts are listed and each has completed a cycle.
pub fn all_cycling(status: &Value, n: usize) -> bool {
    accounts(status).len() == n && accounts_cycling(status) == n
}

// ---- /proc ----------------------------------------------------------------------------

/// Linux `USER_HZ` (clock ticks of `/proc/<pid>/stat` times): 100 on every mainstream
/// architecture.
pub const CLOCK_TICKS_PER_SEC: f64 = 100.0;

/// Memory, threads, files and CPU of the daemon and its descendants (postgres) at one
/// moment.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    /// Seconds since the benchmark's reference moment.
    pub t: f64,
    pub daemon_rss_kb: u64,
    pub daemon_hwm_kb: u64,
    pub daemon_threads: u64,
    /// Entries of `/proc/<pid>/fd`.
    pub daemon_fds: u64,
    /// utime + stime of the daemon, clock ticks.
    pub daemon_cpu_ticks: u64,
    pub pg_procs: usize,
    pub pg_rss_kb: u64,
    pub pg_pss_kb: u64,
    pub pg_cpu_ticks: u64,
}

/// `(ppid, utime + stime)` from `/proc/<pid>/stat`.
pub fn stat(pid: u32) -> Option<(u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself contain spaces or parentheses.
    let rest = text.get(text.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): ppid is field 4, utime 14, stime 15.
    let ppid = f.get(1)?.parse().ok()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

/// A `kB` field of `/proc/<pid>/status` or `/proc/<pid>/smaps_rollup`.
pub fn kb_field(path: &str, field: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Open file descriptors of a process (entries of `/proc/<pid>/fd`).
pub fn fd_count(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| rd.count() as u64)
        .unwrap_or(0)
}

/// The daemon's own figures and its descendants' (postgres) summed; also the
/// descendants' pids.
pub fn sample_tree(root: u32, t: f64) -> (Sample, Vec<u32>) {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    let mut cpu: HashMap<u32, u64> = HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some((ppid, ticks)) = stat(pid) {
                children.entry(ppid).or_default().push(pid);
                cpu.insert(pid, ticks);
            }
        }
    }
    let mut descendants = Vec::new();
    let mut stack = children.get(&root).cloned().unwrap_or_default();
    while let Some(p) = stack.pop() {
        descendants.push(p);
        stack.extend(children.get(&p).cloned().unwrap_or_default());
    }
    let status = format!("/proc/{root}/status");
    let mut s = Sample {
        t,
        daemon_rss_kb: kb_field(&status, "VmRSS:"),
        daemon_hwm_kb: kb_field(&status, "VmHWM:"),
        daemon_threads: kb_field(&status, "Threads:"),
        daemon_fds: fd_count(root),
        daemon_cpu_ticks: cpu.get(&root).copied().unwrap_or(0),
        pg_procs: descendants.len(),
        ..Sample::default()
    };
    for p in &descendants {
        s.pg_rss_kb += kb_field(&format!("/proc/{p}/status"), "VmRSS:");
        s.pg_pss_kb += kb_field(&format!("/proc/{p}/smaps_rollup"), "Pss:");
        s.pg_cpu_ticks += cpu.get(p).copied().unwrap_or(0);
    }
    (s, descendants)
}

/// Megabytes from kilobytes.
pub fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// A copy sorted for [`percentile`].
pub fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s
}
