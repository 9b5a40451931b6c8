//! Where the harness keeps things between runs: encoded test clips, the
//! outcome of this boot's KVM proof. `/var/cache/lmig`, or `$LMIG_CACHE`.

use std::path::PathBuf;

/// The cache folder (not created here).
pub fn dir() -> PathBuf {
    std::env::var_os("LMIG_CACHE").map_or_else(|| PathBuf::from("/var/cache/lmig"), PathBuf::from)
}
