//! A real `vibex run` process for journey tests: its own working directory (accounts
//! file, logs, data), a free port on loopback, and helpers to talk to it over HTTP and
//! WebSocket the way a dashboard would.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running daemon, killed on drop if still alive.
pub struct Daemon {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Working directory (accounts.yaml, logs/, data/, stdout, stderr).
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

pub use super::process::AMBIENT;

/// How the daemon's process is started, beyond its accounts file and environment.
#[derive(Clone, Copy, Debug, Default)]
pub struct Launch {
    /// `RLIMIT_NOFILE`, soft and hard, set on the child before exec (what `ulimit -n`
    /// does in a shell; the daemon can raise its soft limit only up to the hard one).
    pub open_files: Option<u64>,
}

impl Daemon {
    /// Starts `vibex run` with `accounts_yaml` in a fresh directory. `database_url` of
    /// `None` uses the embedded cluster.
    pub fn start(accounts_yaml: &str, database_url: Option<&str>, env: &[(&str, &str)]) -> Daemon {
        Daemon::start_with(accounts_yaml, database_url, env, Launch::default())
    }

    /// [`Daemon::start`] with process limits (`launch`).
    pub fn start_with(
        accounts_yaml: &str,
        database_url: Option<&str>,
        env: &[(&str, &str)],
        launch: Launch,
    ) -> Daemon {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let mut d = Daemon::launch_in(&dir, accounts_yaml, database_url, env, launch);
        d._tmp = Some(tmp);
        d
    }

    /// Starts `vibex run` in `dir` (reused across restarts).
    pub fn start_in(
        dir: &Path,
        accounts_yaml: &str,
        database_url: Option<&str>,
        env: &[(&str, &str)],
    ) -> Daemon {
        Daemon::launch_in(dir, accounts_yaml, database_url, env, Launch::default())
    }

    fn launch_in(
        dir: &Path,
        accounts_yaml: &str,
        database_url: Option<&str>,
        env: &[(&str, &str)],
        launch: Launch,
    ) -> Daemon {
        std::fs::write(dir.join("accounts.yaml"), accounts_yaml).expect("write accounts.yaml");
        let stdout = std::fs::File::create(dir.join("stdout.txt")).expect("stdout file");
        let stderr = std::fs::File::create(dir.join("stderr.txt")).expect("stderr file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vibex"));
        cmd.args(["--accounts", "accounts.yaml", "run"])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        for var in AMBIENT {
            cmd.env_remove(var);
        }
        // Port 0: the daemon binds a port the kernel picks and prints it. A port chosen
        // here and handed over could be taken in between by another test's daemon, whose
        // /health would then answer for this one.
        cmd.env("API_HOST", "127.0.0.1")
            .env("API_PORT", "0")
            .env("VIBEX_LOG_LEVEL", "debug");
        if let Some(url) = database_url {
            cmd.env("DATABASE_URL", url);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        // Its own process group, like a shell job: `interrupt_group` is then Ctrl-C.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        if let Some(n) = launch.open_files {
            use nix::sys::resource::{setrlimit, Resource};
            // SAFETY: only setrlimit (async-signal-safe) runs between fork and exec.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                    setrlimit(Resource::RLIMIT_NOFILE, n, n)?;
                    Ok(())
                });
            }
        }
        let child = cmd.spawn().expect("spawn vibex");
        let mut d = Daemon {
            child: Some(child),
            base: String::new(),
            dir: dir.to_path_buf(),
            _tmp: None,
        };
        d.wait_healthy(Duration::from_secs(90));
        d
    }

    /// Waits for the daemon's own `listening on` line (its address becomes `base`), then
    /// for `/health` = 200 at that address.
    fn wait_healthy(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "vibex exited during start-up ({status}); stderr:\n{}",
                        self.stderr()
                    );
                }
            }
            if self.base.is_empty() {
                let stdout =
                    std::fs::read_to_string(self.dir.join("stdout.txt")).unwrap_or_default();
                if let Some(addr) = stdout
                    .lines()
                    .find_map(|l| l.strip_prefix("vibex listening on http://"))
                {
                    self.base = format!("http://{}", addr.trim());
                }
            }
            let addr = self.base.trim_start_matches("http://").to_string();
            if addr.is_empty() {
                // Not listening yet.
            } else if let Ok(mut s) = std::net::TcpStream::connect(&addr) {
                use std::io::Write;
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let req =
                    format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
                if s.write_all(req.as_bytes()).is_ok() {
                    let mut buf = String::new();
                    let _ = s.read_to_string(&mut buf);
                    if buf.starts_with("HTTP/1.1 200") {
                        return;
                    }
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "vibex did not become healthy (address: {:?}); stderr:\n{}",
                    self.base,
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The daemon's stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.txt")).unwrap_or_default()
    }

    /// Every log file's content, concatenated (for secret scans and cycle tracing).
    pub fn all_logs(&self) -> String {
        let mut out = String::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.join("logs")) {
            for e in entries.flatten() {
                out.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
        out.push_str(&self.stderr());
        out.push_str(&std::fs::read_to_string(self.dir.join("stdout.txt")).unwrap_or_default());
        out
    }

    /// One log file (`trading.log`, ...).
    pub fn log_file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join("logs").join(name)).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// The daemon's OS threads now (`Threads:` of `/proc/<pid>/status`).
    pub fn threads(&self) -> usize {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap_or_else(|e| panic!("/proc/{}/status: {e}", self.pid()));
        status
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no Threads: line in /proc/{}/status", self.pid()))
    }

    /// The daemon's open file descriptors now (entries of `/proc/<pid>/fd`).
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap_or_else(|e| panic!("/proc/{}/fd: {e}", self.pid()))
            .count()
    }

    /// The daemon's open-file limit as the kernel holds it (`Max open files` of
    /// `/proc/<pid>/limits`): (soft, hard).
    pub fn open_file_limit(&self) -> (String, String) {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", self.pid()))
            .unwrap_or_else(|e| panic!("/proc/{}/limits: {e}", self.pid()));
        let line = limits
            .lines()
            .find_map(|l| l.strip_prefix("Max open files"))
            .unwrap_or_else(|| panic!("no Max open files line in /proc/{}/limits", self.pid()));
        let mut fields = line.split_whitespace();
        let soft = fields.next().unwrap_or_default().to_string();
        let hard = fields.next().unwrap_or_default().to_string();
        (soft, hard)
    }

    /// Sends SIGTERM and waits; returns the exit status and how long it took.
    pub fn terminate(&mut self, timeout: Duration) -> (ExitStatus, Duration) {
        self.signal_and_wait(false, timeout)
    }

    /// SIGKILL to the daemon alone (a crash: nothing is flushed), and wait for it.
    pub fn kill_hard(&mut self) {
        let mut child = self.child.take().expect("daemon running");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Ctrl-C in a terminal: SIGINT to the daemon's whole process group.
    pub fn interrupt_group(&mut self, timeout: Duration) -> (ExitStatus, Duration) {
        self.signal_and_wait(true, timeout)
    }

    fn signal_and_wait(&mut self, group: bool, timeout: Duration) -> (ExitStatus, Duration) {
        let child = self.child.as_mut().expect("daemon running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let started = Instant::now();
        if group {
            nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
        } else {
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        }
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return (status, started.elapsed());
            }
            if started.elapsed() > timeout {
                let _ = child.kill();
                let status = child.wait().expect("wait");
                self.child = None;
                panic!(
                    "vibex did not exit within {timeout:?} of SIGTERM (killed: {status}); stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// GET a path; returns status and JSON body.
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(10))
            .finish();
        let mut res = client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let body = res.body().limit(64 << 20).await.expect("body");
        let json = serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!(
                "GET {path}: not JSON ({e}): {}",
                String::from_utf8_lossy(&body)
            )
        });
        (res.status().as_u16(), json)
    }

    /// GET a path and return the raw body text (for secret scans).
    pub async fn get_text(&self, path: &str) -> String {
        let client = awc::Client::default();
        let mut res = client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let body = res.body().limit(64 << 20).await.expect("body");
        String::from_utf8_lossy(&body).to_string()
    }

    /// Polls `path` until `check` accepts the body, or panics after `timeout`.
    pub async fn wait_for<F>(
        &self,
        path: &str,
        timeout: Duration,
        mut check: F,
    ) -> serde_json::Value
    where
        F: FnMut(&serde_json::Value) -> bool,
    {
        let deadline = Instant::now() + timeout;
        loop {
            let (status, body) = self.get(path).await;
            if status == 200 && check(&body) {
                return body;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting on {path}; last body: {body}\nstderr:\n{}",
                    tail(&self.stderr(), 40)
                );
            }
            actix_rt::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Last `n` lines of a text.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A WebSocket client collecting text frames in the background.
pub struct WsClient {
    frames: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    _task: actix_rt::task::JoinHandle<()>,
}

impl WsClient {
    /// Connects to `path` (e.g. `/ws/trading-events?account_id=a1`).
    pub async fn connect(daemon: &Daemon, path: &str) -> WsClient {
        use futures_util::{SinkExt, StreamExt};
        let url = format!("{}{path}", daemon.base.replace("http://", "ws://"));
        let (_resp, mut conn) = awc::Client::new()
            .ws(url)
            .connect()
            .await
            .unwrap_or_else(|e| panic!("ws connect {path}: {e}"));
        let frames = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = frames.clone();
        let task = actix_rt::spawn(async move {
            while let Some(Ok(frame)) = conn.next().await {
                match frame {
                    awc::ws::Frame::Text(bytes) => {
                        let v: serde_json::Value =
                            serde_json::from_slice(&bytes).expect("every frame is JSON");
                        sink.lock().expect("lock").push(v);
                    }
                    awc::ws::Frame::Ping(p) => {
                        let _ = conn.send(awc::ws::Message::Pong(p)).await;
                    }
                    awc::ws::Frame::Close(_) => break,
                    _ => {}
                }
            }
        });
        WsClient {
            frames,
            _task: task,
        }
    }

    /// Frames received so far.
    pub fn frames(&self) -> Vec<serde_json::Value> {
        self.frames.lock().expect("lock").clone()
    }

    /// Frames of one type.
    pub fn of_type(&self, kind: &str) -> Vec<serde_json::Value> {
        self.frames()
            .into_iter()
            .filter(|f| f["type"] == kind)
            .collect()
    }
}

/// Moves the fake's BTC price just above the 5m EMA20 the daemon computed, which makes
/// `builtin/ema-rsi` go long (RSI stays below 70 for such a small move).
pub async fn nudge_btc_above_ema(d: &Daemon, venue: &super::fake_venue::FakeVenue) {
    use std::str::FromStr;
    let (_, md) = d.get("/market-data?symbol=BTC").await;
    // No snapshot yet right after start-up: the caller tries again.
    let Some(ema) = md["items"][0]["snapshot"]["current"]["ema20"].as_f64() else {
        return;
    };
    let target = rust_decimal::Decimal::from_str(&format!("{:.1}", ema * 1.0015)).expect("price");
    venue.set_price("BTCUSDT", target);
}

/// Nudges BTC until `account` holds an open BTC long; returns that position.
pub async fn open_btc_long(
    d: &Daemon,
    venue: &super::fake_venue::FakeVenue,
    account: &str,
) -> serde_json::Value {
    for _ in 0..40 {
        nudge_btc_above_ema(d, venue).await;
        actix_rt::time::sleep(Duration::from_millis(1500)).await;
        let (_, p) = d
            .get(&format!(
                "/positions?account_id={account}&symbol=BTCUSDT&status=open"
            ))
            .await;
        if p["count"] == 1 {
            return p["items"][0].clone();
        }
    }
    panic!(
        "{account} never went long BTC; stderr:\n{}",
        tail(&d.stderr(), 60)
    );
}

/// A decimal field of a REST or fake-venue body (money travels as strings).
pub fn dec(v: &serde_json::Value) -> rust_decimal::Decimal {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{v} is not a decimal string"))
}

/// Waits until `account`'s position `id` is listed closed and `done` holds for its row;
/// returns the row.
pub async fn closed_position<F>(
    d: &Daemon,
    account: &str,
    id: &str,
    timeout: Duration,
    done: F,
) -> serde_json::Value
where
    F: Fn(&serde_json::Value) -> bool,
{
    let path = format!("/positions?account_id={account}&status=closed&limit=100");
    let find = |b: &serde_json::Value| {
        b["items"]
            .as_array()
            .and_then(|a| a.iter().find(|p| p["id"] == id).cloned())
    };
    let body = d
        .wait_for(&path, timeout, |b| find(b).is_some_and(|p| done(&p)))
        .await;
    find(&body).unwrap_or_default()
}

/// Whether a `/orders` page holds an order of this type in this status.
pub fn has_order(orders: &[serde_json::Value], order_type: &str, status: &str) -> bool {
    orders
        .iter()
        .any(|o| o["order_type"] == order_type && o["status"] == status)
}
