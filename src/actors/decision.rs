//! DecisionActor: turns an account's snapshots and state into decisions — by asking
//! its model (OpenRouter or any OpenAI-compatible server) or running its builtin
//! policy — then validates every answer, applies the hard risk rules, and records and
//! publishes the result.
//!
//! One path for both kinds of account: a builtin policy's decisions are rendered to the
//! same JSON document a model returns and go through the same parser, validation, risk
//! rules and audit rows, so an LLM account and a builtin one compare on equal terms.
//!
//! Invariants: exactly one decision per traded asset per cycle (anything invalid or
//! missing becomes a HOLD with the reason); what reaches execution has passed
//! validation and `domain::risk::check`; every cycle leaves an `llm_interactions` row
//! (prompt, raw answer, parse and risk outcome, tokens, cost, latency, status, error),
//! one `decisions` row per asset and a `decision` event per asset, written as one write
//! of the store (the events published once the rows are durable); while the database
//! has been unreachable longer than `storage.halt_entries_after`, the risk rules refuse
//! new exposure. The model is called
//! outside the actor's event loop; a call that fails, times out or is skipped (circuit
//! breaker open, daily budget spent) makes the cycle HOLD, never stall.

use crate::actors::events::{Channel, EventDraft};
use crate::actors::messages::*;
use crate::actors::tree::{Tree, TreeGuard};
use crate::config::{AccountConfig, LlmGlobalSettings, ModelPrice, StructuredOutput};
use crate::db::models::{DecisionRow, LlmInteractionRow};
use crate::domain::decision::{DecisionContext, TradeDecision};
use crate::domain::guard::{CircuitBreaker, DailyBudget};
use crate::domain::policy::BuiltinPolicy;
use crate::domain::risk::{self, RiskLimits, RiskVerdict};
use crate::domain::snapshot::MarketSnapshot;
use crate::domain::types::{AccountId, Asset, CycleId, PositionSide, TradeAction};
use crate::llm::client::{
    ChatMessage, ChatOutcome, LlmClient, LlmEndpoint, StructuredOutput as ClientOutput,
};
use crate::llm::parse::{AssetDecision, ModelReply, ParseOutcome, ReplyParser};
use crate::llm::prompt::{
    CooldownSummary, DiarySummary, FillSummary, OrderSummary, PromptContext, PromptTemplates,
    RulesSummary,
};
use crate::llm::schema::{decision_schema, decisions_document};
use crate::store::{Queued, Rows, Store, Write};
use actix::prelude::*;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::json;
use slog::{info, warn, Logger};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// From fresh market data to decision, at most this long.
pub const DECISION_BUDGET: Duration = Duration::from_secs(30);

/// A model and everything needed to call it.
pub struct ModelEngine {
    client: LlmClient,
    templates: PromptTemplates,
    schema: serde_json::Value,
    price: Option<ModelPrice>,
    timeout: Duration,
}

impl ModelEngine {
    /// The engine of an LLM account: client, prompt templates (shipped or the account's
    /// `llm.prompt_dir`), decision schema and price.
    pub fn new(cfg: &AccountConfig, global: &LlmGlobalSettings) -> Result<Self, String> {
        let client = LlmClient::new(LlmEndpoint {
            base_url: cfg.openrouter.base_url.clone(),
            api_key: cfg.openrouter.api_key.clone(),
            model: cfg.llm_model.clone(),
            temperature: cfg.llm.temperature,
            max_tokens: cfg.llm.max_tokens,
            structured_output: match cfg.llm.structured_output {
                StructuredOutput::JsonSchema => ClientOutput::JsonSchema,
                StructuredOutput::JsonObject => ClientOutput::JsonObject,
                StructuredOutput::ToolCall => ClientOutput::ToolCall,
                StructuredOutput::None => ClientOutput::None,
            },
            app_url: global.app_url.clone(),
            app_title: Some(global.app_title.clone()),
            retry: Default::default(),
        })
        .map_err(|e| format!("field \"openrouter.base_url\": {e}"))?;
        let templates = match &cfg.llm.prompt_dir {
            Some(dir) => PromptTemplates::from_dir(dir)
                .map_err(|e| format!("field \"llm.prompt_dir\": {e}"))?,
            None => PromptTemplates::embedded(),
        };
        let schema = decision_schema(&cfg.assets);
        Ok(ModelEngine {
            client,
            templates,
            schema: if cfg.llm.structured_output == StructuredOutput::None {
                serde_json::Value::Null
            } else {
                schema
            },
            price: cfg
                .llm
                .price
                .clone()
                .or_else(|| global.prices.get(&cfg.llm_model).cloned()),
            timeout: cfg.llm.timeout,
        })
    }
}

/// Where an account's decisions come from.
pub enum DecisionSource {
    /// A builtin rule policy.
    Builtin(BuiltinPolicy),
    /// A model.
    Model(Box<ModelEngine>),
}

/// The decision maker of one account.
pub struct DecisionActor {
    cfg: Arc<AccountConfig>,
    source: DecisionSource,
    limits: RiskLimits,
    /// Consecutive cycles each asset asked for the same reversal (hysteresis).
    streaks: HashMap<Asset, (PositionSide, u32)>,
    breaker: CircuitBreaker,
    budget: DailyBudget,
    /// The decision schema of the account's assets, compiled once.
    parser: ReplyParser,
    holding: Option<String>,
    calls: u64,
    failed_calls: u64,
    store: Store,
    log: Logger,
    /// The account tree this actor belongs to (it stops with the tree).
    tree: Option<TreeGuard>,
}

/// Everything known about one cycle's answer before risk rules.
struct Answer {
    parsed: ParseOutcome,
    interaction: LlmInteractionRow,
}

impl DecisionActor {
    /// A decision maker for `cfg`; `spent_today` is the model spending already recorded
    /// today (the budget survives restarts).
    pub fn new(
        cfg: Arc<AccountConfig>,
        source: DecisionSource,
        global_kill_switch: bool,
        spent_today: Decimal,
        store: Store,
        log: &Logger,
    ) -> Self {
        DecisionActor {
            limits: RiskLimits {
                leverage: cfg.leverage,
                max_position_usd: cfg.risk.max_position_usd,
                cooldown: cfg.risk.cooldown,
                kill_switch: cfg.risk.kill_switch,
                global_kill_switch,
                paused: false,
                hysteresis_cycles: cfg.risk.hysteresis_cycles,
                max_daily_loss_pct: cfg.risk.max_daily_loss_pct,
                halt_entries_after: Some(store.settings().halt_entries_after),
            },
            breaker: CircuitBreaker::new(cfg.llm.breaker_failures, cfg.llm.breaker_cooldown),
            budget: DailyBudget::new(cfg.llm.max_cost_usd_per_day, spent_today, Utc::now()),
            parser: ReplyParser::new(&cfg.assets),
            source,
            streaks: HashMap::new(),
            holding: None,
            calls: 0,
            failed_calls: 0,
            log: log.new(slog::o!("component" => "decision", "account_id" => cfg.id.to_string())),
            tree: None,
            cfg,
            store,
        }
    }

    fn account_id(&self) -> &AccountId {
        &self.cfg.id
    }

    fn prices(snapshots: &[Arc<MarketSnapshot>]) -> HashMap<Asset, Decimal> {
        snapshots
            .iter()
            .map(|s| (s.asset.clone(), s.last_price))
            .collect()
    }

    /// Every asset holds for `reason` (no call was made).
    fn all_hold(&self, reason: &str) -> ParseOutcome {
        ParseOutcome {
            decisions: self
                .cfg
                .assets
                .iter()
                .map(|a| AssetDecision {
                    asset: a.clone(),
                    decision: TradeDecision::hold(a.clone(), reason),
                    valid: false,
                    reason: Some(reason.to_string()),
                })
                .collect(),
            repairs: Vec::new(),
            document: None,
            error: Some(reason.to_string()),
            ignored: Vec::new(),
        }
    }

    fn interaction(
        &self,
        cycle: CycleId,
        now: DateTime<Utc>,
        request: serde_json::Value,
    ) -> LlmInteractionRow {
        LlmInteractionRow {
            id: Uuid::now_v7(),
            ts: now,
            account_id: self.account_id().to_string(),
            cycle_id: cycle.0,
            model: self.cfg.llm_model.clone(),
            request,
            response_body: None,
            parsed: None,
            outcome: None,
            prompt_tokens: None,
            completion_tokens: None,
            cost_usd: None,
            latency_ms: None,
            http_status: None,
            error: None,
        }
    }

    /// The builtin policy's decisions, rendered as the JSON document a model would
    /// return and parsed like one.
    fn builtin_answer(&self, policy: BuiltinPolicy, msg: &Decide, now: DateTime<Utc>) -> Answer {
        let started = Instant::now();
        let ctx = DecisionContext {
            now,
            snapshots: msg.snapshots.clone(),
            account: msg.view.account.clone(),
            leverage: self.cfg.leverage,
            max_position_usd: self.cfg.risk.max_position_usd,
        };
        let decided = policy.decide(&ctx);
        let document = decisions_document(&decided);
        let body = document.to_string();
        let parsed = self.parser.parse(
            &ModelReply {
                content: Some(&body),
                tool_arguments: None,
                finish_reason: Some("stop"),
            },
            &Self::prices(&msg.snapshots),
        );
        let mut interaction = self.interaction(msg.cycle_id, now, json!({"policy": policy.name()}));
        interaction.response_body = Some(body);
        interaction.latency_ms = Some(millis(started.elapsed()));
        interaction.cost_usd = Some(Decimal::ZERO);
        Answer {
            parsed,
            interaction,
        }
    }

    /// What the model needs to know, for the prompt templates.
    fn prompt_context(&self, msg: &Decide, now: DateTime<Utc>) -> PromptContext {
        let cooldowns = match self.cfg.risk.cooldown {
            Some(cd) => msg
                .view
                .last_trades
                .iter()
                .filter_map(|(symbol, at)| {
                    let until = *at + chrono::Duration::from_std(cd).ok()?;
                    (until > now).then(|| CooldownSummary {
                        asset: symbol.asset().to_string(),
                        until,
                    })
                })
                .collect(),
            None => Vec::new(),
        };
        PromptContext {
            now,
            account_id: self.account_id().to_string(),
            model: self.cfg.llm_model.clone(),
            snapshots: msg.snapshots.clone(),
            account: msg.view.account.clone(),
            open_orders: msg
                .view
                .open_orders
                .iter()
                .map(OrderSummary::from)
                .collect(),
            recent_fills: msg
                .view
                .recent_fills
                .iter()
                .map(FillSummary::from)
                .collect(),
            diary: msg
                .view
                .recent_diary
                .iter()
                .map(DiarySummary::from)
                .collect(),
            cooldowns,
            rules: RulesSummary::from_account(&self.cfg, self.limits.global_kill_switch),
        }
    }

    /// The model's answer (or the failure) as an [`Answer`]; updates breaker and budget.
    fn model_answer(
        &mut self,
        msg: &Decide,
        outcome: ChatOutcome,
        prompt_version: &str,
        now: DateTime<Utc>,
    ) -> Answer {
        let engine_price = match &self.source {
            DecisionSource::Model(e) => e.price.clone(),
            DecisionSource::Builtin(_) => None,
        };
        self.calls += 1;
        if outcome.error.is_some() {
            self.failed_calls += 1;
        }
        // A deadline spent before the model was even asked says nothing about it.
        let failed = outcome
            .error
            .as_ref()
            .is_some_and(|e| e.counts_as_failure());
        self.breaker.record(!failed, Utc::now());
        let usage = outcome.usage.clone();
        let cost = usage.as_ref().and_then(|u| {
            u.cost_usd.or_else(|| {
                let p = engine_price.as_ref()?;
                let prompt = Decimal::from(u.prompt_tokens?);
                let completion = Decimal::from(u.completion_tokens.unwrap_or(0));
                Some(
                    ((prompt * p.prompt_per_mtok + completion * p.completion_per_mtok)
                        / Decimal::from(1_000_000))
                    .round_dp(8),
                )
            })
        });
        if let Some(c) = cost {
            self.budget.add(c, Utc::now());
        }
        let parsed = match &outcome.error {
            Some(e) => self.all_hold(&format!("model call failed: {e}")),
            None => self.parser.parse(
                &ModelReply {
                    content: outcome.content.as_deref(),
                    tool_arguments: outcome.tool_arguments.as_deref(),
                    finish_reason: outcome.finish_reason.as_deref(),
                },
                &Self::prices(&msg.snapshots),
            ),
        };
        let mut interaction = self.interaction(
            msg.cycle_id,
            now,
            json!({"prompt_version": prompt_version, "body": outcome.request}),
        );
        interaction.response_body = outcome.response_body.clone();
        interaction.prompt_tokens = usage
            .as_ref()
            .and_then(|u| u.prompt_tokens)
            .and_then(|t| i32::try_from(t).ok());
        interaction.completion_tokens = usage
            .as_ref()
            .and_then(|u| u.completion_tokens)
            .and_then(|t| i32::try_from(t).ok());
        interaction.cost_usd = cost;
        interaction.latency_ms = Some(millis(outcome.latency));
        interaction.http_status = outcome.http_status.map(i32::from);
        interaction.error = outcome.error.as_ref().map(|e| e.to_string());
        if let Some(e) = &outcome.error {
            warn!(self.log, "model call failed; holding"; "cycle_id" => msg.cycle_id.to_string(),
                "error" => e.to_string(), "attempts" => outcome.attempts,
                "latency_ms" => millis(outcome.latency));
        } else {
            info!(self.log, "model answered"; "cycle_id" => msg.cycle_id.to_string(),
                "latency_ms" => millis(outcome.latency), "attempts" => outcome.attempts,
                "prompt_tokens" => interaction.prompt_tokens,
                "completion_tokens" => interaction.completion_tokens,
                "cost_usd" => cost.map(|c| c.to_string()),
                "finish_reason" => outcome.finish_reason.clone(),
                "repairs" => parsed.repairs.join("; "));
        }
        Answer {
            parsed,
            interaction,
        }
    }

    /// Validation -> risk rules -> rows, events and the approved decisions. The rows
    /// and the `decision` events go to the store as one write (the events are
    /// published once the rows are durable); the returned [`Queued`] resolves when it
    /// is queued.
    fn conclude(
        &mut self,
        msg: &Decide,
        answer: Answer,
        started: Instant,
        model_time: Duration,
    ) -> (Vec<ApprovedDecision>, Queued) {
        let now = Utc::now();
        let database_unreachable_for = self.store.outage();
        let mut events = Vec::new();
        let Answer {
            parsed,
            mut interaction,
        } = answer;
        let log = self
            .log
            .new(slog::o!("cycle_id" => msg.cycle_id.to_string()));
        let mut rows = Vec::new();
        let mut approved = Vec::new();
        let mut verdicts = Vec::new();
        for snap in &msg.snapshots {
            let (decision, invalid_reason) = parsed
                .decisions
                .iter()
                .find(|d| d.asset == snap.asset)
                .map(|d| (d.decision.clone(), d.reason.clone().filter(|_| !d.valid)))
                .unwrap_or_else(|| {
                    let why = "no decision was given for this asset".to_string();
                    (TradeDecision::hold(snap.asset.clone(), &why), Some(why))
                });
            let position = msg.view.account.position(&snap.symbol);
            let side = position.map(|p| p.side);
            let streak = self.update_streak(&decision, side);
            let verdict = risk::check(
                &decision,
                &self.limits,
                &risk::RiskInput {
                    price: snap.last_price,
                    available: msg.view.account.available,
                    position: side,
                    last_trade_at: msg.view.last_trades.get(&snap.symbol).copied(),
                    now,
                    equity: msg.view.account.equity,
                    day_start_equity: msg.view.day_start_equity,
                    reversal_streak: streak,
                    exit_plan: position.map(|p| p.exit_plan.clone()),
                    database_unreachable_for,
                },
            );
            let id = Uuid::now_v7();
            // An invalid answer is a HOLD whose reason is the validation failure.
            let (executed, refusal, note) = match &verdict {
                RiskVerdict::Approved { decision, note } => (decision.clone(), None, note.clone()),
                RiskVerdict::Refused { reason } => (decision.clone(), Some(reason.clone()), None),
                RiskVerdict::Hold => (decision.clone(), invalid_reason.clone(), None),
            };
            let outcome = if invalid_reason.is_some() {
                "invalid"
            } else {
                verdict.outcome()
            };
            info!(log, "decision"; "asset" => snap.asset.to_string(),
                "action" => decision.action.as_str(), "outcome" => outcome,
                "allocation_usd" => executed.allocation_usd.to_string(),
                "refusal" => refusal.clone(), "note" => note.clone(),
                "rationale" => &decision.rationale);
            verdicts.push(json!({
                "asset": snap.asset, "action": decision.action, "outcome": outcome,
                "valid": invalid_reason.is_none(), "reason": refusal, "risk_note": note,
                "allocation_usd": executed.allocation_usd, "reversal_streak": streak,
            }));
            events.push(
                EventDraft::account(
                    Channel::TradingEvents,
                    "decision",
                    self.account_id(),
                    Some(msg.cycle_id),
                    json!({
                        "decision_id": id,
                        "llm_interaction_id": interaction.id,
                        "asset": snap.asset,
                        "symbol": snap.symbol,
                        "action": decision.action,
                        "allocation_usd": executed.allocation_usd,
                        "requested_allocation_usd": decision.allocation_usd,
                        "tp_price": executed.tp_price,
                        "sl_price": executed.sl_price,
                        "exit_plan": decision.exit_plan,
                        "rationale": decision.rationale,
                        "outcome": outcome,
                        "refusal_reason": refusal,
                        "risk_note": note,
                        "source": self.cfg.llm_model,
                        "price": snap.last_price,
                    }),
                )
                .with_symbol(snap.symbol.to_string()),
            );
            rows.push(DecisionRow {
                id,
                ts: now,
                account_id: self.account_id().to_string(),
                cycle_id: msg.cycle_id.0,
                asset: snap.asset.to_string(),
                symbol: snap.symbol.to_string(),
                action: decision.action.as_str().to_string(),
                allocation_usd: executed.allocation_usd,
                tp_price: executed.tp_price,
                sl_price: executed.sl_price,
                exit_plan: decision.exit_plan.clone(),
                rationale: decision.rationale.clone(),
                source: self.cfg.llm_model.clone(),
                outcome: outcome.to_string(),
                refusal_reason: refusal,
                risk_note: note,
                snapshot_id: Some(snap.id),
                llm_interaction_id: Some(interaction.id),
            });
            if let RiskVerdict::Approved { decision, .. } = verdict {
                approved.push(ApprovedDecision {
                    decision_id: id,
                    decision,
                    snapshot: snap.clone(),
                });
            }
        }
        let total = started.elapsed();
        let ms = |d: Duration| (d.as_secs_f64() * 1_000_000.0).round() / 1000.0;
        info!(log, "cycle decided"; "total_ms" => ms(total),
            "model_ms" => ms(model_time),
            "overhead_ms" => ms(total.saturating_sub(model_time)),
            "approved" => approved.len());
        interaction.parsed = serde_json::to_value(&parsed).ok();
        interaction.outcome = Some(json!({
            "decisions": verdicts,
            "timing": {
                "total_ms": millis(total),
                "model_ms": millis(model_time),
                "overhead_ms": millis(total.saturating_sub(model_time)),
            },
        }));
        let queued = self.store.write(Write::new(
            vec![Rows::Interaction(interaction), Rows::Decisions(rows)],
            events,
        ));
        (approved, queued)
    }

    /// Consecutive cycles (this one included) that asked to reverse `position` towards
    /// the same side; 0 when this decision is no reversal.
    fn update_streak(&mut self, d: &TradeDecision, position: Option<PositionSide>) -> u32 {
        if !risk::is_reversal(d, position) {
            self.streaks.remove(&d.asset);
            return 0;
        }
        let target = if d.action == TradeAction::Buy {
            PositionSide::Long
        } else {
            PositionSide::Short
        };
        let entry = self.streaks.entry(d.asset.clone()).or_insert((target, 0));
        if entry.0 != target {
            *entry = (target, 0);
        }
        entry.1 += 1;
        entry.1
    }
}

fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

impl DecisionActor {
    /// Makes the actor a member of `tree`: it stops when any member of the tree ends,
    /// and its own end (a stop or a panic) ends the tree.
    pub fn in_tree(mut self, tree: &Tree) -> Self {
        self.tree = Some(tree.guard());
        self
    }
}

impl Actor for DecisionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(guard) = &self.tree {
            guard.tree().clone().watch(self, ctx);
        }
    }
}

/// The approved decisions, once the cycle's decision rows are queued (the decision
/// actor waits while the store's queue is full: backpressure).
fn when_queued(
    (approved, queued): (Vec<ApprovedDecision>, Queued),
) -> ResponseActFuture<DecisionActor, Vec<ApprovedDecision>> {
    Box::pin(fut::wrap_future(async move {
        // Refused only once the store is closed (shutdown): the cycle ends anyway.
        let _ = queued.await;
        approved
    }))
}

impl Handler<Decide> for DecisionActor {
    type Result = ResponseActFuture<Self, Vec<ApprovedDecision>>;

    fn handle(&mut self, msg: Decide, _: &mut Self::Context) -> Self::Result {
        // The operator's switches as they stand at this cycle (the Account owns them).
        self.limits.paused = msg.paused;
        self.limits.global_kill_switch = msg.global_kill_switch;
        let started = Instant::now();
        let now = Utc::now();
        if let DecisionSource::Builtin(policy) = &self.source {
            let answer = self.builtin_answer(*policy, &msg, now);
            return when_queued(self.conclude(&msg, answer, started, Duration::ZERO));
        }
        // Gates: no call while the budget is spent or the breaker is open.
        if let Err(reason) = self.budget.check(now).and_then(|_| self.breaker.allow(now)) {
            if self.holding.as_deref() != Some(reason.as_str()) {
                warn!(self.log, "not calling the model; holding"; "reason" => &reason);
            }
            self.holding = Some(reason.clone());
            let mut interaction =
                self.interaction(msg.cycle_id, now, json!({"skipped": "no call made"}));
            interaction.error = Some(reason.clone());
            let answer = Answer {
                parsed: self.all_hold(&reason),
                interaction,
            };
            return when_queued(self.conclude(&msg, answer, started, Duration::ZERO));
        }
        self.holding = None;
        let context = self.prompt_context(&msg, now);
        let DecisionSource::Model(engine) = &self.source else {
            return Box::pin(fut::ready(Vec::new()));
        };
        let rendered = match engine.templates.render(&context) {
            Ok(r) => r,
            Err(e) => {
                let reason = format!("prompt template failed: {e}");
                let mut interaction = self.interaction(msg.cycle_id, now, json!({}));
                interaction.error = Some(reason.clone());
                let answer = Answer {
                    parsed: self.all_hold(&reason),
                    interaction,
                };
                return when_queued(self.conclude(&msg, answer, started, Duration::ZERO));
            }
        };
        // The deadline: the account's timeout, and never past 30 s after the oldest
        // market data the decision rests on.
        let oldest = msg
            .snapshots
            .iter()
            .map(|s| s.timestamp)
            .min()
            .unwrap_or(now);
        let data_age = (now - oldest).to_std().unwrap_or_default();
        let left = DECISION_BUDGET.saturating_sub(data_age);
        let deadline = tokio::time::Instant::now() + engine.timeout.min(left);
        let messages = vec![
            ChatMessage::system(rendered.system),
            ChatMessage::user(rendered.user),
        ];
        let schema = (!engine.schema.is_null()).then(|| engine.schema.clone());
        let client = engine.client.clone();
        let version = rendered.version;
        let call = async move { client.chat(&messages, schema.as_ref(), deadline).await };
        Box::pin(call.into_actor(self).then(move |outcome, act, _| {
            let model_time = outcome.latency;
            let answer = act.model_answer(&msg, outcome, &version, now);
            when_queued(act.conclude(&msg, answer, started, model_time))
        }))
    }
}

impl Handler<GetDecisionStatus> for DecisionActor {
    type Result = MessageResult<GetDecisionStatus>;

    fn handle(&mut self, _: GetDecisionStatus, _: &mut Self::Context) -> Self::Result {
        let now = Utc::now();
        let _ = self.budget.check(now);
        MessageResult(DecisionStatus {
            source: self.cfg.llm_model.clone(),
            holding_reason: self.holding.clone(),
            breaker: self.breaker.state(now),
            model_calls: self.calls,
            failed_calls: self.failed_calls,
            cost_today_usd: self.budget.spent_usd,
            budget_usd_per_day: self.budget.limit_usd,
        })
    }
}
