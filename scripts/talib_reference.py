#!/usr/bin/env python3
"""Write the TA-Lib reference values the indicator tests compare against.

Reads tests/data/eurusd-1h.csv (5000 hourly EUR/USD bars, header
`,Open,High,Low,Close,Volume`), runs TA-Lib on every row with the parameters
vibex uses, and writes tests/data/talib_eurusd_1h.json: one array per
indicator, `null` where TA-Lib returns NaN (the warm-up). Floats are written
with Python's shortest round-trip repr, so the JSON holds TA-Lib's doubles
exactly.

Usage (from anywhere):  pip install ta-lib  &&  python3 scripts/talib_reference.py
The committed JSON was produced by the PyPI package `ta-lib` 0.8.2 (TA-Lib C
0.8.1); the version is recorded in the file.
"""

import csv
import json
import math
from pathlib import Path

import numpy as np
import talib

ROOT = Path(__file__).resolve().parent.parent
CSV_PATH = ROOT / "tests" / "data" / "eurusd-1h.csv"
JSON_PATH = ROOT / "tests" / "data" / "talib_eurusd_1h.json"


def load_hlc(path):
    """Return high, low, close as float64 arrays, columns found by name."""
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    header = [name.strip().lower() for name in rows[0]]
    cols = {name: header.index(name) for name in ("high", "low", "close")}
    body = rows[1:]
    return tuple(np.array([float(r[cols[name]]) for r in body], dtype=np.float64)
                 for name in ("high", "low", "close"))


def as_json_list(values):
    """NaN -> None (JSON null); everything else as a plain Python float."""
    return [None if math.isnan(v) else float(v) for v in values]


def main():
    high, low, close = load_hlc(CSV_PATH)
    macd, macd_signal, macd_hist = talib.MACD(close, fastperiod=12, slowperiod=26, signalperiod=9)
    bb_upper, bb_middle, bb_lower = talib.BBANDS(
        close, timeperiod=20, nbdevup=2.0, nbdevdn=2.0, matype=talib.MA_Type.SMA)
    series = {
        "ema20": talib.EMA(close, timeperiod=20),
        "ema50": talib.EMA(close, timeperiod=50),
        "macd": macd,
        "macd_signal": macd_signal,
        "macd_hist": macd_hist,
        "rsi7": talib.RSI(close, timeperiod=7),
        "rsi14": talib.RSI(close, timeperiod=14),
        "atr3": talib.ATR(high, low, close, timeperiod=3),
        "atr14": talib.ATR(high, low, close, timeperiod=14),
        "bb_upper": bb_upper,
        "bb_middle": bb_middle,
        "bb_lower": bb_lower,
    }
    ta_version = talib.__ta_version__
    if isinstance(ta_version, bytes):
        ta_version = ta_version.decode()
    out = {
        "source": "tests/data/eurusd-1h.csv",
        "talib_python": talib.__version__,
        "talib_c": ta_version.split(" ")[0],
        "rows": len(close),
    }
    out.update({name: as_json_list(values) for name, values in series.items()})
    with JSON_PATH.open("w") as f:
        json.dump(out, f, separators=(",", ":"), allow_nan=False)
        f.write("\n")
    print(f"wrote {JSON_PATH.relative_to(ROOT)} ({len(close)} rows)")


if __name__ == "__main__":
    main()
