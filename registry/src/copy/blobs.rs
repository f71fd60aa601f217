//! One blob from a source to a destination, whichever kinds they are: skipped when the
//! destination has it, mounted across repositories of one registry when it can be,
//! otherwise streamed and verified against its digest before it becomes visible.

use std::{io::Write, sync::Arc, time::Instant};

use bytes::Bytes;
use futures::StreamExt;
use kiln_store::{BlobStore, Descriptor, Digest, StagedBlob};

use super::{CopyOptions, Destination, Progress, Source};
use crate::client::{BlobBody, ClientError, OnBytes, PushOutcome, Repository, Result, check_blob};

/// A blob whose bytes all arrived and checked out, being made durable (fsync) on a
/// thread of its own; `copy` renames it into place only once every blob arrived, so a
/// copy that fails leaves the destination as it was.
pub(super) type Staging = tokio::task::JoinHandle<Result<StagedBlob>>;

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

/// Move one blob; returns the bytes that travelled.
pub(super) async fn transfer(
    source: &Source,
    destination: &Destination,
    descriptor: &Descriptor,
    options: &CopyOptions,
    progress: &Arc<dyn Progress>,
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
                copy_local(&from, &to, &owned)
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
            staging = Some(pull(repo, descriptor, layout.blobs(), on_bytes).await?);
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

/// Layout to layout: re-read and re-hash, never trust a file for its name.
fn copy_local(from: &BlobStore, to: &BlobStore, descriptor: &Descriptor) -> Result<StagedBlob> {
    let mut file = from.open_blob(&descriptor.digest)?;
    let mut writer = to.writer()?;
    std::io::copy(&mut file, &mut writer)
        .map_err(|e| ClientError::io(format!("copying blob {}", descriptor.digest), e))?;
    let staged = writer.finish()?;
    check_blob(
        &descriptor.digest,
        descriptor.size,
        &staged.digest,
        staged.size,
        "the source layout",
    )?;
    Ok(staged)
}

/// Registry to layout, retried from the start when the connection breaks. A writer
/// thread hashes and writes while this task reads the socket; the blob is renamed into
/// place only when size and digest match.
async fn pull(
    repo: &Repository,
    descriptor: &Descriptor,
    blobs: &BlobStore,
    on_bytes: OnBytes,
) -> Result<Staging> {
    let attempts = repo.client().options().attempts.max(1);
    let mut failures = 0;
    loop {
        match pull_once(repo, descriptor, blobs, &on_bytes).await {
            Err(e) if e.is_retryable() && failures + 1 < attempts => failures += 1,
            other => return other,
        }
    }
}

async fn pull_once(
    repo: &Repository,
    descriptor: &Descriptor,
    blobs: &BlobStore,
    on_bytes: &OnBytes,
) -> Result<Staging> {
    let digest = &descriptor.digest;
    let origin = repo.display(&digest.to_string());
    let response = repo.blob(digest).await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Bytes>>(4);
    let store = blobs.clone();
    let writer = tokio::task::spawn_blocking(move || -> Result<_> {
        let mut writer = store.writer()?;
        while let Some(pieces) = rx.blocking_recv() {
            for piece in pieces {
                writer
                    .write_all(&piece)
                    .map_err(|e| ClientError::io("writing a staging file", e))?;
            }
        }
        Ok(writer.finish_unsynced()?)
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
    let staged = writer.await.expect("blob writer task")?;
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
    // fsync on a thread of its own: the next blob's transfer starts now, while the
    // kernel writes this one back, instead of waiting for the disk.
    let mut staged = staged;
    Ok(tokio::task::spawn_blocking(move || {
        staged.sync()?;
        Ok(staged)
    }))
}
