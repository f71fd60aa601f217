//! `DockerConfig`: credentials in `~/.docker/config.json` (or `$DOCKER_CONFIG/config.json`),
//! the `auths` form docker, podman and skopeo share, so an existing `docker login` just
//! works and a `kiln login` works for them. Unknown keys are kept as they were.

use std::{
    fs,
    path::{Path, PathBuf},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{ClientError, Result};

/// Where docker keeps Docker Hub's credentials, whatever name the user typed.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ConfigFile {
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    auths: Map<String, Value>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

#[derive(Debug)]
pub struct DockerConfig {
    path: PathBuf,
    file: ConfigFile,
}

impl DockerConfig {
    /// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    pub fn default_path() -> PathBuf {
        if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|v| !v.is_empty()) {
            return PathBuf::from(dir).join("config.json");
        }
        let home = std::env::var_os("HOME").unwrap_or_else(|| "/".into());
        PathBuf::from(home).join(".docker/config.json")
    }

    /// Read the file; a missing file is an empty configuration.
    pub fn load(path: impl Into<PathBuf>) -> Result<DockerConfig> {
        let path = path.into();
        let file = match fs::read(&path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => ConfigFile::default(),
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                ClientError::Usage(format!("{} is not valid JSON: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ConfigFile::default(),
            Err(e) => return Err(ClientError::io(format!("reading {}", path.display()), e)),
        };
        Ok(DockerConfig { path, file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Credentials for a registry host (`host:port`), matching entries written with a
    /// scheme or path as docker does (`https://host:5000/v1/`).
    pub fn get(&self, registry: &str) -> Option<Credentials> {
        let wanted = config_key(registry);
        let entry = self
            .file
            .auths
            .iter()
            .find(|(key, _)| **key == wanted || hostname_of(key) == hostname_of(&wanted))?
            .1;
        if let Some(auth) = entry.get("auth").and_then(Value::as_str)
            && !auth.is_empty()
        {
            let decoded = STANDARD.decode(auth.trim()).ok()?;
            let text = String::from_utf8(decoded).ok()?;
            let (username, password) = text.split_once(':')?;
            return Some(Credentials {
                username: username.to_string(),
                password: password.trim_end_matches('\n').to_string(),
            });
        }
        // Older files keep the two apart.
        Some(Credentials {
            username: entry.get("username")?.as_str()?.to_string(),
            password: entry.get("password")?.as_str()?.to_string(),
        })
    }

    pub fn set(&mut self, registry: &str, credentials: &Credentials) {
        self.remove(registry);
        let auth = STANDARD.encode(format!("{}:{}", credentials.username, credentials.password));
        self.file
            .auths
            .insert(config_key(registry), serde_json::json!({ "auth": auth }));
    }

    /// Forget a registry's credentials; false if there were none.
    pub fn remove(&mut self, registry: &str) -> bool {
        let wanted = hostname_of(&config_key(registry)).to_string();
        let before = self.file.auths.len();
        self.file.auths.retain(|key, _| hostname_of(key) != wanted);
        self.file.auths.len() != before
    }

    /// Write the file whole under a temporary name, readable by its owner only, rename it
    /// over the old one and fsync the directory (`DurableFile`): a crash leaves the old
    /// credentials or the new, never half.
    pub fn save(&self) -> Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let ctx = |e| ClientError::io(format!("writing {}", self.path.display()), e);
        fs::create_dir_all(dir).map_err(ctx)?;
        let mut bytes = serde_json::to_vec_pretty(&self.file).expect("JSON values serialise");
        bytes.push(b'\n');
        kiln_store::write_atomically(&self.path, kiln_store::Readers::Owner, &bytes)?;
        Ok(())
    }
}

/// The key docker files a registry under.
fn config_key(registry: &str) -> String {
    match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB_KEY.to_string(),
        other => other.to_string(),
    }
}

/// `https://host:5000/v1/` → `host:5000` (docker's `ConvertToHostname`).
fn hostname_of(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    key.split('/').next().unwrap_or(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(u: &str, p: &str) -> Credentials {
        Credentials {
            username: u.into(),
            password: p.into(),
        }
    }

    #[test]
    fn round_trip_keeps_other_keys_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        fs::write(
            &path,
            r#"{"auths":{"https://other.example/v1/":{"auth":"dTpw"}},"credHelpers":{"x":"y"}}"#,
        )
        .unwrap();
        let mut config = DockerConfig::load(&path).unwrap();
        assert_eq!(config.get("other.example"), Some(creds("u", "p")));
        config.set("127.0.0.1:5000", &creds("alice", "s3:cret"));
        config.save().unwrap();

        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("credHelpers"), "{text}");
        assert!(text.contains(&STANDARD.encode("alice:s3:cret")), "{text}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );

        let mut again = DockerConfig::load(&path).unwrap();
        assert_eq!(again.get("127.0.0.1:5000"), Some(creds("alice", "s3:cret")));
        assert!(again.remove("127.0.0.1:5000"));
        assert!(!again.remove("127.0.0.1:5000"));
        assert_eq!(again.get("127.0.0.1:5000"), None);
    }

    #[test]
    fn docker_hub_names_share_one_key_and_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = DockerConfig::load(dir.path().join("none.json")).unwrap();
        assert_eq!(config.get("docker.io"), None);
        config.set("docker.io", &creds("a", "b"));
        assert_eq!(config.get("index.docker.io"), Some(creds("a", "b")));
        assert_eq!(config.get("registry-1.docker.io"), Some(creds("a", "b")));
    }

    #[test]
    fn invalid_json_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        fs::write(&path, "{not json").unwrap();
        let err = DockerConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("not valid JSON"), "{err}");
    }
}
