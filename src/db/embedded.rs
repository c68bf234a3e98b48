//! The embedded default database: a private PostgreSQL cluster under the data directory.
//!
//! Entry point: [`EmbeddedPostgres::start`]. With no `DATABASE_URL`, `vibex run` starts
//! one from the installed server binaries, connects to it on loopback with a generated
//! password, and stops it on shutdown. [`EmbeddedPostgres::start_on`] starts it again
//! on a known port (tests stop and restart a cluster to play a database outage).
//!
//! Invariants:
//! - The server is a direct child of this process (not daemonised by `pg_ctl`) and
//!   receives SIGINT (fast shutdown) if its parent dies, so a killed daemon never leaves
//!   an orphan server behind.
//! - Only one process uses a data directory at a time: an exclusive lock on
//!   `<dir>/vibex.lock` is held while the server runs.
//! - PostgreSQL refuses to run as root; when we are root, the cluster belongs to the
//!   unprivileged `postgres` user (or `nobody`) and the server runs as that user.
//! - It listens on 127.0.0.1 only, on a free port chosen at start, with
//!   scram-sha-256 password authentication; the password lives in `<dir>/password`
//!   (mode 0600) and is registered as a secret for the log masker.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{kill, Signal};
use nix::unistd::{Gid, Pid, Uid, User};

/// The role and database the daemon uses inside the private cluster.
pub const DB_USER: &str = "vibex";
/// Name of the application database inside the private cluster.
pub const DB_NAME: &str = "vibex";

/// Why the embedded database could not be started.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedPgError {
    /// The PostgreSQL server binaries are not installed where we look.
    #[error(
        "PostgreSQL server binaries (initdb, postgres) were not found (looked in {searched}). \
         Install the PostgreSQL server (Debian/Ubuntu: `apt install postgresql`, \
         Fedora: `dnf install postgresql-server`, macOS: `brew install postgresql`), \
         set VIBEX_PG_BIN to the directory holding initdb and postgres, \
         or set DATABASE_URL to use an existing server"
    )]
    BinariesNotFound {
        /// The directories that were searched.
        searched: String,
    },
    /// The unprivileged server user cannot reach the data directory.
    #[error(
        "the data directory {dir} is not reachable by the unprivileged user that runs the \
         embedded PostgreSQL ({blocked} is not traversable by it); set data_dir or \
         VIBEX_DATA_DIR to a directory outside it (e.g. /var/lib/vibex), run vibex as a \
         regular user, or set DATABASE_URL"
    )]
    Unreachable {
        /// The data directory.
        dir: PathBuf,
        /// The ancestor that blocks access.
        blocked: PathBuf,
    },
    /// Another process holds the data directory.
    #[error("the embedded database in {dir} is in use by another vibex process; stop it first or choose another data_dir")]
    InUse {
        /// The cluster directory.
        dir: PathBuf,
    },
    /// A filesystem step failed.
    #[error("embedded database: {what} ({path}): {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// initdb or the server failed; the message includes the tail of its log.
    #[error("embedded database: {0}")]
    Server(String),
}

/// A running private PostgreSQL server, stopped when dropped.
pub struct EmbeddedPostgres {
    port: u16,
    password: String,
    child: Option<Child>,
    _lock: Flock<File>,
}

impl EmbeddedPostgres {
    /// Initialises (first time) and starts the private cluster under `dir`, then
    /// creates the application database. Blocks until the server accepts connections.
    pub fn start(dir: &Path) -> Result<Self, EmbeddedPgError> {
        Self::start_on(dir, None)
    }

    /// [`Self::start`] on `port` (a free one when `None`): a cluster stopped and
    /// started again on the same port is what clients see in a database outage.
    pub fn start_on(dir: &Path, port: Option<u16>) -> Result<Self, EmbeddedPgError> {
        fs::create_dir_all(dir).map_err(|e| io_err("create the data directory", dir, e))?;
        let root = dir
            .canonicalize()
            .map_err(|e| io_err("resolve the data directory", dir, e))?;
        let lock_path = root.join("vibex.lock");
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io_err("open the lock file", &lock_path, e))?;
        let lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock)
            .map_err(|_| EmbeddedPgError::InUse { dir: root.clone() })?;

        let owner = server_owner();
        if let Some((uid, gid)) = owner {
            check_reachable(&root, uid, gid)?;
        }
        let cluster = root.join("cluster");
        let bin = cluster_binaries(&cluster)?;
        let password = ensure_password(&root)?;
        if !cluster.join("PG_VERSION").exists() {
            init_cluster(&bin, &root, &cluster, owner, &password)?;
        }
        remove_stale_pid(&cluster);
        let port = match port {
            Some(p) => p,
            None => free_port().map_err(|e| io_err("find a free port", &root, e))?,
        };
        let log_path = root.join("server.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| io_err("open the server log", &log_path, e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| io_err("open the server log", &log_path, e))?;
        let mut cmd = Command::new(bin.join("postgres"));
        cmd.arg("-D")
            .arg(&cluster)
            .args(["-p", &port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "unix_socket_directories="])
            .args(["-c", "max_connections=200"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            // Its own process group: Ctrl-C in a terminal reaches vibex only, which
            // then finishes its writes before stopping the server.
            .process_group(0);
        as_owner(&mut cmd, owner);
        // SAFETY: the closure only calls async-signal-safe prctl/getppid via nix.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGINT)?;
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| io_err("start postgres", &bin, e))?;
        let mut pg = EmbeddedPostgres {
            port,
            password,
            child: Some(child),
            _lock: lock,
        };
        pg.wait_ready(&log_path)?;
        pg.ensure_database()?;
        Ok(pg)
    }

    /// Connection URL of the application database (contains the password: a secret).
    pub fn url(&self) -> String {
        self.url_for(DB_NAME)
    }

    /// Connection URL of another database in the same cluster.
    pub fn url_for(&self, db: &str) -> String {
        format!(
            "postgres://{DB_USER}:{}@127.0.0.1:{}/{db}",
            self.password, self.port
        )
    }

    /// The generated password (to register with the log masker).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Fast shutdown (active transactions are rolled back, the server exits cleanly);
    /// after 1.5 s an immediate shutdown (recovery runs at the next start), after 2 s
    /// a kill. Bounded so that the daemon's own shutdown stays within 10 s.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = i32::try_from(child.id()).ok().map(Pid::from_raw);
            let started = Instant::now();
            let mut escalated = false;
            if let Some(pid) = pid {
                let _ = kill(pid, Signal::SIGINT);
            }
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if started.elapsed() < Duration::from_millis(1500) => {}
                    Ok(None) if started.elapsed() < Duration::from_secs(2) => {
                        if let (Some(pid), false) = (pid, escalated) {
                            let _ = kill(pid, Signal::SIGQUIT);
                            escalated = true;
                        }
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn wait_ready(&mut self, log_path: &Path) -> Result<(), EmbeddedPgError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(EmbeddedPgError::Server(format!(
                        "postgres exited during start-up ({status}); last lines of {}:\n{}",
                        log_path.display(),
                        log_tail(log_path)
                    )));
                }
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && self.query_ok("postgres")
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(EmbeddedPgError::Server(format!(
                    "postgres did not accept connections within 60 s; last lines of {}:\n{}",
                    log_path.display(),
                    log_tail(log_path)
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn query_ok(&self, db: &str) -> bool {
        use diesel::{Connection, PgConnection, RunQueryDsl};
        PgConnection::establish(&self.url_for(db))
            .and_then(|mut c| {
                diesel::sql_query("SELECT 1")
                    .execute(&mut c)
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)
            })
            .is_ok()
    }

    /// Creates a database in this cluster unless it exists.
    pub fn create_database(&self, name: &str) -> Result<(), EmbeddedPgError> {
        use diesel::sql_types::Text;
        use diesel::{Connection, PgConnection, RunQueryDsl};
        #[derive(diesel::QueryableByName)]
        struct Found {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            #[allow(dead_code)]
            one: i32,
        }
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(EmbeddedPgError::Server(format!(
                "invalid database name {name:?}"
            )));
        }
        let mut conn = PgConnection::establish(&self.url_for("postgres"))
            .map_err(|e| EmbeddedPgError::Server(format!("connect: {e}")))?;
        let found: Vec<Found> =
            diesel::sql_query("SELECT 1 AS one FROM pg_database WHERE datname = $1")
                .bind::<Text, _>(name)
                .load(&mut conn)
                .map_err(|e| EmbeddedPgError::Server(format!("look up database: {e}")))?;
        if found.is_empty() {
            diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
                .execute(&mut conn)
                .map_err(|e| EmbeddedPgError::Server(format!("create database {name}: {e}")))?;
        }
        Ok(())
    }

    fn ensure_database(&self) -> Result<(), EmbeddedPgError> {
        self.create_database(DB_NAME)
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

fn io_err(what: &'static str, path: &Path, source: std::io::Error) -> EmbeddedPgError {
    EmbeddedPgError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Looks for `initdb` and `postgres`: only in `VIBEX_PG_BIN` when it is set, otherwise
/// in the Debian layout (`/usr/lib/postgresql/<newest>/bin`), other common prefixes,
/// then `PATH`.
fn find_binaries() -> Result<PathBuf, EmbeddedPgError> {
    if let Some(dir) = std::env::var_os("VIBEX_PG_BIN") {
        let dir = PathBuf::from(dir);
        return if has_server(&dir) {
            Ok(dir)
        } else {
            Err(EmbeddedPgError::BinariesNotFound {
                searched: format!("VIBEX_PG_BIN={}", dir.display()),
            })
        };
    }
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(entries) = fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<(u32, PathBuf)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
                Some((v, e.path().join("bin")))
            })
            .collect();
        versions.sort_by_key(|v| std::cmp::Reverse(v.0));
        candidates.extend(versions.into_iter().map(|(_, p)| p));
    }
    for p in [
        "/usr/pgsql/bin",
        "/usr/local/pgsql/bin",
        "/opt/homebrew/bin",
        "/usr/local/bin",
        "/usr/bin",
    ] {
        candidates.push(PathBuf::from(p));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    candidates
        .into_iter()
        .find(|d| has_server(d))
        .ok_or_else(|| EmbeddedPgError::BinariesNotFound {
            searched: "/usr/lib/postgresql/*/bin, /usr/local/pgsql/bin, /usr/local/bin, PATH"
                .into(),
        })
}

/// The binaries for an existing cluster are those of the major version that created it
/// (Debian installs majors side by side); a new cluster takes the newest installed.
fn cluster_binaries(cluster: &Path) -> Result<PathBuf, EmbeddedPgError> {
    if std::env::var_os("VIBEX_PG_BIN").is_none() {
        if let Ok(version) = fs::read_to_string(cluster.join("PG_VERSION")) {
            let dir = PathBuf::from(format!("/usr/lib/postgresql/{}/bin", version.trim()));
            if has_server(&dir) {
                return Ok(dir);
            }
        }
    }
    find_binaries()
}

fn has_server(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("postgres").is_file()
}

/// The unprivileged user that owns and runs the cluster when we are root.
fn server_owner() -> Option<(Uid, Gid)> {
    if !Uid::effective().is_root() {
        return None;
    }
    for name in ["postgres", "nobody"] {
        if let Ok(Some(user)) = User::from_name(name) {
            return Some((user.uid, user.gid));
        }
    }
    None
}

/// Every ancestor of `dir` must be traversable by the server user (PostgreSQL opens its
/// data directory by path).
fn check_reachable(dir: &Path, uid: Uid, gid: Gid) -> Result<(), EmbeddedPgError> {
    use std::os::unix::fs::MetadataExt;
    for ancestor in dir.ancestors() {
        let Ok(meta) = fs::metadata(ancestor) else {
            continue;
        };
        let mode = meta.mode();
        let ok = mode & 0o001 != 0
            || (meta.uid() == uid.as_raw() && mode & 0o100 != 0)
            || (meta.gid() == gid.as_raw() && mode & 0o010 != 0);
        if !ok {
            return Err(EmbeddedPgError::Unreachable {
                dir: dir.to_path_buf(),
                blocked: ancestor.to_path_buf(),
            });
        }
    }
    Ok(())
}

fn as_owner(cmd: &mut Command, owner: Option<(Uid, Gid)>) {
    if let Some((uid, gid)) = owner {
        cmd.uid(uid.as_raw()).gid(gid.as_raw());
    }
}

fn chown(path: &Path, owner: Option<(Uid, Gid)>) -> Result<(), EmbeddedPgError> {
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid.as_raw()), Some(gid.as_raw()))
            .map_err(|e| io_err("give the cluster directory to the server user", path, e))?;
    }
    Ok(())
}

fn ensure_password(root: &Path) -> Result<String, EmbeddedPgError> {
    let path = root.join("password");
    if let Ok(mut f) = File::open(&path) {
        let mut s = String::new();
        f.read_to_string(&mut s)
            .map_err(|e| io_err("read the database password", &path, e))?;
        let s = s.trim().to_string();
        if !s.is_empty() {
            return Ok(s);
        }
    }
    use rand::distr::{Alphanumeric, SampleString};
    let password = Alphanumeric.sample_string(&mut rand::rng(), 32);
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| io_err("write the database password", &path, e))?;
    f.write_all(password.as_bytes())
        .map_err(|e| io_err("write the database password", &path, e))?;
    Ok(password)
}

fn init_cluster(
    bin: &Path,
    root: &Path,
    cluster: &Path,
    owner: Option<(Uid, Gid)>,
    password: &str,
) -> Result<(), EmbeddedPgError> {
    // A half-made cluster from an interrupted initdb is started over.
    if cluster.exists() {
        fs::remove_dir_all(cluster)
            .map_err(|e| io_err("remove an incomplete cluster", cluster, e))?;
    }
    fs::create_dir_all(cluster).map_err(|e| io_err("create the cluster directory", cluster, e))?;
    fs::set_permissions(cluster, fs::Permissions::from_mode(0o700))
        .map_err(|e| io_err("restrict the cluster directory", cluster, e))?;
    chown(cluster, owner)?;
    // initdb reads the superuser password from a file the server user can read; it
    // exists only while initdb runs.
    let pwfile = root.join("initdb-password");
    {
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&pwfile)
            .map_err(|e| io_err("write the initdb password file", &pwfile, e))?;
        f.write_all(password.as_bytes())
            .map_err(|e| io_err("write the initdb password file", &pwfile, e))?;
    }
    chown(&pwfile, owner)?;
    let log_path = root.join("initdb.log");
    let log = File::create(&log_path).map_err(|e| io_err("open the initdb log", &log_path, e))?;
    let log_err = log
        .try_clone()
        .map_err(|e| io_err("open the initdb log", &log_path, e))?;
    let mut cmd = Command::new(bin.join("initdb"));
    cmd.arg("-D")
        .arg(cluster)
        .args(["-U", DB_USER, "-E", "UTF8", "--locale=C", "--no-sync"])
        .args(["--auth-host=scram-sha-256", "--auth-local=scram-sha-256"])
        .arg(format!("--pwfile={}", pwfile.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err));
    as_owner(&mut cmd, owner);
    let status = cmd.status().map_err(|e| io_err("run initdb", bin, e));
    let _ = fs::remove_file(&pwfile);
    let status = status?;
    if !status.success() {
        return Err(EmbeddedPgError::Server(format!(
            "initdb failed ({status}); last lines of {}:\n{}",
            log_path.display(),
            log_tail(&log_path)
        )));
    }
    Ok(())
}

/// A server killed without a clean shutdown leaves `postmaster.pid`; postgres handles a
/// stale file itself unless its pid was reused. We hold the data-dir lock, so no other
/// vibex runs this cluster: a pid file pointing at a process that is not a postgres of
/// ours is removed.
fn remove_stale_pid(cluster: &Path) {
    let pid_file = cluster.join("postmaster.pid");
    let Ok(text) = fs::read_to_string(&pid_file) else {
        return;
    };
    let pid = text
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<i32>().ok());
    let alive_postgres = pid
        .map(|p| {
            fs::read_to_string(format!("/proc/{p}/comm"))
                .map(|c| c.trim() == "postgres")
                .unwrap_or(false)
        })
        .unwrap_or(false);
    if let (Some(p), true) = (pid, alive_postgres) {
        // An orphan server of ours from a crashed run: stop it so we can start cleanly.
        let _ = kill(Pid::from_raw(p), Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{p}")).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    if !alive_postgres || !pid_file.exists() {
        let _ = fs::remove_file(&pid_file);
    }
}

fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(15);
    lines.get(start..).unwrap_or_default().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_private_parent_directory_is_reported_not_hit_at_initdb() {
        let tmp = tempfile::tempdir().unwrap();
        let private = tmp.path().join("home");
        let data = private.join("project/data/postgres");
        fs::create_dir_all(&data).unwrap();
        fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
        // A user that owns nothing here cannot traverse the 0700 directory.
        let stranger = (Uid::from_raw(54_321), Gid::from_raw(54_321));
        match check_reachable(&data, stranger.0, stranger.1) {
            Err(EmbeddedPgError::Unreachable { blocked, .. }) => assert_eq!(blocked, private),
            other => panic!("expected Unreachable, got {other:?}"),
        }
        let msg = check_reachable(&data, stranger.0, stranger.1)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("VIBEX_DATA_DIR"), "{msg}");
        fs::set_permissions(&private, fs::Permissions::from_mode(0o755)).unwrap();
        assert!(check_reachable(&data, stranger.0, stranger.1).is_ok());
    }
}
