//! The actix-web facade: REST (JSON) and WebSocket.
//!
//! Entry points: [`ApiState`] (shared handles), [`configure`] (every route). Lists answer
//! `{"items": [...], "count": n, "limit": l}`, newest first, filtered by `account_id`,
//! `symbol`, `status`, `kind` (income and reconciliation), `since`, `until` and paged by
//! `limit` (default 100, at most 1000). An unknown account is a 404 with a JSON error
//! body, as is an unknown order; bad query parameters a 400.
//! WebSocket endpoints `/ws/{trading-events|market-data|positions}?account_id=` attach a
//! [`ws_session::WsSession`] to the EventBus.

pub mod access;
pub mod auth;
pub mod control;
pub mod encode;
pub mod error;
pub mod health;
pub mod logs;
pub mod params;
pub mod reads;
pub mod row_json;
pub mod ws_session;

use crate::actors::event_bus::EventBus;
use crate::actors::events::{Channel, EventFilter};
use crate::actors::messages::{GetMarketData, GetOneAccountStatus, GetSystemStatus, StatusSelect};
use crate::actors::supervisor::Supervisor;
use crate::config::AccountConfig;
use crate::db::models::{FillRow, IncomeRow, OrderRow, PositionRow};
use crate::db::{queries, DbPool};
use crate::domain::types::{AccountId, Asset};
use access::Caller;
use actix::Addr;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use error::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::json;
use slog::Logger;
use std::sync::Arc;
use std::time::Duration;

/// Default page size of list endpoints.
pub const DEFAULT_LIMIT: i64 = 100;
/// Largest page size of list endpoints.
pub const MAX_LIMIT: i64 = 1000;

/// Handles every request needs.
#[derive(Clone)]
pub struct ApiState {
    /// Database pool for reads.
    pub pool: DbPool,
    /// The write path (its health is part of `/status`).
    pub store: crate::store::Store,
    /// The root actor (live status).
    pub supervisor: Addr<Supervisor>,
    /// The event bus (WebSocket sessions subscribe to it).
    pub bus: Addr<EventBus>,
    /// The accounts (the file's and those added at runtime; removed ones stay listed,
    /// stopped, so their rows stay queryable). The Supervisor keeps it current.
    pub accounts: crate::control::AccountDirectory,
    /// Audit trail and reload (the control routes).
    pub control: crate::control::ControlPlane,
    /// Server ping period on WebSockets.
    pub ws_ping_interval: Duration,
    /// A WebSocket client silent for this long is dropped.
    pub ws_client_timeout: Duration,
    /// Logger.
    pub log: Logger,
    /// The database probe `/health` reads (never the shared pool).
    pub health: health::HealthProbe,
    /// The API's own connections for reads (a few; never the write path's).
    pub reads: reads::ReadPool,
    /// Directory of the domain log files (`/logs`).
    pub log_dir: std::path::PathBuf,
}

impl ApiState {
    /// The account with this id, or a 404.
    pub fn account(&self, id: &str) -> Result<Arc<AccountConfig>, ApiError> {
        self.accounts
            .get(id)
            .ok_or_else(|| ApiError::unknown_account(id))
    }
}

/// Query parameters of the list endpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this account.
    pub account_id: Option<String>,
    /// Only this symbol (`BTCUSDT`) or asset (`BTC`).
    pub symbol: Option<String>,
    /// Only this status.
    pub status: Option<String>,
    /// Only this asset (`BTC`; same as `symbol=BTCUSDT`).
    pub asset: Option<String>,
    /// Only this action (`buy`, `sell`, `hold`; decisions and diary).
    pub action: Option<String>,
    /// Only this kind (income: `FUNDING_FEE`, ...; reconciliation events).
    pub kind: Option<String>,
    /// `jsonl` downloads the diary as JSON lines.
    pub format: Option<String>,
    /// From this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Until this time (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// Page size.
    pub limit: Option<i64>,
}

#[derive(Serialize)]
struct Page<T: Serialize> {
    items: Vec<T>,
    count: usize,
    limit: i64,
}

impl ListQuery {
    /// The database filter of this query for `caller`: an `account_id` the caller does
    /// not see is a 404, and a scoped caller's lists are limited to its accounts (the
    /// scope becomes `account_id IN (...)` in every list query).
    fn filter(&self, state: &ApiState, caller: &Caller) -> Result<queries::ListFilter, ApiError> {
        if let Some(id) = &self.account_id {
            caller.require_account(id)?;
            state.account(id)?;
        }
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::bad_request(format!(
                "limit must be between 1 and {MAX_LIMIT}, got {limit}"
            )));
        }
        if let Some(a) = &self.action {
            if !["buy", "sell", "hold"].contains(&a.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "action must be buy, sell or hold, got {a:?}"
                )));
            }
        }
        let symbol = self.symbol.as_ref().or(self.asset.as_ref()).map(|s| {
            let s = s.trim().to_ascii_uppercase();
            if s.ends_with(crate::domain::types::QUOTE) {
                s
            } else {
                Asset::new(&s).symbol().0
            }
        });
        Ok(queries::ListFilter {
            account_id: self.account_id.clone(),
            scope: caller
                .accounts
                .as_ref()
                .map(|ids| ids.iter().cloned().collect()),
            symbol,
            status: self.status.clone(),
            action: self.action.clone(),
            kind: self.kind.as_ref().map(|k| k.trim().to_string()),
            since: self.since,
            until: self.until,
            limit,
        })
    }
}

/// Runs a blocking query on one of the API's read connections (see [`reads`]): the
/// database's error text goes to the log, never to the client.
async fn query<T, F>(state: &ApiState, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut diesel::PgConnection) -> diesel::QueryResult<T> + Send + 'static,
{
    state.reads.run(f).await
}

/// A page of the busiest lists, each row written as JSON from PostgreSQL's wire format
/// (see [`row_json`]). A page of up to [`reads::HERE_MAX_ROWS`] rows is read on the HTTP
/// worker's own connection ([`reads::ReadPool::load_here`]): no thread hand-off, and
/// its cost is small enough to share the worker with `/health`; a longer page is read
/// and written on the blocking pool, as every other query.
async fn row_json_page<T, Q>(
    state: &ApiState,
    f: queries::ListFilter,
    build: fn(&queries::ListFilter) -> Q,
) -> Result<web::Bytes, ApiError>
where
    T: 'static,
    row_json::Json<T>: Send,
    Q: for<'c> diesel_async::methods::LoadQuery<
            'static,
            &'c diesel_async::AsyncPgConnection,
            row_json::Json<T>,
        > + diesel::query_dsl::LoadQuery<'static, diesel::PgConnection, row_json::Json<T>>
        + 'static,
{
    let limit = f.limit;
    if limit <= reads::HERE_MAX_ROWS {
        let rows = state.reads.load_here(|| build(&f)).await?;
        return Ok(web::Bytes::from(row_json::page(&rows, limit)));
    }
    query(state, move |c| {
        let rows: Vec<row_json::Json<T>> = diesel::RunQueryDsl::load(build(&f), c)?;
        Ok(web::Bytes::from(row_json::page(&rows, limit)))
    })
    .await
}

/// A page of rows serialised on the blocking thread that read them: the worker threads
/// that answer every other request (`/health` among them) never spend time encoding a
/// large list.
fn json_page<T: Serialize>(items: Vec<T>, limit: i64) -> diesel::QueryResult<web::Bytes> {
    // Sized for a typical row up front: growing the buffer by doubling copies it again
    // and again.
    let mut out = Vec::with_capacity(64 + items.len() * 768);
    serde_json::to_writer(
        &mut out,
        &Page {
            count: items.len(),
            items,
            limit,
        },
    )
    .map(|()| web::Bytes::from(out))
    .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))
}

/// The answer carrying a page made by [`json_page`].
fn json_body(body: web::Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(actix_web::http::header::ContentType::json())
        .body(body)
}

fn page<T: Serialize>(items: Vec<T>, limit: i64) -> HttpResponse {
    HttpResponse::Ok().json(Page {
        count: items.len(),
        items,
        limit,
    })
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::QueryConfig::default().error_handler(|err, _| {
        ApiError::bad_request(format!("invalid query parameters: {err}")).into()
    }))
    .app_data(web::PathConfig::default().error_handler(|err, _| {
        ApiError::bad_request(format!("invalid path parameter: {err}")).into()
    }))
    .route("/health", web::get().to(health))
    .route("/status", web::get().to(status))
    .route("/accounts", web::get().to(accounts))
    .route("/accounts/{id}", web::get().to(account))
    .route("/accounts/{id}/status", web::get().to(account_status))
    .route("/positions", web::get().to(positions))
    .route("/orders", web::get().to(orders))
    .route("/orders/{id}", web::get().to(order))
    .route("/trades", web::get().to(trades))
    .route("/decisions", web::get().to(decisions))
    .route("/decisions/{id}", web::get().to(decision))
    .route("/diary", web::get().to(diary))
    .route("/income", web::get().to(income))
    .route("/reconciliation", web::get().to(reconciliation))
    .route("/market-data", web::get().to(market_data))
    .route("/logs", web::get().to(logs::logs))
    .route("/ws/{channel}", web::get().to(websocket));
    control::configure(cfg);
}

/// JSON 404 for every path no route matches; a path that exists with other methods is
/// a 405 with `Allow`.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    if let Some(refusal) = params::method_not_allowed(&req) {
        return Ok(refusal);
    }
    Err(ApiError::not_found(format!("no route for {}", req.path())))
}

/// Reads the probe's last verdict: no database round trip, no pool, no blocking.
async fn health(state: web::Data<ApiState>) -> HttpResponse {
    let report = state.health.report();
    if report.healthy() {
        HttpResponse::Ok().json(report)
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "1"))
            .json(report)
    }
}

async fn status(
    state: web::Data<ApiState>,
    caller: Caller,
    pq: web::Query<params::PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (offset, limit) = pq.window();
    let mut s = state
        .supervisor
        .send(GetSystemStatus {
            select: StatusSelect::Page {
                offset,
                limit,
                scope: caller.accounts.clone(),
            },
        })
        .await
        .map_err(|e| ApiError::unavailable(format!("supervisor: {e}")))?;
    if !caller.sees_all() {
        // Only the venues the caller's accounts trade on.
        let venues: Vec<String> = state
            .accounts
            .all()
            .iter()
            .filter(|a| caller.sees(a.id.as_str()))
            .map(|a| a.asterdex.base_url.trim_end_matches('/').to_string())
            .collect();
        s.venues.retain(|v| {
            venues
                .iter()
                .any(|u| *u == v.base_url.trim_end_matches('/'))
        });
    }
    Ok(HttpResponse::Ok().json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "state": s.state,
        "started_at": s.started_at,
        "uptime_s": (Utc::now() - s.started_at).num_seconds(),
        "accounts_summary": s.summary.unwrap_or_default(),
        "accounts_offset": offset,
        "accounts_limit": limit,
        "accounts": s.accounts,
        "market_data": s.market_data,
        "kill_switch": s.kill_switch,
        "venues": s.venues,
        "storage": state.store.health(),
    })))
}

fn account_json(cfg: &AccountConfig, status: Option<serde_json::Value>) -> serde_json::Value {
    json!({
        "id": cfg.id,
        "mode": cfg.mode,
        "llm_model": cfg.llm_model,
        "assets": cfg.assets,
        "symbols": cfg.assets.iter().map(|a| a.symbol()).collect::<Vec<_>>(),
        "interval": cfg.interval.label,
        "leverage": cfg.leverage,
        "venue": cfg.asterdex.base_url,
        "risk": cfg.risk,
        "paper": cfg.paper,
        "status": status,
    })
}

async fn accounts(
    state: web::Data<ApiState>,
    caller: Caller,
    pq: web::Query<params::PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (offset, limit) = pq.window();
    let visible: Vec<_> = state
        .accounts
        .all()
        .into_iter()
        .filter(|cfg| caller.sees(cfg.id.as_str()))
        .collect();
    let total = visible.len();
    let page: Vec<_> = visible.into_iter().skip(offset).take(limit).collect();
    // Statuses of this page's accounts only.
    let s = state
        .supervisor
        .send(GetSystemStatus {
            select: StatusSelect::Ids(page.iter().map(|cfg| cfg.id.clone()).collect()),
        })
        .await
        .map_err(|e| ApiError::unavailable(format!("supervisor: {e}")))?;
    let statuses: std::collections::HashMap<&str, _> = s
        .accounts
        .iter()
        .map(|a| (a.account_id.as_str(), a))
        .collect();
    let items: Vec<_> = page
        .iter()
        .map(|cfg| {
            let st = statuses
                .get(cfg.id.as_str())
                .and_then(|a| serde_json::to_value(a).ok());
            account_json(cfg, st)
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "count": items.len(),
        "items": items,
        "limit": limit,
        "offset": offset,
        "total": total,
    })))
}

async fn one_status(state: &ApiState, id: &str) -> Result<serde_json::Value, ApiError> {
    let s = state
        .supervisor
        .send(GetOneAccountStatus(AccountId::new(id)))
        .await
        .map_err(|e| ApiError::unavailable(format!("supervisor: {e}")))?
        .ok_or_else(|| ApiError::unknown_account(id))?;
    serde_json::to_value(s).map_err(|e| ApiError::unavailable(e.to_string()))
}

async fn account(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    caller.require_account(&id)?;
    let cfg = state.account(&id)?.clone();
    let status = one_status(&state, &id).await?;
    let id2 = id.clone();
    let (row, positions) = query(&state, move |c| {
        Ok((
            queries::find_account(c, &id2)?,
            queries::open_positions(c, &id2)?,
        ))
    })
    .await?;
    let mut body = account_json(&cfg, Some(status));
    body["paper_wallet_balance"] = json!(row.as_ref().map(|r| r.paper_wallet_balance));
    body["paper_starting_balance"] = json!(row.as_ref().map(|r| r.paper_starting_balance));
    body["open_positions"] = json!(positions);
    Ok(HttpResponse::Ok().json(body))
}

async fn account_status(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    caller.require_account(&id)?;
    state.account(&id)?;
    Ok(HttpResponse::Ok().json(one_status(&state, &id).await?))
}

async fn positions(
    state: web::Data<ApiState>,
    caller: Caller,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let mut f = q.filter(&state, &caller)?;
    if let Some(s) = &f.status {
        let s = s.to_ascii_lowercase();
        if !["open", "closed"].contains(&s.as_str()) {
            return Err(ApiError::bad_request(format!(
                "status must be open or closed, got {s:?}"
            )));
        }
        f.status = Some(s);
    }
    let body = row_json_page(&state, f, |f| {
        queries::positions_page(row_json::columns::<PositionRow>(), f)
    })
    .await?;
    Ok(json_body(body))
}

async fn orders(
    state: web::Data<ApiState>,
    caller: Caller,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let f = q.filter(&state, &caller)?;
    let body = row_json_page(&state, f, |f| {
        queries::orders_page(row_json::columns::<OrderRow>(), f)
    })
    .await?;
    Ok(json_body(body))
}

async fn order(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let key = path.into_inner();
    let lookup = key.clone();
    let found = query(&state, move |c| queries::order_with_events(c, &lookup)).await?;
    // Another account's order is not found, exactly as an order that does not exist.
    let found = found.filter(|(row, _)| caller.sees(&row.account_id));
    let (row, events) = found.ok_or_else(|| {
        ApiError::not_found(format!(
            "no order with id or client order id {:?}",
            key.trim()
        ))
    })?;
    let mut v = serde_json::to_value(&row).unwrap_or_default();
    v["events"] = json!(events);
    Ok(HttpResponse::Ok().json(v))
}

async fn income(
    state: web::Data<ApiState>,
    caller: Caller,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let mut f = q.filter(&state, &caller)?;
    if let Some(k) = &f.kind {
        let upper = k.to_ascii_uppercase();
        if !IncomeRow::KINDS.contains(&upper.as_str()) {
            return Err(ApiError::bad_request(format!(
                "kind must be one of {}, got {k:?}",
                IncomeRow::KINDS.join(", ")
            )));
        }
        f.kind = Some(upper);
    }
    let limit = f.limit;
    let body = query(&state, move |c| {
        json_page(queries::list_income(c, &f)?, limit)
    })
    .await?;
    Ok(json_body(body))
}

async fn reconciliation(
    state: web::Data<ApiState>,
    caller: Caller,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let f = q.filter(&state, &caller)?;
    if let Some(k) = &f.kind {
        // The kinds are the executor's vocabulary, not a closed list here: refuse only
        // what cannot be one.
        let ok = !k.is_empty()
            && k.len() <= 64
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(ApiError::bad_request(format!(
                "kind must be a reconciliation kind (1 to 64 letters, digits or '_', like \
                 position_adopted), got {k:?}"
            )));
        }
    }
    let limit = f.limit;
    let body = query(&state, move |c| {
        json_page(queries::list_reconciliation(c, &f)?, limit)
    })
    .await?;
    Ok(json_body(body))
}

async fn trades(
    state: web::Data<ApiState>,
    caller: Caller,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let f = q.filter(&state, &caller)?;
    let body = row_json_page(&state, f, |f| {
        queries::fills_page(row_json::columns::<FillRow>(), f)
    })
    .await?;
    Ok(json_body(body))
}

async fn decisions(
    state: web::Data<ApiState>,
    caller: Caller,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let f = q.filter(&state, &caller)?;
    let limit = f.limit;
    let (rows, interactions) = query(&state, move |c| {
        let rows = queries::list_decisions(c, &f)?;
        let ids: Vec<_> = rows.iter().filter_map(|r| r.llm_interaction_id).collect();
        Ok((rows, queries::interaction_summaries(c, &ids)?))
    })
    .await?;
    let items: Vec<_> = rows
        .into_iter()
        .map(|r| {
            let interaction = r
                .llm_interaction_id
                .and_then(|id| interactions.iter().find(|i| i.id == id));
            let mut v = serde_json::to_value(&r).unwrap_or_default();
            v["interaction"] = json!(interaction);
            v
        })
        .collect();
    Ok(page(items, limit))
}

async fn decision(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let raw = path.into_inner();
    let id = uuid::Uuid::parse_str(&raw)
        .map_err(|_| ApiError::bad_request(format!("{raw:?} is not a decision id (a UUID)")))?;
    let found = query(&state, move |c| queries::find_decision(c, id)).await?;
    let found = found.filter(|(row, _)| caller.sees(&row.account_id));
    let (row, interaction) =
        found.ok_or_else(|| ApiError::not_found(format!("no decision with id {id}")))?;
    let mut v = serde_json::to_value(&row).unwrap_or_default();
    v["interaction"] = json!(interaction);
    Ok(HttpResponse::Ok().json(v))
}

async fn diary(
    state: web::Data<ApiState>,
    caller: Caller,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let f = q.filter(&state, &caller)?;
    let limit = f.limit;
    let jsonl = match q.format.as_deref() {
        None | Some("json") => false,
        Some("jsonl") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format must be json or jsonl, got {other:?}"
            )))
        }
    };
    let rows = query(&state, move |c| queries::list_diary(c, &f)).await?;
    if !jsonl {
        return Ok(page(rows, limit));
    }
    let mut body = String::new();
    for r in &rows {
        body.push_str(&serde_json::to_string(r).unwrap_or_default());
        body.push('\n');
    }
    let name = q.account_id.as_deref().unwrap_or("all");
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"vibex-diary-{name}.jsonl\""),
        ))
        .body(body))
}

async fn market_data(
    state: web::Data<ApiState>,
    caller: Caller,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let f = q.filter(&state, &caller)?;
    let wanted: Option<Vec<String>> = q.account_id.as_ref().and_then(|id| {
        state
            .account(id)
            .ok()
            .map(|a| a.assets.iter().map(|x| x.symbol().0).collect())
    });
    let venue = q
        .account_id
        .as_ref()
        .and_then(|id| state.account(id).ok())
        .map(|a| a.asterdex.base_url.trim_end_matches('/').to_string());
    let views = state
        .supervisor
        .send(GetMarketData)
        .await
        .map_err(|e| ApiError::unavailable(format!("supervisor: {e}")))?;
    let items: Vec<_> = views
        .into_iter()
        .filter(|v| wanted.as_ref().map(|w| w.contains(&v.status.symbol)).unwrap_or(true))
        .filter(|v| venue.as_ref().map(|u| &v.status.venue == u).unwrap_or(true))
        .filter(|v| f.symbol.as_ref().map(|s| &v.status.symbol == s).unwrap_or(true))
        .map(|v| json!({"venue": v.status.venue, "symbol": v.status.symbol, "status": v.status, "snapshot": v.snapshot}))
        .take(usize::try_from(f.limit).unwrap_or(usize::MAX))
        .collect();
    Ok(page(items, f.limit))
}

/// Query of the WebSocket endpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsQuery {
    /// Only this account's events.
    pub account_id: Option<String>,
    /// The API key of a client that cannot send headers (browsers); read by the gate,
    /// never kept here.
    #[serde(rename = "api_key", default)]
    pub _api_key: Option<serde::de::IgnoredAny>,
}

async fn websocket(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
    q: web::Query<WsQuery>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let channel = match path.as_str() {
        "trading-events" => Channel::TradingEvents,
        "market-data" => Channel::MarketData,
        "positions" => Channel::Positions,
        other => {
            return Err(ApiError::not_found(format!(
                "no WebSocket channel {other:?} (trading-events, market-data, positions)"
            ))
            .into())
        }
    };
    if let Some(id) = &q.account_id {
        caller.require_account(id)?;
    }
    let symbols = match &q.account_id {
        Some(id) => state
            .account(id)?
            .assets
            .iter()
            .map(|a| a.symbol().0)
            .collect(),
        None => Vec::new(),
    };
    let filter = EventFilter {
        channel,
        account_id: q.account_id.as_ref().map(AccountId::new),
        symbols,
        scope: caller.accounts.clone(),
        key_name: caller.key_name.clone(),
    };
    let session = ws_session::WsSession::new(
        filter,
        state.bus.clone(),
        state.ws_ping_interval,
        state.ws_client_timeout,
        &state.log,
    );
    actix_web_actors::ws::start(session, &req, body)
}
