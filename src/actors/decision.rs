//! DecisionActor: turns an account's snapshots and state into decisions, runs every
//! decision through the hard risk rules, records them and publishes them.
//!
//! Invariants: exactly one decision per traded asset per cycle (a missing one becomes a
//! HOLD with the reason); what reaches execution has passed `domain::risk::check`;
//! every decision — approved, refused or hold — is a `decisions` row and a `decision`
//! event with the cycle id.

use crate::actors::event_bus::EventBus;
use crate::actors::events::{Channel, EventDraft};
use crate::actors::messages::*;
use crate::actors::recorder::{RecordDecisions, Recorder};
use crate::config::AccountConfig;
use crate::db::models::DecisionRow;
use crate::domain::decision::{DecisionContext, TradeDecision};
use crate::domain::policy::BuiltinPolicy;
use crate::domain::risk::{self, RiskLimits, RiskVerdict};
use crate::domain::types::AccountId;
use actix::prelude::*;
use chrono::Utc;
use slog::{info, Logger};
use std::sync::Arc;
use uuid::Uuid;

/// Where an account's decisions come from.
#[derive(Clone, Debug)]
pub enum DecisionSource {
    /// A builtin rule policy.
    Builtin(BuiltinPolicy),
    /// A model that this version cannot call yet (every asset holds, with the reason).
    Unsupported(String),
}

impl DecisionSource {
    /// The source configured by `llm_model`.
    pub fn from_model(model: &str) -> DecisionSource {
        match BuiltinPolicy::from_model(model) {
            Some(p) => DecisionSource::Builtin(p),
            None => DecisionSource::Unsupported(model.to_string()),
        }
    }
}

/// The decision maker of one account.
pub struct DecisionActor {
    account_id: AccountId,
    source: DecisionSource,
    source_name: String,
    limits: RiskLimits,
    max_position_usd: Option<rust_decimal::Decimal>,
    leverage: u32,
    bus: Addr<EventBus>,
    recorder: Addr<Recorder>,
    log: Logger,
}

impl DecisionActor {
    /// A decision maker for `cfg`.
    pub fn new(
        cfg: &Arc<AccountConfig>,
        bus: Addr<EventBus>,
        recorder: Addr<Recorder>,
        log: &Logger,
    ) -> Self {
        DecisionActor {
            account_id: cfg.id.clone(),
            source: DecisionSource::from_model(&cfg.llm_model),
            source_name: cfg.llm_model.clone(),
            limits: RiskLimits {
                leverage: cfg.leverage,
                max_position_usd: cfg.risk.max_position_usd,
                cooldown: cfg.risk.cooldown,
                kill_switch: cfg.risk.kill_switch,
            },
            max_position_usd: cfg.risk.max_position_usd,
            leverage: cfg.leverage,
            bus,
            recorder,
            log: log.new(slog::o!("component" => "decision")),
        }
    }
}

impl Actor for DecisionActor {
    type Context = Context<Self>;
}

impl Handler<Decide> for DecisionActor {
    type Result = MessageResult<Decide>;

    fn handle(&mut self, msg: Decide, _: &mut Self::Context) -> Self::Result {
        let now = Utc::now();
        let ctx = DecisionContext {
            now,
            snapshots: msg.snapshots.clone(),
            account: msg.view.clone(),
            leverage: self.leverage,
            max_position_usd: self.max_position_usd,
        };
        let decided: Vec<TradeDecision> = match &self.source {
            DecisionSource::Builtin(policy) => policy.decide(&ctx),
            DecisionSource::Unsupported(model) => ctx
                .snapshots
                .iter()
                .map(|s| {
                    TradeDecision::hold(
                        s.asset.clone(),
                        format!("model {model} cannot be called by this version; holding"),
                    )
                })
                .collect(),
        };
        let log = self
            .log
            .new(slog::o!("cycle_id" => msg.cycle_id.to_string()));
        let mut rows = Vec::new();
        let mut approved = Vec::new();
        for snap in &msg.snapshots {
            let decision = decided
                .iter()
                .find(|d| d.asset == snap.asset)
                .cloned()
                .unwrap_or_else(|| {
                    TradeDecision::hold(snap.asset.clone(), "no decision was given for this asset")
                });
            let position = msg.view.position(&snap.symbol).map(|p| p.side);
            let verdict = risk::check(
                &decision,
                &self.limits,
                &risk::RiskInput {
                    price: snap.last_price,
                    available: msg.view.available,
                    position,
                    last_trade_at: msg.last_trades.get(&snap.symbol).copied(),
                    now,
                },
            );
            let id = Uuid::now_v7();
            let (executed, refusal, note) = match &verdict {
                RiskVerdict::Approved { decision, note } => (decision.clone(), None, note.clone()),
                RiskVerdict::Refused { reason } => (decision.clone(), Some(reason.clone()), None),
                RiskVerdict::Hold => (decision.clone(), None, None),
            };
            info!(log, "decision"; "asset" => snap.asset.to_string(),
                "action" => decision.action.as_str(), "outcome" => verdict.outcome(),
                "allocation_usd" => executed.allocation_usd.to_string(),
                "refusal" => refusal.clone(), "note" => note.clone(),
                "rationale" => &decision.rationale);
            self.bus.do_send(Publish(
                EventDraft::account(
                    Channel::TradingEvents,
                    "decision",
                    &self.account_id,
                    Some(msg.cycle_id),
                    serde_json::json!({
                        "decision_id": id,
                        "asset": snap.asset,
                        "symbol": snap.symbol,
                        "action": decision.action,
                        "allocation_usd": executed.allocation_usd,
                        "requested_allocation_usd": decision.allocation_usd,
                        "tp_price": executed.tp_price,
                        "sl_price": executed.sl_price,
                        "exit_plan": decision.exit_plan,
                        "rationale": decision.rationale,
                        "outcome": verdict.outcome(),
                        "refusal_reason": refusal,
                        "risk_note": note,
                        "source": self.source_name,
                        "price": snap.last_price,
                    }),
                )
                .with_symbol(snap.symbol.to_string()),
            ));
            rows.push(DecisionRow {
                id,
                ts: now,
                account_id: self.account_id.to_string(),
                cycle_id: msg.cycle_id.0,
                asset: snap.asset.to_string(),
                symbol: snap.symbol.to_string(),
                action: decision.action.as_str().to_string(),
                allocation_usd: executed.allocation_usd,
                tp_price: executed.tp_price,
                sl_price: executed.sl_price,
                exit_plan: decision.exit_plan.clone(),
                rationale: decision.rationale.clone(),
                source: self.source_name.clone(),
                outcome: verdict.outcome().to_string(),
                refusal_reason: refusal,
                risk_note: note,
                snapshot_id: Some(snap.id),
                llm_interaction_id: None,
            });
            if let RiskVerdict::Approved { decision, .. } = verdict {
                approved.push(ApprovedDecision {
                    decision_id: id,
                    decision,
                    snapshot: snap.clone(),
                });
            }
        }
        self.recorder.do_send(RecordDecisions(rows));
        MessageResult(approved)
    }
}
