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
//! - The cluster lives in `<dir>/cluster` unless that user cannot reach `<dir>` (as root
//!   with the data directory under a `0700` home): then it lives in a place it can reach,
//!   `/var/lib/vibex/clusters/<key>/cluster` or else
//!   `<system temp dir>/vibex-clusters/<key>/cluster`, where `<key>` is derived from the
//!   canonical data directory. The choice is recorded in `<dir>/cluster-location` and
//!   reused by every later start; that place is locked too (`<place>/vibex.lock`), so
//!   even a copy of the data directory cannot run a second server on the same cluster.
//!   Password, lock, server and initdb logs stay in `<dir>` (root only).
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
use sha2::{Digest, Sha256};

/// The role and database the daemon uses inside the private cluster.
pub const DB_USER: &str = "vibex";
/// Name of the application database inside the private cluster.
pub const DB_NAME: &str = "vibex";
/// The file in the data directory that records where its cluster lives when it is
/// not in the data directory itself.
pub const LOCATION_RECORD: &str = "cluster-location";
/// Where clusters go first when the server user cannot reach the data directory.
const SYSTEM_PLACES: &str = "/var/lib/vibex/clusters";
/// The fallback under the system temp directory (may be cleared at reboot).
const TEMP_PLACES: &str = "vibex-clusters";

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
    /// The cluster already lives in the data directory, which the unprivileged server
    /// user cannot reach (its permissions changed since it was made).
    #[error(
        "the data directory {dir} holds a PostgreSQL cluster that the unprivileged user \
         running the embedded PostgreSQL cannot reach ({blocked} is not traversable by it); \
         make {blocked} traversable (chmod o+x), move the data directory (data_dir or \
         VIBEX_DATA_DIR) somewhere it can reach, run vibex as a regular user, or set \
         DATABASE_URL"
    )]
    Unreachable {
        /// The data directory.
        dir: PathBuf,
        /// The ancestor that blocks access.
        blocked: PathBuf,
    },
    /// The server user cannot reach the data directory and no other place for the
    /// cluster could be used.
    #[error(
        "the data directory {dir} is not reachable by the unprivileged user that runs the \
         embedded PostgreSQL ({blocked} is not traversable by it), and no other place for \
         its cluster could be used ({tried}); set data_dir or VIBEX_DATA_DIR to a directory \
         outside it (e.g. /var/lib/vibex), run vibex as a regular user, or set DATABASE_URL"
    )]
    NoReachablePlace {
        /// The data directory.
        dir: PathBuf,
        /// The ancestor that blocks access.
        blocked: PathBuf,
        /// Each place tried and why it could not be used.
        tried: String,
    },
    /// `<dir>/cluster-location` does not name a usable place.
    #[error(
        "embedded database: {record} records where this data directory's cluster lives, \
         but {problem}; fix it, or remove the file to place a new, empty cluster"
    )]
    BadLocation {
        /// The record file.
        record: PathBuf,
        /// What is wrong with it.
        problem: String,
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

/// Where a cluster lives when its data directory is out of the server user's reach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relocation {
    /// The cluster directory (`PGDATA`).
    pub cluster: PathBuf,
    /// The file in the data directory that records it.
    pub record: PathBuf,
    /// The ancestor of the data directory the server user cannot traverse (`None` when
    /// the recorded place is reused although the data directory is reachable now).
    pub blocked: Option<PathBuf>,
    /// Taken from the record (an earlier start chose it) rather than chosen now.
    pub reused: bool,
    /// Under the system temp directory, which a reboot or a cleaner may empty.
    pub volatile: bool,
}

/// A running private PostgreSQL server, stopped when dropped.
pub struct EmbeddedPostgres {
    port: u16,
    password: String,
    child: Option<Child>,
    cluster: PathBuf,
    relocation: Option<Relocation>,
    created: bool,
    _lock: Flock<File>,
    _place_lock: Option<Flock<File>>,
}

impl EmbeddedPostgres {
    /// Initialises (first time) and starts the private cluster of the data directory
    /// `dir` (in `dir/cluster`, or in the place recorded or chosen for it when the
    /// server user cannot reach `dir`), then creates the application database. Blocks
    /// until the server accepts connections.
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
        let lock = lock_dir(&root)?;

        let owner = server_owner();
        let relocation = place_cluster(&root, owner)?;
        let cluster = relocation
            .as_ref()
            .map_or_else(|| root.join("cluster"), |r| r.cluster.clone());
        // The place outside the data directory is locked too: a copied data directory
        // records the same place.
        let place_lock = match relocation.as_ref().and_then(|r| r.cluster.parent()) {
            Some(place) => Some(lock_dir(place)?),
            None => None,
        };
        let bin = cluster_binaries(&cluster)?;
        let password = ensure_password(&root)?;
        let created = !cluster.join("PG_VERSION").exists();
        if created {
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
            cluster,
            relocation,
            created,
            _lock: lock,
            _place_lock: place_lock,
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

    /// The cluster directory (`PGDATA`), for the start-up log and operators.
    pub fn cluster_dir(&self) -> &Path {
        &self.cluster
    }

    /// Where the cluster lives when not in the data directory, and why.
    pub fn relocation(&self) -> Option<&Relocation> {
        self.relocation.as_ref()
    }

    /// Whether this start created the cluster (initdb ran): an empty database.
    pub fn created(&self) -> bool {
        self.created
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
/// data directory by path). Returns the first ancestor that is not.
fn check_reachable(dir: &Path, uid: Uid, gid: Gid) -> Result<(), PathBuf> {
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
            return Err(ancestor.to_path_buf());
        }
    }
    Ok(())
}

/// Takes the exclusive lock `<dir>/vibex.lock` (held while the server runs).
fn lock_dir(dir: &Path) -> Result<Flock<File>, EmbeddedPgError> {
    let lock_path = dir.join("vibex.lock");
    let lock_file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| io_err("open the lock file", &lock_path, e))?;
    Flock::lock(lock_file, FlockArg::LockExclusiveNonblock).map_err(|_| EmbeddedPgError::InUse {
        dir: dir.to_path_buf(),
    })
}

/// Decides where the cluster of the data directory `root` (canonical) lives: `None`
/// for `<root>/cluster`, or a place outside it (see the module invariants). A recorded
/// place is always reused; a new one is chosen only when the server user cannot reach
/// `root` and no cluster exists in it yet.
fn place_cluster(
    root: &Path,
    owner: Option<(Uid, Gid)>,
) -> Result<Option<Relocation>, EmbeddedPgError> {
    let places = [
        (PathBuf::from(SYSTEM_PLACES), false),
        (std::env::temp_dir().join(TEMP_PLACES), true),
    ];
    place_cluster_in(root, owner, &places)
}

/// [`place_cluster`] with the candidate bases given: `(directory, volatile)`, in order
/// of preference.
fn place_cluster_in(
    root: &Path,
    owner: Option<(Uid, Gid)>,
    places: &[(PathBuf, bool)],
) -> Result<Option<Relocation>, EmbeddedPgError> {
    let record = root.join(LOCATION_RECORD);
    let blocked = owner.and_then(|(uid, gid)| check_reachable(root, uid, gid).err());
    if record.exists() {
        let cluster = read_location(&record)?;
        let place = cluster
            .parent()
            .ok_or_else(|| EmbeddedPgError::BadLocation {
                record: record.clone(),
                problem: format!("{} has no parent directory", cluster.display()),
            })?
            .to_path_buf();
        // The place may have been emptied (a reboot clears the temp directory): it is
        // made again where it was, so the record stays true.
        prepare_place(&place, owner).map_err(|problem| EmbeddedPgError::BadLocation {
            record: record.clone(),
            problem,
        })?;
        return Ok(Some(Relocation {
            volatile: place.starts_with(std::env::temp_dir()),
            cluster,
            record,
            blocked,
            reused: true,
        }));
    }
    let Some(blocked) = blocked else {
        return Ok(None);
    };
    if root.join("cluster").join("PG_VERSION").exists() {
        // A database is already here: it is not moved behind the operator's back.
        return Err(EmbeddedPgError::Unreachable {
            dir: root.to_path_buf(),
            blocked,
        });
    }
    let key = place_key(root);
    let mut tried = Vec::new();
    for (base, volatile) in places {
        let place = base.join(&key);
        match prepare_place(&place, owner) {
            Ok(()) => {
                let cluster = place.join("cluster");
                write_location(root, &record, &place, &cluster)?;
                return Ok(Some(Relocation {
                    cluster,
                    record,
                    blocked: Some(blocked),
                    reused: false,
                    volatile: *volatile,
                }));
            }
            Err(problem) => tried.push(format!("{}: {problem}", place.display())),
        }
    }
    Err(EmbeddedPgError::NoReachablePlace {
        dir: root.to_path_buf(),
        blocked,
        tried: tried.join("; "),
    })
}

/// The name of a data directory's place: the first 16 hex digits of the SHA-256 of its
/// canonical path, so one data directory always maps to the same place.
fn place_key(root: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let digest = Sha256::digest(root.as_os_str().as_bytes());
    hex::encode(digest).chars().take(16).collect()
}

/// Makes `place` (and any missing parent) a directory of ours that nobody else can
/// write and that the server user can traverse; says why not when it cannot.
fn prepare_place(place: &Path, owner: Option<(Uid, Gid)>) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let missing: Vec<&Path> = place.ancestors().take_while(|p| !p.exists()).collect();
    for dir in missing.into_iter().rev() {
        match fs::create_dir(dir) {
            Ok(()) => fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
                .map_err(|e| format!("cannot set the mode of {}: {e}", dir.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
        }
    }
    // The place and its parent hold the cluster: neither may be a link, belong to
    // someone else, or be writable by others (a shared temp directory is).
    let me = Uid::effective().as_raw();
    for dir in [Some(place), place.parent()].into_iter().flatten() {
        let meta = fs::symlink_metadata(dir)
            .map_err(|e| format!("cannot inspect {}: {e}", dir.display()))?;
        if !meta.is_dir() {
            return Err(format!("{} is not a directory", dir.display()));
        }
        if meta.uid() != me {
            return Err(format!(
                "{} belongs to uid {}, not to this process (uid {me})",
                dir.display(),
                meta.uid()
            ));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(format!(
                "{} is writable by other users (mode {:o})",
                dir.display(),
                meta.mode() & 0o7777
            ));
        }
    }
    if let Some((uid, gid)) = owner {
        if let Err(blocked) = check_reachable(place, uid, gid) {
            return Err(format!(
                "{} is not traversable by the server user",
                blocked.display()
            ));
        }
    }
    Ok(())
}

fn read_location(record: &Path) -> Result<PathBuf, EmbeddedPgError> {
    let text = fs::read_to_string(record).map_err(|e| EmbeddedPgError::BadLocation {
        record: record.to_path_buf(),
        problem: format!("it cannot be read: {e}"),
    })?;
    let cluster = PathBuf::from(text.trim());
    if !cluster.is_absolute() {
        return Err(EmbeddedPgError::BadLocation {
            record: record.to_path_buf(),
            problem: format!("{:?} is not an absolute path", text.trim()),
        });
    }
    Ok(cluster)
}

/// Records the chosen place in the data directory (written whole, then renamed), and
/// names the data directory in the place, for an operator looking at it.
fn write_location(
    root: &Path,
    record: &Path,
    place: &Path,
    cluster: &Path,
) -> Result<(), EmbeddedPgError> {
    let owner_note = place.join("data-dir");
    fs::write(&owner_note, format!("{}\n", root.display())).map_err(|e| {
        io_err(
            "name the data directory in the cluster's place",
            &owner_note,
            e,
        )
    })?;
    let tmp = root.join(format!("{LOCATION_RECORD}.tmp"));
    fs::write(&tmp, format!("{}\n", cluster.display()))
        .map_err(|e| io_err("record where the cluster lives", &tmp, e))?;
    fs::rename(&tmp, record).map_err(|e| io_err("record where the cluster lives", record, e))
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
    // initdb reads the superuser password from a file the server user can read (beside
    // the cluster, which it reaches); it exists only while initdb runs.
    let pwfile = cluster.parent().unwrap_or(root).join("initdb-password");
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

    /// A user that owns nothing here.
    const STRANGER: (Uid, Gid) = (Uid::from_raw(54_321), Gid::from_raw(54_321));

    /// `<tmp>/home` (mode 0700) holding `project/data/postgres`.
    fn private_data_dir(tmp: &Path) -> (PathBuf, PathBuf) {
        let private = tmp.join("home");
        let data = private.join("project/data/postgres");
        fs::create_dir_all(&data).unwrap();
        fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
        (private, data.canonicalize().unwrap())
    }

    #[test]
    fn a_private_parent_directory_is_found_before_initdb() {
        let tmp = tempfile::tempdir().unwrap();
        let (private, data) = private_data_dir(tmp.path());
        let blocked = check_reachable(&data, STRANGER.0, STRANGER.1).unwrap_err();
        assert_eq!(blocked, private.canonicalize().unwrap());
        fs::set_permissions(&private, fs::Permissions::from_mode(0o755)).unwrap();
        assert!(check_reachable(&data, STRANGER.0, STRANGER.1).is_ok());
    }

    #[test]
    fn an_unreachable_data_directory_gets_a_recorded_place_that_later_starts_reuse() {
        let tmp = tempfile::tempdir().unwrap();
        let (private, data) = private_data_dir(tmp.path());
        let places = [(tmp.path().join("var/clusters"), false)];

        let first = place_cluster_in(&data, Some(STRANGER), &places)
            .unwrap()
            .expect("a place outside the data directory");
        let place = places[0].0.join(place_key(&data));
        assert_eq!(first.cluster, place.join("cluster"));
        assert_eq!(first.blocked, Some(private.canonicalize().unwrap()));
        assert!(!first.reused && !first.volatile);
        let recorded = fs::read_to_string(data.join(LOCATION_RECORD)).unwrap();
        assert_eq!(recorded.trim(), first.cluster.to_str().unwrap());
        // Made for the server user to traverse, writable by us alone.
        for dir in [&place, &places[0].0, &tmp.path().join("var")] {
            let mode = fs::metadata(dir).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o755, "{}", dir.display());
        }

        let again = place_cluster_in(&data, Some(STRANGER), &places)
            .unwrap()
            .unwrap();
        assert_eq!(again.cluster, first.cluster);
        assert!(again.reused);

        // Reachable now, but the database lives where the record says.
        fs::set_permissions(&private, fs::Permissions::from_mode(0o755)).unwrap();
        let reachable = place_cluster_in(&data, Some(STRANGER), &places)
            .unwrap()
            .unwrap();
        assert_eq!(reachable.cluster, first.cluster);
        assert_eq!(reachable.blocked, None);
    }

    #[test]
    fn the_same_data_directory_maps_to_the_same_place_and_another_to_another() {
        let a = Path::new("/srv/a/data/postgres");
        assert_eq!(place_key(a), place_key(a));
        assert_eq!(place_key(a).len(), 16);
        assert_ne!(place_key(a), place_key(Path::new("/srv/b/data/postgres")));
    }

    #[test]
    fn a_reachable_data_directory_keeps_its_cluster_inside() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data/postgres");
        fs::create_dir_all(&data).unwrap();
        let places = [(tmp.path().join("var/clusters"), false)];
        assert_eq!(
            place_cluster_in(&data, Some(STRANGER), &places).unwrap(),
            None
        );
        assert_eq!(place_cluster_in(&data, None, &places).unwrap(), None);
        assert!(!data.join(LOCATION_RECORD).exists());
    }

    #[test]
    fn an_existing_cluster_out_of_reach_is_reported_not_moved() {
        let tmp = tempfile::tempdir().unwrap();
        let (private, data) = private_data_dir(tmp.path());
        fs::create_dir_all(data.join("cluster")).unwrap();
        fs::write(data.join("cluster/PG_VERSION"), "15\n").unwrap();
        let places = [(tmp.path().join("var/clusters"), false)];
        let err = place_cluster_in(&data, Some(STRANGER), &places).unwrap_err();
        match &err {
            EmbeddedPgError::Unreachable { blocked, .. } => {
                assert_eq!(blocked, &private.canonicalize().unwrap())
            }
            other => panic!("expected Unreachable, got {other:?}"),
        }
        assert!(err.to_string().contains("chmod o+x"), "{err}");
        assert!(!places[0].0.exists(), "no place was made");
    }

    #[test]
    fn a_place_others_can_write_is_passed_over_for_the_next() {
        let tmp = tempfile::tempdir().unwrap();
        let (_, data) = private_data_dir(tmp.path());
        let shared = tmp.path().join("shared");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).unwrap();
        let places = [
            (shared.clone(), false),
            (tmp.path().join("tmp/vibex-clusters"), true),
        ];
        let chosen = place_cluster_in(&data, Some(STRANGER), &places)
            .unwrap()
            .unwrap();
        assert!(chosen.cluster.starts_with(&places[1].0), "{chosen:?}");
        assert!(chosen.volatile);

        let (_, other) = private_data_dir(&tmp.path().join("second"));
        let err = place_cluster_in(&other, Some(STRANGER), &places[..1]).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, EmbeddedPgError::NoReachablePlace { .. }),
            "{msg}"
        );
        assert!(msg.contains("writable by other users"), "{msg}");
        assert!(msg.contains("VIBEX_DATA_DIR"), "{msg}");
    }

    #[test]
    fn a_record_that_is_not_an_absolute_path_is_refused_with_what_to_do() {
        let tmp = tempfile::tempdir().unwrap();
        let (_, data) = private_data_dir(tmp.path());
        fs::write(data.join(LOCATION_RECORD), "relative/cluster\n").unwrap();
        let err = place_cluster_in(&data, Some(STRANGER), &[]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("not an absolute path"), "{msg}");
        assert!(msg.contains("remove the file"), "{msg}");
    }
}
