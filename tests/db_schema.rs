//! The migrations build the whole schema on a real PostgreSQL, and the diesel schema
//! matches it (every table is read through diesel).

mod common;

use diesel::prelude::*;
use vibex::db::{self, models::*, schema::*};

#[test]
fn migrations_build_every_table_and_diesel_reads_them() {
    let tdb = common::pg::test_db();
    let pool = db::connect(&tdb.url, 2).unwrap();
    let mut conn = pool.get().unwrap();
    let applied = db::run_migrations(&mut conn).unwrap();
    assert_eq!(
        applied.len(),
        2,
        "both migrations apply on a fresh database"
    );
    // Running again applies nothing.
    assert!(db::run_migrations(&mut conn).unwrap().is_empty());

    accounts::table
        .select(AccountRow::as_select())
        .load(&mut conn)
        .unwrap();
    candles::table
        .select(CandleRow::as_select())
        .load(&mut conn)
        .unwrap();
    market_snapshots::table
        .select(MarketSnapshotRow::as_select())
        .load(&mut conn)
        .unwrap();
    llm_interactions::table
        .select(LlmInteractionRow::as_select())
        .load(&mut conn)
        .unwrap();
    decisions::table
        .select(DecisionRow::as_select())
        .load(&mut conn)
        .unwrap();
    orders::table
        .select(OrderRow::as_select())
        .load(&mut conn)
        .unwrap();
    order_events::table
        .select(OrderEventRow::as_select())
        .load(&mut conn)
        .unwrap();
    fills::table
        .select(FillRow::as_select())
        .load(&mut conn)
        .unwrap();
    positions::table
        .select(PositionRow::as_select())
        .load(&mut conn)
        .unwrap();
    equity_snapshots::table
        .select(EquitySnapshotRow::as_select())
        .load(&mut conn)
        .unwrap();
    diary_entries::table
        .select(DiaryEntryRow::as_select())
        .load(&mut conn)
        .unwrap();
    reconciliation_events::table
        .select(ReconciliationEventRow::as_select())
        .load(&mut conn)
        .unwrap();
}
