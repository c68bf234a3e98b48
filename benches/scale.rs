//! Scale of the real daemon: N paper accounts (`builtin/hold`, BTC/ETH/SOL) on the
//! loopback fake venue, the release `vibex` binary with its embedded PostgreSQL, for a
//! given cycle interval and duration, optionally under an open-file limit like
//! `ulimit -n`. A small harness (`harness = false`) that prints one markdown table row
//! per run, after the details of each run.
//!
//! Run: `benches/scale.sh --accounts 100,1000 --interval 5s --seconds 60 [--ulimit 1024]`
//! or `cargo bench --bench scale -- <the same flags>`; every flag also reads an
//! environment variable: `VIBEX_SCALE_ACCOUNTS` (default `100`), `VIBEX_SCALE_INTERVAL`
//! (`5s`), `VIBEX_SCALE_SECONDS` (`60`), `VIBEX_SCALE_ULIMIT` (unset: the caller's
//! limits), `VIBEX_SCALE_WARMUP` (seconds; default the larger of two intervals and a
//! quarter of the run, at most half of it), `VIBEX_SCALE_STARTUP_DEADLINE` (seconds;
//! default 120 + 30 ms per account + two intervals), `VIBEX_SCALE_KEEP=1` (keep the
//! run's directory: accounts.yaml, logs/, data/, stdout/stderr). Without `--bench`
//! (e.g. `cargo test --benches`) it only prints how to run it.
//!
//! One run:
//! 1. writes the accounts file into a fresh temporary directory and starts
//!    `vibex --accounts accounts.yaml run` there (no `DATABASE_URL`: the private cluster
//!    under `./data`), `VIBEX_LOG_LEVEL=info`, with `RLIMIT_NOFILE` set to the `--ulimit`
//!    value (soft and hard, as a shell's `ulimit -n` does) when given;
//! 2. start-up: reads `logs/trading.log` as it grows until every account has completed a
//!    cycle (`GET /health` tells that the daemon answers; `/status` is asked only at the
//!    end, so that the bench does not load a daemon of 10,000 accounts itself). The
//!    start-up time is spawn → that moment. It fails (and says so in the table) when
//!    the daemon exits, panics (a `panicked at` line on its stderr), stops answering
//!    HTTP for 20 s, or the start-up deadline passes;
//! 3. the run: `--seconds` from the end of start-up, sampling once a second the
//!    daemon's RSS, threads, open files (`/proc/<pid>/fd`) and CPU time and those of its
//!    postgres processes, and `GET /health` every 5 s (the same failure rules);
//! 4. SIGTERM, the exit time, and whether any postgres process outlived the daemon;
//! 5. reads every `cycle completed` line of `logs/` (`duration_ms`, `cycle_id`), then
//!    opens the cluster again (the daemon's own embedded-database code) and reads every
//!    `equity_snapshots` row: the write lag of a cycle is `recorded_at - ts` (`ts` is
//!    the cycle's valuation at its end, `recorded_at` the database's clock when the row
//!    was written), and each completed cycle's `cycle_id` must have its row.
//!
//! Figures: "RSS start/warm/end" is the daemon's RSS at the end of start-up, after the
//! warm-up, and at the end; "RSS slope" the least-squares slope of the samples after
//! the warm-up; "threads" and "fds" at the end (the maxima are in the details); "CPU %"
//! the daemon's user+sys time over the run (after start-up) as % of one core; "cycle
//! p50/p99" the `duration_ms` of every completed cycle (the account actor's wall time
//! of one cycle: hubs, decision, risk, paper execution); "write lag" over every row of
//! the run, start-up and shutdown included; "cycles done / rows" the completed cycles
//! in the logs vs the equity rows at the end (the details list cycles with no row).
//! The fake venue is checked too: requests per second, its handling time, and each
//! market-data hub's polls (paper accounts never call the venue; only the three hubs
//! do, whatever the number of accounts). Requires the PostgreSQL server binaries (see
//! README.md) and Linux (`/proc`).

#[path = "../tests/common/fake_venue.rs"]
mod fake_venue;
#[path = "../tests/common/loopback.rs"]
mod loopback;
#[path = "support/mod.rs"]
mod support;
use support::*;

use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

/// HTTP silence after which the daemon counts as hung.
const SILENCE_LIMIT: Duration = Duration::from_secs(20);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        println!(
            "scale: runs the release daemon for minutes; run it with `benches/scale.sh` or \
             `cargo bench --bench scale -- --accounts 100 --interval 5s --seconds 60`"
        );
        return;
    }
    let knobs = match Knobs::read(&args) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("scale: {e}");
            std::process::exit(2);
        }
    };
    let venue = fake_venue::FakeVenue::start();
    println!(
        "scale: daemon {}, fake venue {}, accounts {:?}, interval {}, {} s per run{}",
        env!("CARGO_BIN_EXE_vibex"),
        venue.base_url(),
        knobs.accounts,
        knobs.interval_label,
        knobs.seconds,
        knobs
            .ulimit
            .map(|n| format!(", ulimit -n {n}"))
            .unwrap_or_default()
    );
    let mut runs = Vec::new();
    for &n in &knobs.accounts {
        let run = run_one(n, &knobs, &venue);
        run.print_details();
        runs.push(run);
    }
    print_table(&runs);
    if runs.iter().any(|r| r.failure.is_some()) {
        std::process::exit(1);
    }
}

// ---- knobs ----------------------------------------------------------------------------

/// What to run, from flags or `VIBEX_SCALE_*`.
struct Knobs {
    accounts: Vec<usize>,
    interval_label: String,
    interval: Duration,
    seconds: u64,
    ulimit: Option<u64>,
    warmup: Option<u64>,
    startup_deadline: Option<u64>,
    keep: bool,
}

impl Knobs {
    fn read(args: &[String]) -> Result<Knobs, String> {
        let value = |flag: &str, env: &str| -> Option<String> {
            args.iter()
                .position(|a| a == flag)
                .and_then(|i| args.get(i + 1).cloned())
                .or_else(|| std::env::var(env).ok())
                .filter(|v| !v.trim().is_empty())
        };
        let number = |flag: &str, env: &str| -> Result<Option<u64>, String> {
            value(flag, env)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map_err(|e| format!("{flag} / {env}: {v:?} is not a whole number ({e})"))
                })
                .transpose()
        };
        let accounts_raw =
            value("--accounts", "VIBEX_SCALE_ACCOUNTS").unwrap_or_else(|| "100".into());
        let accounts = accounts_raw
            .split(',')
            .map(|s| {
                s.trim()
                    .replace('_', "")
                    .parse::<usize>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| {
                        format!("--accounts {accounts_raw:?}: {s:?} is not a positive count")
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let interval_label =
            value("--interval", "VIBEX_SCALE_INTERVAL").unwrap_or_else(|| "5s".into());
        let interval = humantime::parse_duration(interval_label.trim())
            .map_err(|e| format!("--interval {interval_label:?}: {e}"))?;
        let seconds = number("--seconds", "VIBEX_SCALE_SECONDS")?.unwrap_or(60);
        if seconds == 0 {
            return Err("--seconds must be at least 1".into());
        }
        Ok(Knobs {
            accounts,
            interval_label: interval_label.trim().to_string(),
            interval,
            seconds,
            ulimit: number("--ulimit", "VIBEX_SCALE_ULIMIT")?,
            warmup: number("--warmup", "VIBEX_SCALE_WARMUP")?,
            startup_deadline: number("--startup-deadline", "VIBEX_SCALE_STARTUP_DEADLINE")?,
            keep: args.iter().any(|a| a == "--keep")
                || std::env::var("VIBEX_SCALE_KEEP").is_ok_and(|v| v == "1"),
        })
    }

    fn warmup(&self) -> Duration {
        let run = self.seconds as f64;
        let default = (2.0 * self.interval.as_secs_f64())
            .max(run / 4.0)
            .min(run / 2.0);
        self.warmup
            .map(|s| Duration::from_secs(s.min(self.seconds)))
            .unwrap_or_else(|| Duration::from_secs_f64(default))
    }

    /// Start-up grows with the number of accounts (10,000 accounts: 420 s plus two
    /// intervals).
    fn startup_deadline(&self, n: usize) -> Duration {
        self.startup_deadline
            .map(Duration::from_secs)
            .unwrap_or_else(|| {
                Duration::from_secs(120) + Duration::from_millis(30 * n as u64) + self.interval * 2
            })
    }
}

fn accounts_yaml(n: usize, interval: &str, venue: &str) -> String {
    let mut y = String::with_capacity(n * 160);
    y.push_str("accounts:\n");
    for i in 1..=n {
        let _ = write!(
            y,
            "  - id: scale-{i:05}\n    mode: paper\n    asterdex:\n      base_url: {venue}\n    \
             llm_model: builtin/hold\n    assets: [BTC, ETH, SOL]\n    interval: {interval}\n"
        );
    }
    y
}

// ---- one run ----------------------------------------------------------------------------

#[derive(Default)]
struct Run {
    accounts: usize,
    interval: String,
    seconds: u64,
    ulimit: Option<u64>,
    /// Why the run did not complete, when it did not.
    failure: Option<String>,
    /// Spawn → first `/status` answer.
    answering_after: Option<Duration>,
    /// Spawn → every account has completed a cycle.
    startup: Option<Duration>,
    /// Accounts that had completed a cycle when start-up ended (or failed).
    cycling: usize,
    /// Samples, `t` in seconds since spawn.
    samples: Vec<Sample>,
    /// `t` of the end of start-up and of the warm-up.
    t_started: f64,
    t_warm: f64,
    /// Health probes during the run that got no 200.
    health_misses: usize,
    /// Sum of `cycles_completed` over the final `/status`.
    status_cycles: u64,
    skipped: u64,
    failed: u64,
    restarts: u64,
    hubs: Vec<String>,
    sigterm_exit: Option<Duration>,
    exit_status: String,
    pg_left: usize,
    /// `(cycle_id, duration_ms)` of every `cycle completed` line.
    cycles: Vec<(String, f64)>,
    /// `(unix seconds, duration_ms)` of every `cycle completed` line.
    cycle_times: Vec<(f64, f64)>,
    /// Accounts with at least one `cycle completed` line.
    logged_accounts: usize,
    logs: LogScan,
    /// Every equity row: `(ts as unix seconds, write lag in seconds)`.
    lags: Vec<(f64, f64)>,
    row_cycles: HashSet<String>,
    rows: usize,
    db_error: Option<String>,
    fake_requests: usize,
    fake_handled_ms: Vec<f64>,
    fake_paths: BTreeMap<String, usize>,
    run_secs: f64,
    stderr_tail: String,
    dir: Option<PathBuf>,
}

/// Reads what the daemon wrote to stderr since the last look, for a panic.
struct StderrWatch {
    path: PathBuf,
    offset: u64,
    carry: String,
}

impl StderrWatch {
    /// The first panic message seen (its line and the next), if any.
    fn panic(&mut self) -> Option<String> {
        let mut file = std::fs::File::open(&self.path).ok()?;
        file.seek(SeekFrom::Start(self.offset)).ok()?;
        let mut fresh = String::new();
        let read = file.read_to_string(&mut fresh).ok()?;
        self.offset += read as u64;
        let text = std::mem::take(&mut self.carry) + &fresh;
        let lines: Vec<&str> = text.lines().collect();
        if let Some(i) = lines.iter().position(|l| l.contains("panicked at")) {
            // `thread 'main' (pid) panicked at /…/actix-rt-2.15.0/src/arbiter.rs:110:25:`
            // then the message on the next line.
            let at = lines[i]
                .split("panicked at ")
                .nth(1)
                .unwrap_or_default()
                .trim()
                .trim_end_matches(':');
            let parts: Vec<&str> = at.rsplitn(4, '/').collect();
            let place: Vec<&str> = parts.iter().take(3).rev().copied().collect();
            let message = lines.get(i + 1).copied().unwrap_or_default().trim();
            return Some(format!("{message} (panic at {})", place.join("/")));
        }
        // Keep the last line: a panic's message may come in the next read.
        self.carry = lines.last().map(|l| l.to_string()).unwrap_or_default();
        None
    }
}

/// The accounts that completed a cycle, read from `logs/trading.log` as it grows (the
/// daemon is not asked: a `/status` of 10,000 accounts would itself load it).
struct CycleWatch {
    path: PathBuf,
    offset: u64,
    carry: String,
    accounts: HashSet<String>,
}

impl CycleWatch {
    fn update(&mut self) {
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return;
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut fresh = String::new();
        let Ok(read) = file.read_to_string(&mut fresh) else {
            return;
        };
        self.offset += read as u64;
        let text = std::mem::take(&mut self.carry) + &fresh;
        let complete = text.ends_with('\n');
        let mut lines: Vec<&str> = text.lines().collect();
        if !complete {
            self.carry = lines.pop().unwrap_or_default().to_string();
        }
        for line in lines {
            if !line.contains("\"cycle completed\"") {
                continue;
            }
            if let Ok(v) = serde_json::from_str::<Value>(line) {
                if let Some(a) = v.get("account_id").and_then(Value::as_str) {
                    self.accounts.insert(a.to_string());
                }
            }
        }
    }
}

fn run_one(n: usize, knobs: &Knobs, venue: &fake_venue::FakeVenue) -> Run {
    let tmp = tempfile::Builder::new()
        .prefix("vibex-scale-")
        .tempdir()
        .expect("temp dir");
    let dir = tmp.path().to_path_buf();
    std::fs::write(
        dir.join("accounts.yaml"),
        accounts_yaml(n, &knobs.interval_label, venue.base_url()),
    )
    .expect("accounts.yaml");
    let mut run = Run {
        accounts: n,
        interval: knobs.interval_label.clone(),
        seconds: knobs.seconds,
        ulimit: knobs.ulimit,
        ..Run::default()
    };
    println!(
        "\n== {n} accounts, interval {}, {} s{}: starting the daemon in {}",
        knobs.interval_label,
        knobs.seconds,
        knobs
            .ulimit
            .map(|u| format!(", ulimit -n {u}"))
            .unwrap_or_default(),
        dir.display()
    );
    venue.clear_request_log();
    let spawned = Instant::now();
    let (mut child, addr) = spawn_daemon(&dir, "info", knobs.ulimit);
    let mut watch = StderrWatch {
        path: dir.join("stderr.txt"),
        offset: 0,
        carry: String::new(),
    };
    let mut pg_pids: HashSet<u32> = HashSet::new();
    let status_timeout = Duration::from_secs(10 + n as u64 / 1000);

    let mut cycles = CycleWatch {
        path: dir.join("logs").join("trading.log"),
        offset: 0,
        carry: String::new(),
        accounts: HashSet::new(),
    };
    // Start-up: until every account has completed a cycle.
    let deadline = spawned + knobs.startup_deadline(n);
    let tick = if n > 1000 {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(1)
    };
    let mut last_answer: Option<Instant> = None;
    loop {
        let next = Instant::now() + tick;
        // Sampled first: a failed run still shows what the daemon had grown to.
        let (sample, pids) = sample_tree(child.id(), spawned.elapsed().as_secs_f64());
        pg_pids.extend(pids);
        run.samples.push(sample);
        if let Some(why) = stopped(&mut child, &mut watch, last_answer) {
            run.failure = Some(format!("during start-up: {why}"));
            break;
        }
        if let Ok((200, _)) = http_get(&addr, "/health", status_timeout) {
            last_answer = Some(Instant::now());
            run.answering_after.get_or_insert(spawned.elapsed());
        }
        cycles.update();
        run.cycling = cycles.accounts.len();
        if run.cycling >= n {
            run.startup = Some(spawned.elapsed());
            break;
        }
        if Instant::now() > deadline {
            run.failure = Some(format!(
                "not every account completed a cycle within the start-up deadline of {} s",
                knobs.startup_deadline(n).as_secs()
            ));
            break;
        }
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    match &run.failure {
        Some(f) => println!("   FAILED {f}"),
        None => println!(
            "   every account cycling after {:.1} s; running for {} s",
            run.startup.unwrap_or_default().as_secs_f64(),
            knobs.seconds
        ),
    }

    // The run.
    if run.failure.is_none() {
        let started = Instant::now();
        run.t_started = spawned.elapsed().as_secs_f64();
        run.t_warm = run.t_started + knobs.warmup().as_secs_f64();
        let window = Duration::from_secs(knobs.seconds);
        let mut next = started;
        let mut ticks = 0u64;
        while started.elapsed() < window {
            next += Duration::from_secs(1);
            let (sample, pids) = sample_tree(child.id(), spawned.elapsed().as_secs_f64());
            pg_pids.extend(pids);
            run.samples.push(sample);
            if let Some(why) = stopped(&mut child, &mut watch, last_answer) {
                run.failure = Some(format!(
                    "{:.0} s into the run: {why}",
                    started.elapsed().as_secs_f64()
                ));
                break;
            }
            if ticks % 5 == 0 {
                match http_get(&addr, "/health", Duration::from_secs(5)) {
                    Ok((200, _)) => last_answer = Some(Instant::now()),
                    Ok(_) => {
                        last_answer = Some(Instant::now());
                        run.health_misses += 1;
                    }
                    Err(_) => run.health_misses += 1,
                }
            }
            ticks += 1;
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let (sample, _) = sample_tree(child.id(), spawned.elapsed().as_secs_f64());
        run.samples.push(sample);
    }
    if let Ok((200, body)) = http_get(&addr, "/status", status_timeout) {
        if let Ok(status) = serde_json::from_str::<Value>(&body) {
            final_counts(&mut run, &status);
        }
    }

    // Shutdown.
    let (exit_after, exit_status) = terminate(&mut child);
    run.sigterm_exit = exit_after;
    run.exit_status = exit_status;
    run.run_secs = spawned.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(300));
    run.pg_left = pg_pids
        .iter()
        .filter(|p| Path::new(&format!("/proc/{p}")).exists())
        .count();
    run.stderr_tail = tail(&dir.join("stderr.txt"), 6);
    let fake_log = venue.request_log();
    run.fake_requests = fake_log.len();
    run.fake_handled_ms = fake_log
        .iter()
        .map(|r| r.handled_in.as_secs_f64() * 1000.0)
        .collect();
    for r in &fake_log {
        *run.fake_paths.entry(r.path.clone()).or_default() += 1;
    }

    read_logs(&mut run, &dir);
    read_rows(&mut run, &dir);
    if knobs.keep {
        run.dir = Some(tmp.keep());
    }
    run
}

/// Why the daemon counts as stopped: exited, panicked, or silent for too long.
fn stopped(
    child: &mut Child,
    watch: &mut StderrWatch,
    last_answer: Option<Instant>,
) -> Option<String> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(format!("vibex exited ({status})"));
    }
    if let Some(panic) = watch.panic() {
        return Some(format!("vibex panicked: {}", shorten_keep_digits(&panic)));
    }
    match last_answer {
        Some(t) if t.elapsed() > SILENCE_LIMIT => Some(format!(
            "vibex stopped answering HTTP (nothing for {} s)",
            SILENCE_LIMIT.as_secs()
        )),
        _ => None,
    }
}

fn shorten_keep_digits(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(240)
        .collect()
}

fn final_counts(run: &mut Run, status: &Value) {
    for a in accounts(status) {
        let n = |k: &str| a.get(k).and_then(Value::as_u64).unwrap_or(0);
        run.status_cycles += n("cycles_completed");
        run.skipped += n("cycles_skipped");
        run.failed += n("cycles_failed");
        run.restarts += n("restarts");
    }
    if let Some(hubs) = status.get("market_data").and_then(Value::as_array) {
        for h in hubs {
            let s = |k: &str| h.get(k).map(|v| v.to_string()).unwrap_or_default();
            run.hubs.push(format!(
                "{} poll {} ms, ok {}, failed {}, failing now {}, watchers {}",
                h.get("symbol").and_then(Value::as_str).unwrap_or("?"),
                s("poll_ms"),
                s("polls_ok"),
                s("polls_failed"),
                s("consecutive_failures"),
                s("watchers"),
            ));
        }
    }
}

fn read_logs(run: &mut Run, dir: &Path) {
    let mut cycles = Vec::new();
    let mut times = Vec::new();
    let mut accounts = HashSet::new();
    run.logs = scan_logs(dir, 8, |_, v| {
        if v.get("msg").and_then(Value::as_str) != Some("cycle completed") {
            return;
        }
        if let Some(a) = v.get("account_id").and_then(Value::as_str) {
            accounts.insert(a.to_string());
        }
        let id = v
            .get("cycle_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Some(ms) = v.get("duration_ms").and_then(Value::as_f64) {
            cycles.push((id.to_string(), ms));
            let at = v
                .get("ts")
                .and_then(Value::as_str)
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
            if let Some(at) = at {
                times.push((at.timestamp_millis() as f64 / 1000.0, ms));
            }
        }
    });
    run.cycles = cycles;
    run.cycle_times = times;
    run.logged_accounts = accounts.len();
}

/// Opens the run's cluster again (the daemon has stopped) and reads every equity row.
fn read_rows(run: &mut Run, dir: &Path) {
    use diesel::sql_types::{Double, Nullable, Text};
    use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl};
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Nullable<Text>)]
        cycle_id: Option<String>,
        #[diesel(sql_type = Double)]
        ts: f64,
        #[diesel(sql_type = Double)]
        lag: f64,
    }
    let read = || -> Result<Vec<Row>, String> {
        let pg = vibex::db::embedded::EmbeddedPostgres::start(&dir.join("data/postgres"))
            .map_err(|e| e.to_string())?;
        let mut conn = PgConnection::establish(&pg.url()).map_err(|e| e.to_string())?;
        diesel::sql_query(
            "SELECT cycle_id::text AS cycle_id, extract(epoch FROM ts)::float8 AS ts, \
             extract(epoch FROM recorded_at - ts)::float8 AS lag FROM equity_snapshots",
        )
        .load::<Row>(&mut conn)
        .map_err(|e| format!("{e} (a tree without equity_snapshots.recorded_at?)"))
    };
    match read() {
        Ok(rows) => {
            run.rows = rows.len();
            for r in rows {
                run.lags.push((r.ts, r.lag));
                if let Some(id) = r.cycle_id {
                    run.row_cycles.insert(id);
                }
            }
        }
        Err(e) => run.db_error = Some(e),
    }
}

// ---- figures ----------------------------------------------------------------------------

impl Run {
    fn sample_at(&self, t: f64) -> Option<Sample> {
        self.samples.iter().find(|s| s.t >= t).copied()
    }

    fn last(&self) -> Sample {
        self.samples.last().copied().unwrap_or_default()
    }

    /// Least-squares slope of the daemon's RSS after the warm-up, MB per minute.
    fn rss_slope(&self) -> Option<f64> {
        self.startup?;
        let pts: Vec<(f64, f64)> = self
            .samples
            .iter()
            .filter(|s| s.t >= self.t_warm)
            .map(|s| (s.t, mb(s.daemon_rss_kb)))
            .collect();
        if pts.len() < 3 {
            return None;
        }
        let n = pts.len() as f64;
        let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
        let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
        let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
        let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
        (sxx > 0.0).then(|| sxy / sxx * 60.0)
    }

    /// CPU seconds of the daemon (or postgres) over the run after start-up.
    fn cpu_secs(&self, pick: fn(&Sample) -> u64) -> Option<(f64, f64)> {
        let a = self.sample_at(self.t_started)?;
        let b = self.last();
        let secs = b.t - a.t;
        (secs > 0.0 && self.startup.is_some()).then(|| {
            let cpu = pick(&b).saturating_sub(pick(&a)) as f64 / CLOCK_TICKS_PER_SEC;
            (cpu, cpu / secs * 100.0)
        })
    }

    /// The value at the end, or the maximum (marked) when the run failed.
    fn threads_or_fds(&self, pick: fn(&Sample) -> u64) -> String {
        if self.failure.is_some() {
            format!("max {}", self.samples.iter().map(pick).max().unwrap_or(0))
        } else {
            pick(&self.last()).to_string()
        }
    }

    fn cycle_ms(&self) -> Vec<f64> {
        sorted(&self.cycles.iter().map(|c| c.1).collect::<Vec<_>>())
    }

    fn lag_s(&self) -> Vec<f64> {
        sorted(&self.lags.iter().map(|l| l.1).collect::<Vec<_>>())
    }

    /// Completed cycles (log lines) whose equity row is not in the database.
    fn missing_rows(&self) -> usize {
        self.cycles
            .iter()
            .filter(|(id, _)| !self.row_cycles.contains(id))
            .count()
    }

    fn print_details(&self) {
        let n = self.accounts;
        println!("-- {n} accounts: details");
        if let Some(f) = &self.failure {
            println!("   FAILED {f}");
            println!(
                "   accounts that had completed a cycle: {} of {n} by the logs, {} by the last /status answer",
                self.logged_accounts, self.cycling
            );
            println!("   daemon stderr (last lines):");
            for l in self.stderr_tail.lines() {
                println!("     | {}", shorten_keep_digits(l));
            }
        }
        println!(
            "   first /health answer after {}; every account cycling after {}",
            secs(self.answering_after),
            secs(self.startup)
        );
        let series: Vec<String> = self
            .samples
            .iter()
            .filter(|s| s.t >= self.t_started)
            .step_by(10)
            .map(|s| format!("{:.0}s {:.0}", s.t, mb(s.daemon_rss_kb)))
            .collect();
        println!(
            "   daemon RSS every 10 s (t since spawn, MB): {}",
            series.join(", ")
        );
        let max = |f: fn(&Sample) -> u64| self.samples.iter().map(f).max().unwrap_or(0);
        println!(
            "   daemon at the end: RSS {:.1} MB (VmHWM {:.1}), threads {} (max {}), open fds {} (max {}); postgres: {} processes, PSS {:.1} MB",
            mb(self.last().daemon_rss_kb),
            mb(self.last().daemon_hwm_kb),
            self.last().daemon_threads,
            max(|s| s.daemon_threads),
            self.last().daemon_fds,
            max(|s| s.daemon_fds),
            self.last().pg_procs,
            mb(self.last().pg_pss_kb),
        );
        if let (Some((d, dp)), Some((p, pp))) = (
            self.cpu_secs(|s| s.daemon_cpu_ticks),
            self.cpu_secs(|s| s.pg_cpu_ticks),
        ) {
            println!(
                "   CPU over the run: daemon {d:.1} s ({dp:.1} % of one core), postgres {p:.1} s ({pp:.1} %)"
            );
        }
        let c = self.cycle_ms();
        println!(
            "   completed cycles (log lines): {}, duration p50 {:.2} ms p99 {:.2} ms max {:.2} ms; /status at the end: completed {} skipped {} failed {} restarts {}",
            c.len(),
            percentile(&c, 50.0),
            percentile(&c, 99.0),
            c.last().copied().unwrap_or(f64::NAN),
            self.status_cycles,
            self.skipped,
            self.failed,
            self.restarts
        );
        println!("   cycle duration by time of the cycle (p50 / p99 / max ms, cycles):");
        for line in time_buckets(&self.cycle_times, 2) {
            println!("     {line}");
        }
        match &self.db_error {
            Some(e) => println!("   equity rows: could not be read: {e}"),
            None => {
                let l = self.lag_s();
                println!(
                    "   equity rows {}; completed cycles without a row: {}; write lag p50 {:.3} s p99 {:.3} s max {:.3} s",
                    self.rows,
                    self.missing_rows(),
                    percentile(&l, 50.0),
                    percentile(&l, 99.0),
                    l.last().copied().unwrap_or(f64::NAN)
                );
                println!("   write lag by time of the cycle (p50 / p99 / max s, rows):");
                for line in time_buckets(&self.lags, 3) {
                    println!("     {line}");
                }
            }
        }
        let h = sorted(&self.fake_handled_ms);
        println!(
            "   fake venue: {} requests in {:.0} s ({:.1}/s; its log keeps the last 100,000), handled p99 {:.2} ms max {:.2} ms; by path {:?}",
            self.fake_requests,
            self.run_secs,
            self.fake_requests as f64 / self.run_secs.max(1.0),
            percentile(&h, 99.0),
            h.last().copied().unwrap_or(f64::NAN),
            self.fake_paths
        );
        for hub in &self.hubs {
            println!("   hub {hub}");
        }
        println!(
            "   health probes missed during the run: {}; SIGTERM to exit: {} ({}); postgres processes left after exit: {}",
            self.health_misses,
            secs(self.sigterm_exit),
            self.exit_status,
            self.pg_left
        );
        println!("   logs/errors.log: {} lines", self.logs.error_lines);
        for (msg, count) in &self.logs.errors {
            println!("     {count:>7} × {msg}");
        }
        println!("   WARNING lines (other logs): {}", self.logs.warning_lines);
        for (msg, count) in &self.logs.warnings {
            println!("     {count:>7} × {msg}");
        }
        if let Some(dir) = &self.dir {
            println!("   kept: {}", dir.display());
        }
    }
}

/// Percentiles of `(unix seconds, value)` points in ten slices of the run's time (a
/// write lag or a cycle duration that grows, or a burst, shows here):
/// `from-to s: p50 / p99 / max (count)`, `decimals` after the point.
fn time_buckets(points: &[(f64, f64)], decimals: usize) -> Vec<String> {
    let (Some(first), Some(last)) = (
        points.iter().map(|p| p.0).min_by(f64::total_cmp),
        points.iter().map(|p| p.0).max_by(f64::total_cmp),
    ) else {
        return Vec::new();
    };
    let width = ((last - first) / 10.0).max(1.0);
    let mut buckets: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for (ts, value) in points {
        buckets
            .entry(((ts - first) / width) as u64)
            .or_default()
            .push(*value);
    }
    buckets
        .into_iter()
        .map(|(b, values)| {
            let v = sorted(&values);
            format!(
                "{:>5.0}-{:<5.0} s: {:.d$} / {:.d$} / {:.d$} ({})",
                b as f64 * width,
                (b + 1) as f64 * width,
                percentile(&v, 50.0),
                percentile(&v, 99.0),
                v.last().copied().unwrap_or(f64::NAN),
                v.len(),
                d = decimals
            )
        })
        .collect()
}

fn secs(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.1} s", d.as_secs_f64()))
        .unwrap_or_else(|| "-".into())
}

// ---- the table --------------------------------------------------------------------------

fn print_table(runs: &[Run]) {
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!(
        "\n== scale ({build} daemon, paper accounts on builtin/hold, BTC/ETH/SOL, fake venue)\n"
    );
    println!("| accounts | interval | secs | ulimit -n | startup s | RSS MB start/warm/end | RSS slope MB/min | threads | fds | CPU % | cycle p50/p99 ms | write lag p50/p99/max s | cycles done / rows |");
    println!(
        "| ---: | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | --- | --- | --- |"
    );
    for r in runs {
        let startup = match (&r.failure, r.startup) {
            (Some(f), _) => format!(
                "FAILED after {:.0} s, {} of {} accounts had cycled: {}",
                r.run_secs - r.sigterm_exit.map_or(0.0, |d| d.as_secs_f64()),
                r.logged_accounts.max(r.cycling),
                r.accounts,
                f.chars().take(200).collect::<String>()
            ),
            (None, Some(d)) => format!("{:.1}", d.as_secs_f64()),
            (None, None) => "-".into(),
        };
        let rss = |s: Option<Sample>| {
            s.map(|s| format!("{:.0}", mb(s.daemon_rss_kb)))
                .unwrap_or_else(|| "-".into())
        };
        let started = r.startup.and_then(|_| r.sample_at(r.t_started));
        let warm = r.startup.and_then(|_| r.sample_at(r.t_warm));
        let c = r.cycle_ms();
        let l = r.lag_s();
        let cycles = if r.db_error.is_some() {
            format!("{} / ?", r.cycles.len())
        } else {
            let missing = r.missing_rows();
            format!(
                "{} / {}{}",
                r.cycles.len(),
                r.rows,
                if missing > 0 {
                    format!(" ({missing} missing)")
                } else {
                    String::new()
                }
            )
        };
        println!(
            "| {} | {} | {} | {} | {} | {}/{}/{} | {} | {} | {} | {} | {} | {} | {} |",
            r.accounts,
            r.interval,
            r.seconds,
            r.ulimit
                .map(|u| u.to_string())
                .unwrap_or_else(|| "-".into()),
            startup,
            rss(started),
            rss(warm),
            rss(Some(r.last())),
            r.rss_slope()
                .map(|s| format!("{s:+.2}"))
                .unwrap_or_else(|| "-".into()),
            r.threads_or_fds(|s| s.daemon_threads),
            r.threads_or_fds(|s| s.daemon_fds),
            r.cpu_secs(|s| s.daemon_cpu_ticks)
                .map(|c| format!("{:.1}", c.1))
                .unwrap_or_else(|| "-".into()),
            if c.is_empty() {
                "-".into()
            } else {
                format!("{:.2}/{:.2}", percentile(&c, 50.0), percentile(&c, 99.0))
            },
            if l.is_empty() {
                "-".into()
            } else {
                format!(
                    "{:.2}/{:.2}/{:.2}",
                    percentile(&l, 50.0),
                    percentile(&l, 99.0),
                    l.last().copied().unwrap_or(f64::NAN)
                )
            },
            cycles
        );
    }
    println!(
        "\nstartup: spawn → every account completed a cycle; threads/fds at the end (a failed run: the maximum); CPU: the daemon's user+sys over the run after start-up, % of one core; write lag: recorded_at - ts of every equity row"
    );
}
