//! Garbage collection: what no tag reaches goes, in every repository and in the shared
//! blobs. Live are the tagged manifests, the children of live indexes, the manifests whose
//! subject is live (referrers), and every config and layer of a live manifest.
//!
//! It runs at any time, on any replica, while the registry serves:
//! - Nothing written or used since `grace` before the collection started is removed:
//!   pushes are not atomic (blobs first, the manifest last), and a client told a blob
//!   exists (HEAD 200, a mount) may name it in a manifest later.
//! - The live set is computed first and goes stale while the sweep runs, so each object is
//!   deleted only through a claim handshake (`claim`): the collector dooms it, then looks
//!   for a claim that still counts (a client told it exists within the grace period, a
//!   manifest PUT naming it within the last minutes), and keeps it if there is one. Every
//!   request that relies on an object claims it first, so a manifest that got 201 names
//!   nothing the sweep removes, even one that arrived in the middle of it.
//! - Objects vanishing under it (a push finishing, another collector) are not errors.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant, SystemTime},
};

use futures::{StreamExt, TryStreamExt, stream};
use kiln_store::{
    Algorithm, Digest, Index, Manifest,
    spec::{self, DocumentKind},
};
use object_store::{ObjectMeta, ObjectStoreExt, PutPayload, path::Path};

use super::{
    RegistryStorage, Result, StorageError,
    claim::{ClaimKind, DOOM_WINDOW, WRITING_WINDOW, claim_marker, doom_marker},
    random_id,
};

/// Stores that keep whole-second times (S3) may round a use made just after the cutoff
/// down below it: count uses this much earlier as recent too.
const CLOCK_MARGIN: Duration = Duration::from_secs(1);
/// Claim markers this much older than what they protect are deleted.
const CLAIM_KEPT: Duration = Duration::from_secs(3600);
/// Objects deleted at once.
const PARALLEL: usize = 16;

#[derive(Debug, Default)]
pub struct GcReport {
    /// (repository, manifest) records removed: untagged and unreferenced.
    pub manifests: Vec<(String, Digest)>,
    /// Blobs removed, with their sizes.
    pub blobs: Vec<(Digest, u64)>,
    /// Staging objects, upload sessions and (local storage) partial files a crash left,
    /// older than the grace period.
    pub leftovers: usize,
    /// Candidates kept because a request claimed them while the collection ran.
    pub kept: usize,
}

impl GcReport {
    pub fn bytes(&self) -> u64 {
        self.blobs.iter().map(|(_, n)| n).sum()
    }
}

/// One collection: its times on the storage's clock, and whether it only reports.
struct Sweep<'a> {
    storage: &'a RegistryStorage,
    /// Objects written and `Told` claims made before this are old.
    cutoff: SystemTime,
    /// `Writing` claims made before this are over.
    writing_cutoff: SystemTime,
    dry_run: bool,
}

impl RegistryStorage {
    pub async fn gc(&self, dry_run: bool, grace: Duration) -> Result<GcReport> {
        // The collection's start on the storage's clock: the marker's own time.
        let run = Path::from(format!("gc/runs/{}", random_id()));
        self.store.put(&run, PutPayload::from_static(b"")).await?;
        let started: SystemTime = self.store.head(&run).await?.last_modified.into();
        // Local files keep exact times; object stores may keep whole seconds.
        let margin = if self.local_root.is_some() {
            Duration::ZERO
        } else {
            CLOCK_MARGIN
        };
        let sweep = Sweep {
            storage: self,
            cutoff: started - grace - margin,
            writing_cutoff: started - WRITING_WINDOW - margin,
            dry_run,
        };
        let report = sweep.run().await;
        let _ = self.store.delete(&run).await;
        report
    }

    async fn list_meta(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.list_under(&Path::from(prefix)).await
    }

    async fn delete_quietly(&self, path: &Path) -> Result<()> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// When `path` was last written, or `None` if it does not exist.
    async fn modified(&self, path: &Path) -> Result<Option<SystemTime>> {
        match self.store.head(path).await {
            Ok(meta) => Ok(Some(meta.last_modified.into())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// A manifest `repo` holds, or `None`; a failing backend is an error, never "absent",
    /// so a flaky read cannot make a live manifest look dead.
    async fn manifest_if_any(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<super::StoredManifest>> {
        match self.get_manifest(repo, reference).await {
            Ok(m) => Ok(Some(m)),
            Err(StorageError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl Sweep<'_> {
    fn old(&self, meta: &ObjectMeta) -> bool {
        SystemTime::from(meta.last_modified) < self.cutoff
    }

    async fn run(&self) -> Result<GcReport> {
        let storage = self.storage;
        let mut report = GcReport::default();
        let mut live_blobs = BTreeSet::new();
        for repo in storage.repositories().await? {
            let (dead, live) = self.mark(&repo).await?;
            live_blobs.extend(live);
            let deleted = stream::iter(dead)
                .map(|(digest, path)| async move {
                    Ok::<_, StorageError>((digest, self.collect(&path, &[]).await?))
                })
                .buffer_unordered(PARALLEL)
                .try_collect::<Vec<_>>()
                .await?;
            for (digest, gone) in deleted {
                if gone {
                    report.manifests.push((repo.clone(), digest));
                } else {
                    report.kept += 1;
                }
            }
        }

        // Each repository's links to a blob go with the blob, under the same doom.
        let mut links: BTreeMap<Digest, Vec<Path>> = BTreeMap::new();
        for meta in storage.list_meta("repositories").await? {
            if meta.location.as_ref().contains("/_layers/")
                && let Some(d) = digest_named(&meta.location)
            {
                links.entry(d).or_default().push(meta.location);
            }
        }
        let candidates: Vec<(Digest, ObjectMeta)> = storage
            .list_meta("blobs")
            .await?
            .into_iter()
            .filter(|m| self.old(m))
            .filter_map(|m| Some((digest_named(&m.location)?, m)))
            .filter(|(d, _)| !live_blobs.contains(d))
            .collect();
        let links = &links;
        let deleted = stream::iter(candidates)
            .map(|(digest, meta)| async move {
                let also = links.get(&digest).map_or(&[][..], Vec::as_slice);
                let gone = self.collect(&meta.location, also).await?;
                Ok::<_, StorageError>((digest, meta.size, gone))
            })
            .buffer_unordered(PARALLEL)
            .try_collect::<Vec<_>>()
            .await?;
        for (digest, size, gone) in deleted {
            if gone {
                report.blobs.push((digest, size));
            } else {
                report.kept += 1;
            }
        }
        report.leftovers = self.sweep_leftovers().await?;
        Ok(report)
    }

    /// The revisions of `repo` no tag reaches, and every blob its live manifests name.
    async fn mark(&self, repo: &str) -> Result<(Vec<(Digest, Path)>, BTreeSet<Digest>)> {
        let storage = self.storage;
        let revisions: BTreeMap<Digest, ObjectMeta> = storage
            .list_meta(&format!("repositories/{repo}/_manifests/revisions"))
            .await?
            .into_iter()
            .filter_map(|m| Some((digest_named(&m.location)?, m)))
            .collect();
        let mut queue: Vec<Digest> = Vec::new();
        for tag in storage.tags(repo).await? {
            if let Some(m) = storage.manifest_if_any(repo, &tag).await? {
                queue.push(m.digest);
            }
        }
        // Young revisions live too: their tag may be on its way.
        queue.extend(
            revisions
                .iter()
                .filter(|(_, m)| !self.old(m))
                .map(|(d, _)| d.clone()),
        );
        let mut live: BTreeSet<Digest> = BTreeSet::new();
        let mut live_blobs = BTreeSet::new();
        loop {
            while let Some(digest) = queue.pop() {
                if !live.insert(digest.clone()) {
                    continue;
                }
                live_blobs.insert(digest.clone());
                let Some(m) = storage.manifest_if_any(repo, &digest.to_string()).await? else {
                    continue;
                };
                let what = format!("manifest {digest}");
                match spec::document_kind(&m.bytes, Some(&m.media_type), &what) {
                    Ok(DocumentKind::Manifest) => {
                        if let Ok(doc) = spec::from_json::<Manifest>(&m.bytes, &what) {
                            live_blobs.insert(doc.config.digest);
                            live_blobs.extend(doc.layers.into_iter().map(|l| l.digest));
                        }
                    }
                    Ok(DocumentKind::Index) => {
                        if let Ok(doc) = spec::from_json::<Index>(&m.bytes, &what) {
                            queue.extend(doc.manifests.into_iter().map(|c| c.digest));
                        }
                    }
                    Err(_) => {}
                }
            }
            // Referrers of live subjects live; they may in turn be subjects.
            let mut found = false;
            for subject in live.clone() {
                for r in storage.referrers(repo, &subject).await? {
                    if !live.contains(&r.digest) {
                        queue.push(r.digest);
                        found = true;
                    }
                }
            }
            if !found {
                break;
            }
        }
        let dead = revisions
            .into_iter()
            .filter(|(d, _)| !live.contains(d))
            .map(|(d, m)| (d, m.location))
            .collect();
        Ok((dead, live_blobs))
    }

    /// Delete `object` (and `also`, its links) unless a request claims it: doom it, then
    /// keep it if it was used or rewritten at or after the cutoff. True if it is gone.
    async fn collect(&self, object: &Path, also: &[Path]) -> Result<bool> {
        let storage = self.storage;
        if self.dry_run {
            return Ok(true);
        }
        let doom = doom_marker(object);
        storage
            .store
            .put(&doom, PutPayload::from_static(b""))
            .await?;
        let doomed_at = Instant::now();
        let outcome: Result<bool> = async {
            let recent = |t: Option<SystemTime>| t.is_some_and(|t| t >= self.cutoff);
            let told = storage
                .modified(&claim_marker(object, ClaimKind::Told))
                .await?;
            let writing = storage
                .modified(&claim_marker(object, ClaimKind::Writing))
                .await?;
            if recent(told) || writing.is_some_and(|t| t >= self.writing_cutoff) {
                return Ok(false);
            }
            match storage.modified(object).await? {
                None => return Ok(false),
                t if recent(t) => return Ok(false),
                Some(_) => {}
            }
            if doomed_at.elapsed() > DOOM_WINDOW {
                return Ok(false);
            }
            storage.delete_quietly(object).await?;
            for link in also {
                storage.delete_quietly(link).await?;
            }
            Ok(true)
        }
        .await;
        // Always lift the doom, or requests for the object would wait for nothing.
        let lifted = storage.delete_quietly(&doom).await;
        let gone = outcome?;
        lifted?;
        Ok(gone)
    }

    /// Abandoned staging objects and uploads, the partial files of writes a crash cut
    /// short (local storage), and markers that no longer protect anything.
    async fn sweep_leftovers(&self) -> Result<usize> {
        let storage = self.storage;
        let mut swept = 0;
        for prefix in ["staging", "uploads"] {
            for meta in storage.list_meta(prefix).await? {
                if self.old(&meta) {
                    if !self.dry_run {
                        storage.delete_quietly(&meta.location).await?;
                    }
                    swept += 1;
                }
            }
        }
        if !self.dry_run {
            for (dir, over) in [
                ("gc/told", self.cutoff - CLAIM_KEPT),
                ("gc/writing", self.writing_cutoff - CLAIM_KEPT),
            ] {
                for meta in storage.list_meta(dir).await? {
                    if SystemTime::from(meta.last_modified) < over {
                        storage.delete_quietly(&meta.location).await?;
                    }
                }
            }
            // Dooms a dead collector left: requests already ignore them.
            let dead = SystemTime::now() - 2 * super::claim::DOOM_STALE;
            for meta in storage.list_meta("gc/doomed").await? {
                if SystemTime::from(meta.last_modified) < dead {
                    storage.delete_quietly(&meta.location).await?;
                }
            }
        }
        if let Some(root) = storage.local_root.clone() {
            let (cutoff, dry_run) = (self.cutoff, self.dry_run);
            swept += tokio::task::spawn_blocking(move || {
                super::local::sweep_partial_files(&root, cutoff, dry_run)
            })
            .await
            .map_err(|e| StorageError::Body(e.to_string()))?
            .map_err(|e| {
                StorageError::Backend(object_store::Error::Generic {
                    store: "LocalStore",
                    source: Box::new(e),
                })
            })?;
        }
        Ok(swept)
    }
}

/// The digest a blob, revision or link object is named after: its last path segment,
/// in the algorithm of the nearest segment before it that names one
/// (`blobs/<alg>/ab/<hex>`, `_layers/<alg>/<hex>`, `revisions/<alg>/<hex>`).
fn digest_named(path: &Path) -> Option<Digest> {
    let parts: Vec<_> = path.parts().collect();
    let (hex, dirs) = parts.split_last()?;
    let algorithm = dirs
        .iter()
        .rev()
        .find_map(|d| Algorithm::from_name(d.as_ref()))?;
    Digest::from_parts(algorithm.as_str(), hex.as_ref()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_named_after_digests_of_either_algorithm() {
        let sha256 = Digest::of(b"x");
        let sha512 = Digest::of_with(Algorithm::Sha512, b"x");
        for d in [&sha256, &sha512] {
            let (alg, hex) = (d.algorithm(), d.hex());
            for path in [
                format!("blobs/{alg}/{}/{hex}", &hex[..2]),
                format!("repositories/sha256/a/_layers/{alg}/{hex}"),
                format!("repositories/r/_manifests/revisions/{alg}/{hex}"),
            ] {
                assert_eq!(
                    digest_named(&Path::from(path.as_str())).as_ref(),
                    Some(d),
                    "{path}"
                );
            }
        }
        assert_eq!(digest_named(&Path::from("blobs/sha256/ab/not-hex")), None);
        assert_eq!(digest_named(&Path::from("staging/abc")), None);
    }
}
