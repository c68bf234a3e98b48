//! The README's first command on a machine as it comes: run as root with the clone in a
//! private (`0700`) home directory, `vibex run` places its private PostgreSQL cluster
//! where the unprivileged server user can reach it, records the place in the data
//! directory, serves `/health`, leaves no server behind at shutdown, and the next start
//! reuses the same cluster (the first run's decisions are still there). And `vibex run`
//! raises its open-file soft limit to the hard limit and logs both.

mod common;

use common::daemon::Daemon;
use common::fake_venue::FakeVenue;
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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

/// Removes the cluster's place outside the temporary directory when the test ends, and
/// the parent directories vibex made for it (those that did not exist before the test),
/// so a test run leaves nothing in `/var/lib`.
struct RemovePlace {
    place: Option<PathBuf>,
    made: Vec<PathBuf>,
}

impl RemovePlace {
    fn new() -> RemovePlace {
        let bases = [
            PathBuf::from("/var/lib/vibex/clusters"),
            PathBuf::from("/var/lib/vibex"),
            std::env::temp_dir().join("vibex-clusters"),
        ];
        RemovePlace {
            place: None,
            made: bases.into_iter().filter(|b| !b.exists()).collect(),
        }
    }
}

impl Drop for RemovePlace {
    fn drop(&mut self) {
        if let Some(place) = self.place.take() {
            let _ = std::fs::remove_dir_all(place);
        }
        for dir in &self.made {
            // Only when empty: anything else in it is not ours.
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Processes (any user) whose working directory is `cluster`: the postmaster and its
/// backends all run there.
fn postgres_in(cluster: &Path) -> Vec<u32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if std::fs::read_link(e.path().join("cwd")).is_ok_and(|cwd| cwd == cluster) {
            found.push(pid);
        }
    }
    found
}

/// Waits (up to 5 s) until no process runs in `cluster`; panics naming those left.
fn assert_no_server_left(cluster: &Path) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = postgres_in(cluster);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "postgres processes {left:?} still run in {} 5 s after vibex exited",
            cluster.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn decision_ids(d: &Daemon) -> Vec<String> {
    let (status, body) = d.get("/decisions?account_id=alpha&limit=100").await;
    assert_eq!(status, 200, "{body}");
    body["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[actix_rt::test]
async fn as_root_in_a_private_home_the_first_command_runs_and_restarts_on_the_same_cluster() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!(
            "skipped: this journey checks what happens as root (the private PostgreSQL then \
             runs as the unprivileged `postgres` user); run the tests as root to check it"
        );
        return;
    }
    let venue = FakeVenue::start();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("root-home");
    let clone = home.join("vibex");
    std::fs::create_dir_all(&clone).unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    let record = clone.join("data/postgres/cluster-location");
    let mut cleanup = RemovePlace::new();

    let mut d = Daemon::start_in(&clone, &yaml(venue.base_url()), None, &[]);
    let recorded = std::fs::read_to_string(&record)
        .unwrap_or_else(|e| panic!("{} was not written: {e}", record.display()));
    let cluster = PathBuf::from(recorded.trim());
    cleanup.place = cluster.parent().map(Path::to_path_buf);
    assert!(
        !cluster.starts_with(&home),
        "the cluster {} is outside the private home",
        cluster.display()
    );
    let owner = std::fs::metadata(&cluster).unwrap().uid();
    assert_ne!(
        owner, 0,
        "the cluster belongs to the unprivileged server user"
    );
    let app_log = d.log_file("app.log");
    assert!(
        app_log.contains("the cluster is placed outside it")
            && app_log.contains(cluster.to_str().unwrap()),
        "app.log says where the cluster went:\n{app_log}"
    );
    // The first cycle's decisions stored (the status counts a cycle when it ends; its
    // rows become visible a group commit later).
    d.wait_for(
        "/decisions?account_id=alpha&limit=1",
        Duration::from_secs(30),
        |b| b["count"].as_u64().unwrap_or(0) >= 1,
    )
    .await;
    let first_run = decision_ids(&d).await;
    assert!(
        !first_run.is_empty(),
        "the first cycle's decisions are stored"
    );
    assert!(
        !postgres_in(&cluster).is_empty(),
        "the server runs in the recorded place"
    );

    let (status, _) = d.terminate(Duration::from_secs(15));
    assert!(status.success(), "vibex exits cleanly: {status}");
    assert_no_server_left(&cluster);
    assert!(
        !cluster.join("postmaster.pid").exists(),
        "the server shut down cleanly (no postmaster.pid left)"
    );

    // The next start reuses the recorded place and finds the first run's rows.
    let d2 = Daemon::start_in(&clone, &yaml(venue.base_url()), None, &[]);
    assert_eq!(std::fs::read_to_string(&record).unwrap(), recorded);
    assert!(
        d2.log_file("app.log")
            .contains("reusing the place recorded in the data directory"),
        "the second start says it reuses the recorded place"
    );
    let second_run = decision_ids(&d2).await;
    for id in &first_run {
        assert!(
            second_run.contains(id),
            "decision {id} of the first run is in the reused cluster"
        );
    }
    drop(d2);
    assert_no_server_left(&cluster);
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
