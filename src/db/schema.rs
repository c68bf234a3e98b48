//! diesel table definitions; kept identical to `migrations/` (a test loads every table).

diesel::table! {
    accounts (id) {
        id -> Text,
        mode -> Text,
        venue_base_url -> Text,
        llm_model -> Text,
        assets -> Array<Text>,
        interval_label -> Text,
        leverage -> Int4,
        status -> Text,
        paper_starting_balance -> Numeric,
        paper_wallet_balance -> Numeric,
        config -> Jsonb,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    candles (venue, symbol, kline_interval, open_time) {
        venue -> Text,
        symbol -> Text,
        kline_interval -> Text,
        open_time -> Timestamptz,
        open -> Numeric,
        high -> Numeric,
        low -> Numeric,
        close -> Numeric,
        volume -> Numeric,
        close_time -> Timestamptz,
    }
}

diesel::table! {
    market_snapshots (id, ts) {
        id -> Uuid,
        ts -> Timestamptz,
        venue -> Text,
        symbol -> Text,
        last_price -> Numeric,
        mark_price -> Numeric,
        funding_rate -> Numeric,
        open_interest -> Numeric,
        data -> Jsonb,
    }
}

diesel::table! {
    llm_interactions (id, ts) {
        id -> Uuid,
        ts -> Timestamptz,
        account_id -> Text,
        cycle_id -> Uuid,
        model -> Text,
        request -> Jsonb,
        response_body -> Nullable<Text>,
        parsed -> Nullable<Jsonb>,
        outcome -> Nullable<Jsonb>,
        prompt_tokens -> Nullable<Int4>,
        completion_tokens -> Nullable<Int4>,
        cost_usd -> Nullable<Numeric>,
        latency_ms -> Nullable<Int4>,
        http_status -> Nullable<Int4>,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    decisions (id, ts) {
        id -> Uuid,
        ts -> Timestamptz,
        account_id -> Text,
        cycle_id -> Uuid,
        asset -> Text,
        symbol -> Text,
        action -> Text,
        allocation_usd -> Numeric,
        tp_price -> Nullable<Numeric>,
        sl_price -> Nullable<Numeric>,
        exit_plan -> Text,
        rationale -> Text,
        source -> Text,
        outcome -> Text,
        refusal_reason -> Nullable<Text>,
        risk_note -> Nullable<Text>,
        snapshot_id -> Nullable<Uuid>,
        llm_interaction_id -> Nullable<Uuid>,
    }
}

diesel::table! {
    orders (id) {
        id -> Uuid,
        account_id -> Text,
        cycle_id -> Nullable<Uuid>,
        decision_id -> Nullable<Uuid>,
        client_order_id -> Text,
        venue_order_id -> Nullable<Text>,
        symbol -> Text,
        side -> Text,
        order_type -> Text,
        quantity -> Nullable<Numeric>,
        price -> Nullable<Numeric>,
        stop_price -> Nullable<Numeric>,
        reduce_only -> Bool,
        close_position -> Bool,
        status -> Text,
        filled_quantity -> Numeric,
        avg_fill_price -> Nullable<Numeric>,
        reject_reason -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    order_events (id, ts) {
        id -> Int8,
        ts -> Timestamptz,
        order_id -> Uuid,
        account_id -> Text,
        cycle_id -> Nullable<Uuid>,
        status -> Text,
        detail -> Jsonb,
    }
}

diesel::table! {
    fills (id, ts) {
        id -> Uuid,
        ts -> Timestamptz,
        account_id -> Text,
        cycle_id -> Nullable<Uuid>,
        order_id -> Nullable<Uuid>,
        client_order_id -> Text,
        symbol -> Text,
        side -> Text,
        quantity -> Numeric,
        price -> Numeric,
        fee -> Numeric,
        realized_pnl -> Numeric,
        reason -> Text,
        venue_trade_id -> Nullable<Text>,
    }
}

diesel::table! {
    positions (id) {
        id -> Uuid,
        account_id -> Text,
        symbol -> Text,
        side -> Text,
        quantity -> Numeric,
        entry_price -> Numeric,
        leverage -> Int4,
        margin -> Numeric,
        tp_price -> Nullable<Numeric>,
        sl_price -> Nullable<Numeric>,
        exit_plan -> Text,
        mark_price -> Nullable<Numeric>,
        unrealized_pnl -> Numeric,
        realized_pnl -> Numeric,
        status -> Text,
        opened_at -> Timestamptz,
        closed_at -> Nullable<Timestamptz>,
        opened_cycle_id -> Nullable<Uuid>,
        updated_at -> Timestamptz,
        liquidation_price -> Nullable<Numeric>,
        origin -> Text,
        close_reason -> Nullable<Text>,
    }
}

diesel::table! {
    equity_snapshots (account_id, ts) {
        ts -> Timestamptz,
        account_id -> Text,
        cycle_id -> Nullable<Uuid>,
        wallet_balance -> Numeric,
        unrealized_pnl -> Numeric,
        equity -> Numeric,
        used_margin -> Numeric,
        available -> Numeric,
        /// When the row reached PostgreSQL (set by the database, never inserted).
        recorded_at -> Timestamptz,
    }
}

diesel::table! {
    diary_entries (id, ts) {
        id -> Uuid,
        ts -> Timestamptz,
        account_id -> Text,
        cycle_id -> Nullable<Uuid>,
        asset -> Text,
        action -> Text,
        allocation_usd -> Nullable<Numeric>,
        amount -> Nullable<Numeric>,
        entry_price -> Nullable<Numeric>,
        tp_price -> Nullable<Numeric>,
        tp_oid -> Nullable<Text>,
        sl_price -> Nullable<Numeric>,
        sl_oid -> Nullable<Text>,
        exit_plan -> Nullable<Text>,
        rationale -> Nullable<Text>,
        order_result -> Nullable<Jsonb>,
        opened_at -> Nullable<Timestamptz>,
        filled -> Bool,
    }
}

diesel::table! {
    reconciliation_events (id, ts) {
        id -> Uuid,
        ts -> Timestamptz,
        account_id -> Text,
        cycle_id -> Nullable<Uuid>,
        kind -> Text,
        symbol -> Nullable<Text>,
        detail -> Jsonb,
    }
}

diesel::table! {
    income_events (id, ts) {
        id -> Uuid,
        ts -> Timestamptz,
        account_id -> Text,
        cycle_id -> Nullable<Uuid>,
        symbol -> Nullable<Text>,
        kind -> Text,
        amount -> Numeric,
        asset -> Text,
        venue_tran_id -> Nullable<Text>,
        detail -> Jsonb,
    }
}

diesel::table! {
    /// The last batch each writer committed (exactly-once, see `src/store/`).
    store_marker (writer_id) {
        writer_id -> Text,
        batch_id -> Int8,
        writes -> Int4,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    /// The operator's wish per account (active, paused, stopped) and API-added definitions.
    account_controls (account_id) {
        account_id -> Text,
        state -> Text,
        origin -> Text,
        definition -> Nullable<Jsonb>,
        updated_by -> Text,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    /// Process-wide switches (the kill switch).
    control_flags (name) {
        name -> Text,
        enabled -> Bool,
        detail -> Jsonb,
        updated_by -> Text,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    /// The audit trail of control requests.
    control_actions (id) {
        id -> Uuid,
        ts -> Timestamptz,
        key_name -> Text,
        client_ip -> Nullable<Text>,
        action -> Text,
        target -> Nullable<Text>,
        body -> Nullable<Jsonb>,
        status -> Int4,
        result -> Jsonb,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    accounts,
    candles,
    market_snapshots,
    llm_interactions,
    decisions,
    orders,
    order_events,
    fills,
    positions,
    equity_snapshots,
    diary_entries,
    reconciliation_events,
    income_events,
    store_marker,
    account_controls,
    control_flags,
    control_actions,
);
