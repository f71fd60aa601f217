//! `CacheKey`: a digest chained from the base through every step of a stage.

use std::fmt;

use kiln_store::Digest;

/// The identity of a step's result: equal keys mean equal results.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(Digest);

impl CacheKey {
    /// The root of a chain: `FROM scratch`, or a base image by its manifest digest.
    pub fn root(what: &str) -> CacheKey {
        CacheKey::hash(&[("root", what)])
    }

    /// A step on top of `self`, described by named parts (the names keep `a`+`bc` apart
    /// from `ab`+`c`: every part is length-prefixed).
    pub fn then(&self, parts: &[(&str, &str)]) -> CacheKey {
        let parent = self.0.to_string();
        let mut all = vec![("parent", parent.as_str())];
        all.extend_from_slice(parts);
        CacheKey::hash(&all)
    }

    fn hash(parts: &[(&str, &str)]) -> CacheKey {
        let mut bytes = Vec::new();
        for (name, value) in parts {
            for field in [name, value] {
                bytes.extend_from_slice(&(field.len() as u64).to_le_bytes());
                bytes.extend_from_slice(field.as_bytes());
            }
        }
        CacheKey(Digest::of(&bytes))
    }

    pub fn digest(&self) -> &Digest {
        &self.0
    }

    pub fn hex(&self) -> &str {
        self.0.hex()
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({})", self.0.short())
    }
}

#[cfg(test)]
mod tests {
    use super::CacheKey;

    #[test]
    fn parts_are_delimited_and_chained() {
        let root = CacheKey::root("scratch");
        assert_ne!(root.then(&[("a", "bc")]), root.then(&[("ab", "c")]));
        assert_eq!(root.then(&[("run", "x")]), root.then(&[("run", "x")]));
        let other = CacheKey::root("sha256:00");
        assert_ne!(root.then(&[("run", "x")]), other.then(&[("run", "x")]));
    }
}
