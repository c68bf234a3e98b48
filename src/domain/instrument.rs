//! Symbol trading rules (to be written).
