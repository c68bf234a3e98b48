//! Logging: slog drains with secret masking and size rotation (the drains follow).

pub mod mask;
pub mod rotate;

pub use mask::SecretMask;
