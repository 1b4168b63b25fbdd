//! Where things are: the repository and the native foundry binaries.

use std::path::{Path, PathBuf};

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    p.canonicalize().unwrap_or(p)
}

/// The native binary of foundry's `tool` (`anvil`, `forge`, `cast`) installed by `npm ci`.
/// Never the npm wrapper in `node_modules/.bin`, which always exits 0 and, killed, leaves the
/// real process running.
pub fn foundry_bin(tool: &str) -> PathBuf {
    let p = repo_root().join(format!(
        "node_modules/@foundry-rs/{tool}-linux-amd64/bin/{tool}"
    ));
    assert!(
        p.exists(),
        "{} missing: run `make install` (npm ci) first",
        p.display()
    );
    p
}
