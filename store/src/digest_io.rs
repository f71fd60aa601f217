//! `DigestWriter` and `DigestReader`: bytes are hashed and counted as they move, never buffered.

use std::io::{self, Read, Write};

use crate::{Algorithm, Digest, Hasher};

/// Hashes and counts everything written through it.
pub struct DigestWriter<W> {
    inner: W,
    hasher: Hasher,
    size: u64,
}

impl<W: Write> DigestWriter<W> {
    /// Hashes with sha256, the algorithm of what kiln makes.
    pub fn new(inner: W) -> Self {
        Self::with_algorithm(inner, Algorithm::Sha256)
    }

    /// Hashes with `algorithm`: for bytes checked against a digest someone else chose.
    pub fn with_algorithm(inner: W, algorithm: Algorithm) -> Self {
        DigestWriter {
            inner,
            hasher: Hasher::new(algorithm),
            size: 0,
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// The digest and size of what went through, and the inner writer.
    pub fn finish(self) -> (Digest, u64, W) {
        (self.hasher.finish(), self.size, self.inner)
    }
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hashes and counts everything read through it.
pub struct DigestReader<R> {
    inner: R,
    hasher: Hasher,
    size: u64,
}

impl<R: Read> DigestReader<R> {
    /// Hashes with sha256.
    pub fn new(inner: R) -> Self {
        Self::with_algorithm(inner, Algorithm::Sha256)
    }

    pub fn with_algorithm(inner: R, algorithm: Algorithm) -> Self {
        DigestReader {
            inner,
            hasher: Hasher::new(algorithm),
            size: 0,
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn finish(self) -> (Digest, u64) {
        (self.hasher.finish(), self.size)
    }
}

impl<R: Read> Read for DigestReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

/// Counts bytes read, for positions inside a stream.
pub struct CountingReader<R> {
    inner: R,
    count: u64,
}

impl<R: Read> CountingReader<R> {
    pub fn new(inner: R) -> Self {
        CountingReader { inner, count: 0 }
    }

    pub fn count(&self) -> u64 {
        self.count
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// A sink that only counts: for hashing pipelines that keep no bytes.
#[derive(Default)]
pub struct CountingSink {
    pub count: u64,
}

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.count += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_and_reader_agree_with_one_shot_digest() {
        let data = vec![7u8; 100_000];
        let mut w = DigestWriter::new(Vec::new());
        for chunk in data.chunks(999) {
            w.write_all(chunk).unwrap();
        }
        let (digest, size, out) = w.finish();
        assert_eq!(out, data);
        assert_eq!(size, 100_000);
        assert_eq!(digest, Digest::of(&data));

        let mut r = DigestReader::new(&data[..]);
        io::copy(&mut r, &mut io::sink()).unwrap();
        assert_eq!(r.finish(), (Digest::of(&data), 100_000));

        let mut w = DigestWriter::with_algorithm(Vec::new(), Algorithm::Sha512);
        w.write_all(&data).unwrap();
        let (digest, _, _) = w.finish();
        assert_eq!(digest, Digest::of_with(Algorithm::Sha512, &data));
    }
}
