//! `Access`: which repositories the caller of a request may read, and the checks that
//! depend on it. The auth layer has one level today: whoever gets past it (anyone without
//! `--htpasswd`) may read every repository, so [`Access::default`] reads everything. A
//! per-repository policy constructs `Access::only` for its caller and inserts it into the
//! request's extensions; the checks here then hold without further change.

use std::collections::BTreeSet;

use kiln_store::Digest;

use crate::storage::{RegistryStorage, Result};

#[derive(Clone, Debug, Default)]
pub struct Access {
    /// `None`: every repository.
    readable: Option<BTreeSet<String>>,
}

impl Access {
    /// Read access to these repositories only.
    pub fn only<I: IntoIterator<Item = S>, S: Into<String>>(repositories: I) -> Access {
        Access {
            readable: Some(repositories.into_iter().map(Into::into).collect()),
        }
    }

    /// The caller's access, as the auth layer left it on the request.
    pub fn of(request: &axum::extract::Request) -> Access {
        request
            .extensions()
            .get::<Access>()
            .cloned()
            .unwrap_or_default()
    }

    pub fn may_read(&self, repository: &str) -> bool {
        self.readable
            .as_ref()
            .is_none_or(|set| set.contains(repository))
    }
}

/// May the caller mount `digest` into another repository without naming where it comes
/// from (`POST …/blobs/uploads/?mount=<digest>` without `from`)? The spec allows such
/// "automatic content discovery", but a mount must not hand out a blob the caller could
/// not read: it needs read access to at least one repository that holds the blob. With
/// access to everything that is any blob the registry has, and no search is made.
pub async fn may_mount_unnamed(
    storage: &RegistryStorage,
    access: &Access,
    digest: &Digest,
) -> Result<bool> {
    if access.readable.is_none() {
        return Ok(true);
    }
    Ok(storage
        .repositories_holding(digest)
        .await?
        .iter()
        .any(|repo| access.may_read(repo)))
}

#[cfg(test)]
mod tests {
    use futures::stream;

    use super::*;

    #[tokio::test]
    async fn an_unnamed_mount_needs_a_readable_repository_holding_the_blob() {
        let dir = tempfile::tempdir().unwrap();
        let storage = RegistryStorage::local(dir.path()).unwrap();
        let digest = Digest::of(b"layer");
        let body = stream::iter([Ok::<_, String>(bytes::Bytes::from_static(b"layer"))]);
        storage.put_blob(&digest, body).await.unwrap();
        storage.link_blob("team/private", &digest).await.unwrap();

        // Today's access: every repository, so any blob the registry holds.
        assert!(
            may_mount_unnamed(&storage, &Access::default(), &digest)
                .await
                .unwrap()
        );
        assert!(Access::default().may_read("anything"));

        let outsider = Access::only(["team/public"]);
        assert!(
            !may_mount_unnamed(&storage, &outsider, &digest)
                .await
                .unwrap()
        );
        // Nested names are other repositories: `team` does not read `team/private`.
        assert!(
            !may_mount_unnamed(&storage, &Access::only(["team"]), &digest)
                .await
                .unwrap()
        );
        let member = Access::only(["team/public", "team/private"]);
        assert!(may_mount_unnamed(&storage, &member, &digest).await.unwrap());

        storage.link_blob("team/public", &digest).await.unwrap();
        assert!(
            may_mount_unnamed(&storage, &outsider, &digest)
                .await
                .unwrap()
        );
        // A blob no repository holds is mountable by no restricted caller.
        let stray = Digest::of(b"stray");
        assert!(!may_mount_unnamed(&storage, &member, &stray).await.unwrap());
    }
}
