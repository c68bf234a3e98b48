//! Recorder: every database write of the actors, on a `SyncArbiter` thread (diesel is
//! blocking and never runs on an actor's event loop).
//!
//! Invariants: one writer thread, so writes land in the order they were sent (a restart
//! of an account reads its state through the same mailbox, after its last writes); each
//! message is one transaction; a failed write is retried, and if it still fails the
//! rows are written to the error log as JSON so nothing is lost silently. Trading diary
//! entries are also appended to `<data_dir>/diary/<account>.jsonl`.

use crate::db::models::*;
use crate::db::queries::{self, ExecutionBatch};
use crate::db::{pg_text, DbPool};
use crate::domain::types::AccountId;
use actix::prelude::*;
use diesel::PgConnection;
use slog::{error, warn, Logger};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// Store a market snapshot and the bars it was computed from.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RecordSnapshot {
    /// The snapshot row.
    pub snapshot: MarketSnapshotRow,
    /// New or updated bars.
    pub candles: Vec<CandleRow>,
}

/// Store a cycle's decisions.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RecordDecisions(pub Vec<DecisionRow>);

/// Store what an execution step changed (one transaction).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RecordExecution(pub ExecutionBatch);

/// Store one model interaction (prompt, raw answer, parse and risk outcome, usage).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RecordInteraction(pub LlmInteractionRow);

/// Store an equity snapshot.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RecordEquity(pub EquitySnapshotRow);

/// Record an account's run state.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RecordAccountStatus {
    /// Account.
    pub account_id: AccountId,
    /// New state.
    pub status: String,
}

/// Read what an account needs to resume: paper wallet, open positions, working orders.
#[derive(Message)]
#[rtype(result = "Result<StoredAccount, String>")]
pub struct LoadAccount(pub AccountId);

/// What [`LoadAccount`] answers.
#[derive(Debug, Clone)]
pub struct StoredAccount {
    /// The account row.
    pub account: AccountRow,
    /// Its open positions.
    pub positions: Vec<PositionRow>,
    /// Its working orders (resting TP/SL).
    pub working_orders: Vec<OrderRow>,
    /// Last fill time per symbol.
    pub last_fills: Vec<(String, chrono::DateTime<chrono::Utc>)>,
    /// The newest fills, newest first.
    pub recent_fills: Vec<FillRow>,
    /// The newest diary entries, newest first.
    pub recent_diary: Vec<DiaryEntryRow>,
    /// Equity at the start of the current UTC day, if a snapshot exists.
    pub day_start_equity: Option<rust_decimal::Decimal>,
    /// Model spending since 00:00 UTC.
    pub llm_cost_today: rust_decimal::Decimal,
    /// Exit plans of the working orders' decisions, by client order id (a live entry
    /// whose answer was lost gets its TP/SL from here).
    pub plans: std::collections::HashMap<String, crate::engine::EntryPlan>,
    /// Time of the newest income record.
    pub last_income: Option<chrono::DateTime<chrono::Utc>>,
}

/// How many recent fills and diary entries an account keeps at hand (prompt context).
pub const RECENT_HISTORY: i64 = 10;

/// Finds one of an account's orders (a fill of an order no longer in memory).
#[derive(Message)]
#[rtype(result = "Result<Option<crate::engine::Order>, String>")]
pub struct FindOrder {
    /// The account.
    pub account_id: String,
    /// By venue order id or client order id.
    pub key: crate::engine::StoredOrderKey,
}

/// Answers once every message sent before it has been written.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Flush;

/// The database writer.
pub struct Recorder {
    pool: DbPool,
    diary_dir: PathBuf,
    log: Logger,
}

impl Recorder {
    /// A writer over `pool`, appending diary files under `data_dir/diary`.
    pub fn new(pool: DbPool, data_dir: PathBuf, log: Logger) -> Self {
        Recorder {
            pool,
            diary_dir: data_dir.join("diary"),
            log: log.new(slog::o!("component" => "recorder")),
        }
    }

    /// Runs `write` in a transaction with up to three attempts; on final failure the
    /// payload goes to the error log.
    fn write<F>(&self, what: &str, payload: impl FnOnce() -> serde_json::Value, mut write: F)
    where
        F: FnMut(&mut PgConnection) -> diesel::QueryResult<()>,
    {
        let mut last_error = String::new();
        for attempt in 1..=3u32 {
            match self.pool.get() {
                Ok(mut conn) => match write(&mut conn) {
                    Ok(()) => return,
                    Err(e) => last_error = e.to_string(),
                },
                Err(e) => last_error = e.to_string(),
            }
            warn!(self.log, "database write failed; retrying"; "what" => what,
                "attempt" => attempt, "error" => &last_error);
            std::thread::sleep(Duration::from_millis(200 * u64::from(attempt)));
        }
        error!(self.log, "database write lost after 3 attempts; rows follow";
            "what" => what, "error" => last_error, "rows" => payload().to_string());
    }

    fn append_diary(&self, rows: &[DiaryEntryRow]) {
        for row in rows {
            let path = self.diary_dir.join(format!("{}.jsonl", row.account_id));
            let result = std::fs::create_dir_all(&self.diary_dir).and_then(|_| {
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)?;
                let line = serde_json::to_string(row).map_err(std::io::Error::other)?;
                f.write_all(format!("{line}\n").as_bytes())
            });
            if let Err(e) = result {
                error!(self.log, "could not append to the diary file";
                    "path" => path.display().to_string(), "error" => e.to_string());
            }
        }
    }
}

impl Actor for Recorder {
    type Context = SyncContext<Self>;
}

impl Handler<RecordSnapshot> for Recorder {
    type Result = ();
    fn handle(&mut self, msg: RecordSnapshot, _: &mut Self::Context) {
        self.write(
            "market snapshot",
            || serde_json::json!({"snapshot": msg.snapshot, "candles": msg.candles.len()}),
            |c| {
                queries::insert_snapshot(c, &msg.snapshot)?;
                queries::upsert_candles(c, &msg.candles)?;
                Ok(())
            },
        );
    }
}

impl Handler<RecordDecisions> for Recorder {
    type Result = ();
    fn handle(&mut self, mut msg: RecordDecisions, _: &mut Self::Context) {
        for d in &mut msg.0 {
            pg_text::clean(&mut d.exit_plan);
            pg_text::clean(&mut d.rationale);
            pg_text::clean_opt(&mut d.refusal_reason);
            pg_text::clean_opt(&mut d.risk_note);
        }
        self.write(
            "decisions",
            || serde_json::json!(msg.0),
            |c| queries::insert_decisions(c, &msg.0).map(|_| ()),
        );
    }
}

impl Handler<RecordExecution> for Recorder {
    type Result = ();
    fn handle(&mut self, msg: RecordExecution, _: &mut Self::Context) {
        let mut batch = msg.0;
        for d in &mut batch.diary {
            pg_text::clean_opt(&mut d.exit_plan);
            pg_text::clean_opt(&mut d.rationale);
            pg_text::clean_json_opt(&mut d.order_result);
        }
        for p in &mut batch.positions {
            pg_text::clean(&mut p.exit_plan);
        }
        for o in &mut batch.orders {
            pg_text::clean_opt(&mut o.reject_reason);
        }
        self.write(
            "execution",
            || {
                serde_json::json!({
                    "orders": batch.orders, "fills": batch.fills,
                    "positions": batch.positions, "diary": batch.diary,
                    "paper_wallet": batch.paper_wallet.as_ref().map(|(a, w)| (a.clone(), w.to_string())),
                })
            },
            |c| queries::record_execution(c, &batch),
        );
        self.append_diary(&batch.diary);
    }
}

impl Handler<RecordInteraction> for Recorder {
    type Result = ();
    fn handle(&mut self, mut msg: RecordInteraction, _: &mut Self::Context) {
        let row = &mut msg.0;
        pg_text::clean_json(&mut row.request);
        pg_text::clean_opt(&mut row.response_body);
        pg_text::clean_json_opt(&mut row.parsed);
        pg_text::clean_json_opt(&mut row.outcome);
        pg_text::clean_opt(&mut row.error);
        self.write(
            "llm interaction",
            || serde_json::json!(msg.0),
            |c| queries::insert_llm_interaction(c, &msg.0).map(|_| ()),
        );
    }
}

impl Handler<RecordEquity> for Recorder {
    type Result = ();
    fn handle(&mut self, msg: RecordEquity, _: &mut Self::Context) {
        self.write(
            "equity snapshot",
            || serde_json::json!(msg.0),
            |c| queries::insert_equity(c, &msg.0).map(|_| ()),
        );
    }
}

impl Handler<RecordAccountStatus> for Recorder {
    type Result = ();
    fn handle(&mut self, msg: RecordAccountStatus, _: &mut Self::Context) {
        self.write(
            "account status",
            || serde_json::json!({"account_id": msg.account_id, "status": msg.status}),
            |c| queries::set_account_status(c, msg.account_id.as_str(), &msg.status).map(|_| ()),
        );
    }
}

impl Handler<LoadAccount> for Recorder {
    type Result = Result<StoredAccount, String>;
    fn handle(&mut self, msg: LoadAccount, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.pool.get().map_err(|e| e.to_string())?;
        let id = msg.0.as_str();
        let account = queries::find_account(&mut conn, id)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("account {id} is not registered in the database"))?;
        let positions = queries::open_positions(&mut conn, id).map_err(|e| e.to_string())?;
        let working_orders = queries::working_orders(&mut conn, id).map_err(|e| e.to_string())?;
        let last_fills = queries::last_fill_times(&mut conn, id).map_err(|e| e.to_string())?;
        let recent_fills =
            queries::recent_fills(&mut conn, id, RECENT_HISTORY).map_err(|e| e.to_string())?;
        let recent_diary =
            queries::recent_diary(&mut conn, id, RECENT_HISTORY).map_err(|e| e.to_string())?;
        let today = crate::domain::types::utc_midnight(chrono::Utc::now());
        let day_start_equity =
            queries::first_equity_since(&mut conn, id, today).map_err(|e| e.to_string())?;
        let llm_cost_today =
            queries::llm_cost_since(&mut conn, id, today).map_err(|e| e.to_string())?;
        let decision_ids: Vec<uuid::Uuid> = working_orders
            .iter()
            .filter_map(|o| o.decision_id)
            .collect();
        let by_decision: std::collections::HashMap<_, _> =
            queries::decision_plans(&mut conn, &decision_ids)
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|(id, tp, sl, words)| (id, (tp, sl, words)))
                .collect();
        let plans = working_orders
            .iter()
            .filter(|o| o.order_type == "MARKET" && !o.reduce_only)
            .filter_map(|o| {
                let (tp, sl, words) = by_decision.get(&o.decision_id?)?.clone();
                Some((
                    o.client_order_id.clone(),
                    crate::engine::EntryPlan {
                        tp_price: tp,
                        sl_price: sl,
                        exit_plan: words,
                    },
                ))
            })
            .collect();
        let last_income = queries::last_income_time(&mut conn, id).map_err(|e| e.to_string())?;
        Ok(StoredAccount {
            account,
            positions,
            working_orders,
            last_fills,
            recent_fills,
            recent_diary,
            day_start_equity,
            llm_cost_today,
            plans,
            last_income,
        })
    }
}

impl Handler<FindOrder> for Recorder {
    type Result = Result<Option<crate::engine::Order>, String>;
    fn handle(&mut self, msg: FindOrder, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.pool.get().map_err(|e| e.to_string())?;
        let row =
            queries::find_order(&mut conn, &msg.account_id, &msg.key).map_err(|e| e.to_string())?;
        row.as_ref()
            .map(crate::engine::Order::try_from)
            .transpose()
            .map_err(|e| e.to_string())
    }
}

impl Handler<Flush> for Recorder {
    type Result = ();
    fn handle(&mut self, _: Flush, _: &mut Self::Context) {}
}
