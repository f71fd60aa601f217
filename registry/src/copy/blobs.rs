//! One blob from a source to a destination, whichever kinds they are: skipped when the
//! destination has it, mounted across repositories of one registry when it can be,
//! otherwise streamed and verified against its digest before it becomes visible.

use std::{io::Write, sync::Arc, time::Instant};

use bytes::Bytes;
use futures::StreamExt;
use kiln_store::{BlobStore, Descriptor, Digest, LayerCheck, LayerFacts, StagedBlob};

use super::{CopyOptions, Destination, Progress, Source};
use crate::client::{
    BlobBody, ClientError, OnBytes, PushOutcome, Repository, Result, check_blob, retry,
};

/// A blob whose bytes all arrived and checked out, being made durable (fsync) on a
/// thread of its own; `copy` renames it into place only once every blob arrived (and,
/// into the store, every image passed its layer checks), so a copy that fails leaves the
/// destination as it was.
pub(super) type Staging = tokio::task::JoinHandle<Result<Staged>>;

/// A staged blob, with what its layer check found when it was checked as a layer.
pub(super) struct Staged {
    pub blob: StagedBlob,
    pub layer: Option<LayerFacts>,
}

/// What the writer thread is handed at a time.
const PIECE: usize = 1 << 20;

#[derive(Clone, Debug, PartialEq)]
pub enum BlobOutcome {
    /// Moved this many bytes.
    Copied { bytes: u64, seconds: f64 },
    /// The destination already had it.
    Exists,
    /// The registry linked it from another repository.
    Mounted { from: String },
}

/// Move one blob; returns the bytes that travelled. `check` names a layer that must pass
/// the layer checks as it streams into a layout (the store), and says where it is from.
pub(super) async fn transfer(
    source: &Source,
    destination: &Destination,
    descriptor: &Descriptor,
    options: &CopyOptions,
    progress: &Arc<dyn Progress>,
    check: Option<String>,
) -> Result<(u64, Option<Staging>)> {
    let digest = &descriptor.digest;
    let started = Instant::now();
    progress.started(digest, descriptor.size);
    let on_bytes = {
        let progress = progress.clone();
        let digest = digest.clone();
        Arc::new(move |n: u64| progress.advanced(&digest, n))
    };
    let mut staging = None;
    let outcome = match (source, destination) {
        (_, Destination::Layout { layout, .. }) if layout.blobs().contains(digest) => {
            BlobOutcome::Exists
        }
        (Source::Layout { layout: from, .. }, Destination::Layout { layout: to, .. }) => {
            let (from, to) = (from.blobs().clone(), to.blobs().clone());
            let owned = descriptor.clone();
            staging = Some(tokio::task::spawn_blocking(move || {
                copy_local(&from, &to, &owned, check)
            }));
            on_bytes(descriptor.size);
            copied(descriptor.size, started)
        }
        (Source::Layout { layout, .. }, Destination::Remote { repo, .. }) => {
            let mount = options
                .known
                .as_ref()
                .and_then(|k| k.lookup(repo.host(), digest));
            let body = BlobBody::File(layout.blobs().path(digest));
            let outcome = repo
                .push_blob(descriptor, body, mount.as_deref(), on_bytes)
                .await?;
            remember(options, repo, digest);
            pushed(outcome, descriptor.size, started)
        }
        (Source::Remote { repo, .. }, Destination::Layout { layout, .. }) => {
            staging = Some(pull(repo, descriptor, layout.blobs(), on_bytes, check).await?);
            remember(options, repo, digest);
            copied(descriptor.size, started)
        }
        (Source::Remote { repo: from, .. }, Destination::Remote { repo: to, .. }) => {
            let mount = if from.host() == to.host() {
                Some(from.name().to_string())
            } else {
                options
                    .known
                    .as_ref()
                    .and_then(|k| k.lookup(to.host(), digest))
            };
            let body = BlobBody::Remote(from.clone());
            let outcome = to
                .push_blob(descriptor, body, mount.as_deref(), on_bytes)
                .await?;
            remember(options, to, digest);
            pushed(outcome, descriptor.size, started)
        }
    };
    progress.finished(digest, &outcome);
    let moved = match outcome {
        BlobOutcome::Copied { bytes, .. } => bytes,
        _ => 0,
    };
    Ok((moved, staging))
}

fn copied(bytes: u64, started: Instant) -> BlobOutcome {
    BlobOutcome::Copied {
        bytes,
        seconds: started.elapsed().as_secs_f64(),
    }
}

fn pushed(outcome: PushOutcome, size: u64, started: Instant) -> BlobOutcome {
    match outcome {
        PushOutcome::Exists => BlobOutcome::Exists,
        PushOutcome::Mounted { from } => BlobOutcome::Mounted { from },
        PushOutcome::Uploaded => copied(size, started),
    }
}

fn remember(options: &CopyOptions, repo: &Repository, digest: &Digest) {
    if let Some(known) = &options.known {
        known.record(repo.host(), repo.name(), digest);
    }
}

/// Layout to layout: re-read and re-hash, never trust a file for its name; a layer being
/// checked is fed to its check as it is copied.
fn copy_local(
    from: &BlobStore,
    to: &BlobStore,
    descriptor: &Descriptor,
    check: Option<String>,
) -> Result<Staged> {
    let context = || format!("copying blob {}", descriptor.digest);
    let mut file = from.open_blob(&descriptor.digest)?;
    let mut writer = to.writer_for(descriptor.digest.algorithm())?;
    let mut check = check.map(LayerCheck::start);
    loop {
        let mut chunk = vec![0u8; PIECE];
        let n = read_full(&mut file, &mut chunk).map_err(|e| ClientError::io(context(), e))?;
        if n == 0 {
            break;
        }
        chunk.truncate(n);
        writer
            .write_all(&chunk)
            .map_err(|e| ClientError::io(context(), e))?;
        if let Some(check) = &mut check {
            check.feed(chunk);
        }
    }
    let blob = writer.finish()?;
    let layer = check.map(LayerCheck::finish);
    check_blob(
        &descriptor.digest,
        descriptor.size,
        &blob.digest,
        blob.size,
        "the source layout",
    )?;
    Ok(Staged {
        blob,
        layer: layer.transpose()?,
    })
}

fn read_full(reader: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Registry to layout, retried from the start when the connection breaks. A writer
/// thread hashes and writes while this task reads the socket (and feeds a layer's check,
/// which runs on a thread of its own); the blob is renamed into place only when size,
/// digest and the layer checks pass.
async fn pull(
    repo: &Repository,
    descriptor: &Descriptor,
    blobs: &BlobStore,
    on_bytes: OnBytes,
    check: Option<String>,
) -> Result<Staging> {
    let attempts = repo.client().options().attempts.max(1);
    let mut failures = 0;
    loop {
        match pull_once(repo, descriptor, blobs, &on_bytes, check.clone()).await {
            Err(e) if e.is_retryable() && failures + 1 < attempts => {
                failures += 1;
                tokio::time::sleep(retry::pause(failures, &e)).await;
            }
            other => return other,
        }
    }
}

async fn pull_once(
    repo: &Repository,
    descriptor: &Descriptor,
    blobs: &BlobStore,
    on_bytes: &OnBytes,
    check: Option<String>,
) -> Result<Staging> {
    let digest = &descriptor.digest;
    let origin = repo.display(&digest.to_string());
    let response = repo.blob(digest).await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Bytes>>(4);
    let store = blobs.clone();
    let algorithm = digest.algorithm();
    let writer = tokio::task::spawn_blocking(move || -> Result<_> {
        let mut writer = store.writer_for(algorithm)?;
        let mut check = check.map(LayerCheck::start);
        let failed = |e| ClientError::io("writing a staging file", e);
        while let Some(pieces) = rx.blocking_recv() {
            let Some(check) = &mut check else {
                for piece in pieces {
                    writer.write_all(&piece).map_err(failed)?;
                }
                continue;
            };
            // The check takes whole chunks: one copy of the bytes, cheap next to inflating.
            let mut chunk = Vec::with_capacity(pieces.iter().map(Bytes::len).sum());
            for piece in &pieces {
                chunk.extend_from_slice(piece);
            }
            writer.write_all(&chunk).map_err(failed)?;
            check.feed(chunk);
        }
        Ok((writer.finish_unsynced()?, check.map(LayerCheck::finish)))
    });
    let mut stream = response.bytes_stream();
    let mut received = 0u64;
    let mut failed = None;
    let (mut pending, mut pending_bytes) = (Vec::new(), 0);
    while let Some(piece) = stream.next().await {
        let piece = match piece {
            Ok(piece) => piece,
            Err(e) => {
                failed = Some(ClientError::transport(repo.host(), &e));
                break;
            }
        };
        received += piece.len() as u64;
        if received > descriptor.size {
            failed = Some(ClientError::SizeMismatch {
                digest: digest.clone(),
                origin: origin.clone(),
                expected: descriptor.size,
                actual: received,
            });
            break;
        }
        on_bytes(piece.len() as u64);
        // The socket hands over pieces of a few KiB; the writer thread takes them a MiB
        // at a time, so waking it costs nothing next to the copy and the hashing.
        pending_bytes += piece.len();
        pending.push(piece);
        if pending_bytes >= PIECE {
            pending_bytes = 0;
            if tx.send(std::mem::take(&mut pending)).await.is_err() {
                break; // the writer failed; its error follows
            }
        }
    }
    if !pending.is_empty() && failed.is_none() {
        let _ = tx.send(pending).await;
    }
    drop(tx);
    let (staged, layer) = writer.await.expect("blob writer task")?;
    if let Some(e) = failed {
        return Err(e);
    }
    check_blob(
        digest,
        descriptor.size,
        &staged.digest,
        staged.size,
        &origin,
    )?;
    let layer = layer.transpose()?;
    // fsync on a thread of its own: the next blob's transfer starts now, while the
    // kernel writes this one back, instead of waiting for the disk.
    let mut staged = staged;
    Ok(tokio::task::spawn_blocking(move || {
        staged.sync()?;
        Ok(Staged {
            blob: staged,
            layer,
        })
    }))
}
