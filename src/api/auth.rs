//! The gate in front of every route: who is calling, how fast, from where.
//!
//! Entry points: [`ServingPlan::decide`] (which address the API binds and whether it asks
//! for keys — `app::serve` calls it before binding and says what it decided),
//! [`Gate::new`] and [`Gate::middleware`] (wrapped around every route),
//! [`Gate::admit`] (the decision for one request, also what `benches/auth.rs` times),
//! [`Gate::sweep`] (drops idle buckets; called every minute), [`Gate::check_keys`] and
//! [`Gate::replace_keys`] (a reload's new keys, through [`GateKeys`]), [`cors`] (the
//! CORS layer from `api.cors_origins`), [`json_refusals`] (CORS and body-size refusals as
//! JSON), [`generate_key`] and [`key_digest`] (`vibex keys new`).
//!
//! Invariants:
//! - A key is read from `Authorization: Bearer KEY` or `X-API-Key: KEY` (and, on
//!   `/ws/...` upgrades only, `?api_key=KEY`), hashed with SHA-256, and the hash is
//!   compared with every configured hash in constant time, all of them every time: the
//!   time taken says nothing about which key, or which prefix, came close. A missing
//!   key and a wrong key get the same 401. The key is never logged, stored or echoed;
//!   the key's configured *name* is what logs and the audit trail carry.
//! - A reload (`SIGHUP`, `POST /config/reload`) replaces the keys whole: the next request
//!   is judged by the new ones, a WebSocket session opened with a removed or changed key
//!   is closed, and a key's bucket follows its name. A daemon started with keys keeps at
//!   least one; one started without keys takes keys only at its next start.
//! - `/health` is always open and never rate limited (an orchestrator's probe).
//! - No key configured: the daemon serves only on loopback (see [`ServingPlan`]) and
//!   every route is open there as for a local tool, for requests addressed to a loopback
//!   host (a page on another site that rebinds its DNS name to 127.0.0.1 is refused);
//!   `api.allow_unauthenticated: true` opens every route on the configured host.
//! - Rate limits: a request authenticated by a key spends that key's bucket only, so
//!   one noisy key never slows another; every other request (no key, a wrong key, any
//!   request of a keyless daemon) spends its client address's bucket (IPv6 by /64). A
//!   refusal is a 429 with `Retry-After` (whole seconds, rounded up). The per-address
//!   state is bounded: idle buckets are swept every minute, and past
//!   [`MAX_TRACKED_ADDRESSES`] the addresses not yet tracked share one bucket.
//! - A WebSocket upgrade carrying an `Origin` that is neither one of `api.cors_origins`
//!   nor the daemon's own (`http(s)://` + the request's `Host`) is refused (403); one
//!   without `Origin` (not a browser) is judged by its key alone.
//! - A body declared larger than [`MAX_BODY_BYTES`] is refused (413) before it is read;
//!   the JSON and payload extractors enforce the same limit on bodies without a length.
//! - Every refusal is the JSON error body of [`ApiError`].

use crate::api::access::{Caller, Role};
use crate::api::error::ApiError;
use crate::config::{ApiKeyConfig, ApiSettings, RateBucket};
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, ResponseError};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use serde::Serialize;
use sha2::{Digest, Sha256};
use slog::{debug, info, Logger};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use subtle::{ConditionallySelectable, ConstantTimeEq};

/// Largest request body the API reads (JSON or YAML of a control request): 64 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Client addresses tracked with a bucket of their own; beyond this, untracked addresses
/// share one bucket until the next sweep frees room (bounded memory under a flood from
/// many addresses).
pub const MAX_TRACKED_ADDRESSES: usize = 65_536;
/// How often idle per-address buckets are dropped.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// The prefix of keys made by `vibex keys new`.
pub const KEY_PREFIX: &str = "vx_";
/// Longest key the gate hashes; anything longer is a wrong key without hashing it.
const MAX_KEY_LEN: usize = 512;
/// The one message of every authentication refusal: it never says whether a key was
/// sent, nor whether one like it exists.
const UNAUTHORIZED: &str =
    "a valid API key is required: send it as Authorization: Bearer KEY or X-API-Key: KEY";
/// The bucket shared by addresses beyond [`MAX_TRACKED_ADDRESSES`].
const OVERFLOW_ADDRESS: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

/// How the API is exposed, decided once at start from `api.keys`,
/// `api.allow_unauthenticated` and `api.host`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exposure {
    /// Keys are configured: every route but `/health` needs one.
    Keys,
    /// No key: served on loopback only, every route open to local clients addressing a
    /// loopback host.
    Loopback,
    /// No key and `api.allow_unauthenticated: true`: every route open on the configured
    /// host.
    Open,
}

/// Where the API listens and how it admits callers, with what to say about it at start.
#[derive(Clone, Debug)]
pub struct ServingPlan {
    /// The address to bind (the configured host, or loopback in place of it).
    pub host: String,
    /// How callers are admitted.
    pub exposure: Exposure,
    /// One line for the start-up log saying how the API is protected.
    pub summary: String,
    /// A warning to log and print at start (an open API, a host replaced by
    /// loopback, an ignored setting), if any.
    pub warning: Option<String>,
}

impl ServingPlan {
    /// Decides from the configuration. Without keys and without
    /// `allow_unauthenticated`, a non-loopback `api.host` (the default `0.0.0.0`
    /// included) is replaced by `127.0.0.1` (`::1` for an IPv6 host) rather than refused,
    /// so that a fresh checkout runs as a local tool; the warning says so and how to
    /// serve other hosts.
    pub fn decide(api: &ApiSettings) -> ServingPlan {
        let configured = api.host.clone();
        if !api.keys.is_empty() {
            let scoped = api.keys.iter().filter(|k| k.accounts.is_some()).count();
            return ServingPlan {
                host: configured.clone(),
                exposure: Exposure::Keys,
                summary: format!(
                    "API keys required on every route but /health ({} key(s), {scoped} scoped \
                     to accounts)",
                    api.keys.len()
                ),
                warning: api.allow_unauthenticated.then(|| {
                    "api.allow_unauthenticated is ignored: API keys are configured, so every \
                     request but /health needs one"
                        .to_string()
                }),
            };
        }
        if api.allow_unauthenticated {
            return ServingPlan {
                host: configured.clone(),
                exposure: Exposure::Open,
                summary: "no API keys: every route is open (api.allow_unauthenticated)".into(),
                warning: Some(format!(
                    "no API keys and api.allow_unauthenticated: true: every route, control \
                     included, is open to anyone who reaches {configured}:{}; create keys with \
                     `vibex keys new`",
                    api.port
                )),
            };
        }
        let summary =
            "no API keys: serving on loopback only, every route open to local clients".into();
        if is_loopback_host(&configured) {
            return ServingPlan {
                host: configured,
                exposure: Exposure::Loopback,
                summary,
                warning: None,
            };
        }
        let host = match configured.parse::<IpAddr>() {
            Ok(IpAddr::V6(_)) => "::1",
            _ => "127.0.0.1",
        }
        .to_string();
        ServingPlan {
            warning: Some(format!(
                "no API keys configured: serving on {host} only instead of {configured} (every \
                 route is open there, as for a local tool); to serve {configured}, add keys \
                 under api.keys (`vibex keys new --name NAME --role read`) or set \
                 api.allow_unauthenticated: true"
            )),
            host,
            exposure: Exposure::Loopback,
            summary,
        }
    }
}

/// Whether a configured host name or address is loopback (`localhost`, `127.0.0.0/8`,
/// `::1`).
fn is_loopback_host(host: &str) -> bool {
    let host = host.trim().trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A fresh API key: `vx_` and 32 bytes from the operating system's CSPRNG in hex.
pub fn generate_key() -> Result<String, String> {
    use rand::TryRngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| format!("the operating system's random source failed: {e}"))?;
    Ok(format!("{KEY_PREFIX}{}", hex::encode(bytes)))
}

/// The SHA-256 of a key, as `api.keys[].key_sha256` stores it.
pub fn key_digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// A digest as four words: the constant-time comparison then takes four steps, not 32.
fn words(digest: &[u8; 32]) -> [u64; 4] {
    let mut out = [0u64; 4];
    for (word, chunk) in out.iter_mut().zip(digest.chunks_exact(8)) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        *word = u64::from_le_bytes(bytes);
    }
    out
}

/// One configured key as the gate holds it.
#[derive(Clone)]
struct GateKey {
    name: Arc<str>,
    role: Role,
    digest: [u64; 4],
    scope: Option<Arc<HashSet<String>>>,
}

impl GateKey {
    fn from_config(k: &ApiKeyConfig) -> GateKey {
        GateKey {
            name: Arc::from(k.name.as_str()),
            role: k.role,
            digest: words(&k.key_sha256),
            scope: k
                .accounts
                .as_ref()
                .map(|ids| Arc::new(ids.iter().cloned().collect())),
        }
    }

    /// Whether `k` grants exactly what this key grants (same hash, role and scope).
    fn grants_as(&self, k: &GateKey) -> bool {
        self.digest == k.digest && self.role == k.role && self.scope == k.scope
    }
}

/// What a reload changed in the configured keys, by name.
#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct KeyChanges {
    /// Names new in the file.
    pub added: Vec<String>,
    /// Names gone from the file: refused from now on.
    pub removed: Vec<String>,
    /// Names whose hash, role or scope changed: the new grant applies from now on.
    pub changed: Vec<String>,
}

impl KeyChanges {
    /// The names whose open WebSocket sessions must end (removed or changed).
    pub fn retired(&self) -> Vec<String> {
        self.removed.iter().chain(&self.changed).cloned().collect()
    }
}

/// Why a request was refused, before it becomes a response.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No key or a wrong key (401).
    Unauthorized,
    /// A bucket is empty (429); retry after this many whole seconds.
    RateLimited {
        /// `Retry-After`, seconds.
        retry_after: u64,
        /// Whose bucket: a key's name, or `None` for the client address's.
        key_name: Option<Arc<str>>,
    },
    /// A WebSocket upgrade from a foreign `Origin` (403).
    ForeignOrigin,
    /// A keyless daemon asked under a non-loopback `Host` (403).
    ForeignHost,
    /// A declared body above [`MAX_BODY_BYTES`] (413).
    TooLarge,
}

impl Refusal {
    /// The JSON error answered to the client.
    pub fn to_error(&self) -> ApiError {
        match self {
            Refusal::Unauthorized => ApiError::unauthorized(UNAUTHORIZED),
            Refusal::RateLimited {
                retry_after,
                key_name,
            } => ApiError::too_many_requests(match key_name {
                Some(name) => {
                    format!("too many requests with the key {name:?}; retry after {retry_after} s")
                }
                None => {
                    format!("too many requests from this address; retry after {retry_after} s")
                }
            }),
            Refusal::ForeignOrigin => ApiError {
                status: actix_web::http::StatusCode::FORBIDDEN,
                code: "origin_not_allowed",
                message: "this Origin may not open the daemon's WebSockets; add it to \
                          api.cors_origins"
                    .into(),
            },
            Refusal::ForeignHost => ApiError {
                status: actix_web::http::StatusCode::FORBIDDEN,
                code: "host_not_allowed",
                message: "without API keys the daemon answers only requests addressed to a \
                          loopback host (localhost, 127.0.0.1, [::1]); configure api.keys to \
                          serve other names"
                    .into(),
            },
            Refusal::TooLarge => ApiError::payload_too_large(format!(
                "the request body is larger than {MAX_BODY_BYTES} bytes"
            )),
        }
    }

    /// The HTTP response: the JSON error, `Retry-After` on a 429, `WWW-Authenticate` on
    /// a 401.
    pub fn response(&self) -> actix_web::HttpResponse {
        let mut res = self.to_error().error_response();
        match self {
            Refusal::RateLimited { retry_after, .. } => {
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            Refusal::Unauthorized => {
                res.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"vibex\""),
                );
            }
            _ => {}
        }
        res
    }
}

/// The gate: the configured keys, the buckets, the allowed origins.
pub struct Gate {
    exposure: Exposure,
    /// The configured keys; replaced whole by a reload ([`Gate::replace_keys`]).
    keys: RwLock<Arc<Vec<GateKey>>>,
    /// Each key's bucket, by name: a key whose grant a reload changes keeps its bucket.
    per_key: DefaultKeyedRateLimiter<Arc<str>>,
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
    cors_origins: Vec<String>,
    /// Milliseconds since `born` of the last sweep forced by a full address table.
    last_forced_sweep_ms: AtomicU64,
    /// Milliseconds since `born` (plus one; 0: never) of the last 429 on a control route
    /// put in the audit trail: a flood is one row a second, not one per request.
    last_audited_429_ms: AtomicU64,
    born: Instant,
    log: Logger,
}

fn quota(bucket: RateBucket) -> Quota {
    let rate = NonZeroU32::new(bucket.per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(bucket.burst).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(rate).allow_burst(burst)
}

impl Gate {
    /// A gate for `api` exposed as `exposure` (from [`ServingPlan::decide`]).
    pub fn new(api: &ApiSettings, exposure: Exposure, log: &Logger) -> Gate {
        let keys = api.keys.iter().map(GateKey::from_config).collect();
        Gate {
            exposure,
            keys: RwLock::new(Arc::new(keys)),
            per_key: DefaultKeyedRateLimiter::keyed(quota(api.rate_limit.per_key)),
            per_ip: DefaultKeyedRateLimiter::keyed(quota(api.rate_limit.per_ip)),
            clock: DefaultClock::default(),
            cors_origins: api.cors_origins.clone(),
            last_forced_sweep_ms: AtomicU64::new(0),
            last_audited_429_ms: AtomicU64::new(0),
            born: Instant::now(),
            log: log.new(slog::o!("component" => "api_gate")),
        }
    }

    /// How this gate admits callers.
    pub fn exposure(&self) -> Exposure {
        self.exposure
    }

    fn current_keys(&self) -> Arc<Vec<GateKey>> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Whether a reload may bring `keys`: a gate that serves with keys keeps at least
    /// one, and a gate that serves without keys (loopback or open) takes none — going
    /// from one to the other changes the address the API listens on, which only a
    /// restart does.
    pub fn check_keys(&self, keys: &[ApiKeyConfig]) -> Result<(), String> {
        match (self.exposure, keys.is_empty()) {
            (Exposure::Keys, true) => Err("api.keys: the reloaded configuration has no key \
                 left; a daemon started with keys keeps at least one (to serve without keys, \
                 on loopback, restart it)"
                .into()),
            (Exposure::Loopback | Exposure::Open, false) => Err("api.keys: this daemon was \
                 started without keys; keys change the address it listens on, so they take \
                 effect at the next start (restart it)"
                .into()),
            _ => Ok(()),
        }
    }

    /// Puts `keys` in place of the configured keys: the next request is judged by them.
    /// A key whose name, hash, role and scope are unchanged is kept as it was.
    pub fn replace_keys(&self, keys: &[ApiKeyConfig]) -> KeyChanges {
        let mut slot = self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let old = slot.clone();
        let mut changes = KeyChanges::default();
        let mut next = Vec::with_capacity(keys.len());
        for k in keys {
            let fresh = GateKey::from_config(k);
            match old.iter().find(|o| o.name == fresh.name) {
                Some(o) if o.grants_as(&fresh) => next.push(o.clone()),
                Some(_) => {
                    changes.changed.push(k.name.clone());
                    next.push(fresh);
                }
                None => {
                    changes.added.push(k.name.clone());
                    next.push(fresh);
                }
            }
        }
        for o in old.iter() {
            if !keys.iter().any(|k| *k.name == *o.name) {
                changes.removed.push(o.name.to_string());
            }
        }
        *slot = Arc::new(next);
        drop(slot);
        if changes != KeyChanges::default() {
            info!(self.log, "API keys reloaded";
                "added" => changes.added.join(","), "removed" => changes.removed.join(","),
                "changed" => changes.changed.join(","));
        }
        changes
    }

    /// Drops the per-address buckets that are full again (indistinguishable from new
    /// ones); returns how many addresses are still tracked.
    pub fn sweep(&self) -> usize {
        self.per_ip.retain_recent();
        self.per_ip.shrink_to_fit();
        self.per_key.retain_recent();
        self.per_ip.len()
    }

    /// The configured key whose hash equals the presented key's: every configured hash
    /// is compared, in constant time, whatever matches.
    fn find_key(&self, presented: &str) -> Option<GateKey> {
        if presented.is_empty() || presented.len() > MAX_KEY_LEN {
            return None;
        }
        let digest = words(&key_digest(presented));
        let keys = self.current_keys();
        let mut found = subtle::Choice::from(0u8);
        let mut index = 0u32;
        for (i, key) in keys.iter().enumerate() {
            let same = key.digest[..].ct_eq(&digest[..]);
            index.conditional_assign(&u32::try_from(i).unwrap_or(u32::MAX), same);
            found |= same;
        }
        if bool::from(found) {
            keys.get(index as usize).cloned()
        } else {
            None
        }
    }

    /// The bucket of a client address: its own, IPv6 by /64 (one host usually holds a
    /// whole /64), or the shared overflow bucket while the table is full.
    fn address_key(&self, ip: Option<IpAddr>) -> IpAddr {
        let ip = match ip {
            None => return OVERFLOW_ADDRESS,
            Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    IpAddr::V6(Ipv6Addr::from(prefix))
                }
            },
            Some(v4) => v4,
        };
        if self.per_ip.len() < MAX_TRACKED_ADDRESSES {
            return ip;
        }
        // Full: sweep at most once a second, then share the overflow bucket if still
        // full (addresses already tracked share it too until the table has room).
        let now = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_forced_sweep_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 1000
            && self
                .last_forced_sweep_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.sweep();
        }
        if self.per_ip.len() < MAX_TRACKED_ADDRESSES {
            ip
        } else {
            OVERFLOW_ADDRESS
        }
    }

    fn retry_after(&self, wait: Duration) -> u64 {
        let ms = wait.as_millis();
        u64::try_from(ms.div_ceil(1000)).unwrap_or(u64::MAX).max(1)
    }

    fn spend_address(&self, ip: Option<IpAddr>) -> Result<(), Refusal> {
        self.per_ip
            .check_key(&self.address_key(ip))
            .map_err(|not_until| Refusal::RateLimited {
                retry_after: self.retry_after(not_until.wait_time_from(self.clock.now())),
                key_name: None,
            })
    }

    /// Decides one request: who the caller is, or why it is refused. Spends one token of
    /// the caller's bucket. `/health` is not decided here (the middleware lets it through).
    pub fn admit(&self, req: &HttpRequest) -> Result<Caller, Refusal> {
        let headers = req.headers();
        if declared_length(headers).is_some_and(|n| n > MAX_BODY_BYTES as u64) {
            return Err(Refusal::TooLarge);
        }
        let ip = req.peer_addr().map(|a| a.ip());
        let websocket = req.path().starts_with("/ws/");
        if websocket {
            if let Some(origin) = headers.get(header::ORIGIN) {
                if !self.origin_allowed(origin, headers.get(header::HOST)) {
                    return Err(Refusal::ForeignOrigin);
                }
            }
        }
        match self.exposure {
            Exposure::Loopback | Exposure::Open => {
                if self.exposure == Exposure::Loopback && !loopback_host_header(headers) {
                    return Err(Refusal::ForeignHost);
                }
                self.spend_address(ip)?;
                Ok(Caller::unauthenticated(ip))
            }
            Exposure::Keys => {
                let presented = presented_key(req, websocket);
                match presented.as_deref().and_then(|k| self.find_key(k)) {
                    Some(key) => {
                        self.per_key.check_key(&key.name).map_err(|not_until| {
                            Refusal::RateLimited {
                                retry_after: self
                                    .retry_after(not_until.wait_time_from(self.clock.now())),
                                key_name: Some(key.name.clone()),
                            }
                        })?;
                        Ok(Caller {
                            key_name: Some(key.name),
                            role: key.role,
                            accounts: key.scope,
                            ip,
                        })
                    }
                    None => {
                        // Failed authentications spend the address's bucket: guessing is
                        // slowed down like any anonymous traffic.
                        self.spend_address(ip)?;
                        Err(Refusal::Unauthorized)
                    }
                }
            }
        }
    }

    /// Whether a WebSocket upgrade's `Origin` is the daemon's own (`http(s)://` + the
    /// request's `Host`) or one of `api.cors_origins`.
    fn origin_allowed(&self, origin: &HeaderValue, host: Option<&HeaderValue>) -> bool {
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        let origin = origin.trim().to_ascii_lowercase();
        if let Some(host) = host.and_then(|h| h.to_str().ok()) {
            let host = host.trim().to_ascii_lowercase();
            if origin == format!("http://{host}") || origin == format!("https://{host}") {
                return true;
            }
        }
        self.cors_origins.contains(&origin)
    }

    /// The middleware around every route: `/health` passes untouched; every other
    /// request is admitted (its [`Caller`] put into the request's extensions) or answered
    /// with the refusal.
    pub async fn middleware(
        self: Arc<Self>,
        req: ServiceRequest,
        next: Next<impl MessageBody + 'static>,
    ) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
        if req.path() == "/health" {
            return next
                .call(req)
                .await
                .map(ServiceResponse::map_into_boxed_body);
        }
        match self.admit(req.request()) {
            Ok(caller) => {
                req.extensions_mut().insert(caller);
                next.call(req)
                    .await
                    .map(ServiceResponse::map_into_boxed_body)
            }
            Err(refusal) => {
                self.log_refusal(&req, &refusal);
                self.audit_refusal(&req, &refusal);
                let res = refusal.response();
                Ok(req.into_response(res))
            }
        }
    }

    /// A refusal on a control route (see [`crate::api::control::action_of`]) becomes a
    /// row of the audit trail, a log line and a `control` event, recorded in the
    /// background (the answer does not wait for the database). 429s are recorded at most
    /// once a second, whoever sends them: each row says the first refusal of a flood, and
    /// a flood cannot turn into a flood of writes.
    fn audit_refusal(&self, req: &ServiceRequest, refusal: &Refusal) {
        let Some(pattern) = req.match_pattern() else {
            return;
        };
        let Some(action) = crate::api::control::action_of(req.method(), &pattern) else {
            return;
        };
        if matches!(refusal, Refusal::RateLimited { .. }) {
            let now = self.born.elapsed().as_millis() as u64 + 1;
            let last = self.last_audited_429_ms.load(Ordering::Relaxed);
            if last != 0 && now.saturating_sub(last) < 1_000 {
                return;
            }
            if self
                .last_audited_429_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
            {
                return;
            }
        }
        let Some(state) = req.app_data::<actix_web::web::Data<crate::api::ApiState>>() else {
            return;
        };
        let audit = state.control.audit.clone();
        let key_name = match refusal {
            Refusal::RateLimited {
                key_name: Some(name),
                ..
            } => name.to_string(),
            _ => "(no key)".to_string(),
        };
        let ip = req.peer_addr().map(|a| a.ip());
        let target = account_in_path(&pattern, req.path());
        let error = refusal.to_error();
        actix_rt::spawn(async move {
            audit
                .refused(
                    &key_name,
                    ip,
                    action,
                    target.as_deref(),
                    error.status.as_u16(),
                    error.code,
                )
                .await;
        });
    }

    /// Refusals are logged with the path (never the query string, which may hold a key),
    /// the address and the key's name; 429s at debug (a flood must not flood the logs).
    fn log_refusal(&self, req: &ServiceRequest, refusal: &Refusal) {
        let ip = req.peer_addr().map(|a| a.ip().to_string());
        let path = req.path().to_string();
        let method = req.method().to_string();
        match refusal {
            Refusal::RateLimited {
                retry_after,
                key_name,
            } => debug!(self.log, "request refused: rate limited";
                "method" => method, "path" => path, "client_ip" => ip,
                "key_name" => key_name.as_deref().map(str::to_string),
                "retry_after_s" => retry_after),
            other => info!(self.log, "request refused";
                "status" => other.to_error().status.as_u16(), "reason" => other.to_error().code,
                "method" => method, "path" => path, "client_ip" => ip),
        }
    }
}

/// The gate's keys as a reload replaces them ([`crate::control::KeyReload`]): the new
/// keys judge the next request, and the WebSocket sessions opened with a removed or
/// changed key are closed (a session keeps the grant it was opened with, so it ends).
pub struct GateKeys {
    /// The gate whose keys are replaced.
    pub gate: Arc<Gate>,
    /// The bus whose subscriptions of retired keys end.
    pub bus: actix::Addr<crate::actors::event_bus::EventBus>,
}

impl crate::control::KeyReload for GateKeys {
    fn check(&self, keys: &[ApiKeyConfig]) -> Result<(), String> {
        self.gate.check_keys(keys)
    }

    fn apply(&self, keys: &[ApiKeyConfig]) -> serde_json::Value {
        let changes = self.gate.replace_keys(keys);
        let retired = changes.retired();
        if !retired.is_empty() {
            self.bus
                .do_send(crate::actors::messages::RevokeKeys(retired));
        }
        serde_json::to_value(&changes).unwrap_or_default()
    }
}

/// The account a control path names (`/accounts/{id}...`), as sent (percent-encoded),
/// at most 64 characters.
fn account_in_path(pattern: &str, path: &str) -> Option<String> {
    if !pattern.starts_with("/accounts/{id}") {
        return None;
    }
    let id = path.strip_prefix("/accounts/")?.split('/').next()?;
    Some(id.chars().take(64).collect())
}

/// The `Content-Length` a request declares, if any.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether the `Host` header names a loopback host (or is absent: HTTP/1.0 tools).
fn loopback_host_header(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST) else {
        return true;
    };
    let Ok(host) = host.to_str() else {
        return false;
    };
    let host = host.trim();
    // Strip the port: `[::1]:3000`, `127.0.0.1:3000`, `localhost:3000`.
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    let lower = name.to_ascii_lowercase();
    lower == "localhost"
        || lower.ends_with(".localhost")
        || name.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
        || name.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// The key a request presents: `Authorization: Bearer KEY`, else `X-API-Key: KEY`,
/// else (WebSocket upgrades only) `?api_key=KEY`.
fn presented_key(req: &HttpRequest, websocket: bool) -> Option<String> {
    let headers = req.headers();
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let text = value.to_str().ok()?.trim();
        let (scheme, key) = text.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| key.trim().to_string());
    }
    if let Some(value) = headers.get("x-api-key") {
        return Some(value.to_str().ok()?.trim().to_string());
    }
    if websocket {
        return url::form_urlencoded::parse(req.query_string().as_bytes())
            .find(|(name, _)| name == "api_key")
            .map(|(_, key)| key.into_owned());
    }
    None
}

/// The CORS layer: the configured origins may call every method with the key headers;
/// preflights are answered here. Without configured origins it adds nothing (wrap it
/// in `Condition` with [`cors_enabled`]).
pub fn cors(api: &ApiSettings) -> actix_cors::Cors {
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("x-api-key"),
        ])
        .expose_headers([header::RETRY_AFTER])
        .max_age(3600);
    for origin in &api.cors_origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}

/// Whether [`cors`] should be wrapped at all (`api.cors_origins` is not empty).
pub fn cors_enabled(api: &ApiSettings) -> bool {
    !api.cors_origins.is_empty()
}

/// Outermost middleware: the refusals answered by layers that are not ours — the CORS
/// layer (an origin, method or header not allowed) and the body limits of the
/// extractors — become the JSON error body every other refusal has.
pub async fn json_refusals(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let res = next.call(req).await?.map_into_boxed_body();
    let replacement = res.response().error().and_then(|e| {
        if let Some(cors) = e.as_error::<actix_cors::CorsError>() {
            return Some(ApiError {
                status: actix_web::http::StatusCode::FORBIDDEN,
                code: "cors_refused",
                message: format!("{cors}; the allowed origins are api.cors_origins"),
            });
        }
        let overflow = matches!(
            e.as_error::<actix_web::error::PayloadError>(),
            Some(actix_web::error::PayloadError::Overflow)
        ) || matches!(
            e.as_error::<actix_web::error::JsonPayloadError>(),
            Some(
                actix_web::error::JsonPayloadError::Overflow { .. }
                    | actix_web::error::JsonPayloadError::OverflowKnownLength { .. }
            )
        );
        overflow.then(|| Refusal::TooLarge.to_error())
    });
    Ok(match replacement {
        Some(error) => {
            let (req, _) = res.into_parts();
            ServiceResponse::new(req, error.error_response())
        }
        None => res,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ApiKeyConfig, RateLimitSettings};
    use actix_web::test::TestRequest;

    fn api(keys: Vec<ApiKeyConfig>, host: &str) -> ApiSettings {
        ApiSettings {
            host: host.into(),
            port: 3000,
            ws_ping_interval: Duration::from_secs(30),
            ws_client_timeout: Duration::from_secs(75),
            keys,
            allow_unauthenticated: false,
            rate_limit: RateLimitSettings {
                per_key: RateBucket {
                    per_second: 1,
                    burst: 3,
                },
                per_ip: RateBucket {
                    per_second: 1,
                    burst: 2,
                },
            },
            cors_origins: vec!["https://dash.example.com".into()],
        }
    }

    fn key(name: &str, secret: &str, role: Role, accounts: Option<&[&str]>) -> ApiKeyConfig {
        ApiKeyConfig {
            name: name.into(),
            role,
            key_sha256: key_digest(secret),
            accounts: accounts.map(|a| a.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn gate(keys: Vec<ApiKeyConfig>) -> Gate {
        let settings = api(keys, "0.0.0.0");
        let plan = ServingPlan::decide(&settings);
        Gate::new(
            &settings,
            plan.exposure,
            &Logger::root(slog::Discard, slog::o!()),
        )
    }

    fn from(ip: &str) -> TestRequest {
        TestRequest::get()
            .uri("/positions")
            .peer_addr(std::net::SocketAddr::new(ip.parse().unwrap(), 40000))
    }

    #[test]
    fn generated_keys_are_prefixed_random_and_hash_to_64_hex_digits() {
        let a = generate_key().unwrap();
        let b = generate_key().unwrap();
        assert!(a.starts_with(KEY_PREFIX) && a.len() == 3 + 64, "{a}");
        assert_ne!(a, b);
        assert_eq!(hex::encode(key_digest(&a)).len(), 64);
    }

    #[test]
    fn both_header_forms_admit_and_name_the_key() {
        let g = gate(vec![
            key("ops", "k-ops", Role::Admin, None),
            key("viewer", "k-view", Role::Read, Some(&["a"])),
        ]);
        let bearer = from("10.0.0.1")
            .insert_header(("Authorization", "Bearer k-view"))
            .to_http_request();
        let caller = g.admit(&bearer).unwrap();
        assert_eq!(caller.name(), "viewer");
        assert_eq!(caller.role, Role::Read);
        assert!(caller.sees("a") && !caller.sees("b"));
        let header = from("10.0.0.1")
            .insert_header(("X-API-Key", "k-ops"))
            .to_http_request();
        assert_eq!(g.admit(&header).unwrap().name(), "ops");
    }

    #[test]
    fn a_missing_and_a_wrong_key_get_the_same_refusal() {
        let g = gate(vec![key("ops", "k-ops", Role::Admin, None)]);
        let none = g.admit(&from("10.0.0.1").to_http_request()).unwrap_err();
        let wrong = g
            .admit(
                &from("10.0.0.2")
                    .insert_header(("Authorization", "Bearer k-op"))
                    .to_http_request(),
            )
            .unwrap_err();
        assert_eq!(none, Refusal::Unauthorized);
        assert_eq!(wrong, Refusal::Unauthorized);
        // The query string is read on WebSocket upgrades only.
        let query = TestRequest::get()
            .uri("/positions?api_key=k-ops")
            .to_http_request();
        assert_eq!(g.admit(&query).unwrap_err(), Refusal::Unauthorized);
        let ws = TestRequest::get()
            .uri("/ws/positions?api_key=k-ops")
            .to_http_request();
        assert_eq!(g.admit(&ws).unwrap().name(), "ops");
    }

    #[test]
    fn a_key_spends_its_own_bucket_and_failures_spend_the_address() {
        let g = gate(vec![
            key("noisy", "k-a", Role::Read, None),
            key("quiet", "k-b", Role::Read, None),
        ]);
        let with = |k: &str| {
            from("10.0.0.1")
                .insert_header(("X-API-Key", k))
                .to_http_request()
        };
        for _ in 0..3 {
            g.admit(&with("k-a")).unwrap();
        }
        match g.admit(&with("k-a")).unwrap_err() {
            Refusal::RateLimited {
                retry_after,
                key_name,
            } => {
                assert!(retry_after >= 1);
                assert_eq!(key_name.as_deref(), Some("noisy"));
            }
            other => panic!("expected 429, got {other:?}"),
        }
        // Same address, another key: untouched.
        g.admit(&with("k-b")).unwrap();
        // Wrong keys from one address: two 401s, then that address is limited.
        assert_eq!(g.admit(&with("nope")).unwrap_err(), Refusal::Unauthorized);
        assert_eq!(g.admit(&with("nope")).unwrap_err(), Refusal::Unauthorized);
        assert!(matches!(
            g.admit(&with("nope")).unwrap_err(),
            Refusal::RateLimited { key_name: None, .. }
        ));
        // ... while its valid keys still pass.
        g.admit(&with("k-b")).unwrap();
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_64() {
        let g = gate(Vec::new());
        assert_eq!(g.exposure(), Exposure::Loopback);
        let req = |ip: &str| {
            TestRequest::get()
                .uri("/positions")
                .insert_header(("Host", "localhost:3000"))
                .peer_addr(std::net::SocketAddr::new(ip.parse().unwrap(), 1))
                .to_http_request()
        };
        g.admit(&req("2001:db8::1")).unwrap();
        g.admit(&req("2001:db8::2")).unwrap();
        assert!(matches!(
            g.admit(&req("2001:db8::3")).unwrap_err(),
            Refusal::RateLimited { .. }
        ));
        g.admit(&req("2001:db8:0:1::1")).unwrap();
    }

    #[test]
    fn a_keyless_daemon_moves_to_loopback_and_refuses_foreign_hosts() {
        let plan = ServingPlan::decide(&api(Vec::new(), "0.0.0.0"));
        assert_eq!(plan.host, "127.0.0.1");
        assert!(plan.warning.unwrap().contains("instead of 0.0.0.0"));
        assert_eq!(ServingPlan::decide(&api(Vec::new(), "::")).host, "::1");
        let local = ServingPlan::decide(&api(Vec::new(), "127.0.0.1"));
        assert!(local.warning.is_none());
        let g = gate(Vec::new());
        let rebound = from("127.0.0.1")
            .insert_header(("Host", "evil.example:3000"))
            .to_http_request();
        assert_eq!(g.admit(&rebound).unwrap_err(), Refusal::ForeignHost);
        for (peer, host) in [
            ("127.0.0.1", "localhost:3000"),
            ("127.0.0.2", "127.0.0.1:3000"),
            ("::1", "[::1]:3000"),
        ] {
            let ok = from(peer).insert_header(("Host", host)).to_http_request();
            assert!(g.admit(&ok).is_ok(), "{host}");
        }
        let keyed = ServingPlan::decide(&api(vec![key("k", "k", Role::Read, None)], "0.0.0.0"));
        assert_eq!(
            (keyed.host.as_str(), keyed.exposure),
            ("0.0.0.0", Exposure::Keys)
        );
    }

    #[test]
    fn websocket_origins_must_be_configured_or_the_daemons_own() {
        let g = gate(vec![key("ops", "k-ops", Role::Admin, None)]);
        let ws = |origin: &str| {
            TestRequest::get()
                .uri("/ws/trading-events")
                .insert_header(("Host", "vibex.internal:3000"))
                .insert_header(("Origin", origin))
                .insert_header(("X-API-Key", "k-ops"))
                .to_http_request()
        };
        assert_eq!(
            g.admit(&ws("https://evil.example")).unwrap_err(),
            Refusal::ForeignOrigin
        );
        assert!(g.admit(&ws("https://dash.example.com")).is_ok());
        assert!(g.admit(&ws("http://vibex.internal:3000")).is_ok());
        // Plain routes are not judged by Origin here (CORS is).
        let rest = TestRequest::get()
            .uri("/positions")
            .insert_header(("Origin", "https://evil.example"))
            .insert_header(("X-API-Key", "k-ops"))
            .to_http_request();
        assert!(g.admit(&rest).is_ok());
    }

    #[test]
    fn a_declared_body_above_the_limit_is_refused_before_reading() {
        let g = gate(vec![key("ops", "k-ops", Role::Admin, None)]);
        let req = TestRequest::post()
            .uri("/accounts")
            .insert_header(("Content-Length", (MAX_BODY_BYTES + 1).to_string()))
            .to_http_request();
        assert_eq!(g.admit(&req).unwrap_err(), Refusal::TooLarge);
        assert_eq!(Refusal::TooLarge.to_error().status.as_u16(), 413);
    }
}
