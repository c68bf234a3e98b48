//! TA-Lib-compatible indicators (to be written).
