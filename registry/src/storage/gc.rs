//! Garbage collection: what no tag reaches goes, in every repository and in the shared
//! blobs. Live are the tagged manifests, the children of live indexes, the manifests whose
//! subject is live (referrers), and every config and layer of a live manifest.
//!
//! Pushes are not atomic (blobs first, the manifest last), so nothing younger than `grace`
//! is removed: a push in progress keeps its blobs. Distribution needs read-only mode for
//! its collector; a grace period lets kiln collect while it serves.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use kiln_store::{
    Digest, Index, Manifest,
    spec::{self, DocumentKind},
};
use object_store::{ObjectMeta, ObjectStoreExt, path::Path};

use super::{RegistryStorage, Result};

#[derive(Debug, Default)]
pub struct GcReport {
    /// (repository, manifest) records removed: untagged and unreferenced.
    pub manifests: Vec<(String, Digest)>,
    /// Blobs removed, with their sizes.
    pub blobs: Vec<(Digest, u64)>,
    /// Staging objects, upload sessions and (local storage) partial files a crash left,
    /// older than the grace period.
    pub leftovers: usize,
}

impl GcReport {
    pub fn bytes(&self) -> u64 {
        self.blobs.iter().map(|(_, n)| n).sum()
    }
}

impl RegistryStorage {
    pub async fn gc(&self, dry_run: bool, grace: Duration) -> Result<GcReport> {
        let cutoff = std::time::SystemTime::now() - grace;
        let old = |m: &ObjectMeta| system_time(m) < cutoff;
        let mut report = GcReport::default();
        let mut live_blobs = BTreeSet::new();

        for repo in self.repositories().await? {
            let revisions = self
                .list_meta(&format!("repositories/{repo}/_manifests/revisions"))
                .await?;
            let mut live: BTreeSet<Digest> = BTreeSet::new();
            let mut queue: Vec<Digest> = Vec::new();
            for tag in self.tags(&repo).await? {
                if let Ok(m) = self.get_manifest(&repo, &tag).await {
                    queue.push(m.digest);
                }
            }
            // Young revisions live too: their tag may be on its way.
            let revisions: BTreeMap<Digest, ObjectMeta> = revisions
                .into_iter()
                .filter_map(|m| Some((Digest::from_hex(m.location.filename()?).ok()?, m)))
                .collect();
            queue.extend(
                revisions
                    .iter()
                    .filter(|(_, m)| !old(m))
                    .map(|(d, _)| d.clone()),
            );
            loop {
                while let Some(digest) = queue.pop() {
                    if !live.insert(digest.clone()) {
                        continue;
                    }
                    live_blobs.insert(digest.clone());
                    let Ok(m) = self.get_manifest(&repo, &digest.to_string()).await else {
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
                    for r in self.referrers(&repo, &subject).await? {
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
            for (digest, meta) in &revisions {
                if !live.contains(digest) {
                    if !dry_run {
                        self.delete_quietly(&meta.location).await?;
                    }
                    report.manifests.push((repo.clone(), digest.clone()));
                }
            }
        }

        for meta in self.list_meta("blobs").await? {
            let Some(digest) = meta
                .location
                .filename()
                .and_then(|n| Digest::from_hex(n).ok())
            else {
                continue;
            };
            if live_blobs.contains(&digest) || !old(&meta) {
                continue;
            }
            if !dry_run {
                self.delete_quietly(&meta.location).await?;
            }
            report.blobs.push((digest, meta.size));
        }
        // Repository links to blobs that are gone, and abandoned staging and uploads.
        let gone: BTreeSet<&Digest> = report.blobs.iter().map(|(d, _)| d).collect();
        for meta in self.list_meta("repositories").await? {
            let path = meta.location.as_ref();
            let dangling = path.contains("/_layers/")
                && meta
                    .location
                    .filename()
                    .and_then(|n| Digest::from_hex(n).ok())
                    .is_some_and(|d| gone.contains(&d));
            if dangling && !dry_run {
                self.delete_quietly(&meta.location).await?;
            }
        }
        for prefix in ["staging", "uploads"] {
            for meta in self.list_meta(prefix).await? {
                if old(&meta) {
                    if !dry_run {
                        self.delete_quietly(&meta.location).await?;
                    }
                    report.leftovers += 1;
                }
            }
        }
        if let Some(root) = self.local_root.clone() {
            let swept = tokio::task::spawn_blocking(move || {
                super::local::sweep_partial_files(&root, cutoff, dry_run)
            })
            .await
            .map_err(|e| super::StorageError::Body(e.to_string()))?
            .map_err(|e| {
                super::StorageError::Backend(object_store::Error::Generic {
                    store: "LocalStore",
                    source: Box::new(e),
                })
            })?;
            report.leftovers += swept;
        }
        Ok(report)
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
}

fn system_time(meta: &ObjectMeta) -> std::time::SystemTime {
    meta.last_modified.into()
}
