//! The OCI image spec documents (descriptor, manifest, index, image config, layout index)
//! as serde types that serialise deterministically.
//!
//! Why not `oci_spec`: it keeps annotations and labels in `HashMap`s, so the same config
//! serialises to different bytes from run to run, and a reproducible build needs the same
//! bytes for the same image. Here maps are `BTreeMap`s (sorted keys) and every document keeps
//! the fields it does not model in `extra`, so Docker's extensions (`Healthcheck`,
//! `OnBuild`, `container_config`, …) survive a round trip. Stored documents are never
//! re-serialised anyway: blobs keep the exact bytes they arrived with.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Digest, Error, Result, media_type};

pub type Annotations = BTreeMap<String, String>;
type Extra = BTreeMap<String, Value>;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

impl Descriptor {
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest,
            size,
            urls: None,
            annotations: None,
            platform: None,
            artifact_type: None,
            data: None,
        }
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }

    pub fn set_annotation(&mut self, key: &str, value: impl Into<String>) {
        self.annotations
            .get_or_insert_with(Default::default)
            .insert(key.to_string(), value.into());
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform of this machine, in Go's GOOS/GOARCH names as images use them.
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "x86" => ("386", None),
            "arm" => ("arm", Some("v7")),
            "powerpc64" => ("ppc64le", None),
            "s390x" => ("s390x", None),
            "riscv64" => ("riscv64", None),
            other => (other, None),
        };
        Platform {
            architecture: architecture.to_string(),
            os: "linux".to_string(),
            os_version: None,
            os_features: None,
            variant: variant.map(str::to_string),
        }
    }

    /// `os/arch[/variant]`, as `--platform` takes it (`linux/arm64/v8`, `linux/amd64`).
    pub fn parse(text: &str) -> Result<Platform> {
        let parts: Vec<&str> = text.split('/').collect();
        let bad = || Error::BadImage {
            what: format!("platform {text:?}"),
            detail: "expected os/arch or os/arch/variant, e.g. linux/arm64".into(),
        };
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        Ok(Platform {
            os: parts[0].to_string(),
            architecture: parts[1].to_string(),
            os_version: None,
            os_features: None,
            variant: parts.get(2).map(|v| v.to_string()),
        })
    }

    /// Does an image for `self` run on `host`? Variants only matter when both name one.
    pub fn matches(&self, host: &Platform) -> bool {
        self.os == host.os
            && self.architecture == host.architecture
            && match (&self.variant, &host.variant) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

/// An image manifest, OCI or Docker schema2 (they share one shape).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    /// Optional in OCI (umoci leaves it out), required by Docker schema2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
}

/// An image index (OCI) or manifest list (Docker), and the layout's `index.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
}

impl Index {
    /// The manifest for `platform`; or, when the index holds a single image (attestation
    /// entries, `unknown/unknown`, aside), that one.
    pub fn select(&self, platform: &Platform) -> Option<&Descriptor> {
        let images: Vec<_> = self
            .manifests
            .iter()
            .filter(|d| d.platform.as_ref().is_none_or(|p| p.os != "unknown"))
            .collect();
        images
            .iter()
            .find(|d| d.platform.as_ref().is_some_and(|p| p.matches(platform)))
            .or(if images.len() == 1 {
                images.first()
            } else {
                None
            })
            .copied()
    }
}

impl Default for Index {
    fn default() -> Index {
        Index {
            schema_version: 2,
            media_type: Some(media_type::OCI_INDEX.to_string()),
            artifact_type: None,
            manifests: Vec::new(),
            subject: None,
            annotations: None,
        }
    }
}

/// The image configuration (OCI `application/vnd.oci.image.config.v1+json`, which
/// Docker's `application/vnd.docker.container.image.v1+json` extends).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<RunConfig>,
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The `config` member: how a container of this image runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl RunConfig {
    /// Docker's `Healthcheck` (kept in `extra`, so configs round-trip byte for byte);
    /// `None` when absent, `null` or not an object of the expected shape.
    pub fn healthcheck(&self) -> Option<Healthcheck> {
        self.extra_get("Healthcheck")
    }

    pub fn set_healthcheck(&mut self, healthcheck: Option<Healthcheck>) {
        self.extra_set("Healthcheck", healthcheck);
    }

    /// Docker's `OnBuild` triggers, as written after `ONBUILD`.
    pub fn on_build(&self) -> Vec<String> {
        self.extra_get("OnBuild").unwrap_or_default()
    }

    /// Set the triggers; an empty list removes the field (docker omits it).
    pub fn set_on_build(&mut self, triggers: Vec<String>) {
        self.extra_set("OnBuild", (!triggers.is_empty()).then_some(triggers));
    }

    /// Docker's `Shell` (the SHELL instruction); `None` means the default `/bin/sh -c`.
    pub fn shell(&self) -> Option<Vec<String>> {
        self.extra_get::<Vec<String>>("Shell")
            .filter(|s| !s.is_empty())
    }

    pub fn set_shell(&mut self, shell: Option<Vec<String>>) {
        self.extra_set("Shell", shell.filter(|s| !s.is_empty()));
    }

    /// Docker's `ArgsEscaped` (meaningful on Windows only; BuildKit sets it with CMD).
    pub fn args_escaped(&self) -> bool {
        self.extra_get("ArgsEscaped").unwrap_or(false)
    }

    pub fn set_args_escaped(&mut self, escaped: bool) {
        self.extra_set("ArgsEscaped", escaped.then_some(true));
    }

    fn extra_get<T: serde::de::DeserializeOwned>(&self, key: &str) -> Option<T> {
        let value = self.extra.get(key)?;
        serde_json::from_value(value.clone()).ok()
    }

    /// `None` removes the field, as Go's `omitempty` leaves it out.
    fn extra_set<T: Serialize>(&mut self, key: &str, value: Option<T>) {
        match value.map(|v| serde_json::to_value(v).expect("config fields always serialise")) {
            Some(v) => self.extra.insert(key.to_string(), v),
            None => self.extra.remove(key),
        };
    }
}

/// Docker's `config.Healthcheck`: the test (`["NONE"]`, `["CMD", arg…]` or
/// `["CMD-SHELL", command]`), durations in nanoseconds, retries; zero means "inherit" and,
/// as Go's `omitempty` does, is left out.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// The `oci-layout` file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciLayout {
    pub image_layout_version: String,
}

/// Parse a JSON document, naming it in the error.
pub fn from_json<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::json(what, e))
}

/// Serialise a document the way kiln stores it: compact, keys in a fixed order.
pub fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("spec documents always serialise")
}

/// What a manifest-ish document is, from its `mediaType` or, when that is absent (umoci,
/// some OCI tools), from its shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocumentKind {
    Manifest,
    Index,
}

pub fn document_kind(bytes: &[u8], declared: Option<&str>, what: &str) -> Result<DocumentKind> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<Value>,
        config: Option<Value>,
    }
    let probe: Probe = from_json(bytes, what)?;
    let media = probe.media_type.as_deref().or(declared);
    // A type that the content contradicts is an error here, or the document would be read
    // as the wrong kind and fail later with a misleading message (an "index" with no
    // platforms, a "manifest" with no layers).
    let contradiction = match media {
        Some(m)
            if media_type::is_index(m) && probe.manifests.is_none() && probe.config.is_some() =>
        {
            Some((m, "an image manifest (it has a config and no manifests)"))
        }
        Some(m)
            if media_type::is_manifest(m)
                && probe.config.is_none()
                && probe.manifests.is_some() =>
        {
            Some((m, "an index (it has manifests and no config)"))
        }
        _ => None,
    };
    if let Some((m, actual)) = contradiction {
        return Err(Error::BadImage {
            what: what.to_string(),
            detail: format!("its media type is {m}, but the document is {actual}"),
        });
    }
    match media {
        Some(m) if media_type::is_manifest(m) => Ok(DocumentKind::Manifest),
        Some(m) if media_type::is_index(m) => Ok(DocumentKind::Index),
        _ if probe.manifests.is_some() => Ok(DocumentKind::Index),
        _ if probe.config.is_some() => Ok(DocumentKind::Manifest),
        _ => Err(Error::BadImage {
            what: what.to_string(),
            detail: format!(
                "not an image manifest or index (media type {})",
                media.unwrap_or("absent")
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keeps_unknown_fields_and_sorts_labels() {
        let json = br#"{"architecture":"amd64","os":"linux","config":{"Labels":{"b":"2","a":"1"},"Healthcheck":{"Test":["NONE"]}},"rootfs":{"type":"layers","diff_ids":[]},"container_config":{"Hostname":"x"}}"#;
        let config: ImageConfig = from_json(json, "config").unwrap();
        let again = String::from_utf8(to_json(&config)).unwrap();
        assert!(again.contains(r#""Labels":{"a":"1","b":"2"}"#), "{again}");
        assert!(again.contains("Healthcheck"));
        assert!(again.contains("container_config"));
    }

    #[test]
    fn docker_extensions_read_and_write_through_extra() {
        // An explicit null (docker's classic builder writes `"OnBuild":null`) survives a
        // round trip. (Objects inside `extra` come back with sorted keys, as any `Value`.)
        let json = br#"{"Cmd":["sh"],"Healthcheck":{"Interval":1000000000,"Test":["CMD","true"]},"OnBuild":null,"Shell":["/bin/ash","-c"]}"#;
        let mut config: RunConfig = from_json(json, "config").unwrap();
        assert_eq!(to_json(&config), json.to_vec());
        assert_eq!(config.on_build(), Vec::<String>::new());
        assert_eq!(config.shell().unwrap(), ["/bin/ash", "-c"]);
        let check = config.healthcheck().unwrap();
        assert_eq!(check.interval, Some(1_000_000_000));
        assert!(!config.args_escaped());

        config.set_on_build(vec!["RUN x".into()]);
        config.set_args_escaped(true);
        config.set_shell(None);
        config.set_healthcheck(Some(Healthcheck {
            test: Some(vec!["NONE".into()]),
            ..Healthcheck::default()
        }));
        assert_eq!(
            String::from_utf8(to_json(&config)).unwrap(),
            r#"{"Cmd":["sh"],"ArgsEscaped":true,"Healthcheck":{"Test":["NONE"]},"OnBuild":["RUN x"]}"#
        );
        config.set_on_build(Vec::new());
        assert!(!config.extra.contains_key("OnBuild"));
    }

    #[test]
    fn manifest_without_media_type_is_recognised() {
        let d = Digest::of(b"{}");
        let json = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{}","digest":"{d}","size":2}},"layers":[]}}"#,
            media_type::OCI_CONFIG
        );
        assert_eq!(
            document_kind(json.as_bytes(), None, "m").unwrap(),
            DocumentKind::Manifest
        );
        let m: Manifest = from_json(json.as_bytes(), "m").unwrap();
        assert_eq!(m.media_type, None);
    }
}
