//! `LayerVerifier`: one thread per layer of an archive being loaded, fed the member's bytes
//! in chunks by the loader; it decompresses them, hashes the result (the diffID) and checks
//! every path, while the loader goes on staging. `ChunkPool` recycles the chunks.

use std::{
    io::{self, Read},
    sync::mpsc::{Receiver, SyncSender, sync_channel},
    thread::JoinHandle,
};

use crate::{Compression, Digest, DigestReader, Error, Result, check_tar};

pub(super) const CHUNK: usize = 1 << 20;
/// Chunks in flight to a layer's verifier thread: bounds memory at a few MiB per layer.
const CHANNEL_DEPTH: usize = 4;

/// What a layer's verifier thread found.
#[derive(Clone, Debug)]
pub(super) struct LayerFacts {
    /// `None` until the loader fills it in for an uncompressed layer (its blob digest).
    pub diff_id: Option<Digest>,
    pub compression: Compression,
}

/// Decompresses, hashes and path-checks one layer on its own thread, fed by the loader.
pub(super) struct LayerVerifier {
    handle: JoinHandle<Result<LayerFacts>>,
}

impl LayerVerifier {
    /// The verifier, and the sender that feeds it (dropped by the feeder at the end).
    pub fn spawn(
        what: String,
        compression: Compression,
        returns: SyncSender<Vec<u8>>,
    ) -> (LayerVerifier, SyncSender<Vec<u8>>) {
        let (tx, rx) = sync_channel(CHANNEL_DEPTH);
        let handle = std::thread::spawn(move || {
            let reader = ChannelReader {
                rx,
                chunk: Vec::new(),
                pos: 0,
                returns,
            };
            // The decoders read straight out of the loader's chunks (BufRead): no copy
            // into a decoder buffer of their own.
            let decoded: Box<dyn Read> = match compression {
                Compression::None => Box::new(reader),
                Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
                Compression::Zstd => Box::new(
                    zstd::stream::read::Decoder::with_buffer(reader)
                        .map_err(|e| Error::io(format!("starting zstd decoder for {what}"), e))?,
                ),
            };
            // An uncompressed layer's diffID is its blob digest, which the loader computes
            // anyway: hash here only what the loader cannot see, the decompressed bytes.
            let diff_id = if compression == Compression::None {
                check_tar(decoded, &what)?;
                None
            } else {
                let mut hashed = DigestReader::new(decoded);
                check_tar(&mut hashed, &what)?;
                Some(hashed.finish().0)
            };
            Ok(LayerFacts {
                diff_id,
                compression,
            })
        });
        (LayerVerifier { handle }, tx)
    }

    /// Wait for the verdict; the feeder must have dropped its sender (the staging writer
    /// does when it finishes). A verifier that failed early stopped reading: its error is
    /// the verdict.
    pub fn finish(self) -> Result<LayerFacts> {
        self.handle
            .join()
            .unwrap_or_else(|_| Err(Error::archive("layer", "the layer verifier panicked")))
    }
}

struct ChannelReader {
    rx: Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
    /// Spent chunks go back to the loader's pool.
    returns: SyncSender<Vec<u8>>,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = io::BufRead::fill_buf(self)?;
        let n = buf.len().min(available.len());
        buf[..n].copy_from_slice(&available[..n]);
        io::BufRead::consume(self, n);
        Ok(n)
    }
}

impl io::BufRead for ChannelReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    let spent = std::mem::replace(&mut self.chunk, chunk);
                    if spent.capacity() == CHUNK {
                        let _ = self.returns.try_send(spent);
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
pub(super) struct ChunkPool {
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
