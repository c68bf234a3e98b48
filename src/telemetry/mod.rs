//! Logging: slog drains with secret masking (the drains themselves follow).

pub mod mask;

pub use mask::SecretMask;
