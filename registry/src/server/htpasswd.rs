//! `Htpasswd`: users from an htpasswd file of bcrypt entries (as `htpasswd -B` writes them),
//! checked off the async workers so that slow hashes never stall other requests.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
    sync::{Arc, Mutex},
};

use sha2::{Digest as _, Sha256};
use tokio::sync::Semaphore;

#[derive(Debug, thiserror::Error)]
pub enum HtpasswdError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Entry {
        path: String,
        line: usize,
        reason: String,
    },
}

/// Who may push (and, unless anonymous reads are on, pull).
#[derive(Debug)]
pub struct Htpasswd {
    users: HashMap<String, String>,
    /// sha256 of "user:password:hash" for credentials already checked: bcrypt is slow by
    /// design and clients send Basic credentials with every request.
    verified: Mutex<HashSet<[u8; 32]>>,
    /// bcrypt runs on the blocking pool, a few at a time: a flood of wrong passwords then
    /// waits its turn instead of taking every core from the requests being served.
    checks: Arc<Semaphore>,
}

impl Htpasswd {
    pub fn load(path: &Path) -> Result<Htpasswd, HtpasswdError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| HtpasswdError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, &shown)
    }

    pub fn parse(text: &str, path: &str) -> Result<Htpasswd, HtpasswdError> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason: &str| HtpasswdError::Entry {
                path: path.to_string(),
                line: i + 1,
                reason: reason.to_string(),
            };
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| bad("expected user:hash"))?;
            if !hash.starts_with("$2") {
                return Err(bad("only bcrypt entries are supported (htpasswd -B)"));
            }
            users.insert(user.to_string(), hash.to_string());
        }
        // Half the cores at most: the other half keeps serving whatever the flood.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Htpasswd {
            users,
            verified: Mutex::new(HashSet::new()),
            checks: Arc::new(Semaphore::new((cores / 2).max(1))),
        })
    }

    fn key(user: &str, password: &str, hash: &str) -> [u8; 32] {
        Sha256::digest(format!("{user}:{password}:{hash}")).into()
    }

    fn remembered(&self, key: &[u8; 32]) -> bool {
        self.verified.lock().expect("never poisoned").contains(key)
    }

    /// Whether these credentials were already found right: a check that costs no bcrypt.
    pub fn known_good(&self, user: &str, password: &str) -> bool {
        self.users
            .get(user)
            .is_some_and(|hash| self.remembered(&Self::key(user, password, hash)))
    }

    /// Whether `password` is `user`'s. bcrypt runs on the blocking pool, a bounded number
    /// at a time; right answers are remembered so that the next request costs a hash lookup.
    pub async fn check(&self, user: &str, password: &str) -> bool {
        let Some(hash) = self.users.get(user) else {
            return false;
        };
        let key = Self::key(user, password, hash);
        if self.remembered(&key) {
            return true;
        }
        let Ok(_permit) = self.checks.acquire().await else {
            return false; // never closed
        };
        // A parallel request with the same credentials (skopeo sends several) may have
        // just verified them while this one waited.
        if self.remembered(&key) {
            return true;
        }
        let (password, hash) = (password.to_string(), hash.clone());
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .is_ok_and(|r| r.unwrap_or(false));
        if ok {
            self.verified.lock().expect("never poisoned").insert(key);
        }
        ok
    }
}
