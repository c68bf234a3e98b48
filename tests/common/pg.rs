//! A real PostgreSQL for the tests: one private cluster per test binary (started with the
//! daemon's own embedded-cluster code), one fresh database per test; and
//! [`StoppableCluster`], a cluster of one test's own that it may stop and start again
//! on the same port (a database outage) without disturbing the others.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, OnceLock};
use vibex::db::embedded::EmbeddedPostgres;

struct Cluster {
    /// URL template: `{db}` is replaced by the database name.
    base: String,
    port: u16,
    password: String,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

/// A fresh, empty database in the shared test cluster.
pub struct TestDb {
    /// Connection URL (contains the cluster's generated password).
    pub url: String,
    /// Database name.
    pub name: String,
    /// Cluster password, to assert it never leaks.
    pub password: String,
    /// Cluster port.
    pub port: u16,
}

fn cluster() -> &'static Cluster {
    let result = CLUSTER.get_or_init(|| {
        // Under the system temp directory: the server runs as the unprivileged
        // `postgres` user when the tests run as root, and a checkout under a private
        // home directory would not be reachable by it.
        let root = std::env::temp_dir().join("vibex-test-pg");
        let _ = std::fs::create_dir_all(&root);
        remove_dead_clusters(&root);
        let dir = root.join(format!("pg-{}", std::process::id()));
        let (tx, rx) = mpsc::channel();
        // The server is a child of this thread and dies with it (parent-death signal),
        // so the thread lives as long as the test process.
        std::thread::Builder::new()
            .name("test-postgres".into())
            .spawn(move || match EmbeddedPostgres::start(&dir) {
                Ok(pg) => {
                    let _ = tx.send(Ok(Cluster {
                        base: pg.url_for("{db}"),
                        port: pg.port(),
                        password: pg.password().to_string(),
                    }));
                    loop {
                        std::thread::park();
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                }
            })
            .map_err(|e| e.to_string())?;
        rx.recv().map_err(|e| e.to_string())?
    });
    match result {
        Ok(c) => c,
        Err(e) => panic!("test PostgreSQL could not start: {e}"),
    }
}

/// Creates a new database for one test.
pub fn test_db() -> TestDb {
    let c = cluster();
    let name = format!(
        "t{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::SeqCst)
    );
    let admin = c.base.replace("{db}", "postgres");
    use diesel::{Connection, PgConnection, RunQueryDsl};
    let mut conn = PgConnection::establish(&admin).expect("connect to test cluster");
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .expect("create test database");
    TestDb {
        url: c.base.replace("{db}", &name),
        name,
        password: c.password.clone(),
        port: c.port,
    }
}

fn remove_dead_clusters(root: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let pid = name.strip_prefix("pg-").or_else(|| {
            name.strip_prefix("stoppable-")
                .and_then(|rest| rest.split('-').next())
        });
        if let Some(pid) = pid {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

static NEXT_STOPPABLE: AtomicUsize = AtomicUsize::new(0);

/// A free port below the kernel's ephemeral range (32768 and up): while the cluster is
/// stopped, no `bind(0)` elsewhere (a test's server, another cluster) can take it.
fn unephemeral_port() -> u16 {
    use rand::Rng;
    let mut rng = rand::rng();
    for _ in 0..200 {
        let port = rng.random_range(20_000..32_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000..32000 for a stoppable test cluster")
}

/// A private cluster one test owns: [`StoppableCluster::stop`] and
/// [`StoppableCluster::start`] play a database outage (connections are cut, new ones
/// refused, then the same server comes back on the same port with the same data).
///
/// The server dies with the thread that started it (parent-death signal): create,
/// stop and start it from the test's own thread.
pub struct StoppableCluster {
    dir: std::path::PathBuf,
    pg: Option<EmbeddedPostgres>,
    port: u16,
    base: String,
    /// The cluster password, to assert it never leaks.
    pub password: String,
}

impl StoppableCluster {
    /// Starts a new cluster under the system temporary directory.
    pub fn new() -> StoppableCluster {
        // Not a `tempfile` directory: those are 0700, which the unprivileged server
        // user (when the tests run as root) cannot enter.
        let root = std::env::temp_dir().join("vibex-test-pg");
        let _ = std::fs::create_dir_all(&root);
        remove_dead_clusters(&root);
        let dir = root.join(format!(
            "stoppable-{}-{}",
            std::process::id(),
            NEXT_STOPPABLE.fetch_add(1, Ordering::SeqCst)
        ));
        let pg = EmbeddedPostgres::start_on(&dir, Some(unephemeral_port()))
            .unwrap_or_else(|e| panic!("stoppable test PostgreSQL could not start: {e}"));
        StoppableCluster {
            port: pg.port(),
            base: pg.url_for("{db}"),
            password: pg.password().to_string(),
            pg: Some(pg),
            dir,
        }
    }

    /// Creates a database and returns its URL (valid across stops and starts).
    pub fn create_db(&self, name: &str) -> String {
        let pg = self.pg.as_ref().expect("the cluster is running");
        pg.create_database(name).expect("create database");
        self.base.replace("{db}", name)
    }

    /// The port it listens on (the same after a restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Fast shutdown: open connections are cut, new ones refused.
    pub fn stop(&mut self) {
        if let Some(mut pg) = self.pg.take() {
            pg.stop();
        }
    }

    /// Starts the same cluster again on the same port.
    pub fn start(&mut self) {
        let mut attempts = 0;
        while self.pg.is_none() {
            match EmbeddedPostgres::start_on(&self.dir, Some(self.port)) {
                Ok(pg) => self.pg = Some(pg),
                // The port may be held for a moment by a connection attempt.
                Err(_) if attempts < 10 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(500));
                }
                Err(e) => panic!("stoppable test PostgreSQL could not restart: {e}"),
            }
        }
    }
}

impl Drop for StoppableCluster {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A registered paper account's row, for tests that write rows of their own under it.
pub fn paper_account_row(id: &str) -> vibex::db::models::AccountRow {
    let now = chrono::Utc::now();
    vibex::db::models::AccountRow {
        id: id.into(),
        mode: "paper".into(),
        venue_base_url: "http://127.0.0.1:1".into(),
        llm_model: "builtin/hold".into(),
        assets: vec!["BTC".into()],
        interval_label: "1m".into(),
        leverage: 1,
        status: "registered".into(),
        paper_starting_balance: rust_decimal::Decimal::from(10_000),
        paper_wallet_balance: rust_decimal::Decimal::from(10_000),
        config: serde_json::json!({}),
        created_at: now,
        updated_at: now,
    }
}
