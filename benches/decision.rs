//! Decision overhead of LLM accounts without the model's time: what the DecisionActor
//! adds around each model call (prompt rendering, reply parsing, JSON-schema
//! validation, risk rules, building the rows and events), measured on the real
//! `vibex` binary against the loopback fake venue, a loopback fake of an
//! OpenAI-compatible model server that answers at once, and the embedded PostgreSQL.
//! A small harness (`harness = false`) that prints a report.
//!
//! What it does:
//! 1. starts the fake venue and the fake model server; the three models answer valid
//!    decisions immediately: `bench/m1` holds BTC, ETH and SOL; `bench/m2` buys BTC
//!    (1000 USD, TP = price × 1.5, SL = price × 0.5, the price being the one the fake
//!    venue reports at start, so both are always on the right side) and holds the rest;
//!    `bench/m3` sells ETH (1000 USD, TP × 0.5, SL × 1.5) and holds the rest. After the
//!    first fill the buy/sell repeats are risk HOLDs (already in that position): every
//!    cycle still goes through parsing, validation and the risk rules;
//! 2. writes an `accounts.yaml` with three paper LLM accounts (`bench-m1..3`, one model
//!    and one key each, `assets: [BTC, ETH, SOL]`, `interval: 1s`) into a temporary
//!    directory and starts `vibex --accounts accounts.yaml run` there (no
//!    `DATABASE_URL`: the daemon starts its private PostgreSQL under `./data`),
//!    `API_HOST=127.0.0.1`, a free `API_PORT`, `VIBEX_LOG_LEVEL=info`; waits for
//!    `GET /health` = 200;
//! 3. lets it run for `VIBEX_BENCH_SECONDS` (default 30), reads `GET /status`,
//!    `GET /positions` and `GET /decisions` once at the end as a sanity check, then
//!    sends SIGTERM and times the exit;
//! 4. reads every `"msg":"cycle decided"` line of `logs/llm.log` (backups included):
//!    `overhead_ms` (= `total_ms` − `model_ms`), `model_ms` (the HTTP call to the model,
//!    retries included) and `total_ms`, and reports count, p50/p90/p99/max of each, over
//!    all cycles and without each account's first cycle (cold caches, first
//!    connection);
//! 5. reports the prompt size from the requests the fake model server received: the
//!    mean total characters of the `messages` contents, an estimate of tokens
//!    (characters / 2.45), and the exact token count of each model's first request
//!    (system + user contents, each encoded on its own, no chat framing) with
//!    `tiktoken-rs` in `o200k_base` and `cl100k_base`;
//! 6. summarises `logs/errors.log` and the WARNING lines of the other logs before the
//!    temporary directory is deleted.
//!
//! Percentiles are nearest-rank. With 1 s cycles, a 30 s window gives about 30 cycles
//! per account (~90 in all), so p99 is close to the maximum: raise
//! `VIBEX_BENCH_SECONDS` for a steadier tail.
//!
//! Run: `cargo bench --bench decision` (release build; ~1 min after the build).
//! Knobs: `VIBEX_BENCH_SECONDS`, `VIBEX_BENCH_KEEP=1` (keep the temporary directory and
//! print where it is). Without `--bench` (e.g. `cargo test --benches`) it only prints
//! how to run it: it needs a release daemon and takes a minute. Requires the
//! PostgreSQL server binaries (see README.md) and Linux.

#[path = "../tests/common/fake_llm.rs"]
mod fake_llm;
#[path = "../tests/common/fake_venue.rs"]
mod fake_venue;
#[path = "../tests/common/loopback.rs"]
mod loopback;
#[path = "support/mod.rs"]
mod support;
use support::*;

use fake_llm::{Answer, FakeLlm, RecordedRequest};
use fake_venue::FakeVenue;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use std::time::{Duration, Instant};

const ASSETS: [&str; 3] = ["BTC", "ETH", "SOL"];

/// Characters per token of the estimate printed next to the exact counts.
const CHARS_PER_TOKEN: f64 = 2.45;

/// One benchmarked account: its id, model, key and what its model answers.
struct Bench {
    account: String,
    model: String,
    key: String,
    variant: &'static str,
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "decision: runs the release daemon for a minute; run it with \
             `cargo bench --bench decision`"
        );
        return;
    }
    let seconds = std::env::var("VIBEX_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|&s| s > 0)
        .unwrap_or(30);
    let keep = std::env::var("VIBEX_BENCH_KEEP").is_ok_and(|v| v == "1");

    let venue = FakeVenue::start();
    let llm = FakeLlm::start();
    let benches = script_models(&venue, &llm);
    println!(
        "decision: daemon {}, fake venue {}, fake model {}, {} LLM accounts, assets {ASSETS:?}, interval 1s, {seconds} s",
        env!("CARGO_BIN_EXE_vibex"),
        venue.base_url(),
        llm.base_url(),
        benches.len()
    );
    for b in &benches {
        println!("   {} -> {}: {}", b.account, b.model, b.variant);
    }
    let run = run_daemon(
        &benches,
        venue.base_url(),
        llm.base_url(),
        Duration::from_secs(seconds),
        keep,
    );
    report(&run, &benches, &llm);
}

/// Registers each model's key and its instant answer; returns the accounts.
fn script_models(venue: &FakeVenue, llm: &FakeLlm) -> Vec<Bench> {
    // Far-away TP/SL (±50 % of the price the venue reports now), rounded to the tick:
    // on the right side whatever the walk does during the run.
    let level = |symbol: &str, factor: &str| -> f64 {
        let p = venue.current_price(symbol);
        let f: Decimal = factor.parse().expect("factor");
        (p * f).round_dp(p.scale()).to_f64().expect("price as f64")
    };
    let hold = |asset: &str| {
        json!({"asset": asset, "action": "hold", "allocation_usd": 0, "tp_price": null,
               "sl_price": null, "exit_plan": "", "rationale": "bench: nothing to do"})
    };
    let with = |entry: Value| {
        let asset = entry["asset"].as_str().unwrap_or_default().to_string();
        let items: Vec<Value> = ASSETS
            .iter()
            .map(|a| if *a == asset { entry.clone() } else { hold(a) })
            .collect();
        Answer::Decisions(json!({ "trade_decisions": items }))
    };
    let answers = [
        ("hold BTC, ETH, SOL", Answer::hold(&ASSETS)),
        (
            "buy BTC 1000 USD (TP ×1.5, SL ×0.5), hold ETH, SOL",
            with(
                json!({"asset": "BTC", "action": "buy", "allocation_usd": 1000,
                "tp_price": level("BTCUSDT", "1.5"), "sl_price": level("BTCUSDT", "0.5"),
                "exit_plan": "close if the 4h EMA20 breaks", "rationale": "bench: momentum up"}),
            ),
        ),
        (
            "sell ETH 1000 USD (TP ×0.5, SL ×1.5), hold BTC, SOL",
            with(
                json!({"asset": "ETH", "action": "sell", "allocation_usd": 1000,
                "tp_price": level("ETHUSDT", "0.5"), "sl_price": level("ETHUSDT", "1.5"),
                "exit_plan": "close if the 4h EMA20 is reclaimed", "rationale": "bench: momentum down"}),
            ),
        ),
    ];
    answers
        .into_iter()
        .enumerate()
        .map(|(i, (variant, answer))| {
            let n = i + 1;
            let b = Bench {
                account: format!("bench-m{n}"),
                model: format!("bench/m{n}"),
                key: format!("sk-bench-m{n}-0123456789abcdef"),
                variant,
            };
            llm.expect_key(&b.model, &b.key);
            llm.set_cost(&b.model, Some(0.0001));
            llm.set_default(&b.model, answer);
            b
        })
        .collect()
}

fn accounts_yaml(benches: &[Bench], venue: &str, llm: &str) -> String {
    let mut y = String::from("accounts:\n");
    for b in benches {
        let _ = write!(
            y,
            "  - id: {}\n    mode: paper\n    asterdex: {{ base_url: {venue} }}\n    \
             openrouter: {{ base_url: {llm}, api_key: {} }}\n    llm_model: {}\n    \
             assets: [{}]\n    interval: 1s\n",
            b.account,
            b.key,
            b.model,
            ASSETS.join(", ")
        );
    }
    y
}

// ---- the run --------------------------------------------------------------------------

#[derive(Default)]
struct Run {
    window: Duration,
    startup: Duration,
    /// Every `cycle decided` line of `llm.log`, in log order.
    cycles: Vec<Cycle>,
    /// `msg` counts of `llm.log` lines about model calls.
    llm_msgs: BTreeMap<String, usize>,
    /// `GET /status` at the end: per account (cycles completed, skipped, failed,
    /// restarts, model calls, failed model calls).
    status: BTreeMap<String, [u64; 6]>,
    /// `GET /positions?status=open` at the end: per account, the open positions.
    positions: BTreeMap<String, Vec<String>>,
    /// `GET /decisions` at the end: per account, "action/outcome" counts, and the
    /// distinct interactions they point to.
    outcomes: BTreeMap<String, BTreeMap<String, usize>>,
    interactions: BTreeMap<String, usize>,
    sigterm_exit: Option<Duration>,
    exit_status: String,
    logs: LogScan,
    dir: Option<PathBuf>,
}

struct Cycle {
    ts: String,
    account: String,
    total_ms: f64,
    model_ms: f64,
    overhead_ms: f64,
}

fn run_daemon(benches: &[Bench], venue: &str, llm: &str, window: Duration, keep: bool) -> Run {
    let tmp = tempfile::Builder::new()
        .prefix("vibex-decision-")
        .tempdir()
        .expect("temp dir");
    let dir = tmp.path().to_path_buf();
    std::fs::write(
        dir.join("accounts.yaml"),
        accounts_yaml(benches, venue, llm),
    )
    .expect("accounts.yaml");
    println!("\n== starting the daemon in {}", dir.display());
    let spawned = Instant::now();
    let (mut child, addr) = support::spawn_daemon(&dir, "info", None);
    let mut run = Run {
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
        "   healthy after {:.2} s; running for {} s",
        run.startup.as_secs_f64(),
        window.as_secs()
    );
    let healthy = Instant::now();
    while healthy.elapsed() < window {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "vibex exited during the run ({status}); stderr:\n{}",
                tail(&dir.join("stderr.txt"), 40)
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    sanity_check(&mut run, &addr, benches);

    let (exit_after, exit_status) = terminate(&mut child);
    run.sigterm_exit = exit_after;
    run.exit_status = exit_status;
    read_logs(&mut run, &dir);
    if keep {
        run.dir = Some(tmp.keep());
    }
    run
}

fn get_json(addr: &str, path: &str) -> Option<Value> {
    match http_get(addr, path, Duration::from_secs(10)) {
        Ok((200, body)) => serde_json::from_str(&body).ok(),
        _ => None,
    }
}

fn items(v: &Value, key: &str) -> Vec<Value> {
    v.get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// What the daemon says it did, read once before SIGTERM.
fn sanity_check(run: &mut Run, addr: &str, benches: &[Bench]) {
    if let Some(status) = get_json(addr, "/status") {
        for a in items(&status, "accounts") {
            let n = |k: &str| a.get(k).and_then(Value::as_u64).unwrap_or(0);
            let calls = |k: &str| a["decision"].get(k).and_then(Value::as_u64).unwrap_or(0);
            let id = a
                .get("account_id")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string();
            run.status.insert(
                id,
                [
                    n("cycles_completed"),
                    n("cycles_skipped"),
                    n("cycles_failed"),
                    n("restarts"),
                    calls("model_calls"),
                    calls("failed_calls"),
                ],
            );
        }
    }
    for b in benches {
        let open = get_json(
            addr,
            &format!("/positions?account_id={}&status=open", b.account),
        )
        .map(|v| {
            items(&v, "items")
                .iter()
                .map(|p| {
                    format!(
                        "{} {}",
                        p["symbol"].as_str().unwrap_or("?"),
                        p["side"].as_str().unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
        run.positions.insert(b.account.clone(), open);
        let rows = get_json(
            addr,
            &format!("/decisions?account_id={}&limit=1000", b.account),
        )
        .map(|v| items(&v, "items"))
        .unwrap_or_default();
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let mut seen = std::collections::HashSet::new();
        for r in &rows {
            let key = format!(
                "{} {}/{}",
                r["asset"].as_str().unwrap_or("?"),
                r["action"].as_str().unwrap_or("?"),
                r["outcome"].as_str().unwrap_or("?")
            );
            *counts.entry(key).or_default() += 1;
            if let Some(id) = r["llm_interaction_id"].as_str() {
                seen.insert(id.to_string());
            }
        }
        run.outcomes.insert(b.account.clone(), counts);
        run.interactions.insert(b.account.clone(), seen.len());
    }
}

// ---- HTTP -----------------------------------------------------------------------------

// ---- logs -----------------------------------------------------------------------------

fn read_logs(run: &mut Run, dir: &Path) {
    let mut cycles = Vec::new();
    let mut llm_msgs = BTreeMap::new();
    run.logs = scan_logs(dir, 10, |name, v| {
        if !name.starts_with("llm.log") {
            return;
        }
        let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default();
        let msg = field("msg");
        if msg == "cycle decided" {
            let ms = |k: &str| v.get(k).and_then(Value::as_f64);
            if let (Some(total_ms), Some(model_ms), Some(overhead_ms)) =
                (ms("total_ms"), ms("model_ms"), ms("overhead_ms"))
            {
                cycles.push(Cycle {
                    ts: field("ts").to_string(),
                    account: field("account_id").to_string(),
                    total_ms,
                    model_ms,
                    overhead_ms,
                });
            }
        } else if msg.contains("model") {
            *llm_msgs.entry(msg.to_string()).or_default() += 1;
        }
    });
    // Backups (`llm.log.1`, ...) sort after the live file: time order again.
    cycles.sort_by(|a, b| a.ts.cmp(&b.ts));
    run.cycles = cycles;
    run.llm_msgs = llm_msgs;
}

// ---- report ---------------------------------------------------------------------------

fn sorted(v: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut s: Vec<f64> = v.collect();
    s.sort_by(f64::total_cmp);
    s
}

/// `n=.. p50 .. p90 .. p99 .. max ..` of `values` (ms).
fn dist(values: impl Iterator<Item = f64>) -> String {
    let s = sorted(values);
    let mean = if s.is_empty() {
        f64::NAN
    } else {
        s.iter().sum::<f64>() / s.len() as f64
    };
    format!(
        "n={:<4} p50 {:>8.3}  p90 {:>8.3}  p99 {:>8.3}  max {:>8.3}  (mean {:.3}) ms",
        s.len(),
        percentile(&s, 50.0),
        percentile(&s, 90.0),
        percentile(&s, 99.0),
        s.last().copied().unwrap_or(f64::NAN),
        mean
    )
}

/// The string contents of a request's `messages`, with their roles.
fn contents(r: &RecordedRequest) -> Vec<(String, String)> {
    r.body
        .get("messages")
        .and_then(Value::as_array)
        .map(|m| {
            m.iter()
                .map(|m| {
                    (
                        m["role"].as_str().unwrap_or("?").to_string(),
                        m["content"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn report(run: &Run, benches: &[Bench], llm: &FakeLlm) {
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!(
        "\n== decision overhead ({build} daemon, {} LLM accounts, fake model answering at once, {} assets, interval 1s, window {} s)",
        benches.len(),
        ASSETS.len(),
        run.window.as_secs()
    );
    println!(
        "start-up to /health 200: {:.2} s; SIGTERM to exit: {} ({})",
        run.startup.as_secs_f64(),
        run.sigterm_exit
            .map(|d| format!("{:.2} s", d.as_secs_f64()))
            .unwrap_or_else(|| "-".into()),
        run.exit_status
    );

    // Each account's first cycle: cold templates/schema, first connection to the model.
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (i, c) in run.cycles.iter().enumerate() {
        first.entry(c.account.as_str()).or_insert(i);
    }
    let warm: Vec<&Cycle> = run
        .cycles
        .iter()
        .enumerate()
        .filter(|(i, c)| first.get(c.account.as_str()) != Some(i))
        .map(|(_, c)| c)
        .collect();
    println!(
        "\n'cycle decided' lines in logs/llm.log: {} ({} without each account's first)",
        run.cycles.len(),
        warm.len()
    );
    println!("all cycles:");
    println!(
        "  overhead_ms  {}",
        dist(run.cycles.iter().map(|c| c.overhead_ms))
    );
    println!(
        "  model_ms     {}",
        dist(run.cycles.iter().map(|c| c.model_ms))
    );
    println!(
        "  total_ms     {}",
        dist(run.cycles.iter().map(|c| c.total_ms))
    );
    println!("without each account's first cycle:");
    println!(
        "  overhead_ms  {}",
        dist(warm.iter().map(|c| c.overhead_ms))
    );
    println!("  model_ms     {}", dist(warm.iter().map(|c| c.model_ms)));
    println!("  total_ms     {}", dist(warm.iter().map(|c| c.total_ms)));
    println!("per account, overhead_ms (all cycles):");
    for b in benches {
        let mine = run.cycles.iter().filter(|c| c.account == b.account);
        println!("  {:<9} {}", b.account, dist(mine.map(|c| c.overhead_ms)));
    }
    let firsts: Vec<String> = benches
        .iter()
        .filter_map(|b| {
            run.cycles.iter().find(|c| c.account == b.account).map(|c| {
                format!(
                    "{} overhead {:.3} / model {:.3} ms",
                    b.account, c.overhead_ms, c.model_ms
                )
            })
        })
        .collect();
    println!("first cycles: {}", firsts.join("; "));

    // Prompt size, from what the fake model server received.
    println!("\n== prompt size (requests received by the fake model server)");
    let mut all_chars = Vec::new();
    let o200k = tiktoken_rs::o200k_base().expect("o200k_base");
    let cl100k = tiktoken_rs::cl100k_base().expect("cl100k_base");
    for b in benches {
        let reqs = llm.requests_for(&b.model);
        let mut per_role: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut totals = Vec::new();
        for r in &reqs {
            let mut total = 0usize;
            for (role, text) in contents(r) {
                let n = text.chars().count();
                total += n;
                per_role.entry(role).or_default().push(n as f64);
            }
            totals.push(total as f64);
        }
        all_chars.extend_from_slice(&totals);
        let roles: Vec<String> = per_role
            .iter()
            .map(|(role, v)| format!("{role} {:.0}", mean(v)))
            .collect();
        let (lo, hi) = totals.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &t| {
            (lo.min(t), hi.max(t))
        });
        println!(
            "  {:<9} requests {:>3}; mean {:.0} chars (min {lo:.0}, max {hi:.0}; {}), ~{:.0} tokens at {CHARS_PER_TOKEN} chars/token",
            b.model,
            reqs.len(),
            mean(&totals),
            roles.join(", "),
            mean(&totals) / CHARS_PER_TOKEN
        );
        if let Some(r) = reqs.first() {
            let parts = contents(r);
            let chars: usize = parts.iter().map(|(_, t)| t.chars().count()).sum();
            let count = |bpe: &tiktoken_rs::CoreBPE| -> (Vec<String>, usize) {
                let each: Vec<(String, usize)> = parts
                    .iter()
                    .map(|(role, t)| (role.clone(), bpe.encode_with_special_tokens(t).len()))
                    .collect();
                let total = each.iter().map(|e| e.1).sum();
                (
                    each.iter().map(|(r, n)| format!("{r} {n}")).collect(),
                    total,
                )
            };
            let (o_each, o_total) = count(&o200k);
            let (c_each, c_total) = count(&cl100k);
            println!(
                "            first request: {chars} chars; o200k_base {o_total} tokens ({}; {:.2} chars/token); cl100k_base {c_total} tokens ({}; {:.2} chars/token)",
                o_each.join(", "),
                chars as f64 / o_total.max(1) as f64,
                c_each.join(", "),
                chars as f64 / c_total.max(1) as f64
            );
        }
    }
    println!(
        "  all models: mean {:.0} chars, ~{:.0} tokens at {CHARS_PER_TOKEN} chars/token ({} requests)",
        mean(&all_chars),
        mean(&all_chars) / CHARS_PER_TOKEN,
        all_chars.len()
    );

    // What the daemon says it did.
    println!("\n== sanity (GET /status, /positions, /decisions just before SIGTERM; llm.log)");
    for b in benches {
        let s = run.status.get(&b.account).copied().unwrap_or_default();
        println!(
            "  {:<9} cycles completed {} skipped {} failed {} restarts {}; model calls {} (failed {}); requests to the fake {}; interactions recorded {}; open positions {:?}",
            b.account,
            s[0],
            s[1],
            s[2],
            s[3],
            s[4],
            s[5],
            llm.requests_for(&b.model).len(),
            run.interactions.get(&b.account).copied().unwrap_or(0),
            run.positions.get(&b.account).cloned().unwrap_or_default()
        );
        if let Some(o) = run.outcomes.get(&b.account) {
            let o: Vec<String> = o.iter().map(|(k, n)| format!("{k} {n}")).collect();
            println!("            decisions: {}", o.join(", "));
        }
    }
    println!("  llm.log model messages: {:?}", run.llm_msgs);
    println!("  logs/errors.log: {} lines", run.logs.error_lines);
    for (msg, count) in &run.logs.errors {
        println!("    {count:>6} × {msg}");
    }
    println!("  WARNING lines (other logs): {}", run.logs.warning_lines);
    for (msg, count) in &run.logs.warnings {
        println!("    {count:>6} × {msg}");
    }
    if let Some(dir) = &run.dir {
        println!("  kept: {}", dir.display());
    }
    println!(
        "\noverhead_ms = total_ms − model_ms of the DecisionActor's 'cycle decided' log line: \
         prompt rendering, reply parsing, schema validation, risk rules, rows and events \
         (the model call itself, retries included, is model_ms)"
    );
}
