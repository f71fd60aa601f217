//! `Reference`: an image name as docker spells it (`busybox`, `host:5000/team/app:1.2@sha256:…`),
//! normalised with docker's rules (default registry `docker.io`, `library/` for one-word names,
//! tag `latest` when neither tag nor digest is given).

use std::{fmt, str::FromStr};

use crate::{Digest, Error, Result};

pub const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
pub const DEFAULT_TAG: &str = "latest";
const NAME_TOTAL_LENGTH_MAX: usize = 255;

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parse and normalise, adding the `latest` tag when neither tag nor digest is given.
    pub fn parse(input: &str) -> Result<Reference> {
        let mut reference = Self::parse_exact(input)?;
        if reference.tag.is_none() && reference.digest.is_none() {
            reference.tag = Some(DEFAULT_TAG.to_string());
        }
        Ok(reference)
    }

    /// Parse and normalise the name, but keep tag and digest exactly as given.
    pub fn parse_exact(input: &str) -> Result<Reference> {
        let invalid = |reason: &str| Error::InvalidReference {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        if input.is_empty() {
            return Err(invalid("the reference is empty"));
        }
        // `https://host:5000/app:1` would read as host "https" with an empty port.
        if let Some((scheme, rest)) = input.split_once("://") {
            return Err(invalid(&format!(
                "an image reference has no {scheme}:// in front: write {rest}"
            )));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => (
                rest,
                Some(
                    digest
                        .parse::<Digest>()
                        .map_err(|e| invalid(&e.to_string()))?,
                ),
            ),
            None => (input, None),
        };
        // A tag follows the last ':' that comes after the last '/' (a ':' before it is a port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            validate_tag(tag).map_err(|r| invalid(&r))?;
        }
        let (domain, path) = split_domain(name);
        // Docker counts the normalised name (`docker.io/library/…`), so that every name
        // kiln prints parses again.
        if domain.len() + 1 + path.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(invalid("the repository name is longer than 255 characters"));
        }
        validate_domain(&domain).map_err(|r| invalid(&r))?;
        validate_path(&path).map_err(|r| invalid(&r))?;
        Ok(Reference {
            domain,
            path,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `docker.io/library/busybox`
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// `busybox` for official images, `team/app` on docker.io, the full name elsewhere.
    /// `library/` goes only in front of a one-component name, as docker does: without it
    /// `library/a/b` would read back as `docker.io/a/b`, another image.
    pub fn familiar_repository(&self) -> String {
        if self.domain != DEFAULT_DOMAIN {
            return self.repository();
        }
        match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
            Some(official) if !official.contains('/') => official.to_string(),
            _ => self.path.clone(),
        }
    }

    /// The short form docker prints: `busybox:latest`.
    pub fn familiar(&self) -> String {
        self.with_suffix(self.familiar_repository())
    }

    pub fn with_tag(&self, tag: &str) -> Result<Reference> {
        validate_tag(tag).map_err(|reason| Error::InvalidReference {
            input: tag.to_string(),
            reason,
        })?;
        Ok(Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        })
    }

    fn with_suffix(&self, mut name: String) -> String {
        if let Some(tag) = &self.tag {
            name.push(':');
            name.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            name.push('@');
            name.push_str(&digest.to_string());
        }
        name
    }
}

/// Docker's rule: the first component names a registry host when it holds a '.' or a
/// ':', is `localhost`, or has upper-case letters; otherwise the image lives on docker.io.
fn split_domain(name: &str) -> (String, String) {
    let (domain, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_lowercase() != first =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    let domain = if domain == LEGACY_DEFAULT_DOMAIN {
        DEFAULT_DOMAIN.to_string()
    } else {
        domain
    };
    let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
        format!("{OFFICIAL_REPO_PREFIX}{path}")
    } else {
        path
    };
    (domain, path)
}

fn validate_domain(domain: &str) -> std::result::Result<(), String> {
    let (host, port) = match domain.rsplit_once(':') {
        Some((host, port)) if !host.starts_with('[') || host.ends_with(']') => (host, Some(port)),
        _ => (domain, None),
    };
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("{port:?} is not a port number"));
    }
    if host.starts_with('[') && host.ends_with(']') {
        return Ok(()); // IPv6 literal
    }
    for label in host.split('.') {
        let ok = !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!("{host:?} is not a valid registry host"));
        }
    }
    Ok(())
}

/// Path components: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, joined by '/'.
pub fn validate_path(path: &str) -> std::result::Result<(), String> {
    for component in path.split('/') {
        if !is_path_component(component) {
            return Err(format!(
                "{component:?} is not a valid repository name component \
                 (lowercase letters, digits and single separators . _ __ -)"
            ));
        }
    }
    Ok(())
}

fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// Tags: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn validate_tag(tag: &str) -> std::result::Result<(), String> {
    let b = tag.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{tag:?} is not a valid tag (up to 128 of A-Z a-z 0-9 _ . -, not starting with . or -)"
        ))
    }
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(s: &str) -> Result<Reference> {
        Reference::parse(s)
    }
}

/// The full normalised form: `docker.io/library/busybox:latest`.
impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.with_suffix(self.repository()))
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_docker() {
        for (input, full, familiar) in [
            (
                "busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            (
                "busybox:1.36",
                "docker.io/library/busybox:1.36",
                "busybox:1.36",
            ),
            ("team/app:v1", "docker.io/team/app:v1", "team/app:v1"),
            (
                "index.docker.io/library/x",
                "docker.io/library/x:latest",
                "x:latest",
            ),
            (
                "localhost/app",
                "localhost/app:latest",
                "localhost/app:latest",
            ),
            (
                "localhost:5000/a/b/c:t",
                "localhost:5000/a/b/c:t",
                "localhost:5000/a/b/c:t",
            ),
            (
                "127.0.0.1:5000/app",
                "127.0.0.1:5000/app:latest",
                "127.0.0.1:5000/app:latest",
            ),
            (
                "registry.example/app:1.2",
                "registry.example/app:1.2",
                "registry.example/app:1.2",
            ),
            (
                "ab__c/e--f.g",
                "docker.io/ab__c/e--f.g:latest",
                "ab__c/e--f.g:latest",
            ),
            (
                "library/a/b",
                "docker.io/library/a/b:latest",
                "library/a/b:latest",
            ),
        ] {
            let r = Reference::parse(input).unwrap();
            assert_eq!(r.to_string(), full, "{input}");
            assert_eq!(r.familiar(), familiar, "{input}");
            assert_eq!(Reference::parse(&r.to_string()).unwrap(), r);
        }
    }

    #[test]
    fn the_longest_accepted_name_prints_back() {
        // Found by the `names` fuzz target: a 250-character name was accepted and printed
        // as docker.io/library/… (268 characters), which no longer parsed.
        let longest = "a".repeat(255 - "docker.io/library/".len());
        let r = Reference::parse(&longest).unwrap();
        assert_eq!(Reference::parse(&r.to_string()).unwrap(), r);
        assert!(Reference::parse(&format!("{longest}a")).is_err());
    }

    #[test]
    fn keeps_digests() {
        let d = Digest::of(b"x");
        let r = Reference::parse(&format!("busybox@{d}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest(), Some(&d));
        let r = Reference::parse(&format!("h:1/busybox:t@{d}")).unwrap();
        assert_eq!(r.domain(), "h:1");
        assert_eq!(r.tag(), Some("t"));
    }

    #[test]
    fn rejects_invalid_names_and_tags() {
        for input in [
            "",
            "Busybox",
            "busy box",
            "a/-b",
            "a//b",
            "a/b:",
            "a:-tag",
            "a:.tag",
            "a@sha256:abc",
            "host:port/x",
            &format!("a:{}", "t".repeat(129)),
            &"a".repeat(256),
            // 255 as given, but 273 once normalised to docker.io/library/…
            &"a".repeat(255),
        ] {
            assert!(
                Reference::parse(input).is_err(),
                "{input:?} should be rejected"
            );
        }
    }
}
