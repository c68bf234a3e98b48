//! Footprint of the real daemon: memory per account, cycle overhead without the LLM, and
//! shutdown time, measured on the `vibex` binary against the loopback fake venue and the
//! embedded PostgreSQL. A small harness (`harness = false`) that prints a table.
//!
//! For each account count N (default `2,100`; override with `VIBEX_BENCH_ACCOUNTS=2,100`):
//! 1. writes an `accounts.yaml` with N paper accounts (`builtin/ema-rsi`, `[BTC, ETH]`,
//!    `interval: 1s`, venue = the fake) into a temporary directory;
//! 2. starts `vibex --accounts accounts.yaml run` there (no `DATABASE_URL`: the daemon
//!    starts its private PostgreSQL under `./data`), `API_HOST=127.0.0.1`, a free
//!    `API_PORT`, `VIBEX_LOG_LEVEL=info`, and waits for `GET /health` = 200;
//! 3. samples once a second for `VIBEX_BENCH_SECONDS` (default 30): the daemon's `VmRSS`
//!    / `VmHWM` / threads (`/proc/<pid>/status`), its CPU time, the RSS and PSS of its
//!    descendants (the postgres server and its backends), and `GET /status` — every
//!    account's `last_cycle` (each cycle id counted once) and `cycles_completed`;
//! 4. sends SIGTERM and times the exit; checks that no postgres process is left;
//! 5. summarises `logs/errors.log` and the WARNING lines of the other logs, and reads
//!    every `cycle completed` line's `duration_ms` (all cycles, not only the sampled
//!    ones) before the temporary directory is deleted.
//!
//! "Cycle overhead" is the account actor's wall time of one cycle (`duration_ms`): hub
//! round trips, decision (builtin policy, no LLM), risk, paper execution, and the actor
//! messages between them. Per-account memory is the slope between the smallest and the
//! largest N: (RSS_Nmax − RSS_Nmin) / (Nmax − Nmin), at the end of the sampling window.
//!
//! Run: `cargo bench --bench footprint` (release build; ~1 min per account count).
//! Knobs: `VIBEX_BENCH_ACCOUNTS`, `VIBEX_BENCH_SECONDS`, `VIBEX_BENCH_KEEP=1` (keep the
//! temporary directories and print where they are). Without `--bench` (e.g.
//! `cargo test --benches`) it only prints how to run it: it needs a release daemon and
//! takes minutes. Requires the PostgreSQL server binaries (see README.md) and Linux
//! (`/proc`).

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
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "footprint: runs the release daemon for minutes; run it with \
             `cargo bench --bench footprint`"
        );
        return;
    }
    let counts = env_list("VIBEX_BENCH_ACCOUNTS", &[2, 100]);
    let seconds = std::env::var("VIBEX_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(30);
    let keep = std::env::var("VIBEX_BENCH_KEEP").is_ok_and(|v| v == "1");
    let venue = fake_venue::FakeVenue::start();
    println!(
        "footprint: daemon {}, fake venue {}, accounts {counts:?}, {seconds} s per run, 2 assets, interval 1s",
        env!("CARGO_BIN_EXE_vibex"),
        venue.base_url()
    );
    let mut runs = Vec::new();
    for n in counts {
        let run = run_one(n, venue.base_url(), Duration::from_secs(seconds), keep);
        run.print_details();
        runs.push(run);
    }
    print_table(&runs);
}

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    let Ok(raw) = std::env::var(name) else {
        return default.to_vec();
    };
    let list: Vec<usize> = raw
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .unwrap_or_else(|e| panic!("{name}={raw:?}: {s:?} is not a count ({e})"))
        })
        .collect();
    assert!(
        !list.is_empty() && list.iter().all(|&n| n > 0),
        "{name}={raw:?}: give positive counts, e.g. 2,100"
    );
    list
}

// ---- one run ------------------------------------------------------------------------

#[derive(Default)]
struct Run {
    accounts: usize,
    startup: Duration,
    /// From health until every account had completed a cycle.
    all_cycling_after: Option<Duration>,
    window: Duration,
    samples: Vec<Sample>,
    /// `duration_ms` of completed cycles seen in `/status` (each cycle once).
    sampled_durations: Vec<f64>,
    /// Non-completed `last_cycle` outcomes seen in `/status`, by outcome.
    sampled_other_outcomes: BTreeMap<String, usize>,
    /// `duration_ms` of every `cycle completed` log line during the run.
    logged_durations: Vec<f64>,
    status_latency_ms: Vec<f64>,
    status_errors: usize,
    /// Per account at the end of the window: completed, skipped, failed, restarts.
    completed: Vec<u64>,
    skipped: u64,
    failed: u64,
    restarts: u64,
    last_errors: BTreeMap<String, usize>,
    sigterm_exit: Option<Duration>,
    exit_status: String,
    pg_left: usize,
    logs: LogScan,
    dir: Option<PathBuf>,
}

fn accounts_yaml(n: usize, venue: &str) -> String {
    let mut y = String::from("accounts:\n");
    for i in 1..=n {
        let _ = write!(
            y,
            "  - id: bench-{i:03}\n    mode: paper\n    asterdex:\n      base_url: {venue}\n    \
             llm_model: builtin/ema-rsi\n    assets: [BTC, ETH]\n    interval: 1s\n"
        );
    }
    y
}

fn run_one(n: usize, venue: &str, window: Duration, keep: bool) -> Run {
    let tmp = tempfile::Builder::new()
        .prefix("vibex-footprint-")
        .tempdir()
        .expect("temp dir");
    let dir = tmp.path().to_path_buf();
    std::fs::write(dir.join("accounts.yaml"), accounts_yaml(n, venue)).expect("accounts.yaml");
    println!(
        "\n== {n} accounts: starting the daemon in {}",
        dir.display()
    );
    let spawned = Instant::now();
    let (mut child, addr) = spawn_daemon(&dir, "info", None);
    let pid = child.id();
    let mut run = Run {
        accounts: n,
        window,
        ..Run::default()
    };
    if let Err(e) = wait_healthy(&mut child, &addr, Duration::from_secs(300)) {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{e}\nstderr:\n{}", tail(&dir.join("stderr.txt"), 40));
    }
    run.startup = spawned.elapsed();
    println!(
        "   healthy after {:.2} s; sampling for {} s",
        run.startup.as_secs_f64(),
        window.as_secs()
    );

    let healthy = Instant::now();
    let mut seen_cycles: HashSet<String> = HashSet::new();
    let mut pg_pids: HashSet<u32> = HashSet::new();
    let mut last_status: Option<Value> = None;
    let mut next = healthy;
    while healthy.elapsed() < window {
        next += Duration::from_secs(1);
        let t = healthy.elapsed().as_secs_f64();
        let (sample, pids) = sample_tree(pid, t);
        pg_pids.extend(pids);
        run.samples.push(sample);
        let asked = Instant::now();
        match http_get(&addr, "/status", Duration::from_secs(10)) {
            Ok((200, body)) => {
                run.status_latency_ms
                    .push(asked.elapsed().as_secs_f64() * 1000.0);
                match serde_json::from_str::<Value>(&body) {
                    Ok(status) => {
                        record_cycles(&mut run, &status, &mut seen_cycles);
                        if run.all_cycling_after.is_none() && all_cycling(&status, n) {
                            run.all_cycling_after = Some(healthy.elapsed());
                        }
                        last_status = Some(status);
                    }
                    Err(_) => run.status_errors += 1,
                }
            }
            _ => run.status_errors += 1,
        }
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    if let Some(status) = &last_status {
        final_counts(&mut run, status);
    }

    // Shutdown.
    let (exit_after, exit_status) = terminate(&mut child);
    run.sigterm_exit = exit_after;
    run.exit_status = exit_status;
    std::thread::sleep(Duration::from_millis(200));
    run.pg_left = pg_pids
        .iter()
        .filter(|p| Path::new(&format!("/proc/{p}")).exists())
        .count();

    // A fresh directory: every log line is from this run.
    read_logs(&mut run, &dir);
    if keep {
        run.dir = Some(tmp.keep());
    }
    run
}

fn record_cycles(run: &mut Run, status: &Value, seen: &mut HashSet<String>) {
    for a in accounts(status) {
        let Some(last) = a.get("last_cycle").filter(|v| !v.is_null()) else {
            continue;
        };
        let id = last
            .get("cycle_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if !seen.insert(id) {
            continue;
        }
        let outcome = last
            .get("outcome")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        match (
            outcome.as_str(),
            last.get("duration_ms").and_then(Value::as_f64),
        ) {
            ("completed", Some(ms)) => run.sampled_durations.push(ms),
            _ => *run.sampled_other_outcomes.entry(outcome).or_default() += 1,
        }
    }
}

fn final_counts(run: &mut Run, status: &Value) {
    for a in accounts(status) {
        let n = |k: &str| a.get(k).and_then(Value::as_u64).unwrap_or(0);
        run.completed.push(n("cycles_completed"));
        run.skipped += n("cycles_skipped");
        run.failed += n("cycles_failed");
        run.restarts += n("restarts");
        if let Some(e) = a.get("last_error").and_then(Value::as_str) {
            *run.last_errors.entry(shorten(e)).or_default() += 1;
        }
    }
}

// ---- logs -----------------------------------------------------------------------------

fn read_logs(run: &mut Run, dir: &Path) {
    let mut durations = Vec::new();
    run.logs = scan_logs(dir, 8, |_, v| {
        if v.get("msg").and_then(Value::as_str) == Some("cycle completed") {
            if let Some(ms) = v.get("duration_ms").and_then(Value::as_f64) {
                durations.push(ms);
            }
        }
    });
    run.logged_durations = durations;
}

// ---- report ---------------------------------------------------------------------------

impl Run {
    fn first(&self) -> Sample {
        self.samples.first().copied().unwrap_or_default()
    }
    fn last(&self) -> Sample {
        self.samples.last().copied().unwrap_or_default()
    }

    fn cpu_pct(&self, pick: fn(&Sample) -> u64) -> f64 {
        let (a, b) = (self.first(), self.last());
        let secs = b.t - a.t;
        if secs <= 0.0 {
            return f64::NAN;
        }
        (pick(&b).saturating_sub(pick(&a))) as f64 / CLOCK_TICKS_PER_SEC / secs * 100.0
    }

    fn print_details(&self) {
        let n = self.accounts;
        println!("-- {n} accounts: details");
        println!(
            "   start-up to /health 200: {:.2} s; every account cycling after {}",
            self.startup.as_secs_f64(),
            self.all_cycling_after
                .map(|d| format!("{:.1} s", d.as_secs_f64()))
                .unwrap_or_else(|| "never (within the window)".into())
        );
        let rss: Vec<String> = self
            .samples
            .iter()
            .filter(|s| (s.t.round() as u64) % 5 == 0)
            .map(|s| format!("{:.0}s {:.1}", s.t, mb(s.daemon_rss_kb)))
            .collect();
        println!("   daemon RSS over the window (MB): {}", rss.join(", "));
        let (lo, hi) = self.samples.iter().fold((u64::MAX, 0), |(lo, hi), s| {
            (lo.min(s.daemon_rss_kb), hi.max(s.daemon_rss_kb))
        });
        println!(
            "   daemon RSS first {:.1} MB, last {:.1} MB (min {:.1}, max {:.1}), VmHWM {:.1} MB, threads {}",
            mb(self.first().daemon_rss_kb),
            mb(self.last().daemon_rss_kb),
            mb(lo),
            mb(hi),
            mb(self.last().daemon_hwm_kb),
            self.last().daemon_threads
        );
        println!(
            "   postgres: {} processes, RSS {:.1} MB (sum, shared memory counted in each), PSS {:.1} MB; CPU daemon {:.1} %, postgres {:.1} % of one core",
            self.last().pg_procs,
            mb(self.last().pg_rss_kb),
            mb(self.last().pg_pss_kb),
            self.cpu_pct(|s| s.daemon_cpu_ticks),
            self.cpu_pct(|s| s.pg_cpu_ticks),
        );
        let c = sorted(&self.completed.iter().map(|&x| x as f64).collect::<Vec<_>>());
        println!(
            "   cycles completed per account: min {} / median {} / max {} (window {} s at 1 s interval); skipped {} failed {} restarts {} (all accounts)",
            c.first().copied().unwrap_or(0.0),
            percentile(&c, 50.0),
            c.last().copied().unwrap_or(0.0),
            self.window.as_secs(),
            self.skipped,
            self.failed,
            self.restarts
        );
        let d = sorted(&self.sampled_durations);
        let l = sorted(&self.logged_durations);
        println!(
            "   cycle duration from /status samples: n={} p50 {:.2} ms p99 {:.2} ms max {:.2} ms; other outcomes seen: {:?}",
            d.len(),
            percentile(&d, 50.0),
            percentile(&d, 99.0),
            d.last().copied().unwrap_or(f64::NAN),
            self.sampled_other_outcomes
        );
        println!(
            "   cycle duration from every 'cycle completed' log line: n={} p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
            l.len(),
            percentile(&l, 50.0),
            percentile(&l, 99.0),
            l.last().copied().unwrap_or(f64::NAN)
        );
        let s = sorted(&self.status_latency_ms);
        println!(
            "   GET /status latency: n={} p50 {:.1} ms p99 {:.1} ms max {:.1} ms; failed requests {}",
            s.len(),
            percentile(&s, 50.0),
            percentile(&s, 99.0),
            s.last().copied().unwrap_or(f64::NAN),
            self.status_errors
        );
        println!(
            "   SIGTERM to exit: {} ({}); postgres processes left after exit: {}",
            self.sigterm_exit
                .map(|d| format!("{:.2} s", d.as_secs_f64()))
                .unwrap_or_else(|| "-".into()),
            self.exit_status,
            self.pg_left
        );
        if !self.last_errors.is_empty() {
            println!("   accounts' last_error at the end: {:?}", self.last_errors);
        }
        println!("   logs/errors.log: {} lines", self.logs.error_lines);
        for (msg, count) in &self.logs.errors {
            println!("     {count:>6} × {msg}");
        }
        println!("   WARNING lines (other logs): {}", self.logs.warning_lines);
        for (msg, count) in &self.logs.warnings {
            println!("     {count:>6} × {msg}");
        }
        if let Some(dir) = &self.dir {
            println!("   kept: {}", dir.display());
        }
    }
}

fn print_table(runs: &[Run]) {
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!("\n== footprint ({build} daemon, builtin/ema-rsi, 2 assets, interval 1s, no LLM)");
    println!(
        "{:>8} | {:>9} | {:>9} | {:>9} | {:>13} | {:>8} | {:>8} | {:>8} | {:>10} | {:>9}",
        "accounts",
        "RSS MB",
        "HWM MB",
        "PG PSS MB",
        "cycles/acct",
        "p50 ms",
        "p99 ms",
        "max ms",
        "CPU % core",
        "SIGTERM s"
    );
    for r in runs {
        let d = sorted(&r.sampled_durations);
        let c = sorted(&r.completed.iter().map(|&x| x as f64).collect::<Vec<_>>());
        println!(
            "{:>8} | {:>9.1} | {:>9.1} | {:>9.1} | {:>13} | {:>8.2} | {:>8.2} | {:>8.2} | {:>10.1} | {:>9}",
            r.accounts,
            mb(r.last().daemon_rss_kb),
            mb(r.last().daemon_hwm_kb),
            mb(r.last().pg_pss_kb),
            format!("{:.0}", percentile(&c, 50.0)),
            percentile(&d, 50.0),
            percentile(&d, 99.0),
            d.last().copied().unwrap_or(f64::NAN),
            r.cpu_pct(|s| s.daemon_cpu_ticks),
            r.sigterm_exit
                .map(|d| format!("{:.2}", d.as_secs_f64()))
                .unwrap_or_else(|| "-".into()),
        );
    }
    let (Some(lo), Some(hi)) = (
        runs.iter().min_by_key(|r| r.accounts),
        runs.iter().max_by_key(|r| r.accounts),
    ) else {
        return;
    };
    if hi.accounts > lo.accounts {
        let span = (hi.accounts - lo.accounts) as f64;
        let per = |a: u64, b: u64| (b as f64 - a as f64) / span;
        println!(
            "per account (N{} vs N{}): daemon RSS {:.1} KB, VmHWM {:.1} KB, postgres PSS {:.1} KB",
            hi.accounts,
            lo.accounts,
            per(lo.last().daemon_rss_kb, hi.last().daemon_rss_kb),
            per(lo.last().daemon_hwm_kb, hi.last().daemon_hwm_kb),
            per(lo.last().pg_pss_kb, hi.last().pg_pss_kb),
        );
    }
    println!("cycle p50/p99/max: last_cycle.duration_ms of completed cycles seen in GET /status once a second (each cycle once)");
}
