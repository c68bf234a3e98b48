//! The embedded default and restarts: `vibex run` without DATABASE_URL starts its own
//! PostgreSQL under the data directory, stops it on SIGTERM, and a restart resumes the
//! same paper balance and open positions.

mod common;

use common::daemon::Daemon;
use common::fake_venue::FakeVenue;
use std::time::Duration;

#[actix_rt::test]
async fn restart_on_the_embedded_database_resumes_balance_and_positions() {
    let venue = FakeVenue::start();
    let tmp = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"
accounts:
  - id: alpha
    asterdex: {{ base_url: {} }}
    llm_model: builtin/ema-rsi
    assets: [BTC]
    interval: 1s
    leverage: 2
"#,
        venue.base_url()
    );
    let mut d = Daemon::start_in(tmp.path(), &yaml, None, &[]);
    let position = common::daemon::open_btc_long(&d, &venue, "alpha").await;
    let (_, before) = d.get("/accounts/alpha").await;
    let wallet_before = before["paper_wallet_balance"].clone();
    assert_ne!(wallet_before, "10000", "the entry fee was charged");
    // Ctrl-C: SIGINT to the whole process group. The private server is in a group of
    // its own, so it keeps serving until vibex has flushed and stops it.
    let (status, elapsed) = d.interrupt_group(Duration::from_secs(10));
    assert!(status.success(), "{status}");
    assert!(elapsed < Duration::from_secs(10));
    let app_log = d.log_file("app.log");
    assert!(app_log.contains("SIGINT received"));
    assert!(!app_log.contains("abandoned"), "no write lost at shutdown");
    assert!(!d.log_file("errors.log").contains("database write"));
    // The private server stopped with the daemon.
    let pid_file = tmp.path().join("data/postgres/cluster/postmaster.pid");
    assert!(
        !pid_file.exists(),
        "embedded PostgreSQL still running after shutdown"
    );
    assert!(d.log_file("app.log").contains("embedded PostgreSQL is up"));

    // Same directory, same database: the account resumes where it was. The price
    // override is still in place, so the policy keeps holding the position.
    let d2 = Daemon::start_in(tmp.path(), &yaml, None, &[]);
    let after = d2
        .wait_for("/accounts/alpha", Duration::from_secs(30), |b| {
            b["status"]["balance"].is_object()
        })
        .await;
    assert_eq!(after["paper_wallet_balance"], wallet_before);
    assert_eq!(
        after["status"]["balance"]["wallet_balance"], wallet_before,
        "the running book resumed the stored wallet"
    );
    let open = after["open_positions"].as_array().unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["id"], position["id"]);
    assert_eq!(open[0]["entry_price"], position["entry_price"]);
    assert_eq!(open[0]["quantity"], position["quantity"]);
    let live = &after["status"]["balance"]["positions"][0];
    assert_eq!(live["entry_price"], position["entry_price"]);
    assert_eq!(live["tp_price"], position["tp_price"]);
    drop(d2);
}
