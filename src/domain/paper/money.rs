//! Checked Decimal arithmetic and the book's one rounding rule.
//!
//! `Decimal`'s `+`, `-`, `*` and `/` panic on overflow. Every amount the book computes
//! from outside numbers (prices, quantities, fees, restored positions) goes through these
//! helpers instead, so an absurd input becomes [`PaperRejection::Overflow`], never a
//! panic.

use rust_decimal::{Decimal, RoundingStrategy};

use super::PaperRejection;
use crate::domain::types::Side;

/// Decimal places every booked amount (fill price, fee, realized PnL, margin, average
/// entry) is rounded to. Quantities are never rounded here.
pub const AMOUNT_DP: u32 = 8;

/// Rounds a booked amount to [`AMOUNT_DP`] places, half away from zero (the way one
/// rounds by hand), and drops trailing zeros so stored and serialized values are tidy.
pub fn round_amount(value: Decimal) -> Decimal {
    value
        .round_dp_with_strategy(AMOUNT_DP, RoundingStrategy::MidpointAwayFromZero)
        .normalize()
}

/// `a + b`, or an overflow rejection.
pub fn add(a: Decimal, b: Decimal) -> Result<Decimal, PaperRejection> {
    a.checked_add(b).ok_or(PaperRejection::Overflow)
}

/// `a - b`, or an overflow rejection.
pub fn sub(a: Decimal, b: Decimal) -> Result<Decimal, PaperRejection> {
    a.checked_sub(b).ok_or(PaperRejection::Overflow)
}

/// `a * b`, or an overflow rejection.
pub fn mul(a: Decimal, b: Decimal) -> Result<Decimal, PaperRejection> {
    a.checked_mul(b).ok_or(PaperRejection::Overflow)
}

/// `a / b`, or an overflow rejection (also for `b == 0`).
pub fn div(a: Decimal, b: Decimal) -> Result<Decimal, PaperRejection> {
    a.checked_div(b).ok_or(PaperRejection::Overflow)
}

/// Basis points as a fraction: `5` -> `0.0005`.
pub fn from_bps(bps: Decimal) -> Result<Decimal, PaperRejection> {
    div(bps, Decimal::from(10_000u32))
}

/// `price` (> 0) moved onto the multiples of `tick` (> 0) against the trader: up for a
/// BUY, down for a SELL; unchanged when already on the grid. Exact: it works with the
/// remainder, never with a quotient that could be rounded.
pub fn round_to_tick(price: Decimal, tick: Decimal, side: Side) -> Result<Decimal, PaperRejection> {
    let remainder = price.checked_rem(tick).ok_or(PaperRejection::Overflow)?;
    if remainder.is_zero() {
        return Ok(price);
    }
    let down = sub(price, remainder)?;
    match side {
        Side::Buy => add(down, tick),
        Side::Sell => Ok(down),
    }
}

/// Formats an amount for people: two decimals, thousands separators (`1,200.50`).
pub fn format_usdt(value: &Decimal) -> String {
    let rounded = value.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    let text = format!("{:.2}", rounded.abs());
    let (whole, fraction) = text.split_once('.').unwrap_or((text.as_str(), "00"));
    let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    let sign = if rounded.is_sign_negative() && !rounded.is_zero() {
        "-"
    } else {
        ""
    };
    format!("{sign}{grouped}.{fraction}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn amounts_round_half_away_from_zero_to_eight_places() {
        assert_eq!(round_amount(dec!(0.000000005)), dec!(0.00000001));
        assert_eq!(round_amount(dec!(-0.000000005)), dec!(-0.00000001));
        assert_eq!(round_amount(dec!(1.234567894)), dec!(1.23456789));
        assert_eq!(round_amount(dec!(60012.0000)).to_string(), "60012");
    }

    #[test]
    fn usdt_amounts_read_like_money() {
        assert_eq!(format_usdt(&dec!(1200.5)), "1,200.50");
        assert_eq!(format_usdt(&dec!(800)), "800.00");
        assert_eq!(format_usdt(&dec!(12032.406)), "12,032.41");
        assert_eq!(format_usdt(&dec!(-1234567.891)), "-1,234,567.89");
        assert_eq!(format_usdt(&dec!(-0.001)), "0.00");
        assert_eq!(format_usdt(&dec!(999.999)), "1,000.00");
    }

    #[test]
    fn prices_round_to_the_tick_against_the_trader() {
        // 100050.30015 on a 0.1 grid: a buyer pays 100050.4, a seller gets 100050.3.
        assert_eq!(
            round_to_tick(dec!(100050.30015), dec!(0.1), Side::Buy),
            Ok(dec!(100050.4))
        );
        assert_eq!(
            round_to_tick(dec!(100050.30015), dec!(0.1), Side::Sell),
            Ok(dec!(100050.3))
        );
        // On the grid already: unchanged either way (also for a tick that is not a
        // power of ten).
        assert_eq!(
            round_to_tick(dec!(3000.5), dec!(0.5), Side::Buy),
            Ok(dec!(3000.5))
        );
        assert_eq!(
            round_to_tick(dec!(3000.6), dec!(0.25), Side::Buy),
            Ok(dec!(3000.75))
        );
        assert_eq!(
            round_to_tick(dec!(3000.6), dec!(0.25), Side::Sell),
            Ok(dec!(3000.5))
        );
        assert_eq!(
            round_to_tick(Decimal::MAX, dec!(10), Side::Buy),
            Err(PaperRejection::Overflow)
        );
    }

    #[test]
    fn overflow_is_a_value() {
        assert_eq!(mul(Decimal::MAX, dec!(2)), Err(PaperRejection::Overflow));
        assert_eq!(
            add(Decimal::MAX, Decimal::MAX),
            Err(PaperRejection::Overflow)
        );
        assert_eq!(
            sub(Decimal::MIN, Decimal::MAX),
            Err(PaperRejection::Overflow)
        );
        assert_eq!(div(dec!(1), Decimal::ZERO), Err(PaperRejection::Overflow));
    }
}
