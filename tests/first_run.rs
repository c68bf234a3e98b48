//! `vibex run` raises its open-file soft limit to the hard limit and logs both.

mod common;

use common::daemon::Daemon;
use common::fake_venue::FakeVenue;
use nix::sys::resource::{getrlimit, setrlimit, Resource};

fn yaml(venue: &str) -> String {
    format!(
        r#"
accounts:
  - id: alpha
    asterdex: {{ base_url: {venue} }}
    llm_model: builtin/hold
    assets: [BTC]
    interval: 1s
"#
    )
}

#[actix_rt::test]
async fn run_raises_the_open_file_soft_limit_to_the_hard_limit_and_logs_both() {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    // The daemon inherits a soft limit below the hard one (the usual default of 1,024
    // when the hard limit allows more).
    let lowered = (hard / 2).min(1024);
    setrlimit(Resource::RLIMIT_NOFILE, lowered, hard).unwrap();
    let venue = FakeVenue::start();
    let db = common::pg::test_db();
    let d = Daemon::start(&yaml(venue.base_url()), Some(&db.url), &[]);
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).unwrap();

    let limits = std::fs::read_to_string(format!("/proc/{}/limits", d.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or_else(|| panic!("no open-file line in /proc/<pid>/limits:\n{limits}"));
    let values: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(values, vec![hard, hard], "soft raised to hard: {line}");

    let app_log = d.log_file("app.log");
    let logged = app_log
        .lines()
        .find(|l| l.contains("open-file limit raised to the hard limit"))
        .unwrap_or_else(|| panic!("no open-file limit line in app.log:\n{app_log}"));
    let v: serde_json::Value = serde_json::from_str(logged).unwrap();
    assert_eq!(v["soft_was"], lowered, "{logged}");
    assert_eq!(v["soft"], hard, "{logged}");
    assert_eq!(v["hard"], hard, "{logged}");
}
