//! What this binary is: its version and the git commit it was built from (`build.rs`).

/// The package version, as in `Cargo.toml`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit the binary was built from (12 hex digits), or "unknown".
pub const COMMIT: &str = env!("SPATE_GIT_COMMIT");

/// `0.1.0 (commit 0123456789ab)`: what `spate --version` prints after the name.
pub const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("SPATE_GIT_COMMIT"),
    ")"
);
