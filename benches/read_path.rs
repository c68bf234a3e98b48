//! Cost of the API's read path: server CPU per list request and requests per second.
//! A small harness (`harness = false`) that prints one markdown table row per scenario.
//!
//! Run: `cargo bench --bench read_path` (release daemon). Knobs, as environment
//! variables: `VIBEX_READ_CLIENTS` (concurrent keep-alive clients, default `32`),
//! `VIBEX_READ_THREADS` (the event-loop threads that run them, default `2`: the load of
//! `wrk -t2 -c32`, the measurement),
//! `VIBEX_READ_SECONDS` (per scenario, default `10`), `VIBEX_READ_ROWS` (orders and fills
//! seeded, default `1000`), `VIBEX_READ_PATHS` (comma-separated request targets, default
//! `/orders?limit=100,/trades?limit=100`), `VIBEX_READ_ACCOUNTS` (paper accounts
//! configured, default `1`; with more, the run waits until all are active and their
//! first cycles are done — e.g. `VIBEX_READ_ACCOUNTS=10000
//! VIBEX_READ_PATHS=/status?limit=100,/accounts?limit=100` for the account lists at
//! scale), `VIBEX_READ_AUTH` (`key`, the default: a
//! fresh `read` key is configured and every request carries it as `X-API-Key`, the
//! gate's whole cost included; `none`: no key, loopback as for a local tool). Either way
//! the bucket the requests spend is opened wide (1,000,000/s): this measures the read
//! path, not the rate limit. Any answer but 200 is counted in "non-200" and makes the
//! run say that its figures are not the read path's. Without `--bench`
//! (`cargo test --benches`) it only prints how to run it.
//!
//! One run:
//! 1. starts a private PostgreSQL (the daemon's own embedded-cluster code) and the
//!    loopback fake venue, writes an accounts file with one paper account (`builtin/hold`,
//!    interval 1 h: no cycle runs during the measurement) and that database, and starts
//!    the release `vibex` on a free loopback port (`VIBEX_LOG_LEVEL=info`);
//! 2. seeds `VIBEX_READ_ROWS` filled orders and their fills through the write path's
//!    own query (`queries::record_execution`, see `support/seed.rs`);
//! 3. per target: 1 s of warm-up, then `VIBEX_READ_CLIENTS` keep-alive connections on
//!    `VIBEX_READ_THREADS` event-loop threads (as wrk runs them) send the request back
//!    to back for `VIBEX_READ_SECONDS`.
//!    The daemon's CPU is `utime + stime` of `/proc/<pid>/stat` (every thread) before and
//!    after; "CPU/req" is that difference over the requests answered, "net CPU/req" the
//!    same after subtracting what the idle daemon spends in as long (its market-data
//!    hubs and timers, measured for `VIBEX_READ_SECONDS` before the first target),
//!    "req/s" the requests answered over the wall time, p50/p99 the client-side latency;
//! 4. a last scenario: 48 clients read `/orders?limit=1000` while `/health` is probed on a
//!    new connection every 50 ms: its p50/p99/max;
//! 5. SIGTERM.
//!
//! The clients run on the same machine and take CPU of their own: req/s is bounded by
//! the machine, CPU/req is the daemon's alone. Requires the PostgreSQL server binaries
//! (see README.md) and Linux (`/proc`).

#[path = "../tests/common/fake_venue.rs"]
mod fake_venue;
#[path = "../tests/common/loopback.rs"]
mod loopback;
#[path = "support/seed.rs"]
mod seed;
#[path = "support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `/proc/<pid>/stat` counts CPU time in clock ticks of 1/100 s on Linux.
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

fn knob<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One keep-alive connection sending one request at a time.
struct Client {
    s: TcpStream,
    request: Vec<u8>,
    buf: Vec<u8>,
}

impl Client {
    fn connect(addr: &str, target: &str, header: &str) -> std::io::Result<Client> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let extra = if header.is_empty() {
            String::new()
        } else {
            format!("{header}\r\n")
        };
        let request = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\n{extra}\r\n").into_bytes();
        Ok(Client {
            s,
            request,
            buf: Vec::with_capacity(1 << 20),
        })
    }

    /// Sends the request and returns the body of the answer.
    fn round_trip_body(&mut self) -> std::io::Result<Vec<u8>> {
        self.round_trip()?;
        let at = self
            .buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(self.buf.len(), |p| p + 4);
        Ok(self.buf[at..].to_vec())
    }

    /// Sends the request and reads the whole answer; returns its status.
    fn round_trip(&mut self) -> std::io::Result<u16> {
        self.s.write_all(&self.request)?;
        self.buf.clear();
        let mut chunk = [0u8; 64 * 1024];
        let (head_end, len) = loop {
            let n = self.s.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::Error::other("closed"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
            if let Some(p) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..p]).to_ascii_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .ok_or_else(|| std::io::Error::other("no content-length"))?;
                break (p + 4, len);
            }
        };
        while self.buf.len() < head_end + len {
            let n = self.s.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::Error::other("closed mid-body"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        let status = std::str::from_utf8(&self.buf[9..12])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Ok(status)
    }
}

struct Outcome {
    requests: usize,
    errors: usize,
    non_200: usize,
    wall: Duration,
    cpu_secs: f64,
    latencies_ms: Vec<f64>,
}

fn cpu_ticks(pid: u32) -> u64 {
    support::stat(pid).map_or(0, |(_, t)| t)
}

/// One keep-alive connection of an event-loop thread, sending one request at a time.
/// Returns its latencies (ms) of 200 answers, its errors and its other answers.
async fn event_client(
    addr: String,
    request: Arc<Vec<u8>>,
    stop: Arc<AtomicBool>,
) -> (Vec<f64>, usize, usize) {
    let (mut lat, mut errors, mut non_200) = (Vec::new(), 0, 0);
    let mut buf = Vec::with_capacity(1 << 20);
    let mut conn: Option<tokio::net::TcpStream> = None;
    while !stop.load(Ordering::Relaxed) {
        let s = match conn.as_mut() {
            Some(s) => s,
            None => match tokio::net::TcpStream::connect(&addr).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    conn.insert(s)
                }
                Err(_) => {
                    errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let t = Instant::now();
        match exchange(s, &request, &mut buf).await {
            Ok(200) => lat.push(t.elapsed().as_secs_f64() * 1000.0),
            Ok(_) => non_200 += 1,
            Err(_) => {
                errors += 1;
                conn = None;
            }
        }
    }
    (lat, errors, non_200)
}

/// Writes `request` and reads one whole answer into `buf`; returns its status.
async fn exchange(
    s: &mut tokio::net::TcpStream,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> std::io::Result<u16> {
    let mut sent = 0;
    while sent < request.len() {
        s.writable().await?;
        match s.try_write(&request[sent..]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    buf.clear();
    let mut chunk = vec![0u8; 256 * 1024];
    let mut want: Option<usize> = None;
    loop {
        if let Some(total) = want {
            if buf.len() >= total {
                break;
            }
        }
        s.readable().await?;
        match s.try_read(&mut chunk) {
            Ok(0) => return Err(std::io::Error::other("closed")),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
        if want.is_none() {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..p]).to_ascii_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .ok_or_else(|| std::io::Error::other("no content-length"))?;
                want = Some(p + 4 + len);
            }
        }
    }
    Ok(std::str::from_utf8(buf.get(9..12).unwrap_or_default())
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0))
}

/// `clients` keep-alive connections spread over `threads` event-loop threads (the shape
/// of `wrk -t2 -c32`), each sending `target` back to back, for 1 s of warm-up and then
/// `secs` measured.
fn drive(
    addr: &str,
    pid: u32,
    target: &str,
    header: &str,
    (clients, threads): (usize, usize),
    secs: u64,
) -> Outcome {
    let extra = if header.is_empty() {
        String::new()
    } else {
        format!("{header}\r\n")
    };
    let request =
        Arc::new(format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\n{extra}\r\n").into_bytes());
    let run = |duration: Duration| {
        let stop = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let n = clients / threads + usize::from(t < clients % threads);
                let (addr, request, stop) = (addr.to_string(), request.clone(), stop.clone());
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a client runtime");
                    rt.block_on(async move {
                        let tasks: Vec<_> = (0..n)
                            .map(|_| {
                                tokio::spawn(event_client(
                                    addr.clone(),
                                    request.clone(),
                                    stop.clone(),
                                ))
                            })
                            .collect();
                        let mut all = Vec::new();
                        for task in tasks {
                            if let Ok(r) = task.await {
                                all.push(r);
                            }
                        }
                        all
                    })
                })
            })
            .collect();
        let cpu0 = cpu_ticks(pid);
        let t0 = Instant::now();
        std::thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
        let mut out = Outcome {
            requests: 0,
            errors: 0,
            non_200: 0,
            wall: Duration::ZERO,
            cpu_secs: 0.0,
            latencies_ms: Vec::new(),
        };
        // The daemon's CPU is read when the clients stop sending, before joining them.
        out.cpu_secs = cpu_ticks(pid).saturating_sub(cpu0) as f64 / CLOCK_TICKS_PER_SEC;
        out.wall = t0.elapsed();
        for h in handles {
            for (lat, e, n) in h.join().unwrap_or_default() {
                out.requests += lat.len() + n;
                out.errors += e;
                out.non_200 += n;
                out.latencies_ms.extend(lat);
            }
        }
        out
    };
    run(Duration::from_secs(1));
    run(Duration::from_secs(secs))
}

/// `/health` latency (new connection per probe) while 48 clients read 1,000-row lists.
fn health_under_load(addr: &str, header: &str, secs: u64) -> (Vec<f64>, usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..48)
        .map(|_| {
            let (addr, header, stop) = (addr.to_string(), header.to_string(), stop.clone());
            std::thread::spawn(move || {
                let mut served = 0;
                if let Ok(mut c) = Client::connect(&addr, "/orders?limit=1000", &header) {
                    while !stop.load(Ordering::Relaxed) {
                        match c.round_trip() {
                            Ok(200) => served += 1,
                            Ok(_) => {}
                            Err(_) => break,
                        }
                    }
                }
                served
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let mut probes = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(secs) {
        let t = Instant::now();
        if let Ok((200, _)) = support::http_get(addr, "/health", Duration::from_secs(10)) {
            probes.push(t.elapsed().as_secs_f64() * 1000.0);
        } else {
            probes.push(f64::INFINITY);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let served = readers.into_iter().filter_map(|r| r.join().ok()).sum();
    (probes, served)
}

/// Waits until `/status` counts `n` accounts, every one `active`, then as long again as
/// the first cycles take to spread (5 s + 3 ms per account, at most 60 s): the
/// measurement starts on a settled daemon.
fn wait_all_active(addr: &str, header: &str, n: usize) {
    let started = Instant::now();
    loop {
        let mut c = Client::connect(addr, "/status?limit=1", header).expect("connect");
        let body = c.round_trip_body().unwrap_or_default();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let active = v["accounts_summary"]["by_state"]["active"]
            .as_u64()
            .unwrap_or(0);
        if active as usize >= n {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "{active} of {n} accounts active after 10 minutes"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let spread = Duration::from_millis((5_000 + 3 * n as u64).min(60_000));
    println!(
        "{n} accounts active after {:.0} s; waiting {} s for their first cycles",
        started.elapsed().as_secs_f64(),
        spread.as_secs()
    );
    std::thread::sleep(spread + Duration::from_secs(2));
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("read_path: run with `cargo bench --bench read_path` (see benches/read_path.rs)");
        return;
    }
    let clients: usize = knob("VIBEX_READ_CLIENTS", 32);
    let threads: usize = knob("VIBEX_READ_THREADS", 2).clamp(1, clients.max(1));
    let secs: u64 = knob("VIBEX_READ_SECONDS", 10);
    let rows: usize = knob("VIBEX_READ_ROWS", 1000);
    let accounts: usize = knob("VIBEX_READ_ACCOUNTS", 1).max(1);
    let paths: String = knob(
        "VIBEX_READ_PATHS",
        "/orders?limit=100,/trades?limit=100".to_string(),
    );
    let auth: String = knob("VIBEX_READ_AUTH", "key".to_string());
    let wide = "{per_second: 1000000, burst: 1000000}";
    let (header, extra_yaml) = match auth.as_str() {
        "none" => (
            String::new(),
            format!("api:\n  rate_limit:\n    per_ip: {wide}\n"),
        ),
        "key" => {
            let key = vibex::api::auth::generate_key().expect("a fresh key");
            let digest = hex::encode(vibex::api::auth::key_digest(&key));
            (
                format!("X-API-Key: {key}"),
                format!(
                    "api:\n  rate_limit:\n    per_key: {wide}\n  keys:\n    \
                     - {{name: bench, role: read, key_sha256: {digest}}}\n"
                ),
            )
        }
        other => panic!("VIBEX_READ_AUTH={other:?}: expected key or none"),
    };

    let venue = fake_venue::FakeVenue::start();
    let work = tempfile::tempdir().expect("temp dir");
    // Under the system temp directory: the server runs as `postgres` when we are root.
    let pg_dir = std::env::temp_dir().join(format!("vibex-read-path-{}", std::process::id()));
    let pg = vibex::db::embedded::EmbeddedPostgres::start(&pg_dir).expect("private PostgreSQL");
    let url = pg.url();
    let mut yaml = format!("database_url: \"{url}\"\n{extra_yaml}\naccounts:\n");
    for i in 1..=accounts {
        yaml.push_str(&format!(
            "  - id: a{i}\n    asterdex: {{ base_url: {} }}\n    llm_model: builtin/hold\n    assets: [BTC, ETH]\n    interval: 1h\n",
            venue.base_url()
        ));
    }
    std::fs::write(work.path().join("accounts.yaml"), yaml).expect("accounts file");
    let (mut child, addr) = support::spawn_daemon(work.path(), "info", None);
    if let Err(e) = support::wait_healthy(&mut child, &addr, Duration::from_secs(120)) {
        panic!(
            "{e}; stderr:\n{}",
            support::tail(&work.path().join("stderr.txt"), 30)
        );
    }
    seed::orders_and_fills(&url, "a1", rows).expect("seed");
    if accounts > 1 {
        wait_all_active(&addr, &header, accounts);
    }
    let pid = child.id();
    println!(
        "read_path: daemon {}, {rows} orders + {rows} fills, {clients} keep-alive clients on {threads} event-loop threads, {secs} s per target, {}",
        env!("CARGO_BIN_EXE_vibex"),
        if header.is_empty() {
            "no key (loopback)"
        } else {
            "every request with a read key (X-API-Key)"
        }
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("machine load average at start: {}", load.trim());
    println!();
    let idle0 = cpu_ticks(pid);
    let idle_t = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let idle_rate = cpu_ticks(pid).saturating_sub(idle0) as f64
        / CLOCK_TICKS_PER_SEC
        / idle_t.elapsed().as_secs_f64();
    println!(
        "idle daemon: {:.2} ms of CPU per second (subtracted for \"net\")",
        idle_rate * 1000.0
    );
    println!();
    println!("| target | clients | requests | req/s | daemon CPU/req (ms) | net CPU/req (ms) | p50 (ms) | p99 (ms) | non-200 | errors |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for target in paths.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let o = drive(&addr, pid, target, &header, (clients, threads), secs);
        let lat = support::sorted(&o.latencies_ms);
        let per_req = |cpu: f64| {
            if o.requests > 0 {
                cpu * 1000.0 / o.requests as f64
            } else {
                f64::NAN
            }
        };
        println!(
            "| `{target}` | {clients} | {} | {:.0} | {:.3} | {:.3} | {:.2} | {:.2} | {} | {} |",
            o.requests,
            o.requests as f64 / o.wall.as_secs_f64(),
            per_req(o.cpu_secs),
            per_req((o.cpu_secs - idle_rate * o.wall.as_secs_f64()).max(0.0)),
            support::percentile(&lat, 50.0),
            support::percentile(&lat, 99.0),
            o.non_200,
            o.errors
        );
        if o.non_200 > 0 {
            println!(
                "  ^ {} answers were not 200: these figures are not the read path's",
                o.non_200
            );
        }
    }
    let (probes, served) = health_under_load(&addr, &header, secs.min(10));
    let probes = support::sorted(&probes);
    println!();
    println!(
        "/health while 48 clients read /orders?limit=1000: {} probes, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({served} lists served)",
        probes.len(),
        support::percentile(&probes, 50.0),
        support::percentile(&probes, 99.0),
        probes.last().copied().unwrap_or(f64::NAN)
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("machine load average at end: {}", load.trim());
    let (exit, _) = support::terminate(&mut child);
    if exit.is_none() {
        println!("the daemon did not exit within its shutdown deadline");
    }
    drop(pg);
}
