//! The OCI error envelope, `{"errors":[{"code","message","detail"}]}`, and its codes: the
//! server answers every failure with one, the client reads the registry's words from it.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Declares the known codes once: the variant, and the code as it goes on the wire.
macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident => $code:literal,)*) => {
        /// An error code. The spec's codes, the few of Distribution's that kiln answers
        /// too, and `Other` for any a registry invents (read, kept, never refused).
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
            Other(String),
        }

        impl ErrorCode {
            /// Every known code (not `Other`).
            pub const KNOWN: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            pub fn as_str(&self) -> &str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                    ErrorCode::Other(code) => code,
                }
            }

            pub fn from_code(code: &str) -> ErrorCode {
                match code {
                    $($code => ErrorCode::$variant,)*
                    other => ErrorCode::Other(other.to_string()),
                }
            }
        }
    };
}

codes! {
    BlobUnknown => "BLOB_UNKNOWN",
    BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
    BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
    DigestInvalid => "DIGEST_INVALID",
    ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
    ManifestInvalid => "MANIFEST_INVALID",
    ManifestUnknown => "MANIFEST_UNKNOWN",
    NameInvalid => "NAME_INVALID",
    NameUnknown => "NAME_UNKNOWN",
    SizeInvalid => "SIZE_INVALID",
    Unauthorized => "UNAUTHORIZED",
    Denied => "DENIED",
    Unsupported => "UNSUPPORTED",
    TooManyRequests => "TOOMANYREQUESTS",
    /// Distribution's: a tag that breaks the grammar.
    TagInvalid => "TAG_INVALID",
    /// Distribution's: `n` above what one page may hold.
    PaginationNumberInvalid => "PAGINATION_NUMBER_INVALID",
    /// Distribution's: a `Content-Range` that cannot be served.
    RangeInvalid => "RANGE_INVALID",
    /// Distribution's: an internal error.
    Unknown => "UNKNOWN",
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        Ok(ErrorCode::from_code(&code))
    }
}

/// `{"errors":[…]}`: what every failed API call answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    pub errors: Vec<ErrorInfo>,
}

/// One error. The spec requires `code`; registries in the wild leave out any field, so
/// reading takes what is there. `detail` is any JSON (Distribution sends objects); kiln's
/// server sends a string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}

impl ErrorEnvelope {
    /// The envelope of one error, as the server answers.
    pub fn one(code: ErrorCode, message: &str, detail: &str) -> ErrorEnvelope {
        ErrorEnvelope {
            errors: vec![ErrorInfo {
                code: Some(code),
                message: message.to_string(),
                detail: serde_json::Value::String(detail.to_string()),
            }],
        }
    }

    /// The envelope in `body`, if it is one with at least one error.
    pub fn parse(body: &[u8]) -> Option<ErrorEnvelope> {
        serde_json::from_slice::<ErrorEnvelope>(body)
            .ok()
            .filter(|e| !e.errors.is_empty())
    }

    pub fn to_json(&self) -> String {
        // A struct of strings and JSON values always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_the_envelope() {
        let mut codes = ErrorCode::KNOWN.to_vec();
        codes.push(ErrorCode::Other("QUOTA_EXCEEDED".into()));
        for code in codes {
            let sent = ErrorEnvelope::one(code.clone(), "a message", "a detail");
            let json = sent.to_json();
            let value: serde_json::Value = serde_json::from_str(&json).unwrap();
            assert_eq!(
                value,
                serde_json::json!({"errors": [{
                    "code": code.as_str(), "message": "a message", "detail": "a detail",
                }]}),
                "{code}"
            );
            let read = ErrorEnvelope::parse(json.as_bytes()).unwrap();
            assert_eq!(read, sent);
            assert_eq!(read.errors[0].code.as_ref(), Some(&code));
        }
    }

    #[test]
    fn known_codes_are_distinct_and_upper_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::KNOWN {
            let s = code.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(s.chars().all(|c| c.is_ascii_uppercase() || c == '_'), "{s}");
            assert_eq!(&ErrorCode::from_code(s), code);
        }
    }

    #[test]
    fn reads_what_other_registries_send() {
        // Distribution: detail is an object; some registries leave out fields.
        let body = br#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry","detail":{"name":"x"}},{"message":"no code"},{"code":"FOO"}]}"#;
        let e = ErrorEnvelope::parse(body).unwrap();
        assert_eq!(e.errors[0].code, Some(ErrorCode::NameUnknown));
        assert_eq!(e.errors[0].detail["name"], "x");
        assert_eq!(e.errors[1].code, None);
        assert_eq!(e.errors[1].message, "no code");
        assert_eq!(e.errors[2].code, Some(ErrorCode::Other("FOO".into())));
        assert_eq!(e.errors[2].message, "");
        // Not an envelope, or an empty one: nothing to read.
        for body in [
            &b"{}"[..],
            b"{\"errors\":[]}",
            b"<html>",
            b"",
            b"{\"errors\":{}}",
        ] {
            assert_eq!(ErrorEnvelope::parse(body), None);
        }
    }
}
