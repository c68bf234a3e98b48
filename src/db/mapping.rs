//! The engine's typed values as rows, and stored rows back as typed values.
//!
//! Entry points: `From<&T>` for every row the engine produces ([`batch_of`] for a whole
//! [`Changes`]), and `TryFrom<&Row>` for what an account reads back at start (orders,
//! positions, fills, diary entries).
//!
//! Invariant: reading a row back never panics; a word vibex does not know (a status, a
//! side, a reason) is an error that names the row and the field.

use crate::db::models::{
    DiaryEntryRow, EquitySnapshotRow, FillRow, IncomeRow, NewOrderEvent, OrderRow, PositionRow,
    ReconciliationRow,
};
use crate::db::queries::ExecutionBatch;
use crate::domain::orders::{OrderStatus, OrderType};
use crate::domain::types::{AccountId, Asset, CycleId, PositionSide, Side, Symbol, TradeAction};
use crate::engine::model::*;

/// A stored row vibex cannot read back.
#[derive(Debug, thiserror::Error)]
#[error("{table} row {id}: {field} {value:?} is not a value vibex knows")]
pub struct RowError {
    /// The table.
    pub table: &'static str,
    /// The row's id.
    pub id: String,
    /// The column.
    pub field: &'static str,
    /// What it holds.
    pub value: String,
}

fn bad(table: &'static str, id: impl ToString, field: &'static str, value: &str) -> RowError {
    RowError {
        table,
        id: id.to_string(),
        field,
        value: value.to_string(),
    }
}

fn side(table: &'static str, id: impl ToString, text: &str) -> Result<Side, RowError> {
    match text {
        "BUY" => Ok(Side::Buy),
        "SELL" => Ok(Side::Sell),
        other => Err(bad(table, id, "side", other)),
    }
}

fn position_side(
    table: &'static str,
    id: impl ToString,
    text: &str,
) -> Result<PositionSide, RowError> {
    match text {
        "long" => Ok(PositionSide::Long),
        "short" => Ok(PositionSide::Short),
        other => Err(bad(table, id, "side", other)),
    }
}

impl From<&Order> for OrderRow {
    fn from(o: &Order) -> Self {
        OrderRow {
            id: o.id,
            account_id: o.account_id.to_string(),
            cycle_id: o.cycle_id.map(|c| c.0),
            decision_id: o.decision_id,
            client_order_id: o.client_order_id.clone(),
            venue_order_id: o.venue_order_id.clone(),
            symbol: o.symbol.to_string(),
            side: o.side.as_str().to_string(),
            order_type: o.order_type.as_str().to_string(),
            quantity: o.quantity,
            price: o.price,
            stop_price: o.stop_price,
            reduce_only: o.reduce_only,
            close_position: o.close_position,
            status: o.status.as_str().to_string(),
            filled_quantity: o.filled_quantity,
            avg_fill_price: o.avg_fill_price,
            reject_reason: o.reject_reason.clone(),
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

impl TryFrom<&OrderRow> for Order {
    type Error = RowError;
    fn try_from(r: &OrderRow) -> Result<Self, RowError> {
        Ok(Order {
            id: r.id,
            account_id: AccountId::new(r.account_id.clone()),
            cycle_id: r.cycle_id.map(CycleId),
            decision_id: r.decision_id,
            client_order_id: r.client_order_id.clone(),
            venue_order_id: r.venue_order_id.clone(),
            symbol: Symbol(r.symbol.clone()),
            side: side("orders", r.id, &r.side)?,
            order_type: OrderType::parse(&r.order_type),
            quantity: r.quantity,
            price: r.price,
            stop_price: r.stop_price,
            reduce_only: r.reduce_only,
            close_position: r.close_position,
            status: OrderStatus::parse(&r.status)
                .ok_or_else(|| bad("orders", r.id, "status", &r.status))?,
            filled_quantity: r.filled_quantity,
            avg_fill_price: r.avg_fill_price,
            reject_reason: r.reject_reason.clone(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

impl From<&OrderEvent> for NewOrderEvent {
    fn from(e: &OrderEvent) -> Self {
        NewOrderEvent {
            ts: e.ts,
            order_id: e.order_id,
            account_id: e.account_id.to_string(),
            cycle_id: e.cycle_id.map(|c| c.0),
            status: e.status.as_str().to_string(),
            detail: e.detail.clone(),
        }
    }
}

impl From<&Fill> for FillRow {
    fn from(f: &Fill) -> Self {
        FillRow {
            id: f.id,
            ts: f.ts,
            account_id: f.account_id.to_string(),
            cycle_id: f.cycle_id.map(|c| c.0),
            order_id: f.order_id,
            client_order_id: f.client_order_id.clone(),
            symbol: f.symbol.to_string(),
            side: f.side.as_str().to_string(),
            quantity: f.quantity,
            price: f.price,
            fee: f.fee,
            realized_pnl: f.realized_pnl,
            reason: f.reason.as_str().to_string(),
            venue_trade_id: f.venue_trade_id.clone(),
        }
    }
}

impl TryFrom<&FillRow> for Fill {
    type Error = RowError;
    fn try_from(r: &FillRow) -> Result<Self, RowError> {
        Ok(Fill {
            id: r.id,
            ts: r.ts,
            account_id: AccountId::new(r.account_id.clone()),
            cycle_id: r.cycle_id.map(CycleId),
            order_id: r.order_id,
            client_order_id: r.client_order_id.clone(),
            symbol: Symbol(r.symbol.clone()),
            side: side("fills", r.id, &r.side)?,
            quantity: r.quantity,
            price: r.price,
            fee: r.fee,
            realized_pnl: r.realized_pnl,
            // Rows written before the reasons were typed used `exit`, `tp`, `sl`.
            reason: match r.reason.as_str() {
                "exit" => FillReason::Close,
                "tp" => FillReason::TakeProfit,
                "sl" => FillReason::StopLoss,
                other => {
                    FillReason::parse(other).ok_or_else(|| bad("fills", r.id, "reason", other))?
                }
            },
            venue_trade_id: r.venue_trade_id.clone(),
        })
    }
}

impl From<&Position> for PositionRow {
    fn from(p: &Position) -> Self {
        PositionRow {
            id: p.id,
            account_id: p.account_id.to_string(),
            symbol: p.symbol.to_string(),
            side: p.side.as_str().to_string(),
            quantity: p.quantity,
            entry_price: p.entry_price,
            leverage: i32::try_from(p.leverage).unwrap_or(i32::MAX),
            margin: p.margin,
            tp_price: p.tp_price,
            sl_price: p.sl_price,
            exit_plan: p.exit_plan.clone(),
            mark_price: p.mark_price,
            unrealized_pnl: p.unrealized_pnl,
            realized_pnl: p.realized_pnl,
            status: p.status.as_str().to_string(),
            opened_at: p.opened_at,
            closed_at: p.closed_at,
            opened_cycle_id: p.opened_cycle_id.map(|c| c.0),
            updated_at: p.updated_at,
            liquidation_price: p.liquidation_price,
            origin: p.origin.as_str().to_string(),
            close_reason: p.close_reason.map(|r| r.as_str().to_string()),
        }
    }
}

impl TryFrom<&PositionRow> for Position {
    type Error = RowError;
    fn try_from(r: &PositionRow) -> Result<Self, RowError> {
        Ok(Position {
            id: r.id,
            account_id: AccountId::new(r.account_id.clone()),
            symbol: Symbol(r.symbol.clone()),
            side: position_side("positions", r.id, &r.side)?,
            quantity: r.quantity,
            entry_price: r.entry_price,
            leverage: u32::try_from(r.leverage)
                .map_err(|_| bad("positions", r.id, "leverage", &r.leverage.to_string()))?,
            margin: r.margin,
            tp_price: r.tp_price,
            sl_price: r.sl_price,
            exit_plan: r.exit_plan.clone(),
            mark_price: r.mark_price,
            unrealized_pnl: r.unrealized_pnl,
            realized_pnl: r.realized_pnl,
            status: PositionStatus::parse(&r.status)
                .ok_or_else(|| bad("positions", r.id, "status", &r.status))?,
            opened_at: r.opened_at,
            closed_at: r.closed_at,
            close_reason: match &r.close_reason {
                None => None,
                Some(text) => Some(
                    CloseReason::parse(text)
                        .ok_or_else(|| bad("positions", r.id, "close_reason", text))?,
                ),
            },
            opened_cycle_id: r.opened_cycle_id.map(CycleId),
            updated_at: r.updated_at,
            liquidation_price: r.liquidation_price,
            origin: Origin::parse(&r.origin)
                .ok_or_else(|| bad("positions", r.id, "origin", &r.origin))?,
        })
    }
}

impl From<&Income> for IncomeRow {
    fn from(i: &Income) -> Self {
        IncomeRow {
            id: i.id,
            ts: i.ts,
            account_id: i.account_id.to_string(),
            cycle_id: i.cycle_id.map(|c| c.0),
            symbol: i.symbol.as_ref().map(|s| s.to_string()),
            kind: i.kind.as_str().to_string(),
            amount: i.amount,
            asset: i.asset.clone(),
            venue_tran_id: i.venue_tran_id.clone(),
            detail: i.detail.clone(),
        }
    }
}

impl From<&ReconciliationEvent> for ReconciliationRow {
    fn from(e: &ReconciliationEvent) -> Self {
        ReconciliationRow {
            id: e.id,
            ts: e.ts,
            account_id: e.account_id.to_string(),
            cycle_id: e.cycle_id.map(|c| c.0),
            kind: e.finding.kind().to_string(),
            symbol: Some(e.finding.symbol().to_string()),
            detail: e.detail(),
        }
    }
}

impl From<&DiaryEntry> for DiaryEntryRow {
    fn from(d: &DiaryEntry) -> Self {
        DiaryEntryRow {
            id: d.id,
            ts: d.ts,
            account_id: d.account_id.to_string(),
            cycle_id: d.cycle_id.map(|c| c.0),
            asset: d.asset.to_string(),
            action: d.action.as_str().to_string(),
            allocation_usd: d.allocation_usd,
            amount: d.amount,
            entry_price: d.entry_price,
            tp_price: d.tp_price,
            tp_oid: d.tp_oid.clone(),
            sl_price: d.sl_price,
            sl_oid: d.sl_oid.clone(),
            exit_plan: d.exit_plan.clone(),
            rationale: d.rationale.clone(),
            order_result: d.order_result.clone(),
            opened_at: d.opened_at,
            filled: d.filled,
        }
    }
}

impl TryFrom<&DiaryEntryRow> for DiaryEntry {
    type Error = RowError;
    fn try_from(r: &DiaryEntryRow) -> Result<Self, RowError> {
        Ok(DiaryEntry {
            id: r.id,
            ts: r.ts,
            account_id: AccountId::new(r.account_id.clone()),
            cycle_id: r.cycle_id.map(CycleId),
            asset: Asset::new(&r.asset),
            action: match r.action.as_str() {
                "buy" => TradeAction::Buy,
                "sell" => TradeAction::Sell,
                "hold" => TradeAction::Hold,
                other => return Err(bad("diary_entries", r.id, "action", other)),
            },
            allocation_usd: r.allocation_usd,
            amount: r.amount,
            entry_price: r.entry_price,
            tp_price: r.tp_price,
            tp_oid: r.tp_oid.clone(),
            sl_price: r.sl_price,
            sl_oid: r.sl_oid.clone(),
            exit_plan: r.exit_plan.clone(),
            rationale: r.rationale.clone(),
            order_result: r.order_result.clone(),
            opened_at: r.opened_at,
            filled: r.filled,
        })
    }
}

impl From<&EquitySnapshot> for EquitySnapshotRow {
    fn from(e: &EquitySnapshot) -> Self {
        EquitySnapshotRow {
            ts: e.ts,
            account_id: e.account_id.to_string(),
            cycle_id: e.cycle_id.map(|c| c.0),
            wallet_balance: e.wallet_balance,
            unrealized_pnl: e.unrealized_pnl,
            equity: e.equity,
            used_margin: e.used_margin,
            available: e.available,
        }
    }
}

/// The rows of one engine step, in one batch (one transaction).
pub fn batch_of(changes: &Changes) -> ExecutionBatch {
    ExecutionBatch {
        orders: changes.orders.iter().map(OrderRow::from).collect(),
        order_events: changes
            .order_events
            .iter()
            .map(NewOrderEvent::from)
            .collect(),
        fills: changes.fills.iter().map(FillRow::from).collect(),
        positions: changes.positions.iter().map(PositionRow::from).collect(),
        diary: changes.diary.iter().map(DiaryEntryRow::from).collect(),
        income: changes.income.iter().map(IncomeRow::from).collect(),
        reconciliation: changes
            .reconciliation
            .iter()
            .map(ReconciliationRow::from)
            .collect(),
        paper_wallet: None,
    }
}

/// Reads rows back, naming the first one vibex cannot read.
pub fn read_all<'a, R: 'a, T>(rows: impl IntoIterator<Item = &'a R>) -> Result<Vec<T>, RowError>
where
    T: TryFrom<&'a R, Error = RowError>,
{
    rows.into_iter().map(T::try_from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use rust_decimal_macros::dec;
    use uuid::Uuid;

    fn position() -> Position {
        Position {
            id: Uuid::now_v7(),
            account_id: AccountId::new("a1"),
            symbol: Symbol("BTCUSDT".into()),
            side: PositionSide::Short,
            quantity: dec!(0.5),
            entry_price: dec!(64000.1),
            leverage: 3,
            margin: dec!(10666.68333333),
            tp_price: Some(dec!(60000)),
            sl_price: None,
            exit_plan: "plan".into(),
            mark_price: Some(dec!(63000)),
            unrealized_pnl: dec!(500.05),
            realized_pnl: dec!(-1.5),
            status: PositionStatus::Closed,
            opened_at: Utc::now(),
            closed_at: Some(Utc::now()),
            close_reason: Some(CloseReason::TakeProfit),
            opened_cycle_id: Some(CycleId::new()),
            updated_at: Utc::now(),
            liquidation_price: None,
            origin: Origin::Vibex,
        }
    }

    #[test]
    fn a_position_reads_back_as_it_was_written() {
        let p = position();
        assert_eq!(Position::try_from(&PositionRow::from(&p)).unwrap(), p);
    }

    #[test]
    fn a_word_vibex_does_not_know_names_the_row_and_the_field() {
        let mut row = PositionRow::from(&position());
        row.close_reason = Some("moon".into());
        let err = Position::try_from(&row).unwrap_err().to_string();
        assert!(
            err.contains("positions row") && err.contains("close_reason") && err.contains("moon"),
            "{err}"
        );
    }

    #[test]
    fn old_fill_reasons_read_as_the_typed_ones() {
        let fill = Fill {
            id: Uuid::now_v7(),
            ts: Utc::now(),
            account_id: AccountId::new("a1"),
            cycle_id: None,
            order_id: None,
            client_order_id: "vx-tp-1".into(),
            symbol: Symbol("BTCUSDT".into()),
            side: Side::Sell,
            quantity: dec!(1),
            price: dec!(2),
            fee: dec!(0.1),
            realized_pnl: dec!(3),
            reason: FillReason::TakeProfit,
            venue_trade_id: Some("7".into()),
        };
        let mut row = FillRow::from(&fill);
        assert_eq!(row.reason, "take_profit");
        row.reason = "tp".into();
        assert_eq!(Fill::try_from(&row).unwrap(), fill);
    }
}
