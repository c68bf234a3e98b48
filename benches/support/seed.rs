//! Realistic history for read-path tests and benchmarks: `n` filled market orders, each
//! with its fill, written through the daemon's own write-path query
//! (`queries::record_execution`, the transaction the store runs for an execution step),
//! 100 orders per batch. Shared by `tests/api_hardening.rs` and `benches/read_path.rs`.
#![allow(dead_code)]

use chrono::{Duration, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;
use vibex::db::models::{FillRow, OrderRow};
use vibex::db::queries::{self, ExecutionBatch};

/// Writes `n` orders and `n` fills for `account` (BTCUSDT and ETHUSDT alternately, one
/// a minute back from now) into the database at `url`; the schema must exist (the daemon
/// migrates it at start).
pub fn orders_and_fills(url: &str, account: &str, n: usize) -> Result<(), String> {
    let pool = vibex::db::connect(url, 1).map_err(|e| e.to_string())?;
    let mut conn = vibex::db::conn(&pool).map_err(|e| e.to_string())?;
    let start = Utc::now() - Duration::minutes(i64::try_from(n).unwrap_or(0) + 1);
    let mut batch = ExecutionBatch::default();
    for i in 0..n {
        let ts = start + Duration::minutes(i64::try_from(i).unwrap_or(0));
        let (symbol, price) = if i % 2 == 0 {
            (
                "BTCUSDT",
                Decimal::new(6_000_000 + i64::try_from(i).unwrap_or(0), 2),
            )
        } else {
            (
                "ETHUSDT",
                Decimal::new(300_000 + i64::try_from(i).unwrap_or(0), 2),
            )
        };
        let side = if i % 4 < 2 { "BUY" } else { "SELL" };
        let id = Uuid::now_v7();
        let client_order_id = format!("vx-{account}-seed-{i:06}");
        let quantity = Decimal::new(15, 3);
        batch.orders.push(OrderRow {
            id,
            account_id: account.into(),
            cycle_id: Some(Uuid::now_v7()),
            decision_id: Some(Uuid::now_v7()),
            client_order_id: client_order_id.clone(),
            venue_order_id: Some(format!("{}", 9_000_000 + i)),
            symbol: symbol.into(),
            side: side.into(),
            order_type: "MARKET".into(),
            quantity: Some(quantity),
            price: None,
            stop_price: None,
            reduce_only: false,
            close_position: false,
            status: "FILLED".into(),
            filled_quantity: quantity,
            avg_fill_price: Some(price),
            reject_reason: None,
            created_at: ts,
            updated_at: ts,
        });
        batch.fills.push(FillRow {
            id: Uuid::now_v7(),
            ts,
            account_id: account.into(),
            cycle_id: None,
            order_id: Some(id),
            client_order_id,
            symbol: symbol.into(),
            side: side.into(),
            quantity,
            price,
            fee: Decimal::new(36, 2),
            realized_pnl: Decimal::ZERO,
            reason: "entry".into(),
            venue_trade_id: None,
        });
        if batch.orders.len() == 100 || i + 1 == n {
            queries::record_execution(&mut conn, &batch).map_err(|e| e.to_string())?;
            batch = ExecutionBatch::default();
        }
    }
    Ok(())
}
