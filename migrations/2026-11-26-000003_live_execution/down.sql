DROP TABLE income_events;
DROP INDEX fills_account_venue_trade;
ALTER TABLE fills DROP COLUMN venue_trade_id;
ALTER TABLE positions
    DROP COLUMN origin,
    DROP COLUMN liquidation_price;
