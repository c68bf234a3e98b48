//! Control plane latency of the real daemon: how long from `POST /accounts` to the new
//! account's first completed cycle, and from `POST /kill-switch {"flatten": true}` to
//! every position flat, with N paper accounts (`builtin/ema-rsi`, BTC, 1 s cycles) on the
//! loopback fake venue, the release `vibex` binary and its embedded PostgreSQL.
//!
//! Run: `cargo bench --bench control -- --accounts 100 [--adds 5]` (environment:
//! `VIBEX_CONTROL_ACCOUNTS`, `VIBEX_CONTROL_ADDS`). Without `--bench` (e.g. `cargo test
//! --benches`) it only prints how to run it.
//!
//! One run:
//! 1. starts the daemon with N accounts and waits until every one completed a cycle;
//! 2. `--adds` times: `POST /accounts` (JSON) of a new account, then polls its status
//!    every 10 ms until its first cycle completed: the add latency (its first cycle comes
//!    0.2 s to 5 s after its start by design, spread by its id — `domain/cadence.rs`);
//! 3. nudges BTC above its EMA until every account holds an open long;
//! 4. `POST /kill-switch {"flatten": true}`: the time until the answer (every close-all
//!    done), then polls `/positions?status=open` until it is empty: the time to flat as
//!    the API shows it;
//! 5. prints the figures and the load average before and after, then SIGTERM.

#[path = "../tests/common/fake_venue.rs"]
mod fake_venue;
#[path = "../tests/common/loopback.rs"]
mod loopback;
#[path = "support/mod.rs"]
mod support;
use support::*;

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        println!(
            "control: runs the release daemon; run it with `cargo bench --bench control -- \
             --accounts 100 --adds 5`"
        );
        return;
    }
    let flag = |name: &str, var: &str, default: usize| -> usize {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .or_else(|| std::env::var(var).ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let n = flag("--accounts", "VIBEX_CONTROL_ACCOUNTS", 100);
    let adds = flag("--adds", "VIBEX_CONTROL_ADDS", 5);
    if let Err(e) = run(n, adds) {
        eprintln!("control: {e}");
        std::process::exit(1);
    }
}

fn account_json(id: &str, venue: &str) -> String {
    format!(
        r#"{{"id":"{id}","asterdex":{{"base_url":"{venue}"}},"llm_model":"builtin/ema-rsi","assets":["BTC"],"interval":"1s","leverage":2,"risk":{{"max_position_usd":1000}}}}"#
    )
}

fn run(n: usize, adds: usize) -> Result<(), String> {
    let venue = fake_venue::FakeVenue::start();
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    // The bench polls every 10 ms from one address: the per-address bucket is opened
    // wide, or the daemon's own rate limit (50/s) would answer the polls and the adds.
    let mut yaml = String::from(
        "api:\n  rate_limit:\n    per_ip: {per_second: 1000000, burst: 1000000}\naccounts:\n",
    );
    for i in 1..=n {
        yaml.push_str(&format!(
            "  - id: ctl-{i:04}\n    asterdex: {{ base_url: {} }}\n    llm_model: builtin/ema-rsi\n    \
             assets: [BTC]\n    interval: 1s\n    leverage: 2\n    risk: {{ max_position_usd: 1000 }}\n",
            venue.base_url()
        ));
    }
    std::fs::write(dir.path().join("accounts.yaml"), yaml).map_err(|e| e.to_string())?;
    let load_before = loadavg();
    let (mut child, addr) = spawn_daemon(dir.path(), "info", None);
    let result = (|| {
        wait_healthy(&mut child, &addr, Duration::from_secs(120))?;
        wait_until(
            &addr,
            "every account cycling",
            Duration::from_secs(180),
            |s| all_cycling(s, n),
        )?;
        println!("control: {n} paper accounts cycling; load average {load_before}");

        // Adds.
        let mut add_ms = Vec::new();
        for k in 1..=adds {
            let id = format!("added-{k:02}");
            let asked = Instant::now();
            let (code, body) = http_send(
                &addr,
                "POST",
                "/accounts",
                Some(&account_json(&id, venue.base_url())),
            )?;
            if code != 200 {
                return Err(format!("POST /accounts: {code} {body}"));
            }
            let answered = asked.elapsed();
            loop {
                let (_, s) = http_get(
                    &addr,
                    &format!("/accounts/{id}/status"),
                    Duration::from_secs(5),
                )?;
                let s: Value = serde_json::from_str(&s).unwrap_or_default();
                if s["cycles_completed"].as_u64().unwrap_or(0) >= 1 {
                    break;
                }
                if asked.elapsed() > Duration::from_secs(30) {
                    return Err(format!("{id} did not complete a cycle in 30 s"));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let first = asked.elapsed();
            println!(
                "add {id}: answered in {:.1} ms, first completed cycle after {:.0} ms",
                answered.as_secs_f64() * 1000.0,
                first.as_secs_f64() * 1000.0
            );
            add_ms.push(first.as_secs_f64() * 1000.0);
        }
        let total = n + adds;

        // Every account long.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (_, md) = http_get(&addr, "/market-data?symbol=BTC", Duration::from_secs(5))?;
            let md: Value = serde_json::from_str(&md).unwrap_or_default();
            if let Some(ema) = md["items"][0]["snapshot"]["current"]["ema20"].as_f64() {
                let price = format!("{:.1}", ema * 1.0015);
                venue.set_price("BTCUSDT", price.parse().map_err(|e| format!("{e}"))?);
            }
            std::thread::sleep(Duration::from_millis(1000));
            let open = open_positions(&addr)?;
            if open >= total {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("only {open} of {total} accounts went long"));
            }
        }
        println!("control: {total} accounts hold an open BTC long");

        // Kill switch with flatten.
        let asked = Instant::now();
        let (code, body) = http_send(&addr, "POST", "/kill-switch", Some(r#"{"flatten": true}"#))?;
        let answered = asked.elapsed();
        if code != 200 {
            return Err(format!("POST /kill-switch: {code} {body}"));
        }
        let report: Value = serde_json::from_str(&body).unwrap_or_default();
        loop {
            if open_positions(&addr)? == 0 {
                break;
            }
            if asked.elapsed() > Duration::from_secs(120) {
                return Err("positions still open 120 s after the kill switch".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let flat = asked.elapsed();
        let mut sorted_adds = add_ms.clone();
        sorted_adds.sort_by(f64::total_cmp);
        println!();
        println!("| accounts | add → first cycle p50 / max | kill switch answered (all flat) | /positions shows none open | all_flat | load before / after |");
        println!("| --- | --- | --- | --- | --- | --- |");
        println!(
            "| {total} | {:.0} ms / {:.0} ms | {:.0} ms | {:.0} ms | {} | {load_before} / {} |",
            percentile(&sorted_adds, 50.0),
            sorted_adds.last().copied().unwrap_or_default(),
            answered.as_secs_f64() * 1000.0,
            flat.as_secs_f64() * 1000.0,
            report["all_flat"],
            loadavg()
        );
        Ok(())
    })();
    let _ = terminate(&mut child);
    result
}

fn open_positions(addr: &str) -> Result<usize, String> {
    let (_, p) = http_get(
        addr,
        "/positions?status=open&limit=1000",
        Duration::from_secs(10),
    )?;
    let p: Value = serde_json::from_str(&p).map_err(|e| e.to_string())?;
    Ok(p["count"].as_u64().unwrap_or(0) as usize)
}

fn wait_until(
    addr: &str,
    what: &str,
    timeout: Duration,
    check: impl Fn(&Value) -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok((200, body)) = http_get(addr, "/status", Duration::from_secs(10)) {
            if check(&serde_json::from_str(&body).unwrap_or_default()) {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(format!("{what}: not within {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// A blocking request with an optional JSON body over one connection.
fn http_send(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(|e| e.to_string())?;
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: \
         application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
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
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("no status code")?;
    let rest = &raw[split + 4..];
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Ok((code, String::from_utf8_lossy(&body).into_owned()))
}
