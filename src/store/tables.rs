//! The SQL of the write path: many writes merged into one transaction of multi-row
//! statements, and the exactly-once marker.
//!
//! Entry points: [`apply`] (one transaction: the rows of some writes plus the marker),
//! [`read_marker`], [`mark`].
//!
//! Invariants:
//! - One statement per table and chunk (chunks stay under PostgreSQL's 65,535 bind
//!   parameters), in an order that respects the constraints: a position closed in the
//!   batch is written before the one opened after it on the same symbol (at most one
//!   open position per account and symbol).
//! - Upserts are de-duplicated within a transaction, because PostgreSQL refuses an
//!   `ON CONFLICT DO UPDATE` that touches a row twice in one statement: orders by client
//!   order id (a later state's empty fields keep the earlier value, as one upsert per
//!   write did), positions by id and candles by key (last state wins).
//! - The "stored once" rules of fills and income (db/queries.rs) hold across the
//!   writes of a transaction: a repeat within it is dropped here (the first one kept),
//!   a repeat of a stored row is skipped by the insert itself.
//! - The marker row of the writer is set in the same transaction as the rows: after a
//!   commit whose outcome was uncertain, or a replay interrupted by a crash, the marker
//!   says exactly which writes are in.

use super::{ControlRow, Rows};
use crate::db::models::*;
use crate::db::queries;
use crate::db::schema::*;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use rust_decimal::Decimal;
use std::collections::{HashMap, HashSet};

/// PostgreSQL's limit of bind parameters per statement.
const MAX_BINDS: usize = 65_535;

diesel::define_sql_function! {
    /// `COALESCE(a, b)`: an order update that leaves a field empty keeps the stored value.
    fn coalesce<T: diesel::sql_types::SingleValue>(
        value: diesel::sql_types::Nullable<T>,
        fallback: diesel::sql_types::Nullable<T>,
    ) -> diesel::sql_types::Nullable<T>;
}

/// One write of a batch: `index` is its place in batch `batch`.
pub(crate) struct Entry<'a> {
    /// The batch id.
    pub batch: i64,
    /// The write's index in its batch.
    pub index: u32,
    /// Its rows.
    pub rows: &'a [Rows],
}

/// How far a writer's writes are committed: every write `(b, i)` with
/// `(b, i + 1) <= (batch, writes)` is in PostgreSQL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Marker {
    /// The batch id.
    pub batch: i64,
    /// How many writes of that batch (from its first) are committed.
    pub writes: i64,
}

impl Marker {
    /// The marker once `e` is committed.
    pub(crate) fn after(e: &Entry<'_>) -> Marker {
        Marker {
            batch: e.batch,
            writes: i64::from(e.index) + 1,
        }
    }

    /// True when `e` is already committed.
    pub(crate) fn covers(&self, e: &Entry<'_>) -> bool {
        Marker::after(e) <= *self
    }
}

/// The writer's marker, if it ever committed.
pub(crate) fn read_marker(conn: &mut PgConnection, writer: &str) -> QueryResult<Option<Marker>> {
    let row: Option<(i64, i32)> = store_marker::table
        .find(writer)
        .select((store_marker::batch_id, store_marker::writes))
        .first(conn)
        .optional()?;
    Ok(row.map(|(batch, writes)| Marker {
        batch,
        writes: i64::from(writes),
    }))
}

fn set_marker(conn: &mut PgConnection, writer: &str, m: Marker) -> QueryResult<()> {
    let writes = i32::try_from(m.writes).map_err(|_| {
        diesel::result::Error::QueryBuilderError("more than 2^31 writes in one batch".into())
    })?;
    diesel::insert_into(store_marker::table)
        .values((
            store_marker::writer_id.eq(writer),
            store_marker::batch_id.eq(m.batch),
            store_marker::writes.eq(writes),
            store_marker::updated_at.eq(Utc::now()),
        ))
        .on_conflict(store_marker::writer_id)
        .do_update()
        .set((
            store_marker::batch_id.eq(excluded(store_marker::batch_id)),
            store_marker::writes.eq(excluded(store_marker::writes)),
            store_marker::updated_at.eq(excluded(store_marker::updated_at)),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Moves the marker past a write that was set aside (dead-lettered), in its own
/// transaction.
pub(crate) fn mark(conn: &mut PgConnection, writer: &str, m: Marker) -> QueryResult<()> {
    set_marker(conn, writer, m)
}

/// Writes the rows of `entries` and moves the marker past the last one, in one
/// transaction. `entries` must be in enqueue order.
pub(crate) fn apply(
    conn: &mut PgConnection,
    writer: &str,
    entries: &[Entry<'_>],
) -> QueryResult<()> {
    let Some(last) = entries.last() else {
        return Ok(());
    };
    let marker = Marker::after(last);
    let tables = Tables::merge(entries);
    conn.transaction(|conn| {
        tables.write(conn)?;
        set_marker(conn, writer, marker)
    })
}

/// Rows per statement for a table of `columns` columns.
fn per_statement(columns: usize) -> usize {
    (MAX_BINDS / columns.max(1)).max(1)
}

/// The rows of many writes, per table, de-duplicated where an upsert needs it.
#[derive(Default)]
struct Tables<'a> {
    statuses: Vec<(&'a str, &'a str)>,
    registers: Vec<&'a crate::db::models::AccountRow>,
    controls: Vec<&'a crate::db::models::AccountControlRow>,
    flags: Vec<&'a crate::db::models::ControlFlagRow>,
    actions: Vec<&'a crate::db::models::ControlActionRow>,
    status_at: HashMap<&'a str, usize>,
    wallets: Vec<(&'a str, Decimal)>,
    wallet_at: HashMap<&'a str, usize>,
    snapshots: Vec<&'a MarketSnapshotRow>,
    candles: Vec<&'a CandleRow>,
    candle_at: HashMap<(&'a str, &'a str, &'a str, DateTime<Utc>), usize>,
    interactions: Vec<&'a LlmInteractionRow>,
    decisions: Vec<&'a DecisionRow>,
    equity: Vec<&'a EquitySnapshotRow>,
    orders: Vec<OrderRow>,
    order_at: HashMap<&'a str, usize>,
    order_events: Vec<&'a NewOrderEvent>,
    fills: Vec<FillRow>,
    fill_seen: HashSet<(&'a str, &'a str)>,
    positions: Vec<&'a PositionRow>,
    position_at: HashMap<uuid::Uuid, usize>,
    diary: Vec<&'a DiaryEntryRow>,
    income: Vec<IncomeRow>,
    income_seen: HashSet<(&'a str, &'a str, &'a str)>,
    reconciliation: Vec<&'a ReconciliationRow>,
}

/// Keeps the last value per key, at the place of its first appearance.
fn last_wins<K: std::hash::Hash + Eq, V>(
    list: &mut Vec<V>,
    at: &mut HashMap<K, usize>,
    key: K,
    value: V,
) {
    match at.get(&key) {
        Some(&i) => {
            if let Some(slot) = list.get_mut(i) {
                *slot = value;
            }
        }
        None => {
            at.insert(key, list.len());
            list.push(value);
        }
    }
}

/// A later state of an order over an earlier one: empty fields keep the earlier value
/// (as `ON CONFLICT DO UPDATE SET` with the row's changeset did); the id stays.
fn merge_order(earlier: &mut OrderRow, later: &OrderRow) {
    fn keep<T: Clone>(slot: &mut Option<T>, later: &Option<T>) {
        if later.is_some() {
            slot.clone_from(later);
        }
    }
    earlier.account_id.clone_from(&later.account_id);
    keep(&mut earlier.cycle_id, &later.cycle_id);
    keep(&mut earlier.decision_id, &later.decision_id);
    keep(&mut earlier.venue_order_id, &later.venue_order_id);
    earlier.symbol.clone_from(&later.symbol);
    earlier.side.clone_from(&later.side);
    earlier.order_type.clone_from(&later.order_type);
    keep(&mut earlier.quantity, &later.quantity);
    keep(&mut earlier.price, &later.price);
    keep(&mut earlier.stop_price, &later.stop_price);
    earlier.reduce_only = later.reduce_only;
    earlier.close_position = later.close_position;
    earlier.status.clone_from(&later.status);
    earlier.filled_quantity = later.filled_quantity;
    keep(&mut earlier.avg_fill_price, &later.avg_fill_price);
    keep(&mut earlier.reject_reason, &later.reject_reason);
    earlier.created_at = later.created_at;
    earlier.updated_at = later.updated_at;
}

impl<'a> Tables<'a> {
    fn merge(entries: &[Entry<'a>]) -> Tables<'a> {
        let mut t = Tables::default();
        for e in entries {
            for rows in e.rows {
                t.add(rows);
            }
        }
        // Closed positions before open ones: a position closed and another opened on
        // the same symbol in one batch must not be open together for a moment.
        t.positions.sort_by_key(|p| p.status == "open");
        t
    }

    fn add(&mut self, rows: &'a Rows) {
        match rows {
            Rows::AccountStatus { account_id, status } => last_wins(
                &mut self.statuses,
                &mut self.status_at,
                account_id.as_str(),
                (account_id.as_str(), status.as_str()),
            ),
            Rows::Control(row) => match row {
                ControlRow::Register(r) => self.registers.push(r),
                ControlRow::Account(r) => self.controls.push(r),
                ControlRow::Flag(r) => self.flags.push(r),
                ControlRow::Action(r) => self.actions.push(r),
            },
            Rows::Snapshot { snapshot, candles } => {
                self.snapshots.push(snapshot);
                for c in candles {
                    let key = (
                        c.venue.as_str(),
                        c.symbol.as_str(),
                        c.kline_interval.as_str(),
                        c.open_time,
                    );
                    last_wins(&mut self.candles, &mut self.candle_at, key, c);
                }
            }
            Rows::Interaction(row) => self.interactions.push(row),
            Rows::Decisions(rows) => self.decisions.extend(rows),
            Rows::Equity(row) => self.equity.push(row),
            Rows::Execution(b) => {
                for o in &b.orders {
                    match self.order_at.get(o.client_order_id.as_str()) {
                        Some(&i) => {
                            if let Some(earlier) = self.orders.get_mut(i) {
                                merge_order(earlier, o);
                            }
                        }
                        None => {
                            self.order_at
                                .insert(o.client_order_id.as_str(), self.orders.len());
                            self.orders.push(o.clone());
                        }
                    }
                }
                self.order_events.extend(&b.order_events);
                for f in &b.fills {
                    if let Some(id) = f.venue_trade_id.as_deref() {
                        if !self.fill_seen.insert((f.account_id.as_str(), id)) {
                            continue;
                        }
                    }
                    self.fills.push(f.clone());
                }
                for p in &b.positions {
                    last_wins(&mut self.positions, &mut self.position_at, p.id, p);
                }
                self.diary.extend(&b.diary);
                for i in &b.income {
                    if let Some(id) = i.venue_tran_id.as_deref() {
                        if !self
                            .income_seen
                            .insert((i.account_id.as_str(), i.kind.as_str(), id))
                        {
                            continue;
                        }
                    }
                    self.income.push(i.clone());
                }
                self.reconciliation.extend(&b.reconciliation);
                if let Some((account, wallet)) = &b.paper_wallet {
                    last_wins(
                        &mut self.wallets,
                        &mut self.wallet_at,
                        account.as_str(),
                        (account.as_str(), *wallet),
                    );
                }
            }
        }
    }

    fn write(&self, conn: &mut PgConnection) -> QueryResult<()> {
        let now = Utc::now();
        // Registrations first: the other rows of a new account refer to it. The
        // control rows are rare and applied in arrival order (last one wins).
        for row in &self.registers {
            queries::upsert_account(conn, row)?;
        }
        for row in &self.controls {
            queries::upsert_account_control(conn, row)?;
        }
        for row in &self.flags {
            queries::upsert_control_flag(conn, row)?;
        }
        queries::insert_control_actions(conn, &self.actions)?;
        for (id, status) in &self.statuses {
            diesel::update(accounts::table.find(*id))
                .set((accounts::status.eq(*status), accounts::updated_at.eq(now)))
                .execute(conn)?;
        }
        for (id, wallet) in &self.wallets {
            diesel::update(accounts::table.find(*id))
                .set((
                    accounts::paper_wallet_balance.eq(wallet),
                    accounts::updated_at.eq(now),
                ))
                .execute(conn)?;
        }
        for chunk in self.snapshots.chunks(per_statement(9)) {
            diesel::insert_into(market_snapshots::table)
                .values(chunk.to_vec())
                .execute(conn)?;
        }
        for chunk in self.candles.chunks(per_statement(10)) {
            diesel::insert_into(candles::table)
                .values(chunk.to_vec())
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
                .execute(conn)?;
        }
        for chunk in self.interactions.chunks(per_statement(15)) {
            diesel::insert_into(llm_interactions::table)
                .values(chunk.to_vec())
                .execute(conn)?;
        }
        for chunk in self.decisions.chunks(per_statement(18)) {
            diesel::insert_into(decisions::table)
                .values(chunk.to_vec())
                .execute(conn)?;
        }
        self.write_orders(conn)?;
        for chunk in self.order_events.chunks(per_statement(6)) {
            diesel::insert_into(order_events::table)
                .values(chunk.to_vec())
                .execute(conn)?;
        }
        for chunk in self.fills.chunks(per_statement(14)) {
            queries::insert_fills(conn, chunk)?;
        }
        self.write_positions(conn)?;
        for chunk in self.diary.chunks(per_statement(18)) {
            diesel::insert_into(diary_entries::table)
                .values(chunk.to_vec())
                .execute(conn)?;
        }
        for chunk in self.income.chunks(per_statement(10)) {
            queries::insert_income(conn, chunk)?;
        }
        for chunk in self.reconciliation.chunks(per_statement(7)) {
            diesel::insert_into(reconciliation_events::table)
                .values(chunk.to_vec())
                .execute(conn)?;
        }
        for chunk in self.equity.chunks(per_statement(8)) {
            diesel::insert_into(equity_snapshots::table)
                .values(chunk.to_vec())
                .on_conflict((equity_snapshots::account_id, equity_snapshots::ts))
                .do_nothing()
                .execute(conn)?;
        }
        Ok(())
    }

    /// Orders upserted by client order id (the idempotency key: one row per order).
    fn write_orders(&self, conn: &mut PgConnection) -> QueryResult<()> {
        use orders::dsl as o;
        let refs: Vec<&OrderRow> = self.orders.iter().collect();
        for chunk in refs.chunks(per_statement(20)) {
            diesel::insert_into(orders::table)
                .values(chunk.to_vec())
                .on_conflict(o::client_order_id)
                .do_update()
                .set((
                    o::account_id.eq(excluded(o::account_id)),
                    o::cycle_id.eq(coalesce(excluded(o::cycle_id), o::cycle_id)),
                    o::decision_id.eq(coalesce(excluded(o::decision_id), o::decision_id)),
                    o::venue_order_id.eq(coalesce(excluded(o::venue_order_id), o::venue_order_id)),
                    o::symbol.eq(excluded(o::symbol)),
                    o::side.eq(excluded(o::side)),
                    o::order_type.eq(excluded(o::order_type)),
                    o::quantity.eq(coalesce(excluded(o::quantity), o::quantity)),
                    o::price.eq(coalesce(excluded(o::price), o::price)),
                    o::stop_price.eq(coalesce(excluded(o::stop_price), o::stop_price)),
                    o::reduce_only.eq(excluded(o::reduce_only)),
                    o::close_position.eq(excluded(o::close_position)),
                    o::status.eq(excluded(o::status)),
                    o::filled_quantity.eq(excluded(o::filled_quantity)),
                    o::avg_fill_price.eq(coalesce(excluded(o::avg_fill_price), o::avg_fill_price)),
                    o::reject_reason.eq(coalesce(excluded(o::reject_reason), o::reject_reason)),
                    o::created_at.eq(excluded(o::created_at)),
                    o::updated_at.eq(excluded(o::updated_at)),
                ))
                .execute(conn)?;
        }
        Ok(())
    }

    /// Positions upserted by id; every column takes the new state.
    fn write_positions(&self, conn: &mut PgConnection) -> QueryResult<()> {
        use positions::dsl as p;
        for chunk in self.positions.chunks(per_statement(22)) {
            diesel::insert_into(positions::table)
                .values(chunk.to_vec())
                .on_conflict(p::id)
                .do_update()
                .set((
                    p::account_id.eq(excluded(p::account_id)),
                    p::symbol.eq(excluded(p::symbol)),
                    p::side.eq(excluded(p::side)),
                    p::quantity.eq(excluded(p::quantity)),
                    p::entry_price.eq(excluded(p::entry_price)),
                    p::leverage.eq(excluded(p::leverage)),
                    p::margin.eq(excluded(p::margin)),
                    p::tp_price.eq(excluded(p::tp_price)),
                    p::sl_price.eq(excluded(p::sl_price)),
                    p::exit_plan.eq(excluded(p::exit_plan)),
                    p::mark_price.eq(excluded(p::mark_price)),
                    p::unrealized_pnl.eq(excluded(p::unrealized_pnl)),
                    p::realized_pnl.eq(excluded(p::realized_pnl)),
                    p::status.eq(excluded(p::status)),
                    p::opened_at.eq(excluded(p::opened_at)),
                    p::closed_at.eq(excluded(p::closed_at)),
                    p::opened_cycle_id.eq(excluded(p::opened_cycle_id)),
                    p::updated_at.eq(excluded(p::updated_at)),
                    p::liquidation_price.eq(excluded(p::liquidation_price)),
                    p::origin.eq(excluded(p::origin)),
                    p::close_reason.eq(excluded(p::close_reason)),
                ))
                .execute(conn)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::queries::ExecutionBatch;
    use rust_decimal_macros::dec;

    fn order(client: &str, status: &str, venue_id: Option<&str>) -> OrderRow {
        OrderRow {
            id: uuid::Uuid::now_v7(),
            account_id: "a1".into(),
            cycle_id: None,
            decision_id: None,
            client_order_id: client.into(),
            venue_order_id: venue_id.map(String::from),
            symbol: "BTCUSDT".into(),
            side: "BUY".into(),
            order_type: "MARKET".into(),
            quantity: Some(dec!(1)),
            price: None,
            stop_price: None,
            reduce_only: false,
            close_position: false,
            status: status.into(),
            filled_quantity: dec!(0),
            avg_fill_price: None,
            reject_reason: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn position(status: &str) -> PositionRow {
        PositionRow {
            id: uuid::Uuid::now_v7(),
            account_id: "a1".into(),
            symbol: "BTCUSDT".into(),
            side: "long".into(),
            quantity: dec!(1),
            entry_price: dec!(100),
            leverage: 1,
            margin: dec!(100),
            tp_price: None,
            sl_price: None,
            exit_plan: String::new(),
            mark_price: None,
            unrealized_pnl: dec!(0),
            realized_pnl: dec!(0),
            status: status.into(),
            opened_at: Utc::now(),
            closed_at: None,
            opened_cycle_id: None,
            updated_at: Utc::now(),
            liquidation_price: None,
            origin: PositionRow::ORIGIN_VIBEX.into(),
            close_reason: None,
        }
    }

    fn execution(b: ExecutionBatch) -> Vec<Rows> {
        vec![Rows::Execution(b)]
    }

    #[test]
    fn an_order_seen_twice_is_one_row_with_the_later_state_and_earlier_fields_kept() {
        let first = order("c1", "PENDING_NEW", None);
        let mut second = order("c1", "FILLED", Some("v9"));
        second.quantity = None;
        let third = order("c1", "FILLED", None);
        let w1 = execution(ExecutionBatch {
            orders: vec![first.clone()],
            ..Default::default()
        });
        let w2 = execution(ExecutionBatch {
            orders: vec![second, third],
            ..Default::default()
        });
        let entries = [
            Entry {
                batch: 1,
                index: 0,
                rows: &w1,
            },
            Entry {
                batch: 1,
                index: 1,
                rows: &w2,
            },
        ];
        let t = Tables::merge(&entries);
        assert_eq!(t.orders.len(), 1);
        let o = &t.orders[0];
        assert_eq!(o.id, first.id, "the id of the first state stays");
        assert_eq!(o.status, "FILLED");
        assert_eq!(
            o.venue_order_id.as_deref(),
            Some("v9"),
            "not erased by None"
        );
        assert_eq!(o.quantity, Some(dec!(1)), "not erased by None");
    }

    #[test]
    fn positions_keep_their_last_state_and_closed_ones_come_first() {
        let old = position("open");
        let mut closed = old.clone();
        closed.status = "closed".into();
        let new = position("open");
        let w1 = execution(ExecutionBatch {
            positions: vec![old],
            ..Default::default()
        });
        let w2 = execution(ExecutionBatch {
            positions: vec![new.clone(), closed.clone()],
            ..Default::default()
        });
        let entries = [
            Entry {
                batch: 1,
                index: 0,
                rows: &w1,
            },
            Entry {
                batch: 1,
                index: 1,
                rows: &w2,
            },
        ];
        let t = Tables::merge(&entries);
        let order: Vec<_> = t
            .positions
            .iter()
            .map(|p| (p.id, p.status.as_str()))
            .collect();
        assert_eq!(order, [(closed.id, "closed"), (new.id, "open")]);
    }

    #[test]
    fn a_venue_fill_repeated_across_writes_is_kept_once_and_paper_fills_always() {
        let fill = |venue: Option<&str>| FillRow {
            id: uuid::Uuid::now_v7(),
            ts: Utc::now(),
            account_id: "a1".into(),
            cycle_id: None,
            order_id: None,
            client_order_id: "c1".into(),
            symbol: "BTCUSDT".into(),
            side: "BUY".into(),
            quantity: dec!(1),
            price: dec!(100),
            fee: dec!(0),
            realized_pnl: dec!(0),
            reason: "entry".into(),
            venue_trade_id: venue.map(String::from),
        };
        let w1 = execution(ExecutionBatch {
            fills: vec![fill(Some("t1")), fill(None)],
            ..Default::default()
        });
        let w2 = execution(ExecutionBatch {
            fills: vec![fill(Some("t1")), fill(None), fill(Some("t2"))],
            ..Default::default()
        });
        let entries = [
            Entry {
                batch: 1,
                index: 0,
                rows: &w1,
            },
            Entry {
                batch: 1,
                index: 1,
                rows: &w2,
            },
        ];
        let t = Tables::merge(&entries);
        let ids: Vec<_> = t.fills.iter().map(|f| f.venue_trade_id.clone()).collect();
        assert_eq!(
            ids,
            [Some("t1".into()), None, None, Some("t2".into())],
            "the first t1 kept, the repeat dropped"
        );
    }

    #[test]
    fn the_marker_covers_exactly_the_writes_before_it() {
        let rows: Vec<Rows> = Vec::new();
        let e = |batch, index| Entry {
            batch,
            index,
            rows: &rows,
        };
        let m = Marker {
            batch: 7,
            writes: 2,
        };
        assert!(m.covers(&e(6, 40)));
        assert!(m.covers(&e(7, 0)));
        assert!(m.covers(&e(7, 1)));
        assert!(!m.covers(&e(7, 2)));
        assert!(!m.covers(&e(8, 0)));
        assert_eq!(Marker::after(&e(7, 1)), m);
    }
}
