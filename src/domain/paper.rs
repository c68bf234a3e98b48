//! Paper futures account (to be written).
