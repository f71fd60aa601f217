//! `Compression`: plain, gzip or zstd, told apart by magic bytes; streaming decoders and encoders.

use std::io::{self, Cursor, Read, Write};

use flate2::{read::MultiGzDecoder, write::GzEncoder};

use crate::{Error, Result, media_type};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
/// How many bytes `sniff` looks at: one tar header.
pub const SNIFF_LEN: usize = 512;

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }

    pub fn oci_layer_media_type(self) -> &'static str {
        match self {
            Compression::None => media_type::OCI_LAYER,
            Compression::Gzip => media_type::OCI_LAYER_GZIP,
            Compression::Zstd => media_type::OCI_LAYER_ZSTD,
        }
    }

    /// What a layer media type says about its compression (`None` when it is not a layer).
    pub fn of_layer_media_type(mt: &str) -> Option<Compression> {
        if !media_type::is_layer(mt) {
            return None;
        }
        Some(if mt.ends_with("gzip") {
            Compression::Gzip
        } else if mt.ends_with("zstd") {
            Compression::Zstd
        } else {
            Compression::None
        })
    }

    /// Recognise a compressed stream by its magic bytes; anything else is taken as plain.
    pub fn from_magic(prefix: &[u8]) -> Compression {
        if prefix.starts_with(GZIP_MAGIC) {
            Compression::Gzip
        } else if prefix.starts_with(ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// Does this block look like the start of a tar archive? (ustar magic, a v7 header with a
/// valid checksum, or the zero block of an empty archive.)
pub fn looks_like_tar(prefix: &[u8]) -> bool {
    if prefix.len() < SNIFF_LEN {
        return prefix.iter().all(|&b| b == 0) && !prefix.is_empty();
    }
    let block = &prefix[..SNIFF_LEN];
    if &block[257..262] == b"ustar" || block.iter().all(|&b| b == 0) {
        return true;
    }
    // v7 tar: no magic, so trust the header checksum.
    let field = String::from_utf8_lossy(&block[148..156]);
    let Ok(expected) = u32::from_str_radix(field.trim_matches(|c: char| c == '\0' || c == ' '), 8)
    else {
        return false;
    };
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(b)
            }
        })
        .sum();
    sum == expected
}

/// Read the first bytes of a stream (retrying short reads) and hand back a reader that
/// still yields them.
pub fn sniff<R: Read>(mut reader: R) -> io::Result<(Vec<u8>, impl Read)> {
    let mut prefix = vec![0u8; SNIFF_LEN];
    let mut filled = 0;
    while filled < SNIFF_LEN {
        match reader.read(&mut prefix[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    prefix.truncate(filled);
    Ok((prefix.clone(), Cursor::new(prefix).chain(reader)))
}

/// Open a possibly compressed tar stream: detect gzip or zstd by magic bytes, and refuse
/// anything that is neither compressed nor a tar.
pub fn open_tar_stream<'a, R: Read + Send + 'a>(
    reader: R,
    what: &str,
) -> Result<(Compression, Box<dyn Read + Send + 'a>)> {
    let (prefix, reader) = sniff(reader).map_err(|e| Error::io(format!("reading {what}"), e))?;
    let compression = Compression::from_magic(&prefix);
    if compression == Compression::None && !looks_like_tar(&prefix) {
        return Err(Error::UnknownCompression {
            what: what.to_string(),
            magic: describe_magic(&prefix),
        });
    }
    Ok((compression, decoder(compression, reader, what)?))
}

pub fn decoder<'a, R: Read + Send + 'a>(
    compression: Compression,
    reader: R,
    what: &str,
) -> Result<Box<dyn Read + Send + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(reader),
        // Multi-member: pigz and concatenated gzip files are valid layers.
        Compression::Gzip => Box::new(MultiGzDecoder::new(io::BufReader::with_capacity(
            1 << 16,
            reader,
        ))),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(reader)
                .map_err(|e| Error::io(format!("starting zstd decoder for {what}"), e))?,
        ),
    })
}

fn describe_magic(prefix: &[u8]) -> String {
    let known = [
        (&b"BZh"[..], "bzip2"),
        (&[0xfd, b'7', b'z', b'X', b'Z', 0][..], "xz"),
        (&b"PK\x03\x04"[..], "zip"),
        (&[0x5d, 0, 0][..], "lzma"),
    ];
    let hex: String = prefix.iter().take(8).map(|b| format!("{b:02x}")).collect();
    match known.iter().find(|(m, _)| prefix.starts_with(m)) {
        Some((_, name)) => format!("{hex} ({name}, not supported)"),
        None if prefix.is_empty() => "absent (the input is empty)".to_string(),
        None => hex,
    }
}

/// A compressing writer; `finish` flushes the trailer and returns the inner writer.
pub enum Encoder<W: Write> {
    None(W),
    Gzip(GzEncoder<W>),
    ParallelGzip(ParallelGzip<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

/// gzip on every core, as pigz does (gzp): the input is cut into 128 KiB blocks, each
/// compressed on a worker with the previous block's last 32 KiB as its dictionary, and the
/// results written in order as one ordinary gzip member. The output depends only on the
/// input and the level, never on thread timing. One core's flate2 gzip (~45–65 MB/s at
/// level 2 here) was the slowest step of `kiln import`.
pub struct ParallelGzip<W: Write> {
    /// `None` once finished.
    inner: Option<gzp::par::compress::ParCompress<'static, gzp::deflate::Gzip, W>>,
    /// A write or flush failed (the writer failed: a full disk). gzp has then shut its
    /// pipeline down, and any further call into it would panic, so none is made.
    failed: bool,
}

impl<W: Write + Send + 'static> ParallelGzip<W> {
    fn new(inner: W) -> io::Result<ParallelGzip<W>> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let encoder = gzp::par::compress::ParCompressBuilder::new()
            .num_threads(threads)
            .map_err(io::Error::other)?
            .compression_level(flate2::Compression::new(GZIP_LEVEL))
            .from_writer(inner);
        Ok(ParallelGzip {
            inner: Some(encoder),
            failed: false,
        })
    }
}

impl<W: Write> ParallelGzip<W> {
    fn finish(mut self) -> io::Result<W> {
        use gzp::ZWriter as _;
        let mut encoder = self.inner.take().expect("finished once");
        if self.failed {
            return Err(io::Error::other("the gzip stream failed earlier"));
        }
        // On an error gzp has taken its pipeline apart, so dropping `encoder` is quiet.
        encoder.finish().map_err(gzp_error)
    }

    fn call<T>(
        &mut self,
        f: impl FnOnce(
            &mut gzp::par::compress::ParCompress<'static, gzp::deflate::Gzip, W>,
        ) -> io::Result<T>,
    ) -> io::Result<T> {
        if self.failed {
            return Err(io::Error::other("the gzip stream failed earlier"));
        }
        let result = f(self.inner.as_mut().expect("not finished"));
        self.failed = result.is_err();
        result
    }
}

impl<W: Write> Drop for ParallelGzip<W> {
    /// An encoder dropped unfinished (an error elsewhere) is finished quietly: gzp's own
    /// drop would finish it too, and panic on an error.
    fn drop(&mut self) {
        if let Some(mut encoder) = self.inner.take()
            && !self.failed
        {
            use gzp::ZWriter as _;
            let _ = encoder.finish();
        }
    }
}

fn gzp_error(e: gzp::GzpError) -> io::Error {
    match e {
        gzp::GzpError::Io(e) => e,
        other => io::Error::other(other),
    }
}

/// gzip level 2. Measured here with zlib-rs (bench notes in bench/README.md): level 1 is
/// zlib-ng's "quick" strategy, which never falls back to stored blocks, so incompressible
/// data grows 5.5% and inflates at ~230 MB/s; level 2 stores it (inflate ~1.1 GB/s) and
/// packs binaries 15% smaller than level 1 (ratio 0.555, near level 6's 0.534) at twice
/// level 6's speed. zstd level 3 (its default) with a worker per core.
pub const GZIP_LEVEL: u32 = 2;
pub const ZSTD_LEVEL: i32 = 3;
/// Bytes of input per zstd worker job (see `Encoder::new`).
pub const ZSTD_JOB_SIZE: u32 = 2 << 20;

impl<W: Write + Send + 'static> Encoder<W> {
    /// Like `new`, with gzip on every core (`ParallelGzip`); for writers it can own.
    pub fn new_parallel(compression: Compression, inner: W) -> io::Result<Encoder<W>> {
        match compression {
            Compression::Gzip => Ok(Encoder::ParallelGzip(ParallelGzip::new(inner)?)),
            other => Encoder::new(other, inner),
        }
    }
}

impl<W: Write> Encoder<W> {
    /// gzip on one core, zstd on every core.
    pub fn new(compression: Compression, inner: W) -> io::Result<Encoder<W>> {
        Ok(match compression {
            Compression::None => Encoder::None(inner),
            Compression::Gzip => {
                Encoder::Gzip(GzEncoder::new(inner, flate2::Compression::new(GZIP_LEVEL)))
            }
            Compression::Zstd => {
                let mut enc = zstd::stream::write::Encoder::new(inner, ZSTD_LEVEL)?;
                let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
                enc.multithread(workers as u32)?;
                // zstd's default job is 4 windows (8 MiB at level 3), and every worker
                // holds a job's input and output plus queued ones: ~120 MiB of RSS for a
                // big layer on two cores. 2 MiB jobs keep it a quarter of that, and the
                // workers still fill both cores.
                enc.set_parameter(zstd::zstd_safe::CParameter::JobSize(ZSTD_JOB_SIZE))?;
                Encoder::Zstd(enc)
            }
        })
    }

    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::None(w) => Ok(w),
            Encoder::Gzip(e) => e.finish(),
            Encoder::ParallelGzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::None(w) => w.write(buf),
            Encoder::Gzip(e) => e.write(buf),
            Encoder::ParallelGzip(e) => e.call(|g| g.write(buf)),
            Encoder::Zstd(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::None(w) => w.flush(),
            Encoder::Gzip(e) => e.flush(),
            Encoder::ParallelGzip(e) => e.call(|g| g.flush()),
            Encoder::Zstd(e) => e.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_tar() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(3);
        h.set_mode(0o644);
        b.append_data(&mut h, "a", &b"abc"[..]).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn round_trips_every_compression() {
        let tar = tiny_tar();
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let mut e = Encoder::new(c, Vec::new()).unwrap();
            e.write_all(&tar).unwrap();
            let bytes = e.finish().unwrap();
            let (found, mut r) = open_tar_stream(&bytes[..], "test").unwrap();
            assert_eq!(found, c);
            let mut out = Vec::new();
            r.read_to_end(&mut out).unwrap();
            assert_eq!(out, tar);
        }
    }

    #[test]
    fn parallel_gzip_is_one_gzip_stream_and_deterministic() {
        // Several blocks of compressible and incompressible bytes.
        let mut input = Vec::new();
        for i in 0u32..200_000 {
            input.extend_from_slice(&i.wrapping_mul(2_654_435_761).to_le_bytes());
            input.extend_from_slice(b"kiln layer ");
        }
        let encode = || {
            let mut e = Encoder::new_parallel(Compression::Gzip, Vec::new()).unwrap();
            for piece in input.chunks(70_001) {
                e.write_all(piece).unwrap();
            }
            e.finish().unwrap()
        };
        let first = encode();
        assert_eq!(first, encode(), "parallel gzip must not depend on timing");
        // One member (a plain GzDecoder stops after the first) that gunzips to the input.
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&first[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, input);
        assert!(
            first.len() < input.len(),
            "{} >= {}",
            first.len(),
            input.len()
        );
        // An encoder dropped unfinished (an error path) neither panics nor hangs.
        let mut e = Encoder::new_parallel(Compression::Gzip, Vec::new()).unwrap();
        e.write_all(&input).unwrap();
        drop(e);
    }

    /// A writer that fails once it has taken `room` bytes, like a full disk.
    struct FullDisk {
        room: usize,
    }

    impl Write for FullDisk {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room < buf.len() {
                return Err(io::Error::other("no space left on device"));
            }
            self.room -= buf.len();
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn parallel_gzip_reports_a_failing_writer_without_panicking() {
        let input: Vec<u8> = (0u32..1_000_000)
            .flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes())
            .collect();
        // Finished: the writer's error comes back.
        let mut e = Encoder::new_parallel(Compression::Gzip, FullDisk { room: 100_000 }).unwrap();
        let written = input.chunks(64 << 10).try_for_each(|c| e.write_all(c));
        let finished = e.finish();
        assert!(
            written.is_err() || finished.is_err(),
            "the full disk went unnoticed"
        );
        // Dropped after the failure, as on an error path: no panic either.
        let mut e = Encoder::new_parallel(Compression::Gzip, FullDisk { room: 100_000 }).unwrap();
        let _ = input.chunks(64 << 10).try_for_each(|c| e.write_all(c));
        drop(e);
    }

    #[test]
    fn unknown_magic_is_named() {
        let err = open_tar_stream(&b"BZh91AY&SY"[..], "in.tar.bz2")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("bzip2"), "{err}");
        let err = open_tar_stream(&b"hello world, not a tar"[..], "x")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("unknown compression"), "{err}");
    }
}
