//! The pooled runtime seen from outside: accounts run on a fixed pool of arbiters, so
//! hundreds of them fit under the usual open-file limit with a thread and fd count that
//! does not grow with them; and a crashed account's tree is torn down the moment the
//! crash is noticed — a live account's user data stream included — long before its
//! restart opens a new one, while its neighbours on the same venue keep trading.

mod common;

use common::daemon::{tail, Daemon, Launch};
use common::fake_venue::FakeVenue;
use rust_decimal::Decimal;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// `GET /health` with a short deadline: `Err` says why it did not answer 200.
async fn health(d: &Daemon) -> Result<(), String> {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(5))
        .finish();
    match client.get(format!("{}/health", d.base)).send().await {
        Ok(res) if res.status().as_u16() == 200 => Ok(()),
        Ok(res) => Err(format!("status {}", res.status())),
        Err(e) => Err(e.to_string()),
    }
}

const ACCOUNTS: usize = 400;

/// `ACCOUNTS` paper accounts on `venue`: `builtin/hold`, a 2 s interval, BTC or BTC+ETH,
/// on a pool of 2 arbiters (the default on this 2-core machine, pinned so that the
/// thread and fd bounds below do not depend on the cores of the machine running it).
fn many_paper_accounts(venue: &str) -> String {
    let mut yaml = String::from("runtime:\n  arbiters: 2\naccounts:\n");
    for i in 0..ACCOUNTS {
        let assets = if i % 2 == 0 { "[BTC]" } else { "[BTC, ETH]" };
        let _ = write!(
            yaml,
            "  - id: p{i:03}\n    asterdex: {{ base_url: {venue} }}\n    llm_model: builtin/hold\n    \
             assets: {assets}\n    interval: 2s\n"
        );
    }
    yaml
}

#[actix_rt::test]
async fn four_hundred_accounts_all_trade_under_an_open_file_limit_of_1024() {
    let venue = FakeVenue::start();
    let db = common::pg::test_db();
    let launched = Instant::now();
    let mut d = Daemon::start_with(
        &many_paper_accounts(venue.base_url()),
        Some(&db.url),
        &[("VIBEX_LOG_LEVEL", "info")],
        Launch {
            open_files: Some(1024),
        },
    );
    // The limit really applies: the daemon raised its soft limit to the hard one, 1,024.
    assert_eq!(
        d.open_file_limit(),
        ("1024".to_string(), "1024".to_string()),
        "the daemon runs under ulimit -n 1024"
    );

    // Every account completes cycles; /health answers all along.
    let deadline = Duration::from_secs(60);
    let (mut peak_threads, mut peak_fds) = (0, 0);
    let all_trading = loop {
        if let Err(e) = health(&d).await {
            panic!(
                "/health did not answer after {:?}: {e}; stderr:\n{}",
                launched.elapsed(),
                tail(&d.stderr(), 40)
            );
        }
        peak_threads = peak_threads.max(d.threads());
        peak_fds = peak_fds.max(d.open_fds());
        let (status, body) = d.get("/status").await;
        assert_eq!(status, 200, "{body}");
        let accounts = body["accounts"].as_array().cloned().unwrap_or_default();
        assert_eq!(accounts.len(), ACCOUNTS, "every account is listed");
        let behind: Vec<String> = accounts
            .iter()
            .filter(|a| a["cycles_completed"].as_u64().unwrap_or(0) < 2)
            .map(|a| a["account_id"].as_str().unwrap_or("?").to_string())
            .collect();
        if behind.is_empty() {
            break launched.elapsed();
        }
        if launched.elapsed() > deadline {
            panic!(
                "{} of {ACCOUNTS} accounts had not completed 2 cycles within {deadline:?} \
                 (first: {:?}); threads {peak_threads}, fds {peak_fds}; stderr:\n{}",
                behind.len(),
                &behind[..behind.len().min(10)],
                tail(&d.stderr(), 40)
            );
        }
        actix_rt::time::sleep(Duration::from_millis(500)).await;
    };
    // A few more cycles of everyone, still answering.
    for _ in 0..6 {
        actix_rt::time::sleep(Duration::from_millis(500)).await;
        health(&d)
            .await
            .unwrap_or_else(|e| panic!("/health after all accounts traded: {e}"));
        peak_threads = peak_threads.max(d.threads());
        peak_fds = peak_fds.max(d.open_fds());
    }
    eprintln!(
        "{ACCOUNTS} accounts: all completed 2 cycles {all_trading:?} after launch; \
         peak threads {peak_threads}, peak open fds {peak_fds}"
    );
    // One arbiter per account would be 400+ threads and ~1,700 fds, past the limit
    // (the same run on a pool of 100 arbiters had 111 threads and 452 fds; 256 died
    // at start-up with EMFILE). Measured here with the pool of 2: 13 threads and 59-61
    // fds at most (HTTP server and workers, database pool, the hubs' venue client, log
    // files). The bounds leave about 4x room for noise and growth elsewhere, and still
    // fail if anything is kept per account (400 of it).
    assert!(
        peak_threads < 50,
        "threads must not grow with the accounts: {peak_threads}"
    );
    assert!(
        peak_fds < 250,
        "open files must not grow with the accounts: {peak_fds}"
    );

    let (exit, took) = d.terminate(Duration::from_secs(30));
    eprintln!("SIGTERM to exit: {took:?}");
    assert_eq!(
        exit.code(),
        Some(0),
        "clean exit on SIGTERM; stderr:\n{}",
        tail(&d.stderr(), 40)
    );
    assert!(
        !d.stderr().contains("panicked at"),
        "no panic: {}",
        tail(&d.stderr(), 40)
    );
    // Nothing acknowledged was lost at shutdown: every completed cycle has its equity
    // row, and the final flush says where everything went.
    let completed = d
        .log_file("trading.log")
        .lines()
        .filter(|l| l.contains("\"msg\":\"cycle completed\""))
        .count();
    let rows: i64 = {
        use diesel::{QueryDsl, RunQueryDsl};
        let pool = vibex::db::connect(&db.url, 1).expect("pool");
        let mut conn = pool.get().expect("connection");
        vibex::db::schema::equity_snapshots::table
            .count()
            .get_result(&mut conn)
            .expect("count")
    };
    assert!(completed >= 800, "400 accounts cycled: {completed}");
    assert_eq!(
        rows as usize, completed,
        "every completed cycle's equity row is in PostgreSQL after shutdown"
    );
    let app = d.log_file("app.log");
    assert!(
        app.contains("shutdown: queued writes flushed"),
        "the final flush is reported"
    );
    assert!(!d.all_logs().contains("made durable nowhere"));
}

const CRASHY_KEY: &str = "crashy-key-51e0c7a9d3";
const CRASHY_SECRET: &str = "crashy-secret-8b2f4d6e1a0c";
const STEADY_KEY: &str = "steady-key-2d7a9e3f41";
const STEADY_SECRET: &str = "steady-secret-6c1b0a9f8e7d";

/// A live HMAC account on `venue` (key and secret from `${<ENV>_KEY}`/`${<ENV>_SECRET}`).
fn live_account(id: &str, env: &str, model: &str, venue: &FakeVenue) -> String {
    format!(
        r#"
  - id: {id}
    mode: live
    asterdex:
      base_url: {base}
      ws_url: {ws}
      api_key: ${{{env}_KEY}}
      api_secret: ${{{env}_SECRET}}
    llm_model: {model}
    assets: [BTC]
    interval: 1s
"#,
        base = venue.base_url(),
        ws = venue.ws_base_url().trim_end_matches("/ws"),
    )
}

/// One look at the fake venue's side of the user streams.
#[derive(Clone, Copy, Debug)]
struct Sample {
    at: Duration,
    /// The crashing account's open user streams.
    crashy_open: usize,
    /// Its user streams opened so far (the n-th connection is number n).
    crashy_opened: usize,
    /// The steady account's open user streams.
    steady_open: usize,
}

/// The restart backoff before the `n`-th restart (1 s, 2 s, 4 s ...).
fn backoff(n: usize) -> Duration {
    Duration::from_secs(1 << (n - 1).min(6))
}

#[actix_rt::test]
async fn a_crashed_live_accounts_user_stream_is_closed_before_its_restart() {
    let venue = FakeVenue::start();
    let crashy = venue.add_hmac_account(CRASHY_KEY, CRASHY_SECRET, Decimal::from(10_000));
    let steady = venue.add_hmac_account(STEADY_KEY, STEADY_SECRET, Decimal::from(10_000));
    let db = common::pg::test_db();
    // `builtin/panic` panics in the DecisionActor at its first decision, after the
    // ExecutionActor's start-up opened the user stream: the whole tree goes down and
    // the Supervisor restarts it after 1 s, 2 s, 4 s ...
    let yaml = format!(
        "accounts:{}{}",
        live_account("crashy", "CRASHY", "builtin/panic", &venue),
        live_account("steady", "STEADY", "builtin/hold", &venue)
    );
    let env = [
        ("CRASHY_KEY", CRASHY_KEY),
        ("CRASHY_SECRET", CRASHY_SECRET),
        ("STEADY_KEY", STEADY_KEY),
        ("STEADY_SECRET", STEADY_SECRET),
    ];
    let mut d = Daemon::start(&yaml, Some(&db.url), &env);

    // Four runs of the crashing account: three crashes with their restarts, each new
    // run connecting its own stream. Sampled every 20 ms from the venue's side.
    const RUNS: usize = 4;
    let started = Instant::now();
    let deadline = Duration::from_secs(45);
    let mut samples: Vec<Sample> = Vec::new();
    let mut steady_cycles: Vec<(Duration, u64)> = Vec::new();
    let mut next_status = Duration::ZERO;
    // The two counters are read one after the other: a look is kept only when no
    // stream opened in between (else "open 0" could be stream #n+1 not yet counted).
    let look = |at| loop {
        let opened = venue.user_streams_opened(crashy);
        let open = venue.user_stream_count(crashy);
        if venue.user_streams_opened(crashy) == opened {
            return Sample {
                at,
                crashy_open: open,
                crashy_opened: opened,
                steady_open: venue.user_stream_count(steady),
            };
        }
    };
    loop {
        let s = look(started.elapsed());
        samples.push(s);
        if s.crashy_opened >= RUNS {
            break;
        }
        if s.at > deadline {
            panic!(
                "crashy did not connect {RUNS} user streams within {deadline:?} (last look: \
                 {s:?}); stderr:\n{}",
                tail(&d.stderr(), 60)
            );
        }
        if s.at >= next_status {
            let (_, b) = d.get("/accounts/steady/status").await;
            steady_cycles.push((
                started.elapsed(),
                b["cycles_completed"].as_u64().unwrap_or(0),
            ));
            next_status = started.elapsed() + Duration::from_millis(500);
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, crashy_status) = d.get("/accounts/crashy/status").await;
    let (_, steady_status) = d.get("/accounts/steady/status").await;
    steady_cycles.push((
        started.elapsed(),
        steady_status["cycles_completed"].as_u64().unwrap_or(0),
    ));
    let timeline = || {
        let mut out = String::new();
        let mut last = None;
        for s in &samples {
            let now = (s.crashy_open, s.crashy_opened, s.steady_open);
            if last != Some(now) {
                let _ = writeln!(
                    out,
                    "{:>7.3}s crashy open {} (stream #{}), steady open {}",
                    s.at.as_secs_f64(),
                    s.crashy_open,
                    s.crashy_opened,
                    s.steady_open
                );
                last = Some(now);
            }
        }
        out
    };
    eprintln!("user streams seen by the venue:\n{}", timeline());
    eprintln!("steady cycles_completed over time: {steady_cycles:?}");

    // Never two streams at once for the crashing account.
    assert!(
        samples.iter().all(|s| s.crashy_open <= 1),
        "two user streams of one account at once:\n{}",
        timeline()
    );
    // Each run's stream was closed at its crash, well before the restart's stream
    // opened: the count drops to 0 and stays there for most of the backoff.
    for run in 1..RUNS {
        let closed: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.crashy_opened == run && s.crashy_open == 0)
            .collect();
        let (Some(first), Some(last)) = (closed.first(), closed.last()) else {
            panic!(
                "stream #{run} was not seen closed before stream #{} opened:\n{}",
                run + 1,
                timeline()
            );
        };
        let gap = last.at - first.at;
        assert!(
            gap >= backoff(run) / 2,
            "stream #{run} was closed only {gap:?} before the next one opened; the restart \
             backoff is {:?}, so it outlived the crash:\n{}",
            backoff(run),
            timeline()
        );
    }
    // Every run connected its stream before it crashed, and only one: as many runs
    // as streams (the last run may have crashed already, not yet restarted).
    let restarts = crashy_status["restarts"].as_u64().unwrap_or(0) as usize;
    assert!(
        restarts + 1 == RUNS || restarts == RUNS,
        "each run connects one user stream: {RUNS} streams, {restarts} restarts: \
         {crashy_status}"
    );
    assert!(crashy_status["cycles_completed"] == 0, "{crashy_status}");

    // The other live account on the same venue kept its one stream and its cadence.
    let first_up = samples
        .iter()
        .position(|s| s.steady_open == 1)
        .unwrap_or_else(|| panic!("steady's stream never opened:\n{}", timeline()));
    assert!(
        samples[first_up..].iter().all(|s| s.steady_open == 1),
        "steady's stream must stay up, alone:\n{}",
        timeline()
    );
    assert_eq!(steady_status["restarts"], 0, "{steady_status}");
    assert_eq!(steady_status["state"], "active", "{steady_status}");
    let first_cycle = steady_cycles
        .iter()
        .position(|(_, n)| *n > 0)
        .unwrap_or_else(|| panic!("steady never completed a cycle: {steady_cycles:?}"));
    // The longest time steady's count stood still, from its first cycle on.
    let (mut moved_at, mut count, mut longest) = (steady_cycles[first_cycle].0, 0, Duration::ZERO);
    for &(at, n) in &steady_cycles[first_cycle..] {
        if n != count {
            (moved_at, count) = (at, n);
        }
        longest = longest.max(at - moved_at);
    }
    assert!(
        longest < Duration::from_secs(5),
        "steady (1 s interval) went {longest:?} without completing a cycle while crashy \
         crashed: {steady_cycles:?}"
    );
    let done = steady_cycles.last().map(|(_, n)| *n).unwrap_or(0) - steady_cycles[first_cycle].1;
    assert!(
        done >= 5,
        "steady completed only {done} cycles over the crashes: {steady_cycles:?}"
    );

    let (exit, _) = d.terminate(Duration::from_secs(20));
    assert_eq!(
        exit.code(),
        Some(0),
        "clean exit; stderr:\n{}",
        tail(&d.stderr(), 40)
    );
    // Nothing of the daemon stays connected to the venue.
    let gone = Instant::now() + Duration::from_secs(5);
    while (
        venue.user_stream_count(crashy),
        venue.user_stream_count(steady),
    ) != (0, 0)
    {
        assert!(
            Instant::now() < gone,
            "user streams still open 5 s after the daemon exited: crashy {}, steady {}",
            venue.user_stream_count(crashy),
            venue.user_stream_count(steady)
        );
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn a_pool_that_cannot_fit_the_open_file_limit_is_refused_with_what_to_do() {
    let db = common::pg::test_db();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("accounts.yaml"),
        "runtime:\n  arbiters: 256\naccounts:\n  - id: a1\n    llm_model: builtin/hold\n    assets: [BTC]\n    interval: 1m\n",
    )
    .unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vibex"));
    cmd.current_dir(dir.path())
        .args(["--accounts", "accounts.yaml", "run"])
        .env("DATABASE_URL", &db.url)
        .env("API_HOST", "127.0.0.1")
        .env("API_PORT", common::process::free_port().to_string());
    for var in common::process::AMBIENT {
        cmd.env_remove(var);
    }
    // As under `ulimit -n 1024`: the daemon cannot raise it.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, 1024, 1024)
                .map_err(std::io::Error::from)
        });
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("panicked"),
        "a clear error, not a panic: {stderr}"
    );
    assert!(
        stderr.contains("runtime.arbiters") && stderr.contains("1024"),
        "names the field and the limit: {stderr}"
    );
}
