//! Layer checks, the same on every way an image enters the store (load, pull, copy):
//! `LayerCheck` decompresses a layer on a thread of its own while its bytes stream by,
//! hashes the result (the diffID) and checks every path; `check_layer` then compares what
//! it found with the config's `rootfs.diff_ids` and the manifest's media type.

use std::{
    io::{self, BufRead, Cursor, Read},
    sync::mpsc::{Receiver, SyncSender, sync_channel},
    thread::JoinHandle,
};

use crate::{
    Compression, Digest, DigestReader, Error, Result, check_tar, compression::SNIFF_LEN,
    looks_like_tar,
};

/// The size of the chunks the loader moves; `LayerCheck` takes chunks of any size.
pub(crate) const CHUNK: usize = 1 << 20;
/// Chunks in flight to a layer's verifier thread: bounds memory at a few MiB per layer.
const CHANNEL_DEPTH: usize = 4;

/// What checking a layer found.
#[derive(Clone, Debug)]
pub struct LayerFacts {
    /// The digest of the decompressed tar; `None` for an uncompressed layer, whose diffID
    /// is its blob digest (which the caller computes anyway).
    pub diff_id: Option<Digest>,
    pub compression: Compression,
}

impl LayerFacts {
    /// The diffID, given the digest of the blob the facts are about.
    pub fn diff_id_of(&self, blob: &Digest) -> Digest {
        self.diff_id.clone().unwrap_or_else(|| blob.clone())
    }
}

/// Decompresses, hashes and path-checks one layer on its own thread, fed in chunks.
pub(crate) struct LayerVerifier {
    handle: JoinHandle<Result<LayerFacts>>,
}

impl LayerVerifier {
    /// The verifier, and the sender that feeds it (dropped by the feeder at the end).
    /// With no `compression`, it is recognised from the first bytes. Spent chunks go back
    /// through `returns` when given.
    pub fn spawn(
        what: String,
        compression: Option<Compression>,
        returns: Option<SyncSender<Vec<u8>>>,
    ) -> (LayerVerifier, SyncSender<Vec<u8>>) {
        let (tx, rx) = sync_channel(CHANNEL_DEPTH);
        let handle = std::thread::spawn(move || {
            let reader = ChannelReader {
                rx,
                chunk: Vec::new(),
                pos: 0,
                returns,
            };
            verify(reader, compression, &what)
        });
        (LayerVerifier { handle }, tx)
    }

    /// Wait for the verdict; the feeder must have dropped its sender. A verifier that
    /// failed early stopped reading: its error is the verdict.
    pub fn finish(self) -> Result<LayerFacts> {
        self.handle
            .join()
            .unwrap_or_else(|_| Err(Error::archive("layer", "the layer verifier panicked")))
    }
}

/// Decompress (the decoders read straight out of `reader`'s buffers: no copy into one of
/// their own), hash and check a layer read to its end.
fn verify<R: BufRead>(
    mut reader: R,
    compression: Option<Compression>,
    what: &str,
) -> Result<LayerFacts> {
    let mut prefix = Vec::new();
    let compression = match compression {
        Some(c) => c,
        None => {
            (&mut reader)
                .take(SNIFF_LEN as u64)
                .read_to_end(&mut prefix)
                .map_err(|e| Error::io(format!("reading {what}"), e))?;
            let c = Compression::from_magic(&prefix);
            if c == Compression::None && !looks_like_tar(&prefix) {
                return Err(Error::BadImage {
                    what: what.to_string(),
                    detail: "this layer is not a tar archive (plain, gzip or zstd)".into(),
                });
            }
            c
        }
    };
    let reader = Cursor::new(prefix).chain(reader);
    let decoded: Box<dyn Read + '_> = match compression {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(reader)
                .map_err(|e| Error::io(format!("starting zstd decoder for {what}"), e))?,
        ),
    };
    // An uncompressed layer's diffID is its blob digest, which the caller computes
    // anyway: hash here only what the caller cannot see, the decompressed bytes.
    let diff_id = if compression == Compression::None {
        check_tar(decoded, what)?;
        None
    } else {
        let mut hashed = DigestReader::new(decoded);
        check_tar(&mut hashed, what)?;
        Some(hashed.finish().0)
    };
    Ok(LayerFacts {
        diff_id,
        compression,
    })
}

/// A layer checked as its bytes arrive, on a thread of its own: `feed` it every chunk of
/// the blob in order, then `finish`. `what` names the layer (and where it came from) in
/// errors. Memory stays at a few chunks, whatever the layer's size.
pub struct LayerCheck {
    tx: Option<SyncSender<Vec<u8>>>,
    verifier: LayerVerifier,
}

impl LayerCheck {
    pub fn start(what: impl Into<String>) -> LayerCheck {
        let (verifier, tx) = LayerVerifier::spawn(what.into(), None, None);
        LayerCheck {
            tx: Some(tx),
            verifier,
        }
    }

    /// Hand over the next chunk; blocks while the check is behind. Once the check has
    /// ended early (it found something wrong, which `finish` says), chunks are dropped:
    /// the caller goes on with the blob's digest and learns the verdict at the end.
    pub fn feed(&mut self, chunk: Vec<u8>) {
        if let Some(tx) = &self.tx
            && !chunk.is_empty()
            && tx.send(chunk).is_err()
        {
            self.tx = None;
        }
    }

    /// The end of the blob: wait for the verdict.
    pub fn finish(mut self) -> Result<LayerFacts> {
        self.tx = None;
        self.verifier.finish()
    }
}

/// The same check over a blob read from a file (one already in the store), on the
/// calling thread.
pub fn check_layer_blob<R: Read>(blob: R, what: &str) -> Result<LayerFacts> {
    verify(io::BufReader::with_capacity(CHUNK, blob), None, what)
}

/// The config must list one diffID per layer of the manifest.
pub fn check_layer_count(what: &str, diff_ids: usize, layers: usize) -> Result<()> {
    if diff_ids != layers {
        return Err(Error::BadImage {
            what: what.to_string(),
            detail: format!("the config lists {diff_ids} diffIDs for {layers} layers"),
        });
    }
    Ok(())
}

/// One layer against the config and the manifest: its diffID must be the one the config
/// lists at its place, and its content compressed as its media type (`declared`) says.
/// `what` names the layer; `blob` is its digest.
pub fn check_layer(
    what: &str,
    facts: &LayerFacts,
    blob: &Digest,
    expected_diff_id: &Digest,
    declared: Option<&str>,
) -> Result<()> {
    let diff_id = facts.diff_id_of(blob);
    // diffIDs are computed in sha256 (an uncompressed layer's is its blob digest): one in
    // another algorithm cannot be compared, which is not the same as not matching.
    if diff_id.algorithm() != expected_diff_id.algorithm() {
        return Err(Error::BadImage {
            what: what.to_string(),
            detail: format!(
                "its diffID {expected_diff_id} is a {} digest, but kiln checks this layer's \
                 content in {} (diffIDs are checked in sha256, or in the algorithm of an \
                 uncompressed layer's own digest)",
                expected_diff_id.algorithm(),
                diff_id.algorithm()
            ),
        });
    }
    if &diff_id != expected_diff_id {
        return Err(Error::DigestMismatch {
            what: format!("diffID of {what}"),
            expected: expected_diff_id.clone(),
            actual: diff_id,
        });
    }
    if let Some(mt) = declared
        && let Some(c) = Compression::of_layer_media_type(mt)
        && c != facts.compression
    {
        return Err(Error::BadImage {
            what: what.to_string(),
            detail: format!(
                "declared as {mt} but its content is {}",
                facts.compression.name()
            ),
        });
    }
    Ok(())
}

struct ChannelReader {
    rx: Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
    /// Spent chunks go back to the loader's pool.
    returns: Option<SyncSender<Vec<u8>>>,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = BufRead::fill_buf(self)?;
        let n = buf.len().min(available.len());
        buf[..n].copy_from_slice(&available[..n]);
        BufRead::consume(self, n);
        Ok(n)
    }
}

impl BufRead for ChannelReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    let spent = std::mem::replace(&mut self.chunk, chunk);
                    if let Some(returns) = &self.returns
                        && spent.capacity() == CHUNK
                    {
                        let _ = returns.try_send(spent);
                    }
                    self.pos = 0;
                }
                Err(_) => return Ok(&[]), // sender gone: end of the member
            }
        }
        Ok(&self.chunk[self.pos..])
    }

    fn consume(&mut self, amount: usize) {
        self.pos = (self.pos + amount).min(self.chunk.len());
    }
}

/// Chunks recycled between the loader and its verifier threads: no fresh 1 MiB buffer
/// (page faults, zeroing) per MiB moved.
pub(crate) struct ChunkPool {
    tx: SyncSender<Vec<u8>>,
    rx: Receiver<Vec<u8>>,
}

impl ChunkPool {
    pub fn new() -> ChunkPool {
        let (tx, rx) = sync_channel(CHANNEL_DEPTH * 2 + 2);
        ChunkPool { tx, rx }
    }

    pub fn take(&self) -> Vec<u8> {
        let mut chunk = self.rx.try_recv().unwrap_or_default();
        chunk.resize(CHUNK, 0);
        chunk
    }

    pub fn returns(&self) -> SyncSender<Vec<u8>> {
        self.tx.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn tar_with(path: &str) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_entry_type(tar::EntryType::Regular);
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        b.append(&h, &b"x"[..]).unwrap();
        b.into_inner().unwrap()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    /// Fed in pieces of every size, down to one byte (the compression is sniffed across
    /// pieces).
    fn fed(bytes: &[u8], piece: usize) -> Result<LayerFacts> {
        let mut check = LayerCheck::start("layer x");
        for p in bytes.chunks(piece) {
            check.feed(p.to_vec());
        }
        check.finish()
    }

    #[test]
    fn finds_the_diff_id_and_the_compression_however_it_is_fed() {
        let tar = tar_with("a");
        let gz = gzip(&tar);
        for piece in [1, 7, 512, 1 << 20] {
            let facts = fed(&gz, piece).unwrap();
            assert_eq!(facts.compression, Compression::Gzip);
            assert_eq!(facts.diff_id, Some(Digest::of(&tar)));
            let facts = fed(&tar, piece).unwrap();
            assert_eq!(facts.compression, Compression::None);
            assert_eq!(facts.diff_id_of(&Digest::of(&tar)), Digest::of(&tar));
        }
        let facts = check_layer_blob(&gz[..], "layer x").unwrap();
        assert_eq!(facts.diff_id, Some(Digest::of(&tar)));
    }

    #[test]
    fn refuses_unsafe_paths_and_what_is_not_a_tar() {
        let err = fed(&gzip(&tar_with("../x")), 3).unwrap_err();
        assert!(matches!(err, Error::UnsafePath { .. }), "{err}");
        let err = fed(br#"{"not":"a layer"}"#, 5).unwrap_err();
        assert!(err.to_string().contains("not a tar archive"), "{err}");
        assert!(err.to_string().contains("layer x"), "{err}");
    }

    #[test]
    fn compares_with_the_config_and_the_media_type() {
        let tar = tar_with("a");
        let facts = fed(&gzip(&tar), 100).unwrap();
        let blob = Digest::of(b"blob");
        check_layer("l", &facts, &blob, &Digest::of(&tar), None).unwrap();
        let err = check_layer("l", &facts, &blob, &Digest::of(b"other"), None).unwrap_err();
        assert!(err.to_string().contains("diffID of l"), "{err}");
        let err = check_layer(
            "l",
            &facts,
            &blob,
            &Digest::of(&tar),
            Some(crate::media_type::OCI_LAYER_ZSTD),
        )
        .unwrap_err();
        assert!(err.to_string().contains("its content is gzip"), "{err}");
        assert!(check_layer_count("c", 1, 2).is_err());
    }
}
