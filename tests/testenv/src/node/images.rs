//! The image archives the node imports (built by `scripts/build-image.sh`) and the names tests
//! use for them.

use std::path::PathBuf;

use super::{Error, err};

/// Returns where the image archives live: `$AMLSECRETS_CACHE/images` (default
/// `~/.cache/amlsecrets/images`), written by `scripts/build-image.sh`.
pub fn images_dir() -> PathBuf {
    let cache = std::env::var_os("AMLSECRETS_CACHE")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache")
                })
                .join("amlsecrets")
        });
    cache.join("images")
}

/// The operator image as the tests reference it (built by `scripts/build-image.sh`).
pub const OPERATOR_IMAGE: &str = "amlsecrets:e2e";
/// The consumer pods' image: busybox on an empty base.
pub const BUSYBOX_IMAGE: &str = "amlsecrets-e2e/busybox:local";

pub(super) fn default_images() -> Result<Vec<PathBuf>, Error> {
    let dir = images_dir();
    let images: Vec<PathBuf> = ["pause.tar", "busybox.tar", "amlsecrets.tar"]
        .iter()
        .map(|f| dir.join(f))
        .collect();
    let missing: Vec<String> = images
        .iter()
        .filter(|p| !p.is_file())
        .map(|p| p.display().to_string())
        .collect();
    if missing.is_empty() {
        Ok(images)
    } else {
        Err(err(format!(
            "missing image archives {}: run scripts/build-image.sh (scripts/test.sh does)",
            missing.join(", ")
        )))
    }
}
