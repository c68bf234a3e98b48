//! AsterDEX REST client (to be written).
