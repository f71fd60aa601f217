//! `Digest`: a content address (`sha256:<64 hex>` or `sha512:<128 hex>`), parsed and
//! validated once, and `Hasher`, which computes one in the algorithm asked for.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256, Sha512};

use crate::{Error, Result};

/// The hash functions the OCI image spec registers. sha256 is what every registry and
/// image in the wild uses and what kiln computes for content it makes; sha512 content
/// pushed or loaded by others is accepted and verified with sha512.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub const ALL: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Sha512];

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Hex characters in a digest of this algorithm.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    /// `sha256` or `sha512`, as in a digest or a `blobs/<algorithm>/` directory.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<std::path::Path> for Algorithm {
    fn as_ref(&self) -> &std::path::Path {
        std::path::Path::new(self.as_str())
    }
}

/// A running hash in one of the [`Algorithm`]s.
#[derive(Clone)]
pub enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Hasher {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    pub fn finish(self) -> Digest {
        match self {
            Hasher::Sha256(h) => Digest::from_hasher(h),
            Hasher::Sha512(h) => Digest {
                algorithm: Algorithm::Sha512,
                hex: hex::encode(h.finalize()),
            },
        }
    }
}

/// A validated `<algorithm>:<lowercase hex>` digest (see [`Algorithm`]).
///
/// Ordered by algorithm, then hex: the order of their text forms.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// The algorithm of the digests kiln computes for what it makes.
    pub const ALGORITHM: Algorithm = Algorithm::Sha256;

    /// The sha256 digest of a byte slice (for small things: manifests, configs).
    pub fn of(bytes: &[u8]) -> Digest {
        Digest::from_hasher(Sha256::new_with_prefix(bytes))
    }

    /// The digest of a byte slice in `algorithm`: to check bytes against a digest that
    /// may not be sha256, hash them with `expected.algorithm()`.
    pub fn of_with(algorithm: Algorithm, bytes: &[u8]) -> Digest {
        let mut hasher = Hasher::new(algorithm);
        hasher.update(bytes);
        hasher.finish()
    }

    pub fn from_hasher(hasher: Sha256) -> Digest {
        Digest {
            algorithm: Algorithm::Sha256,
            hex: hex::encode(hasher.finalize()),
        }
    }

    /// A sha256 digest from its hex part alone, e.g. a `blobs/sha256/<hex>` file name.
    pub fn from_hex(hex: &str) -> Result<Digest> {
        Digest::from_parts(Algorithm::Sha256.as_str(), hex)
    }

    /// A digest from an algorithm name and a hex part, e.g. the two last components of
    /// `blobs/<algorithm>/<hex>`.
    pub fn from_parts(algorithm: &str, hex: &str) -> Result<Digest> {
        let input = format!("{algorithm}:{hex}");
        input.parse()
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// A fresh hasher in this digest's algorithm, to verify bytes against it.
    pub fn hasher(&self) -> Hasher {
        Hasher::new(self.algorithm)
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The 12-character short form docker prints as IMAGE ID.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }
}

fn validate_hex(algorithm: Algorithm, hex: &str) -> std::result::Result<(), String> {
    if hex.len() != algorithm.hex_len() {
        return Err(format!(
            "a {algorithm} digest has {} hex characters, this one has {}",
            algorithm.hex_len(),
            hex.len()
        ));
    }
    if let Some(bad) = hex.chars().find(|c| !matches!(c, '0'..='9' | 'a'..='f')) {
        return Err(format!("{bad:?} is not a lowercase hex character"));
    }
    Ok(())
}

impl FromStr for Digest {
    type Err = Error;

    fn from_str(input: &str) -> Result<Digest> {
        let invalid = |reason: String| Error::InvalidDigest {
            input: input.to_string(),
            reason,
        };
        let (name, hex) = input
            .split_once(':')
            .ok_or_else(|| invalid("expected <algorithm>:<hex>".into()))?;
        let algorithm = Algorithm::from_name(name).ok_or_else(|| {
            invalid(format!(
                "unsupported algorithm {name:?} (sha256 and sha512 are supported)"
            ))
        })?;
        validate_hex(algorithm, hex).map_err(invalid)?;
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn digest_of_empty_input() {
        assert_eq!(Digest::of(b"").to_string(), format!("sha256:{EMPTY}"));
    }

    #[test]
    fn parses_and_round_trips() {
        let d: Digest = format!("sha256:{EMPTY}").parse().unwrap();
        assert_eq!(d.hex(), EMPTY);
        assert_eq!(d.short(), "e3b0c44298fc");
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
    }

    #[test]
    fn rejects_malformed_digests_with_a_reason() {
        for (input, reason) in [
            ("", "expected <algorithm>:<hex>"),
            (EMPTY, "expected <algorithm>:<hex>"),
            ("sha384:abcd", "unsupported algorithm"),
            (&format!("sha512:{EMPTY}"), "128 hex characters"),
            (
                "md5:d41d8cd98f00b204e9800998ecf8427e",
                "unsupported algorithm",
            ),
            ("sha256:abc", "64 hex characters"),
            (&format!("sha256:{}", EMPTY.to_uppercase()), "lowercase hex"),
            (&format!("sha256:{}g", &EMPTY[..63]), "lowercase hex"),
            (&format!("sha256:{EMPTY}0"), "64 hex characters"),
        ] {
            let err = input.parse::<Digest>().unwrap_err().to_string();
            assert!(err.contains(reason), "{input:?}: {err}");
        }
    }

    #[test]
    fn sha512_digests_parse_and_hash() {
        const EMPTY512: &str = "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce\
                                47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e";
        let d = Digest::of_with(Algorithm::Sha512, b"");
        assert_eq!(d.to_string(), format!("sha512:{EMPTY512}"));
        assert_eq!(d.algorithm(), Algorithm::Sha512);
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        assert_eq!(Digest::from_parts("sha512", EMPTY512).unwrap(), d);
        assert_eq!(Digest::of_with(d.algorithm(), b""), d);
        assert_ne!(Digest::of(b""), d);
        // Text order: every sha256 digest before every sha512 one.
        assert!(Digest::of(b"x") < d);
        assert!(Digest::from_hex(EMPTY512).is_err());
    }
}
