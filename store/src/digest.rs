//! `Digest`: a content address (`sha256:<64 hex>`), parsed and validated once.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

use crate::{Error, Result};

/// A validated `sha256:<64 lowercase hex>` digest.
///
/// Only sha256 is accepted: it is what every registry and every image in the
/// wild uses, and the OCI spec makes sha512 optional.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    pub const ALGORITHM: &'static str = "sha256";

    /// The digest of a byte slice (for small things: manifests, configs).
    pub fn of(bytes: &[u8]) -> Digest {
        Digest::from_hasher(Sha256::new_with_prefix(bytes))
    }

    pub fn from_hasher(hasher: Sha256) -> Digest {
        Digest {
            hex: hex::encode(hasher.finalize()),
        }
    }

    /// Build from the hex part alone, e.g. a `blobs/sha256/<hex>` file name.
    pub fn from_hex(hex: &str) -> Result<Digest> {
        validate_hex(hex).map_err(|reason| Error::InvalidDigest {
            input: hex.to_string(),
            reason,
        })?;
        Ok(Digest {
            hex: hex.to_string(),
        })
    }

    pub fn algorithm(&self) -> &'static str {
        Self::ALGORITHM
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The 12-character short form docker prints as IMAGE ID.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }
}

fn validate_hex(hex: &str) -> std::result::Result<(), String> {
    if hex.len() != 64 {
        return Err(format!(
            "a sha256 digest has 64 hex characters, this one has {}",
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
        let (algorithm, hex) = input
            .split_once(':')
            .ok_or_else(|| invalid("expected <algorithm>:<hex>".into()))?;
        if algorithm != Self::ALGORITHM {
            return Err(invalid(format!(
                "unsupported algorithm {algorithm:?} (only sha256 is supported)"
            )));
        }
        validate_hex(hex).map_err(invalid)?;
        Ok(Digest {
            hex: hex.to_string(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", Self::ALGORITHM, self.hex)
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
            ("sha512:abcd", "unsupported algorithm"),
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
}
