//! A real PostgreSQL for the tests: one private cluster per test binary (started with the
//! daemon's own embedded-cluster code), one fresh database per test.

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
        if let Some(pid) = name.strip_prefix("pg-") {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}
