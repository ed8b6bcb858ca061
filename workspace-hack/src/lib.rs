//! Nothing to use: this crate exists for its `Cargo.toml`, which turns on, for every build,
//! the features that some of the workspace's crates ask of shared dependencies.
