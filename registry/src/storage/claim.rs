//! Claims: how a request that relies on an object (a blob it tells a client exists, a blob
//! or manifest a new manifest names) and a garbage collector deleting that object agree,
//! on any number of replicas, without locks or conditional writes (Garage ignores them).
//!
//! Both sides write a marker first and read the other side's marker second (Dekker's
//! handshake). A request writes `gc/uses/<object>` and then looks for
//! `gc/doomed/<object>`; the collector writes `gc/doomed/<object>` and then reads
//! `gc/uses/<object>`. On storage that reads its own writes (local disks, S3, Garage in
//! consistent mode) at least one of the two sees the other:
//! - the request sees the doom and does not rely on the object: a HEAD answers 404, a
//!   mount becomes an upload, a PUT waits until the collector is done with the object and
//!   then looks again (it is either there and claimed, or gone and reported missing);
//! - or the collector sees a use at or after its cutoff and keeps the object.
//!
//! Two kinds of claim, kept for different times:
//! - `Told`: a client was told the object exists (a HEAD 200, a mount). It may name the
//!   object in a manifest much later, so the claim counts for the collection's grace
//!   period (`--grace`), as the user chose it.
//! - `Writing`: a manifest PUT in progress names the object and goes on to write the
//!   records that make it reachable. A collection that started before those records
//!   landed has a stale live set, so this claim counts for [`WRITING_WINDOW`] before the
//!   collection's start whatever the grace, and a PUT that held its claims longer than
//!   [`WRITING_HOLD`] gives up instead of writing.
//!
//! Markers are compared on the storage's own clock (their times against the time the
//! collector's own marker got from the same storage): no two machines' clocks meet.

use std::time::{Duration, SystemTime};

use object_store::{ObjectStoreExt, PutPayload, path::Path};

use super::{RegistryStorage, Result, StorageError};

/// A doom marker older than this belongs to a collector that died: requests ignore it.
/// Collectors never keep a marker this long ([`DOOM_WINDOW`] is far shorter).
pub(super) const DOOM_STALE: Duration = Duration::from_secs(300);
/// How long a collector may take between dooming an object and deleting it; past this it
/// keeps the object (a slow storage must not let a doom outlive [`DOOM_STALE`]).
pub(super) const DOOM_WINDOW: Duration = Duration::from_secs(60);
/// A `Writing` claim keeps its object from every collection that starts within this
/// long after it.
pub(super) const WRITING_WINDOW: Duration = Duration::from_secs(60);
/// How long a manifest PUT may hold `Writing` claims before it writes; far below
/// [`WRITING_WINDOW`], so every collection its claims do not stop sees its records.
pub const WRITING_HOLD: Duration = Duration::from_secs(20);
/// How long a request waits for a collector to finish with an object it needs.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
const SETTLE_POLL: Duration = Duration::from_millis(20);

/// Why a request claims an object; see the module's documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimKind {
    Told,
    Writing,
}

/// What a request learnt by claiming an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The use is recorded and no collector is deleting the object: any collector from
    /// now on keeps it.
    Held,
    /// A collector is deleting the object right now: do not tell anyone it exists.
    Collecting,
}

pub(super) fn claim_marker(object: &Path, kind: ClaimKind) -> Path {
    match kind {
        ClaimKind::Told => Path::from(format!("gc/told/{object}")),
        ClaimKind::Writing => Path::from(format!("gc/writing/{object}")),
    }
}

pub(super) fn doom_marker(object: &Path) -> Path {
    Path::from(format!("gc/doomed/{object}"))
}

impl RegistryStorage {
    /// Record a claim on `object`, then report whether a collector is deleting it.
    pub(crate) async fn claim(&self, object: &Path, kind: ClaimKind) -> Result<Claim> {
        self.store
            .put(&claim_marker(object, kind), PutPayload::from_static(b""))
            .await?;
        match self.store.head(&doom_marker(object)).await {
            Ok(meta) => {
                let age = SystemTime::now()
                    .duration_since(meta.last_modified.into())
                    .unwrap_or_default();
                Ok(if age > DOOM_STALE {
                    Claim::Held
                } else {
                    Claim::Collecting
                })
            }
            Err(object_store::Error::NotFound { .. }) => Ok(Claim::Held),
            Err(e) => Err(e.into()),
        }
    }

    /// Claim `object`, waiting while a collector deletes it. Afterwards the object is
    /// either there and safe from every collector, or gone: the caller checks which.
    pub(crate) async fn claim_settled(&self, object: &Path, kind: ClaimKind) -> Result<()> {
        let started = std::time::Instant::now();
        loop {
            if self.claim(object, kind).await? == Claim::Held {
                return Ok(());
            }
            if started.elapsed() > SETTLE_TIMEOUT {
                return Err(StorageError::Busy(format!(
                    "garbage collection held {object} for over {}s",
                    SETTLE_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(SETTLE_POLL).await;
        }
    }

    /// Claim a blob a client is told exists (see [`RegistryStorage::claim`]).
    pub async fn claim_blob(&self, digest: &kiln_store::Digest) -> Result<Claim> {
        self.claim(&Self::blob_path(digest), ClaimKind::Told).await
    }
}
