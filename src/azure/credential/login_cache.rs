//! The login cache of interactive sign-ins: refresh tokens in `login.json` in the user cache
//! directory, readable and writable by the user only, kept only when asked; `logout` removes it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::azure::error::AzureError;

/// The file (in the cache directory) that keeps refresh tokens when asked to.
pub const LOGIN_CACHE_FILE: &str = "login.json";

/// One account kept in the login cache file.
#[derive(Serialize, Deserialize, Clone)]
pub(crate) struct CachedAccount {
    pub(crate) authority: String,
    pub(crate) tenant: String,
    pub(crate) client_id: String,
    pub(crate) refresh_token: String,
}

#[derive(Serialize, Deserialize, Default)]
pub(crate) struct CacheFile {
    pub(crate) accounts: Vec<CachedAccount>,
}

/// Returns the user's cache directory for amlsecrets: `$AMLSECRETS_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/amlsecrets`, else `~/.cache/amlsecrets`.
pub fn cache_dir() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("AMLSECRETS_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("amlsecrets")))
        .or_else(|| env("HOME").map(|h| h.join(".cache").join("amlsecrets")))
}

/// Returns the path of the login cache file.
pub fn login_cache_path() -> Option<PathBuf> {
    cache_dir().map(|d| d.join(LOGIN_CACHE_FILE))
}

fn cache_error(path: &Path, e: impl std::fmt::Display) -> AzureError {
    AzureError::InvalidCredential(format!("login cache {}: {e}", path.display()))
}

pub(crate) fn read_cache(path: &Path) -> Result<CacheFile, AzureError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|_| {
            cache_error(
                path,
                "not a login cache (remove it with `amlsecrets logout`)",
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(CacheFile::default()),
        Err(e) => Err(cache_error(path, e)),
    }
}

/// Writes the cache file readable and writable by the user only (0600, directory 0700).
pub(crate) fn write_cache(path: &Path, file: &CacheFile) -> Result<(), AzureError> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| cache_error(path, e))?;
    }
    let body = serde_json::to_vec(file).map_err(|e| cache_error(path, e))?;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| cache_error(path, e))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| cache_error(path, e))?;
    f.write_all(&body).map_err(|e| cache_error(path, e))?;
    f.sync_all().map_err(|e| cache_error(path, e))?;
    std::fs::rename(&tmp, path).map_err(|e| cache_error(path, e))
}

/// Removes the login cache file; tells whether there was one.
pub fn logout(path: &Path) -> std::io::Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_cache_file_is_private_and_logout_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(LOGIN_CACHE_FILE);
        let file = CacheFile {
            accounts: vec![CachedAccount {
                authority: "https://a".into(),
                tenant: "t".into(),
                client_id: "c".into(),
                refresh_token: "rt".into(),
            }],
        };
        write_cache(&path, &file).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        assert_eq!(read_cache(&path).unwrap().accounts.len(), 1);
        assert!(logout(&path).unwrap());
        assert!(!path.exists());
        assert!(!logout(&path).unwrap(), "a second logout finds nothing");
    }
}
