-- Why a position closed, so that /positions answers it without reading the logs:
-- a decision, its take-profit or stop-loss, a liquidation, a TP/SL level already crossed
-- when placed, close-all, or closed on the venue by something vibex cannot name.
ALTER TABLE positions
    ADD COLUMN close_reason TEXT CHECK (close_reason IN (
        'decision', 'take_profit', 'stop_loss', 'liquidation', 'level_crossed',
        'close_all', 'closed_on_venue'));
