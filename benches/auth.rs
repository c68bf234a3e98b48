//! What the API gate costs: the gate's work for one request, and `/positions` served
//! with and without a key under the same load. A small harness (`harness = false`).
//!
//! 1. **The gate alone** (criterion): [`Gate::admit`] on a prepared request —
//!    `gate/bearer_key_of_N` (N configured keys: SHA-256 of the presented key, the
//!    constant-time comparison with all N hashes, the key's token bucket, the `Caller`),
//!    `gate/wrong_key_of_10` (the same work, then the address's bucket),
//!    `gate/keyless_loopback` (a daemon without keys: the `Host` check and the address's
//!    bucket), and `gate/sha256` (the hash alone, for reference). The buckets are set
//!    so high that they never refuse: what is timed is the work, not a refusal.
//! 2. **`/positions` over HTTP** (only with `--bench`): the release daemon on a fresh
//!    database of the test cluster (`tests/common/pg.rs`), two paper accounts on the
//!    loopback fake venue, 100 positions seeded, the rate limits set out of reach; run
//!    once without keys (loopback, open) and once with one key (every request
//!    `Authorization: Bearer`), alternating `VIBEX_BENCH_ROUNDS` times (default 2:
//!    without, with, without, with — the spread between rounds of the same kind shows
//!    the noise of a shared machine), each with `VIBEX_BENCH_CONNECTIONS` keep-alive
//!    connections (default 32, one thread each, like `wrk -c32`) requesting
//!    `GET /positions` (100 rows) for `VIBEX_BENCH_SECONDS` (default 10) after a 2 s
//!    warm-up. It prints requests per second, latency p50/p99, and the daemon's CPU per
//!    request (utime + stime of `/proc/<pid>/stat` over the window / requests). The
//!    load generator shares the machine's cores with the daemon, as `wrk` on the same
//!    host would: compare the two rows, not the absolute figures across machines.
//!
//! Run: `cargo bench --bench auth` (release build; about a minute after the build).
//! Without `--bench` (`cargo test --benches`) criterion runs each case once and the
//! HTTP part only says how to run it. Requires the PostgreSQL server binaries (as the
//! tests do) and Linux.

#[path = "../tests/common/fake_venue.rs"]
mod fake_venue;
#[allow(dead_code)]
#[path = "../tests/common/loopback.rs"]
mod loopback;
#[allow(dead_code)]
#[path = "../tests/common/pg.rs"]
mod pg;
#[allow(unused_imports)]
#[path = "support/mod.rs"]
mod support;

use actix_web::test::TestRequest;
use criterion::Criterion;
use rust_decimal::Decimal;
use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{percentile, stat, tail, terminate, wait_healthy};
use vibex::api::access::Role;
use vibex::api::auth::{key_digest, Gate, ServingPlan};
use vibex::config::{ApiKeyConfig, ApiSettings, RateBucket, RateLimitSettings};

/// Buckets no benchmark empties.
const UNLIMITED: RateBucket = RateBucket {
    per_second: 1_000_000_000,
    burst: u32::MAX,
};

fn settings(keys: usize) -> ApiSettings {
    ApiSettings {
        host: "0.0.0.0".into(),
        port: 3000,
        ws_ping_interval: Duration::from_secs(30),
        ws_client_timeout: Duration::from_secs(75),
        keys: (0..keys)
            .map(|i| ApiKeyConfig {
                name: format!("key-{i}"),
                role: Role::Read,
                key_sha256: key_digest(&format!("vx_bench_key_{i:04}")),
                accounts: (i % 2 == 1).then(|| vec!["a1".to_string(), "a2".to_string()]),
            })
            .collect(),
        allow_unauthenticated: false,
        rate_limit: RateLimitSettings {
            per_key: UNLIMITED,
            per_ip: UNLIMITED,
        },
        cors_origins: Vec::new(),
    }
}

fn gate(keys: usize) -> Gate {
    let api = settings(keys);
    let plan = ServingPlan::decide(&api);
    Gate::new(
        &api,
        plan.exposure,
        &slog::Logger::root(slog::Discard, slog::o!()),
    )
}

fn request(headers: &[(&str, &str)]) -> actix_web::HttpRequest {
    let mut req = TestRequest::get()
        .uri("/positions?limit=100")
        .peer_addr(SocketAddr::from(([127, 0, 0, 1], 50_000)));
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    req.to_http_request()
}

fn gate_alone(c: &mut Criterion) {
    let mut group = c.benchmark_group("gate");
    for n in [1usize, 10, 100] {
        let g = gate(n);
        let key = format!("Bearer vx_bench_key_{:04}", n - 1);
        let req = request(&[("Authorization", key.as_str()), ("Host", "127.0.0.1:3000")]);
        assert!(g.admit(&req).is_ok(), "the bench key is admitted");
        group.bench_function(format!("bearer_key_of_{n}"), |b| {
            b.iter(|| black_box(g.admit(black_box(&req)).is_ok()))
        });
    }
    let g = gate(10);
    let wrong = request(&[
        ("Authorization", "Bearer vx_not_a_configured_key"),
        ("Host", "127.0.0.1:3000"),
    ]);
    group.bench_function("wrong_key_of_10", |b| {
        b.iter(|| black_box(g.admit(black_box(&wrong)).is_err()))
    });
    let open = gate(0);
    let local = request(&[("Host", "127.0.0.1:3000")]);
    assert!(open.admit(&local).is_ok());
    group.bench_function("keyless_loopback", |b| {
        b.iter(|| black_box(open.admit(black_box(&local)).is_ok()))
    });
    group.bench_function("sha256", |b| {
        b.iter(|| black_box(key_digest(black_box("vx_bench_key_0009"))))
    });
    group.finish();
}

/// The key of the keyed HTTP run (a benchmark's, never a real one).
const HTTP_KEY: &str = "vx_b3nch0000000000000000000000000000000000000000000000000000000000";

fn accounts_yaml(venue: &str, with_key: bool) -> String {
    let keys = if with_key {
        format!(
            "  keys:\n    - {{name: bench, role: read, key_sha256: {}}}\n",
            hex::encode(key_digest(HTTP_KEY))
        )
    } else {
        String::new()
    };
    format!(
        "api:\n  rate_limit:\n    per_key: {{per_second: 1000000, burst: 1000000}}\n    \
         per_ip: {{per_second: 1000000, burst: 1000000}}\n{keys}accounts:\n  - id: a1\n    \
         asterdex: {{ base_url: {venue} }}\n    llm_model: builtin/hold\n    assets: [BTC]\n    \
         interval: 5s\n  - id: a2\n    asterdex: {{ base_url: {venue} }}\n    \
         llm_model: builtin/hold\n    assets: [ETH]\n    interval: 5s\n"
    )
}

/// 100 closed positions, so that `/positions` answers a full default page.
fn seed_positions(url: &str) {
    use vibex::db::models::PositionRow;
    let pool = vibex::db::connect(url, 1).expect("connect");
    let mut conn = pool.get().expect("connection");
    let now = chrono::Utc::now();
    let positions = (0..100)
        .map(|i| PositionRow {
            id: uuid::Uuid::now_v7(),
            account_id: if i % 2 == 0 { "a1" } else { "a2" }.into(),
            symbol: if i % 2 == 0 { "BTCUSDT" } else { "ETHUSDT" }.into(),
            side: "long".into(),
            quantity: Decimal::new(1, 2),
            entry_price: Decimal::new(60_000 + i, 0),
            leverage: 1,
            margin: Decimal::new(600, 0),
            tp_price: None,
            sl_price: None,
            exit_plan: String::new(),
            mark_price: Some(Decimal::new(60_100, 0)),
            unrealized_pnl: Decimal::ZERO,
            realized_pnl: Decimal::new(1, 0),
            status: "closed".into(),
            opened_at: now - chrono::Duration::seconds(i),
            closed_at: Some(now),
            opened_cycle_id: None,
            updated_at: now,
            liquidation_price: None,
            origin: PositionRow::ORIGIN_VIBEX.into(),
            close_reason: Some("decision".into()),
        })
        .collect();
    vibex::db::queries::record_execution(
        &mut conn,
        &vibex::db::queries::ExecutionBatch {
            positions,
            ..Default::default()
        },
    )
    .expect("seed positions");
}

/// One keep-alive connection's loop: requests until `stop`, latencies in µs of the
/// requests answered after `measure` turned true.
fn client(
    addr: String,
    request: Arc<Vec<u8>>,
    measure: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> Vec<f64> {
    let mut latencies = Vec::new();
    let Ok(stream) = TcpStream::connect(&addr) else {
        return latencies;
    };
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return latencies,
    };
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let mut body = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        if writer.write_all(&request).is_err() {
            break;
        }
        let mut length = 0usize;
        let mut status_ok = false;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return latencies,
                Ok(_) => {}
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if l.starts_with("HTTP/1.1 ") {
                status_ok = l.starts_with("HTTP/1.1 200");
            }
            if let Some(v) = l
                .to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_string())
            {
                length = v.parse().unwrap_or(0);
            }
        }
        body.resize(length, 0);
        if reader.read_exact(&mut body).is_err() {
            break;
        }
        assert!(status_ok, "every request is answered 200");
        if measure.load(Ordering::Relaxed) {
            latencies.push(started.elapsed().as_secs_f64() * 1e6);
        }
    }
    latencies
}

struct HttpRun {
    label: &'static str,
    requests: usize,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_us_per_request: f64,
}

fn http_run(venue: &str, with_key: bool, connections: usize, window: Duration) -> HttpRun {
    let db = pg::test_db();
    let tmp = tempfile::Builder::new()
        .prefix("vibex-auth-bench-")
        .tempdir()
        .expect("temp dir");
    let dir = tmp.path();
    std::fs::write(dir.join("accounts.yaml"), accounts_yaml(venue, with_key)).expect("yaml");
    let (mut child, addr) =
        support::spawn_daemon_with(dir, "info", None, &[("DATABASE_URL", &db.url)]);
    if let Err(e) = wait_healthy(&mut child, &addr, Duration::from_secs(120)) {
        let _ = child.kill();
        panic!("{e}\n{}", tail(&dir.join("stderr.txt"), 30));
    }
    seed_positions(&db.url);
    let auth = if with_key {
        format!("Authorization: Bearer {HTTP_KEY}\r\n")
    } else {
        String::new()
    };
    let request =
        Arc::new(format!("GET /positions HTTP/1.1\r\nHost: {addr}\r\n{auth}\r\n").into_bytes());
    let measure = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..connections)
        .map(|_| {
            let (addr, request, measure, stop) =
                (addr.clone(), request.clone(), measure.clone(), stop.clone());
            std::thread::spawn(move || client(addr, request, measure, stop))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let cpu_before = stat(child.id()).map(|(_, t)| t).unwrap_or(0);
    let started = Instant::now();
    measure.store(true, Ordering::Relaxed);
    std::thread::sleep(window);
    measure.store(false, Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    let cpu_after = stat(child.id()).map(|(_, t)| t).unwrap_or(0);
    stop.store(true, Ordering::Relaxed);
    let mut latencies: Vec<f64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap_or_default())
        .collect();
    latencies.sort_by(f64::total_cmp);
    let requests = latencies.len();
    let cpu_s = cpu_after.saturating_sub(cpu_before) as f64 / support::CLOCK_TICKS_PER_SEC;
    terminate(&mut child);
    HttpRun {
        label: if with_key {
            "with a key"
        } else {
            "without keys"
        },
        requests,
        seconds,
        p50_ms: percentile(&latencies, 50.0) / 1000.0,
        p99_ms: percentile(&latencies, 99.0) / 1000.0,
        cpu_us_per_request: cpu_s * 1e6 / requests.max(1) as f64,
    }
}

fn http_comparison() {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|v| *v > 0)
            .unwrap_or(default)
    };
    let connections = usize::try_from(env("VIBEX_BENCH_CONNECTIONS", 32)).unwrap_or(32);
    let rounds = env("VIBEX_BENCH_ROUNDS", 2);
    let window = Duration::from_secs(env("VIBEX_BENCH_SECONDS", 10));
    let venue = fake_venue::FakeVenue::start();
    println!(
        "\n== GET /positions (100 rows), {connections} keep-alive connections, {} s each",
        window.as_secs()
    );
    let runs: Vec<HttpRun> = (0..rounds)
        .flat_map(|_| [false, true])
        .map(|with_key| http_run(venue.base_url(), with_key, connections, window))
        .collect();
    println!("| run | requests | req/s | p50 ms | p99 ms | daemon CPU µs/request |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for r in &runs {
        println!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.0} |",
            r.label,
            r.requests,
            r.requests as f64 / r.seconds,
            r.p50_ms,
            r.p99_ms,
            r.cpu_us_per_request
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    gate_alone(&mut c);
    c.final_summary();
    if std::env::args().any(|a| a == "--bench") {
        http_comparison();
    } else {
        println!(
            "auth: the /positions comparison starts the release daemon twice; run it with \
             `cargo bench --bench auth`"
        );
    }
}
