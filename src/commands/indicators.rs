//! `vibex indicators --csv FILE`: read OHLCV bars from CSV, compute the snapshot
//! indicators over all rows, return them as one JSON object.
//!
//! Entry point: [`indicators_json`]; errors: [`IndicatorsCsvError`].
//!
//! Input rules:
//! - The first row is a header. Names are matched case-insensitively, ignoring
//!   surrounding spaces and a UTF-8 BOM, in any column order.
//! - `high`, `low` and `close` are required; `open` and `volume` (alias `vol`) are
//!   optional but must be numeric when present. Other columns are ignored.
//! - The timestamp column is optional and passed through as text. It is the column
//!   named `timestamp`, `time`, `date`, `datetime`, `ts` or `open_time`; failing
//!   that, a first column with an empty header (pandas' unnamed index, as in
//!   `,Open,High,Low,Close,Volume`). An extra leading index column next to a named
//!   timestamp column is ignored.
//! - Every numeric cell must parse as a finite `f64`; otherwise the error names the
//!   line (1-based, header = line 1) and the column.
//!
//! Output: `{"rows": N, "timestamps": [...], "ema20": [...], ...}` with the twelve
//! arrays of [`IndicatorSeries`], one element per row, `null` where TA-Lib gives
//! NaN. `timestamps` is present only when the input has a timestamp column.

use std::io::Read;

use serde_json::{Map, Number, Value};

use crate::domain::indicators::IndicatorSeries;

/// Why a CSV could not be turned into indicators.
#[derive(Debug, thiserror::Error)]
pub enum IndicatorsCsvError {
    /// The file is not well-formed CSV (ragged row, invalid UTF-8, I/O error); the
    /// message carries the line.
    #[error("malformed CSV: {0}")]
    Csv(#[from] csv::Error),
    /// A required column is absent from the header.
    #[error("missing column {column:?} (header has: {header})")]
    MissingColumn {
        /// The required column, lower-case.
        column: &'static str,
        /// The header as read, comma-separated.
        header: String,
    },
    /// Two header cells map to the same column.
    #[error("column {column:?} appears twice (columns {first} and {second})")]
    DuplicateColumn {
        /// The duplicated column, lower-case.
        column: &'static str,
        /// 1-based position of the first occurrence.
        first: usize,
        /// 1-based position of the second occurrence.
        second: usize,
    },
    /// A cell that must be a finite number is not.
    #[error("line {line}, column {column} ({name:?}): {value:?} is not a finite number")]
    BadNumber {
        /// 1-based line in the file (the header is line 1).
        line: u64,
        /// 1-based column position.
        column: usize,
        /// The column's header as written in the file.
        name: String,
        /// The offending cell.
        value: String,
    },
}

/// The columns this command knows about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Timestamp,
    Open,
    High,
    Low,
    Close,
    Volume,
}

impl Field {
    fn from_header(name: &str) -> Option<Self> {
        match normalise(name).as_str() {
            "timestamp" | "time" | "date" | "datetime" | "ts" | "open_time" => {
                Some(Self::Timestamp)
            }
            "open" => Some(Self::Open),
            "high" => Some(Self::High),
            "low" => Some(Self::Low),
            "close" => Some(Self::Close),
            "volume" | "vol" => Some(Self::Volume),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Timestamp => "timestamp",
            Self::Open => "open",
            Self::High => "high",
            Self::Low => "low",
            Self::Close => "close",
            Self::Volume => "volume",
        }
    }
}

/// Header cell as compared: BOM and spaces stripped, lower-case.
fn normalise(name: &str) -> String {
    name.trim_start_matches('\u{feff}')
        .trim()
        .to_ascii_lowercase()
}

/// Where each known column sits (0-based), from the header row.
#[derive(Debug, Default)]
struct Columns {
    timestamp: Option<usize>,
    open: Option<usize>,
    high: Option<usize>,
    low: Option<usize>,
    close: Option<usize>,
    volume: Option<usize>,
}

impl Columns {
    fn slot(&mut self, field: Field) -> &mut Option<usize> {
        match field {
            Field::Timestamp => &mut self.timestamp,
            Field::Open => &mut self.open,
            Field::High => &mut self.high,
            Field::Low => &mut self.low,
            Field::Close => &mut self.close,
            Field::Volume => &mut self.volume,
        }
    }

    fn from_header(header: &csv::StringRecord) -> Result<Self, IndicatorsCsvError> {
        let mut columns = Self::default();
        for (index, name) in header.iter().enumerate() {
            let Some(field) = Field::from_header(name) else {
                continue;
            };
            let slot = columns.slot(field);
            if let Some(first) = *slot {
                return Err(IndicatorsCsvError::DuplicateColumn {
                    column: field.name(),
                    first: first + 1,
                    second: index + 1,
                });
            }
            *slot = Some(index);
        }
        if columns.timestamp.is_none() && header.get(0).is_some_and(|h| normalise(h).is_empty()) {
            columns.timestamp = Some(0);
        }
        Ok(columns)
    }

    fn required(
        slot: Option<usize>,
        field: Field,
        header: &csv::StringRecord,
    ) -> Result<usize, IndicatorsCsvError> {
        slot.ok_or_else(|| IndicatorsCsvError::MissingColumn {
            column: field.name(),
            header: header.iter().collect::<Vec<_>>().join(","),
        })
    }
}

/// Parse one numeric cell, naming line and column on failure.
fn number(
    record: &csv::StringRecord,
    header: &csv::StringRecord,
    column: usize,
    line: u64,
) -> Result<f64, IndicatorsCsvError> {
    let cell = record.get(column).unwrap_or("");
    match cell.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(IndicatorsCsvError::BadNumber {
            line,
            column: column + 1,
            name: header.get(column).unwrap_or("").to_string(),
            value: cell.to_string(),
        }),
    }
}

/// Bars read from the CSV, as parallel columns.
#[derive(Debug, Default)]
struct CsvBars {
    timestamps: Option<Vec<String>>,
    high: Vec<f64>,
    low: Vec<f64>,
    close: Vec<f64>,
}

/// Read and validate every row; see the module docs for the rules.
fn read_bars(reader: impl Read) -> Result<CsvBars, IndicatorsCsvError> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(reader);
    let header = csv.headers()?.clone();
    let columns = Columns::from_header(&header)?;
    let high_col = Columns::required(columns.high, Field::High, &header)?;
    let low_col = Columns::required(columns.low, Field::Low, &header)?;
    let close_col = Columns::required(columns.close, Field::Close, &header)?;
    let checked_only: Vec<usize> = [columns.open, columns.volume]
        .into_iter()
        .flatten()
        .collect();

    let mut bars = CsvBars {
        timestamps: columns.timestamp.map(|_| Vec::new()),
        ..CsvBars::default()
    };
    for (row, record) in csv.records().enumerate() {
        let record = record?;
        // Header is line 1; without position info, assume one line per record.
        let line = record.position().map_or(row as u64 + 2, |p| p.line());
        bars.high.push(number(&record, &header, high_col, line)?);
        bars.low.push(number(&record, &header, low_col, line)?);
        bars.close.push(number(&record, &header, close_col, line)?);
        for &column in &checked_only {
            number(&record, &header, column, line)?;
        }
        if let (Some(timestamps), Some(column)) = (bars.timestamps.as_mut(), columns.timestamp) {
            timestamps.push(record.get(column).unwrap_or("").to_string());
        }
    }
    Ok(bars)
}

/// JSON array of an indicator series: numbers, `null` for `None`.
fn json_series(values: &[Option<f64>]) -> Value {
    Value::Array(
        values
            .iter()
            .map(|v| {
                v.and_then(Number::from_f64)
                    .map_or(Value::Null, Value::Number)
            })
            .collect(),
    )
}

/// Read OHLCV bars from CSV and return every snapshot indicator over all rows as
/// one JSON object (see the module docs for the input rules and output shape).
pub fn indicators_json(reader: impl Read) -> Result<Value, IndicatorsCsvError> {
    let bars = read_bars(reader)?;
    let series = IndicatorSeries::compute(&bars.high, &bars.low, &bars.close);
    let mut object = Map::new();
    object.insert("rows".to_string(), Value::from(bars.close.len()));
    if let Some(timestamps) = bars.timestamps {
        object.insert("timestamps".to_string(), Value::from(timestamps));
    }
    for (name, values) in series.named() {
        object.insert(name.to_string(), json_series(values));
    }
    Ok(Value::Object(object))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EURUSD_CSV: &str = include_str!("../../tests/data/eurusd-1h.csv");
    const REFERENCE_JSON: &str = include_str!("../../tests/data/talib_eurusd_1h.json");

    const NAMES: [&str; 12] = crate::domain::indicators::IndicatorSeries::NAMES;

    fn run(csv: &str) -> Result<Value, IndicatorsCsvError> {
        indicators_json(csv.as_bytes())
    }

    #[test]
    fn eurusd_file_end_to_end_equals_the_talib_reference() {
        let out = run(EURUSD_CSV).unwrap();
        let reference: Value = serde_json::from_str(REFERENCE_JSON).unwrap();
        assert_eq!(out["rows"], 5000);
        assert_eq!(out["timestamps"][0], "2017-04-19 09:00:00");
        assert_eq!(out["timestamps"].as_array().unwrap().len(), 5000);
        for name in NAMES {
            let ours = out[name].as_array().unwrap();
            let talib = reference[name].as_array().unwrap();
            assert_eq!(ours.len(), talib.len(), "{name}");
            for (i, (a, e)) in ours.iter().zip(talib).enumerate() {
                match (a.as_f64(), e.as_f64()) {
                    (Some(a), Some(e)) => assert!((a - e).abs() <= 1e-9, "{name}[{i}]: {a} vs {e}"),
                    _ => assert!(a.is_null() && e.is_null(), "{name}[{i}]: {a} vs {e}"),
                }
            }
        }
    }

    #[test]
    fn headers_are_case_insensitive_in_any_order_with_aliases_and_an_index_column() {
        let canonical = "timestamp,open,high,low,close,volume\n\
                         t0,1.0,1.2,0.9,1.1,10\n\
                         t1,1.1,1.3,1.0,1.2,11\n\
                         t2,1.2,1.25,1.1,1.15,12\n";
        let shuffled = "idx, CLOSE ,Low,hIgH,Date,Open,VOL\n\
                        0,1.1,0.9,1.2,t0,1.0,10\n\
                        1,1.2,1.0,1.3,t1,1.1,11\n\
                        2,1.15,1.1,1.25,t2,1.2,12\n";
        let unnamed_index = ",Open,High,Low,Close,Volume\n\
                             t0,1.0,1.2,0.9,1.1,10\n\
                             t1,1.1,1.3,1.0,1.2,11\n\
                             t2,1.2,1.25,1.1,1.15,12\n";
        let expected = run(canonical).unwrap();
        assert_eq!(expected["rows"], 3);
        assert_eq!(
            expected["timestamps"],
            serde_json::json!(["t0", "t1", "t2"])
        );
        assert_eq!(run(shuffled).unwrap(), expected);
        assert_eq!(run(unnamed_index).unwrap(), expected);
        let bom = format!("\u{feff}{canonical}");
        assert_eq!(run(&bom).unwrap(), expected);
    }

    #[test]
    fn a_bad_cell_names_its_line_and_column() {
        let csv = "timestamp,open,high,low,Close,volume\n\
                   t0,1.0,1.2,0.9,1.1,10\n\
                   t1,1.1,1.3,1.0,abc,11\n";
        let err = run(csv).unwrap_err();
        assert!(
            matches!(&err, IndicatorsCsvError::BadNumber { line: 3, column: 5, name, value }
                if name == "Close" && value == "abc"),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains("line 3") && message.contains("Close"),
            "{message}"
        );

        let empty_volume = "timestamp,open,high,low,close,volume\nt0,1,2,0.5,1.5,\n";
        assert!(matches!(
            run(empty_volume).unwrap_err(),
            IndicatorsCsvError::BadNumber {
                line: 2,
                column: 6,
                ..
            }
        ));
        for bad in ["NaN", "inf", "-infinity"] {
            let csv = format!("high,low,close\n1,0.5,0.7\n2,{bad},1\n");
            assert!(
                matches!(
                    run(&csv).unwrap_err(),
                    IndicatorsCsvError::BadNumber {
                        line: 3,
                        column: 2,
                        ..
                    }
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn missing_duplicate_and_ragged_input_are_errors() {
        let err = run("timestamp,open,high,close,volume\nt0,1,2,1.5,3\n").unwrap_err();
        assert!(
            matches!(err, IndicatorsCsvError::MissingColumn { column: "low", .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("low"));

        let err = run("high,low,close,Close\n1,0.5,0.7,0.7\n").unwrap_err();
        assert!(matches!(
            err,
            IndicatorsCsvError::DuplicateColumn {
                column: "close",
                first: 3,
                second: 4
            }
        ));

        let err = run("high,low,close\n1,0.5,0.7\n1,0.5\n").unwrap_err();
        assert!(matches!(err, IndicatorsCsvError::Csv(_)));
        assert!(err.to_string().contains("line: 3"), "{err}");

        assert!(matches!(
            run("").unwrap_err(),
            IndicatorsCsvError::MissingColumn { .. }
        ));
    }

    #[test]
    fn header_only_and_short_files_give_empty_or_null_arrays() {
        let out = run("high,low,close\n").unwrap();
        assert_eq!(out["rows"], 0);
        assert!(out.get("timestamps").is_none());
        assert!(NAMES.iter().all(|n| out[n] == serde_json::json!([])));

        let out = run("high,low,close\n1,0.5,0.7\n1.1,0.6,0.8\n").unwrap();
        assert!(NAMES
            .iter()
            .all(|n| out[n] == serde_json::json!([null, null])));
    }
}
