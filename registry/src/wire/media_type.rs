//! What kind of document a manifest is: the one rule the server applies to a manifest
//! PUT and the client to a manifest GET, with the `Content-Type` the other side sent.
//!
//! 1. The document's own `mediaType`, when it has one, decides: the digest covers it, a
//!    header it does not. It must name a manifest or an index.
//! 2. A `Content-Type` counts only when it names a manifest or index type (a generic
//!    `application/json` says nothing about which), and then it must agree with a
//!    `mediaType` that is there (the spec: a pusher MUST send the manifest's `mediaType`
//!    as `Content-Type`, a puller SHOULD refuse when the two differ).
//! 3. With neither, the document's fields decide, and only when they cannot be read two
//!    ways: `manifests` alone is an OCI index, `config` without `manifests` an OCI image
//!    manifest (OCI documents may leave `mediaType` out). A document with `manifests` and
//!    `config` or `layers` is refused, as CVE-2021-41190's advisory recommends.

use kiln_store::media_type::{self, OCI_INDEX, OCI_MANIFEST};
use serde::{Deserialize, de::IgnoredAny};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaTypeError {
    #[error("not a JSON object: {0}")]
    NotJson(String),

    #[error("unsupported manifest media type {0}")]
    Unsupported(String),

    #[error("Content-Type {content_type} but mediaType {media_type}")]
    Conflict {
        content_type: String,
        media_type: String,
    },

    #[error(
        "no manifest or index media type (neither mediaType nor Content-Type names one), \
         and the document has neither `config` nor `manifests`"
    )]
    Untyped,

    #[error(
        "no manifest or index media type (neither mediaType nor Content-Type names one), \
         and the document has `manifests` beside `config` or `layers`: it could be read as \
         either"
    )]
    Ambiguous,
}

/// A `Content-Type` or `Accept` entry without its parameters (`; charset=…`) and spaces.
pub fn bare_media_type(value: &str) -> &str {
    value.split(';').next().unwrap_or(value).trim()
}

/// The media type of the manifest or index in `bytes`, sent with `content_type` (the
/// header as it came, parameters and all), by the rule above.
pub fn manifest_media_type(
    bytes: &[u8],
    content_type: Option<&str>,
) -> Result<String, MediaTypeError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<IgnoredAny>,
        config: Option<IgnoredAny>,
        layers: Option<IgnoredAny>,
    }
    // serde would read a struct from an array too: only an object is a manifest.
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(MediaTypeError::NotJson("it does not start with `{`".into()));
    }
    let probe: Probe =
        serde_json::from_slice(bytes).map_err(|e| MediaTypeError::NotJson(e.to_string()))?;
    let known = |t: &str| media_type::is_manifest(t) || media_type::is_index(t);
    let declared = content_type.map(bare_media_type).filter(|t| known(t));
    match (probe.media_type, declared) {
        (Some(m), _) if !known(&m) => Err(MediaTypeError::Unsupported(m)),
        (Some(m), Some(c)) if c != m => Err(MediaTypeError::Conflict {
            content_type: c.to_string(),
            media_type: m,
        }),
        (Some(m), _) => Ok(m),
        (None, Some(c)) => Ok(c.to_string()),
        (None, None) => match (probe.manifests, probe.config, probe.layers) {
            (Some(_), None, None) => Ok(OCI_INDEX.to_string()),
            (None, Some(_), _) => Ok(OCI_MANIFEST.to_string()),
            (None, None, _) => Err(MediaTypeError::Untyped),
            (Some(_), _, _) => Err(MediaTypeError::Ambiguous),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_store::media_type::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST};

    const FOREIGN: &str = "application/vnd.example.thing.v1+json";

    /// The document with `mediaType` set to `m` (or left out) and the given fields.
    fn doc(m: Option<&str>, fields: &str) -> String {
        let m = m.map_or(String::new(), |m| format!(r#""mediaType":"{m}","#));
        format!(r#"{{"schemaVersion":2,{m}{fields}}}"#)
    }

    /// `mediaType` (if any), the other fields, the `Content-Type` (if any), the answer.
    type Row<'a> = (
        Option<&'a str>,
        &'a str,
        Option<&'a str>,
        Result<&'a str, MediaTypeError>,
    );

    #[test]
    fn precedence_table() {
        let image = r#""config":{},"layers":[]"#;
        let index = r#""manifests":[]"#;
        use MediaTypeError::*;
        let conflict = |c: &str, m: &str| Conflict {
            content_type: c.into(),
            media_type: m.into(),
        };
        let with_charset = format!("{DOCKER_MANIFEST}; charset=utf-8");
        #[rustfmt::skip]
        let table: Vec<Row> = vec![
            // mediaType decides, with or without a Content-Type that agrees.
            (Some(OCI_MANIFEST), image, None, Ok(OCI_MANIFEST)),
            (Some(OCI_MANIFEST), image, Some(OCI_MANIFEST), Ok(OCI_MANIFEST)),
            (Some(DOCKER_MANIFEST), image, Some(&with_charset), Ok(DOCKER_MANIFEST)),
            (Some(DOCKER_MANIFEST_LIST), index, None, Ok(DOCKER_MANIFEST_LIST)),
            // ... over the fields, which it may contradict only in shape, not in kind.
            (Some(OCI_INDEX), image, None, Ok(OCI_INDEX)),
            // A generic Content-Type is no evidence; a manifest type that differs is refused.
            (Some(OCI_MANIFEST), image, Some("application/json"), Ok(OCI_MANIFEST)),
            (Some(OCI_MANIFEST), image, Some(FOREIGN), Ok(OCI_MANIFEST)),
            (Some(OCI_MANIFEST), image, Some(DOCKER_MANIFEST_LIST), Err(conflict(DOCKER_MANIFEST_LIST, OCI_MANIFEST))),
            (Some(OCI_MANIFEST), image, Some(DOCKER_MANIFEST), Err(conflict(DOCKER_MANIFEST, OCI_MANIFEST))),
            // A mediaType that is no manifest type is refused, whatever the header says.
            (Some(FOREIGN), image, None, Err(Unsupported(FOREIGN.into()))),
            (Some(FOREIGN), image, Some(OCI_MANIFEST), Err(Unsupported(FOREIGN.into()))),
            // No mediaType: a manifest Content-Type decides.
            (None, image, Some(OCI_MANIFEST), Ok(OCI_MANIFEST)),
            (None, image, Some(DOCKER_MANIFEST), Ok(DOCKER_MANIFEST)),
            (None, index, Some(OCI_INDEX), Ok(OCI_INDEX)),
            // No type anywhere: the fields, when they say one thing.
            (None, image, None, Ok(OCI_MANIFEST)),
            (None, image, Some("application/json"), Ok(OCI_MANIFEST)),
            (None, r#""config":{}"#, Some(FOREIGN), Ok(OCI_MANIFEST)),
            (None, index, None, Ok(OCI_INDEX)),
            (None, r#""layers":[]"#, None, Err(Untyped)),
            (None, r#""fsLayers":[]"#, None, Err(Untyped)),
            (None, r#""manifests":[],"config":{}"#, None, Err(Ambiguous)),
            (None, r#""manifests":[],"layers":[]"#, Some("application/json"), Err(Ambiguous)),
        ];
        for (m, fields, content_type, want) in table {
            let bytes = doc(m, fields);
            let got = manifest_media_type(bytes.as_bytes(), content_type);
            assert_eq!(
                got.as_deref().map_err(Clone::clone),
                want,
                "{bytes} with Content-Type {content_type:?}"
            );
        }
    }

    #[test]
    fn only_a_json_object_is_a_manifest() {
        for bytes in [
            &b"[]"[..],
            b"[null,null,null,null]",
            b"",
            b"{not json",
            b"\"x\"",
        ] {
            assert!(
                matches!(
                    manifest_media_type(bytes, Some(OCI_MANIFEST)),
                    Err(MediaTypeError::NotJson(_))
                ),
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
        // A mediaType that is not a string is not a manifest either.
        assert!(matches!(
            manifest_media_type(br#"{"mediaType":2}"#, None),
            Err(MediaTypeError::NotJson(_))
        ));
    }

    #[test]
    fn parameters_and_spaces_are_not_part_of_the_type() {
        assert_eq!(bare_media_type(" a/b ; charset=utf-8"), "a/b");
        assert_eq!(bare_media_type("a/b"), "a/b");
        assert_eq!(bare_media_type(""), "");
    }
}
