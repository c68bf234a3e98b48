//! Every query the daemon makes, as plain functions over `&mut PgConnection` (they do
//! not care where the connection came from: the store's writer and readers, the API's pool, a test's).
//!
//! Invariant: a fill with a `venue_trade_id` is stored at most once per account, an
//! income event with a `venue_tran_id` at most once per account and kind ([`insert_fills`],
//! [`insert_income`]): a repeat is skipped inside the insert (`INSERT ... SELECT ...
//! WHERE NOT EXISTS`), never an error. This relies on one writer per account (the
//! store's writer thread, which also drops repeats within one of its batches), which
//! the daemon guarantees; the lookup indexes are not unique because a
//! unique index on a hypertable must contain `ts`.

use crate::db::models::*;
use crate::db::schema::*;
use chrono::{DateTime, Utc};
use diesel::pg::upsert::excluded;
use diesel::pg::Pg;
use diesel::prelude::*;
use rust_decimal::Decimal;

/// Filters shared by the list endpoints (`?account_id=&symbol=&status=&since=&until=&limit=`).
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    /// Only rows of this account.
    pub account_id: Option<String>,
    /// Only rows of these accounts (the caller's scope); `None`: every account. Every
    /// list query applies it, so a scoped API key never sees another account's rows.
    pub scope: Option<Vec<String>>,
    /// Only rows of this symbol (`BTCUSDT`).
    pub symbol: Option<String>,
    /// Only rows with this status (table-specific meaning).
    pub status: Option<String>,
    /// Only decisions with this action (`buy`, `sell`, `hold`).
    pub action: Option<String>,
    /// Only income or reconciliation events of this kind (`FUNDING_FEE`, ...).
    pub kind: Option<String>,
    /// Only rows at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only rows before this time.
    pub until: Option<DateTime<Utc>>,
    /// At most this many rows, newest first.
    pub limit: i64,
}

/// Registers an account or updates its configuration; never touches its paper balance.
pub fn upsert_account(conn: &mut PgConnection, row: &AccountRow) -> QueryResult<AccountRow> {
    diesel::insert_into(accounts::table)
        .values(row)
        .on_conflict(accounts::id)
        .do_update()
        .set((
            accounts::mode.eq(excluded(accounts::mode)),
            accounts::venue_base_url.eq(excluded(accounts::venue_base_url)),
            accounts::llm_model.eq(excluded(accounts::llm_model)),
            accounts::assets.eq(excluded(accounts::assets)),
            accounts::interval_label.eq(excluded(accounts::interval_label)),
            accounts::leverage.eq(excluded(accounts::leverage)),
            accounts::config.eq(excluded(accounts::config)),
            accounts::updated_at.eq(excluded(accounts::updated_at)),
        ))
        .returning(AccountRow::as_returning())
        .get_result(conn)
}

/// One of an account's orders, by venue order id or client order id.
pub fn find_order(
    conn: &mut PgConnection,
    account: &str,
    key: &crate::engine::StoredOrderKey,
) -> QueryResult<Option<OrderRow>> {
    let q = orders::table
        .filter(orders::account_id.eq(account))
        .select(OrderRow::as_select())
        .into_boxed();
    let q = match key {
        crate::engine::StoredOrderKey::VenueId(id) => q.filter(orders::venue_order_id.eq(id)),
        crate::engine::StoredOrderKey::ClientId(id) => q.filter(orders::client_order_id.eq(id)),
    };
    q.order(orders::updated_at.desc()).first(conn).optional()
}

/// One account by id.
pub fn find_account(conn: &mut PgConnection, id: &str) -> QueryResult<Option<AccountRow>> {
    accounts::table
        .find(id)
        .select(AccountRow::as_select())
        .first(conn)
        .optional()
}

/// Records an account's run state (`active`, `stopped`, ...).
pub fn set_account_status(conn: &mut PgConnection, id: &str, status: &str) -> QueryResult<usize> {
    diesel::update(accounts::table.find(id))
        .set((
            accounts::status.eq(status),
            accounts::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
}

/// Stores bars; a bar seen again (the still-open last one) is updated.
pub fn upsert_candles(conn: &mut PgConnection, rows: &[CandleRow]) -> QueryResult<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    diesel::insert_into(candles::table)
        .values(rows)
        .on_conflict((
            candles::venue,
            candles::symbol,
            candles::kline_interval,
            candles::open_time,
        ))
        .do_update()
        .set((
            candles::high.eq(excluded(candles::high)),
            candles::low.eq(excluded(candles::low)),
            candles::close.eq(excluded(candles::close)),
            candles::volume.eq(excluded(candles::volume)),
        ))
        .execute(conn)
}

/// Stores a market snapshot.
pub fn insert_snapshot(conn: &mut PgConnection, row: &MarketSnapshotRow) -> QueryResult<usize> {
    diesel::insert_into(market_snapshots::table)
        .values(row)
        .execute(conn)
}

/// Stores a cycle's decisions.
pub fn insert_decisions(conn: &mut PgConnection, rows: &[DecisionRow]) -> QueryResult<usize> {
    diesel::insert_into(decisions::table)
        .values(rows)
        .execute(conn)
}

/// Stores diary entries.
pub fn insert_diary(conn: &mut PgConnection, rows: &[DiaryEntryRow]) -> QueryResult<usize> {
    diesel::insert_into(diary_entries::table)
        .values(rows)
        .execute(conn)
}

/// Stores an equity snapshot.
pub fn insert_equity(conn: &mut PgConnection, row: &EquitySnapshotRow) -> QueryResult<usize> {
    diesel::insert_into(equity_snapshots::table)
        .values(row)
        .on_conflict((equity_snapshots::account_id, equity_snapshots::ts))
        .do_nothing()
        .execute(conn)
}

/// Everything one execution step changed, written in one transaction (serialisable:
/// the write path spools it as is while PostgreSQL is down).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ExecutionBatch {
    /// Orders created or changed (upserted by id).
    pub orders: Vec<OrderRow>,
    /// Lifecycle steps of those orders.
    pub order_events: Vec<NewOrderEvent>,
    /// Executions.
    pub fills: Vec<FillRow>,
    /// Positions opened, changed or closed (upserted by id).
    pub positions: Vec<PositionRow>,
    /// Trading diary entries of the step.
    pub diary: Vec<DiaryEntryRow>,
    /// Wallet movements reported by the venue (repeats skipped, see [`insert_income`]).
    pub income: Vec<IncomeRow>,
    /// Corrections of local state to the venue's.
    pub reconciliation: Vec<ReconciliationRow>,
    /// The paper wallet balance after the step, when it changed.
    pub paper_wallet: Option<(String, Decimal)>,
}

impl ExecutionBatch {
    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.orders.is_empty()
            && self.order_events.is_empty()
            && self.fills.is_empty()
            && self.positions.is_empty()
            && self.diary.is_empty()
            && self.income.is_empty()
            && self.reconciliation.is_empty()
            && self.paper_wallet.is_none()
    }
}

/// Writes an [`ExecutionBatch`] atomically. Fills and income events the venue already
/// reported are skipped ([`insert_fills`], [`insert_income`]).
pub fn record_execution(conn: &mut PgConnection, batch: &ExecutionBatch) -> QueryResult<()> {
    conn.transaction(|conn| {
        for order in &batch.orders {
            diesel::insert_into(orders::table)
                .values(order)
                // The client order id is the idempotency key: one row per order.
                .on_conflict(orders::client_order_id)
                .do_update()
                .set(order)
                .execute(conn)?;
        }
        if !batch.order_events.is_empty() {
            diesel::insert_into(order_events::table)
                .values(&batch.order_events)
                .execute(conn)?;
        }
        insert_fills(conn, &batch.fills)?;
        for position in &batch.positions {
            diesel::insert_into(positions::table)
                .values(position)
                .on_conflict(positions::id)
                .do_update()
                .set(position)
                .execute(conn)?;
        }
        if !batch.diary.is_empty() {
            diesel::insert_into(diary_entries::table)
                .values(&batch.diary)
                .execute(conn)?;
        }
        insert_income(conn, &batch.income)?;
        insert_reconciliation(conn, &batch.reconciliation)?;
        if let Some((account, wallet)) = &batch.paper_wallet {
            diesel::update(accounts::table.find(account))
                .set((
                    accounts::paper_wallet_balance.eq(wallet),
                    accounts::updated_at.eq(Utc::now()),
                ))
                .execute(conn)?;
        }
        Ok(())
    })
}

/// Stores fills; returns how many were inserted. A fill whose `(account_id,
/// venue_trade_id)` is already stored (or earlier in `rows`) is skipped: live fills
/// arrive both from the user-data stream and from polling. Fills without a venue id
/// (paper) are always inserted.
pub fn insert_fills(conn: &mut PgConnection, rows: &[FillRow]) -> QueryResult<usize> {
    use diesel::dsl::{exists, not};
    use diesel::sql_types::{Nullable, Numeric, Text, Timestamptz, Uuid as SqlUuid};
    let (paper, venue): (Vec<&FillRow>, Vec<&FillRow>) =
        rows.iter().partition(|r| r.venue_trade_id.is_none());
    let mut inserted = 0;
    if !paper.is_empty() {
        inserted += diesel::insert_into(fills::table)
            .values(paper)
            .execute(conn)?;
    }
    // One statement per venue fill, so that a repeat within `rows` sees the first one.
    for r in venue {
        let already = fills::table
            .filter(fills::account_id.eq(&r.account_id))
            .filter(fills::venue_trade_id.eq(&r.venue_trade_id));
        let values = diesel::select((
            r.id.into_sql::<SqlUuid>(),
            r.ts.into_sql::<Timestamptz>(),
            (&r.account_id).into_sql::<Text>(),
            r.cycle_id.into_sql::<Nullable<SqlUuid>>(),
            r.order_id.into_sql::<Nullable<SqlUuid>>(),
            (&r.client_order_id).into_sql::<Text>(),
            (&r.symbol).into_sql::<Text>(),
            (&r.side).into_sql::<Text>(),
            r.quantity.into_sql::<Numeric>(),
            r.price.into_sql::<Numeric>(),
            r.fee.into_sql::<Numeric>(),
            r.realized_pnl.into_sql::<Numeric>(),
            (&r.reason).into_sql::<Text>(),
            (&r.venue_trade_id).into_sql::<Nullable<Text>>(),
        ))
        .filter(not(exists(already)));
        inserted += diesel::insert_into(fills::table)
            .values(values)
            .into_columns((
                fills::id,
                fills::ts,
                fills::account_id,
                fills::cycle_id,
                fills::order_id,
                fills::client_order_id,
                fills::symbol,
                fills::side,
                fills::quantity,
                fills::price,
                fills::fee,
                fills::realized_pnl,
                fills::reason,
                fills::venue_trade_id,
            ))
            .execute(conn)?;
    }
    Ok(inserted)
}

/// Stores income events; returns how many were inserted. An event whose `(account_id,
/// kind, venue_tran_id)` is already stored (or earlier in `rows`) is skipped; events
/// without a venue id are always inserted.
pub fn insert_income(conn: &mut PgConnection, rows: &[IncomeRow]) -> QueryResult<usize> {
    use diesel::dsl::{exists, not};
    use diesel::sql_types::{Jsonb, Nullable, Numeric, Text, Timestamptz, Uuid as SqlUuid};
    let (plain, venue): (Vec<&IncomeRow>, Vec<&IncomeRow>) =
        rows.iter().partition(|r| r.venue_tran_id.is_none());
    let mut inserted = 0;
    if !plain.is_empty() {
        inserted += diesel::insert_into(income_events::table)
            .values(plain)
            .execute(conn)?;
    }
    for r in venue {
        let already = income_events::table
            .filter(income_events::account_id.eq(&r.account_id))
            .filter(income_events::kind.eq(&r.kind))
            .filter(income_events::venue_tran_id.eq(&r.venue_tran_id));
        let values = diesel::select((
            r.id.into_sql::<SqlUuid>(),
            r.ts.into_sql::<Timestamptz>(),
            (&r.account_id).into_sql::<Text>(),
            r.cycle_id.into_sql::<Nullable<SqlUuid>>(),
            (&r.symbol).into_sql::<Nullable<Text>>(),
            (&r.kind).into_sql::<Text>(),
            r.amount.into_sql::<Numeric>(),
            (&r.asset).into_sql::<Text>(),
            (&r.venue_tran_id).into_sql::<Nullable<Text>>(),
            (&r.detail).into_sql::<Jsonb>(),
        ))
        .filter(not(exists(already)));
        inserted += diesel::insert_into(income_events::table)
            .values(values)
            .into_columns((
                income_events::id,
                income_events::ts,
                income_events::account_id,
                income_events::cycle_id,
                income_events::symbol,
                income_events::kind,
                income_events::amount,
                income_events::asset,
                income_events::venue_tran_id,
                income_events::detail,
            ))
            .execute(conn)?;
    }
    Ok(inserted)
}

/// Stores reconciliation events.
pub fn insert_reconciliation(
    conn: &mut PgConnection,
    rows: &[ReconciliationRow],
) -> QueryResult<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    diesel::insert_into(reconciliation_events::table)
        .values(rows)
        .execute(conn)
}

/// Open positions of an account (what a restart resumes).
pub fn open_positions(conn: &mut PgConnection, account: &str) -> QueryResult<Vec<PositionRow>> {
    positions::table
        .filter(positions::account_id.eq(account))
        .filter(positions::status.eq("open"))
        .order(positions::opened_at.asc())
        .select(PositionRow::as_select())
        .load(conn)
}

/// Working (not yet final) orders of an account, e.g. resting TP/SL.
/// Order statuses that still need following: working on the venue, written before
/// sending (`PENDING_NEW`), or of unknown outcome (`UNKNOWN`).
pub const WORKING_STATUSES: [&str; 4] = ["NEW", "PARTIALLY_FILLED", "PENDING_NEW", "UNKNOWN"];

/// A decision's exit plan: (decision id, TP, SL, the plan in words).
pub type DecisionPlan = (uuid::Uuid, Option<Decimal>, Option<Decimal>, String);

/// The exit plans of the decisions behind `decision_ids`.
pub fn decision_plans(
    conn: &mut PgConnection,
    decision_ids: &[uuid::Uuid],
) -> QueryResult<Vec<DecisionPlan>> {
    if decision_ids.is_empty() {
        return Ok(Vec::new());
    }
    decisions::table
        .filter(decisions::id.eq_any(decision_ids))
        .select((
            decisions::id,
            decisions::tp_price,
            decisions::sl_price,
            decisions::exit_plan,
        ))
        .load(conn)
}

/// Time of the newest income record of `account`.
pub fn last_income_time(
    conn: &mut PgConnection,
    account: &str,
) -> QueryResult<Option<DateTime<Utc>>> {
    income_events::table
        .filter(income_events::account_id.eq(account))
        .select(diesel::dsl::max(income_events::ts))
        .first(conn)
}

/// Working orders of `account` (see [`WORKING_STATUSES`]), oldest first.
pub fn working_orders(conn: &mut PgConnection, account: &str) -> QueryResult<Vec<OrderRow>> {
    orders::table
        .filter(orders::account_id.eq(account))
        .filter(orders::status.eq_any(WORKING_STATUSES))
        .order(orders::created_at.asc())
        .select(OrderRow::as_select())
        .load(conn)
}

/// The query of a page of positions, newest first; `status` is `open`, `closed` or
/// absent for both (see [`orders_page`]).
pub fn positions_page<S>(
    select: S,
    f: &ListFilter,
) -> positions::BoxedQuery<'static, Pg, S::SqlType>
where
    S: Page<positions::table>,
{
    let mut q = positions::table.select(select).into_boxed();
    if let Some(a) = &f.account_id {
        q = q.filter(positions::account_id.eq(a.clone()));
    }
    if let Some(ids) = &f.scope {
        q = q.filter(positions::account_id.eq_any(ids.clone()));
    }
    if let Some(s) = &f.symbol {
        q = q.filter(positions::symbol.eq(s.clone()));
    }
    if let Some(s) = &f.status {
        q = q.filter(positions::status.eq(s.clone()));
    }
    if let Some(t) = f.since {
        q = q.filter(positions::opened_at.ge(t));
    }
    if let Some(t) = f.until {
        q = q.filter(positions::opened_at.lt(t));
    }
    q.order(positions::opened_at.desc()).limit(f.limit)
}

/// Positions, newest first; `status` is `open`, `closed` or absent for both.
pub fn list_positions(conn: &mut PgConnection, f: &ListFilter) -> QueryResult<Vec<PositionRow>> {
    positions_page(PositionRow::as_select(), f).load(conn)
}

/// The query of a page of orders, newest first: loaded on a blocking connection by
/// [`list_orders`], or on an HTTP worker's own connection by the API (`api::reads`).
pub fn orders_page<S>(select: S, f: &ListFilter) -> orders::BoxedQuery<'static, Pg, S::SqlType>
where
    S: Page<orders::table>,
{
    let mut q = orders::table.select(select).into_boxed();
    if let Some(a) = &f.account_id {
        q = q.filter(orders::account_id.eq(a.clone()));
    }
    if let Some(ids) = &f.scope {
        q = q.filter(orders::account_id.eq_any(ids.clone()));
    }
    if let Some(s) = &f.symbol {
        q = q.filter(orders::symbol.eq(s.clone()));
    }
    if let Some(s) = &f.status {
        q = q.filter(orders::status.eq(s.to_ascii_uppercase()));
    }
    if let Some(t) = f.since {
        q = q.filter(orders::created_at.ge(t));
    }
    if let Some(t) = f.until {
        q = q.filter(orders::created_at.lt(t));
    }
    q.order(orders::created_at.desc()).limit(f.limit)
}

/// Orders, newest first.
pub fn list_orders(conn: &mut PgConnection, f: &ListFilter) -> QueryResult<Vec<OrderRow>> {
    orders_page(OrderRow::as_select(), f).load(conn)
}

/// The query of a page of fills (trades), newest first (see [`orders_page`]).
pub fn fills_page<S>(select: S, f: &ListFilter) -> fills::BoxedQuery<'static, Pg, S::SqlType>
where
    S: Page<fills::table>,
{
    let mut q = fills::table.select(select).into_boxed();
    if let Some(a) = &f.account_id {
        q = q.filter(fills::account_id.eq(a.clone()));
    }
    if let Some(ids) = &f.scope {
        q = q.filter(fills::account_id.eq_any(ids.clone()));
    }
    if let Some(s) = &f.symbol {
        q = q.filter(fills::symbol.eq(s.clone()));
    }
    if let Some(t) = f.since {
        q = q.filter(fills::ts.ge(t));
    }
    if let Some(t) = f.until {
        q = q.filter(fills::ts.lt(t));
    }
    q.order(fills::ts.desc()).limit(f.limit)
}

/// What a page query may select from `table`: the row type (`OrderRow::as_select()`)
/// or any other selection of its columns (the API's `api::row_json::columns`, which loads
/// each row as JSON).
pub trait Page<QS>:
    SelectableExpression<QS>
    + diesel::expression::ValidGrouping<(), IsAggregate = diesel::expression::is_aggregate::No>
    + diesel::query_builder::QueryFragment<Pg>
    + Send
    + 'static
{
}

impl<QS, S> Page<QS> for S where
    S: SelectableExpression<QS>
        + diesel::expression::ValidGrouping<(), IsAggregate = diesel::expression::is_aggregate::No>
        + diesel::query_builder::QueryFragment<Pg>
        + Send
        + 'static
{
}

/// Fills (trades), newest first.
pub fn list_fills(conn: &mut PgConnection, f: &ListFilter) -> QueryResult<Vec<FillRow>> {
    fills_page(FillRow::as_select(), f).load(conn)
}

/// Decisions, newest first; `status` filters by outcome (`approved`, `refused`, `hold`).
pub fn list_decisions(conn: &mut PgConnection, f: &ListFilter) -> QueryResult<Vec<DecisionRow>> {
    let mut q = decisions::table
        .select(DecisionRow::as_select())
        .into_boxed();
    if let Some(a) = &f.account_id {
        q = q.filter(decisions::account_id.eq(a));
    }
    if let Some(ids) = &f.scope {
        q = q.filter(decisions::account_id.eq_any(ids));
    }
    if let Some(s) = &f.symbol {
        q = q.filter(decisions::symbol.eq(s));
    }
    if let Some(s) = &f.status {
        q = q.filter(decisions::outcome.eq(s));
    }
    if let Some(a) = &f.action {
        q = q.filter(decisions::action.eq(a));
    }
    if let Some(t) = f.since {
        q = q.filter(decisions::ts.ge(t));
    }
    if let Some(t) = f.until {
        q = q.filter(decisions::ts.lt(t));
    }
    q.order(decisions::ts.desc()).limit(f.limit).load(conn)
}

/// Time of the last fill per symbol of an account (cooldowns survive a restart).
pub fn last_fill_times(
    conn: &mut PgConnection,
    account: &str,
) -> QueryResult<Vec<(String, DateTime<Utc>)>> {
    use diesel::dsl::max;
    let rows: Vec<(String, Option<DateTime<Utc>>)> = fills::table
        .filter(fills::account_id.eq(account))
        .group_by(fills::symbol)
        .select((fills::symbol, max(fills::ts)))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(s, t)| t.map(|t| (s, t)))
        .collect())
}

/// The newest `n` fills of an account, newest first.
pub fn recent_fills(conn: &mut PgConnection, account: &str, n: i64) -> QueryResult<Vec<FillRow>> {
    fills::table
        .filter(fills::account_id.eq(account))
        .order(fills::ts.desc())
        .limit(n)
        .select(FillRow::as_select())
        .load(conn)
}

/// The newest `n` diary entries of an account, newest first.
pub fn recent_diary(
    conn: &mut PgConnection,
    account: &str,
    n: i64,
) -> QueryResult<Vec<DiaryEntryRow>> {
    diary_entries::table
        .filter(diary_entries::account_id.eq(account))
        .order(diary_entries::ts.desc())
        .limit(n)
        .select(DiaryEntryRow::as_select())
        .load(conn)
}

/// Equity of the first snapshot at or after `since` (the day's start equity).
pub fn first_equity_since(
    conn: &mut PgConnection,
    account: &str,
    since: DateTime<Utc>,
) -> QueryResult<Option<Decimal>> {
    equity_snapshots::table
        .filter(equity_snapshots::account_id.eq(account))
        .filter(equity_snapshots::ts.ge(since))
        .order(equity_snapshots::ts.asc())
        .select(equity_snapshots::equity)
        .first(conn)
        .optional()
}

/// Model spending of an account since `since`, USD (calls with a known cost).
pub fn llm_cost_since(
    conn: &mut PgConnection,
    account: &str,
    since: DateTime<Utc>,
) -> QueryResult<Decimal> {
    use diesel::dsl::sum;
    let total: Option<Decimal> = llm_interactions::table
        .filter(llm_interactions::account_id.eq(account))
        .filter(llm_interactions::ts.ge(since))
        .select(sum(llm_interactions::cost_usd))
        .first(conn)?;
    Ok(total.unwrap_or_default())
}

/// Stores one model interaction.
pub fn insert_llm_interaction(
    conn: &mut PgConnection,
    row: &LlmInteractionRow,
) -> QueryResult<usize> {
    diesel::insert_into(llm_interactions::table)
        .values(row)
        .execute(conn)
}

/// Summary of a model interaction (list views: no prompt, no raw body).
#[derive(Clone, Debug, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = llm_interactions, check_for_backend(diesel::pg::Pg))]
pub struct InteractionSummary {
    /// Row id.
    pub id: uuid::Uuid,
    /// Model or policy.
    pub model: String,
    /// Prompt tokens.
    pub prompt_tokens: Option<i32>,
    /// Completion tokens.
    pub completion_tokens: Option<i32>,
    /// Cost, USD.
    pub cost_usd: Option<Decimal>,
    /// Model latency.
    pub latency_ms: Option<i32>,
    /// HTTP status of the last attempt.
    pub http_status: Option<i32>,
    /// What went wrong, if anything.
    pub error: Option<String>,
}

/// Interaction summaries by id.
pub fn interaction_summaries(
    conn: &mut PgConnection,
    ids: &[uuid::Uuid],
) -> QueryResult<Vec<InteractionSummary>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    llm_interactions::table
        .filter(llm_interactions::id.eq_any(ids))
        .select(InteractionSummary::as_select())
        .load(conn)
}

/// One decision and its full interaction (prompt, raw answer, parse and risk outcome).
pub fn find_decision(
    conn: &mut PgConnection,
    id: uuid::Uuid,
) -> QueryResult<Option<(DecisionRow, Option<LlmInteractionRow>)>> {
    let Some(d) = decisions::table
        .filter(decisions::id.eq(id))
        .select(DecisionRow::as_select())
        .first(conn)
        .optional()?
    else {
        return Ok(None);
    };
    let interaction = match d.llm_interaction_id {
        Some(iid) => llm_interactions::table
            .filter(llm_interactions::id.eq(iid))
            .select(LlmInteractionRow::as_select())
            .first(conn)
            .optional()?,
        None => None,
    };
    Ok(Some((d, interaction)))
}

/// Diary entries, newest first.
pub fn list_diary(conn: &mut PgConnection, f: &ListFilter) -> QueryResult<Vec<DiaryEntryRow>> {
    let mut q = diary_entries::table
        .select(DiaryEntryRow::as_select())
        .into_boxed();
    if let Some(a) = &f.account_id {
        q = q.filter(diary_entries::account_id.eq(a));
    }
    if let Some(ids) = &f.scope {
        q = q.filter(diary_entries::account_id.eq_any(ids));
    }
    if let Some(s) = &f.symbol {
        let asset = s
            .strip_suffix(crate::domain::types::QUOTE)
            .unwrap_or(s)
            .to_string();
        q = q.filter(diary_entries::asset.eq(asset));
    }
    if let Some(a) = &f.action {
        q = q.filter(diary_entries::action.eq(a));
    }
    if let Some(t) = f.since {
        q = q.filter(diary_entries::ts.ge(t));
    }
    if let Some(t) = f.until {
        q = q.filter(diary_entries::ts.lt(t));
    }
    q.order(diary_entries::ts.desc()).limit(f.limit).load(conn)
}

/// Income events, newest first; `kind` filters by kind (`FUNDING_FEE`, ...).
pub fn list_income(conn: &mut PgConnection, f: &ListFilter) -> QueryResult<Vec<IncomeRow>> {
    let mut q = income_events::table
        .select(IncomeRow::as_select())
        .into_boxed();
    if let Some(a) = &f.account_id {
        q = q.filter(income_events::account_id.eq(a));
    }
    if let Some(ids) = &f.scope {
        q = q.filter(income_events::account_id.eq_any(ids));
    }
    if let Some(s) = &f.symbol {
        q = q.filter(income_events::symbol.eq(s));
    }
    if let Some(k) = &f.kind {
        q = q.filter(income_events::kind.eq(k));
    }
    if let Some(t) = f.since {
        q = q.filter(income_events::ts.ge(t));
    }
    if let Some(t) = f.until {
        q = q.filter(income_events::ts.lt(t));
    }
    q.order(income_events::ts.desc()).limit(f.limit).load(conn)
}

/// Reconciliation events, newest first; `kind` filters by kind.
pub fn list_reconciliation(
    conn: &mut PgConnection,
    f: &ListFilter,
) -> QueryResult<Vec<ReconciliationRow>> {
    let mut q = reconciliation_events::table
        .select(ReconciliationRow::as_select())
        .into_boxed();
    if let Some(a) = &f.account_id {
        q = q.filter(reconciliation_events::account_id.eq(a));
    }
    if let Some(ids) = &f.scope {
        q = q.filter(reconciliation_events::account_id.eq_any(ids));
    }
    if let Some(s) = &f.symbol {
        q = q.filter(reconciliation_events::symbol.eq(s));
    }
    if let Some(k) = &f.kind {
        q = q.filter(reconciliation_events::kind.eq(k));
    }
    if let Some(t) = f.since {
        q = q.filter(reconciliation_events::ts.ge(t));
    }
    if let Some(t) = f.until {
        q = q.filter(reconciliation_events::ts.lt(t));
    }
    q.order(reconciliation_events::ts.desc())
        .limit(f.limit)
        .load(conn)
}

/// One order, by its id (a UUID) or its client order id, with its lifecycle
/// (`order_events`, oldest first); `None` when no order matches.
pub fn order_with_events(
    conn: &mut PgConnection,
    order_id_or_client_order_id: &str,
) -> QueryResult<Option<(OrderRow, Vec<OrderEventRow>)>> {
    let key = order_id_or_client_order_id.trim();
    let by_client_id = orders::client_order_id.eq(key);
    let order = match uuid::Uuid::parse_str(key) {
        Ok(id) => orders::table
            .filter(orders::id.eq(id).or(by_client_id))
            // The order whose id matches first, should another use it as client id.
            .order(orders::id.ne(id))
            .select(OrderRow::as_select())
            .first(conn)
            .optional()?,
        Err(_) => orders::table
            .filter(by_client_id)
            .select(OrderRow::as_select())
            .first(conn)
            .optional()?,
    };
    let Some(order) = order else {
        return Ok(None);
    };
    let events = order_events::table
        .filter(order_events::order_id.eq(order.id))
        .order((order_events::ts.asc(), order_events::id.asc()))
        .select(OrderEventRow::as_select())
        .load(conn)?;
    Ok(Some((order, events)))
}

/// Records the operator's wish for an account (last write wins).
pub fn upsert_account_control(conn: &mut PgConnection, row: &AccountControlRow) -> QueryResult<()> {
    diesel::insert_into(account_controls::table)
        .values(row)
        .on_conflict(account_controls::account_id)
        .do_update()
        .set(row)
        .execute(conn)?;
    Ok(())
}

/// Every account's stored control row (read at start).
pub fn account_controls(conn: &mut PgConnection) -> QueryResult<Vec<AccountControlRow>> {
    account_controls::table
        .select(AccountControlRow::as_select())
        .order(account_controls::account_id)
        .load(conn)
}

/// Sets a process-wide switch.
pub fn upsert_control_flag(conn: &mut PgConnection, row: &ControlFlagRow) -> QueryResult<()> {
    diesel::insert_into(control_flags::table)
        .values(row)
        .on_conflict(control_flags::name)
        .do_update()
        .set(row)
        .execute(conn)?;
    Ok(())
}

/// One process-wide switch, `None` when it was never set.
pub fn control_flag(conn: &mut PgConnection, name: &str) -> QueryResult<Option<ControlFlagRow>> {
    control_flags::table
        .find(name)
        .select(ControlFlagRow::as_select())
        .first(conn)
        .optional()
}

/// Appends control requests to the audit trail.
pub fn insert_control_actions(
    conn: &mut PgConnection,
    rows: &[&ControlActionRow],
) -> QueryResult<()> {
    for chunk in rows.chunks(5_000) {
        diesel::insert_into(control_actions::table)
            .values(chunk.iter().map(|r| (*r).clone()).collect::<Vec<_>>())
            .on_conflict_do_nothing()
            .execute(conn)?;
    }
    Ok(())
}

/// The audit trail, newest first: `account_id` filters the target, `kind` the action.
pub fn list_control_actions(
    conn: &mut PgConnection,
    f: &ListFilter,
) -> QueryResult<Vec<ControlActionRow>> {
    let mut q = control_actions::table
        .select(ControlActionRow::as_select())
        .into_boxed();
    if let Some(a) = &f.account_id {
        q = q.filter(control_actions::target.eq(a));
    }
    if let Some(k) = &f.kind {
        q = q.filter(control_actions::action.eq(k));
    }
    if let Some(t) = f.since {
        q = q.filter(control_actions::ts.ge(t));
    }
    if let Some(t) = f.until {
        q = q.filter(control_actions::ts.lt(t));
    }
    q.order(control_actions::ts.desc())
        .limit(f.limit)
        .load(conn)
}
