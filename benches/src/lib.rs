//! Shared benchmark inputs.
