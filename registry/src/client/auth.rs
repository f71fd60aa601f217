//! Authentication per registry host: Basic credentials, or bearer tokens fetched from the
//! challenge's realm and cached per scope (the Docker token flow), dropped and fetched
//! again when the registry refuses them.

use std::{collections::HashMap, time::Duration};

use base64::{Engine, engine::general_purpose::STANDARD};
use reqwest::StatusCode;

use super::{
    ClientError, Credentials, Result,
    bodies::{TOKEN_LIMIT, error_message, read_capped},
    origin, timeouts,
};

/// What a request needs: pull (and maybe push) on a repository, and pull on the
/// repository a blob is mounted from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Access {
    pub repository: String,
    pub push: bool,
    pub mount_from: Option<String>,
}

impl Access {
    pub fn pull(repository: &str) -> Access {
        Access {
            repository: repository.to_string(),
            push: false,
            mount_from: None,
        }
    }

    pub fn push(repository: &str) -> Access {
        Access {
            push: true,
            ..Access::pull(repository)
        }
    }

    /// The token scopes for this access, plus the one the registry's challenge named.
    pub fn scopes(&self, challenged: Option<&str>) -> Vec<String> {
        let actions = if self.push { "pull,push" } else { "pull" };
        let mut scopes = Vec::new();
        // No repository (the `GET /v2/` ping of a login) asks for no repository scope:
        // `repository::pull` is not a valid scope, and a token service may refuse it.
        if !self.repository.is_empty() {
            scopes.push(format!("repository:{}:{actions}", self.repository));
        }
        if let Some(from) = &self.mount_from {
            scopes.push(format!("repository:{from}:pull"));
        }
        for scope in challenged.into_iter().flat_map(str::split_whitespace) {
            if !scopes.iter().any(|s| s == scope) {
                scopes.push(scope.to_string());
            }
        }
        scopes
    }

    /// A request with less access can use the token of one with more.
    fn covered_by(&self, other: &Access) -> bool {
        self.repository == other.repository
            && (!self.push || other.push)
            && (self.mount_from.is_none() || self.mount_from == other.mount_from)
    }
}

#[derive(Default)]
pub(super) struct HostAuth {
    basic: Option<String>,
    tokens: HashMap<Access, String>,
}

impl HostAuth {
    /// The `Authorization` value for a request, if we have one.
    pub(super) fn header(&self, access: &Access) -> Option<String> {
        let token = self.tokens.get(access).or_else(|| {
            self.tokens
                .iter()
                .find(|(held, _)| access.covered_by(held))
                .map(|(_, t)| t)
        });
        match token {
            Some(token) => Some(format!("Bearer {token}")),
            None => self.basic.clone(),
        }
    }

    pub(super) fn use_basic(&mut self, credentials: Credentials) {
        let pair = format!("{}:{}", credentials.username, credentials.password);
        self.basic = Some(format!("Basic {}", STANDARD.encode(pair)));
    }

    /// Replaces any token held for this access: a refused token is never sent twice.
    pub(super) fn store_token(&mut self, access: &Access, token: String) {
        self.tokens.retain(|held, _| !held.covered_by(access));
        self.tokens.insert(access.clone(), token);
    }
}

/// `GET realm?service=…&scope=…` with Basic credentials when we have them (anonymous
/// otherwise); the answer carries `token` or `access_token`. The realm is the one `host`
/// itself named (as docker does, it may be on another host); only http and https.
pub(super) async fn fetch_token(
    http: &reqwest::Client,
    read_timeout: Duration,
    host: &str,
    realm: &str,
    service: Option<&str>,
    scopes: &[String],
    credentials: Option<&Credentials>,
) -> Result<String> {
    let mut query: Vec<(&str, &str)> = Vec::new();
    if let Some(service) = service {
        query.push(("service", service));
    }
    for scope in scopes {
        query.push(("scope", scope));
    }
    if let Some(c) = credentials {
        query.push(("account", &c.username));
    }
    let action = format!("a token request to {realm}");
    let url = reqwest::Url::parse(realm).map_err(|e| ClientError::Protocol {
        host: host.to_string(),
        action: action.clone(),
        detail: format!("the realm is not a URL: {e}"),
    })?;
    origin::check_scheme(&url, host, &action)?;
    let realm_host = origin::host_of(&url);
    let mut request = http.get(url).query(&query);
    if let Some(c) = credentials {
        request = request.basic_auth(&c.username, Some(&c.password));
    }
    let request = request
        .build()
        .map_err(|e| ClientError::Usage(format!("{action}: {e}")))?;
    let response = timeouts::exchange(http, request, read_timeout, &realm_host, &action).await?;
    let status = response.status();
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Err(ClientError::Unauthorized {
            host: host.to_string(),
            message: format!(
                "the token service refused: {}",
                error_message(response, &realm_host, &action).await?
            ),
            have_credentials: credentials.is_some(),
        });
    }
    if !status.is_success() {
        return Err(ClientError::Protocol {
            host: host.to_string(),
            action: action.clone(),
            detail: format!(
                "status {status}: {}",
                error_message(response, &realm_host, &action).await?
            ),
        });
    }
    #[derive(serde::Deserialize)]
    struct TokenResponse {
        token: Option<String>,
        access_token: Option<String>,
    }
    let body = read_capped(
        response,
        TOKEN_LIMIT,
        &realm_host,
        &format!("its answer to {action}"),
    )
    .await?;
    let parsed: TokenResponse =
        serde_json::from_slice(&body).map_err(|e| ClientError::Protocol {
            host: host.to_string(),
            action: action.clone(),
            detail: format!("the answer is not a token document: {e}"),
        })?;
    parsed
        .token
        .or(parsed.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ClientError::Protocol {
            host: host.to_string(),
            action,
            detail: "the answer holds no token".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_add_mount_source_and_challenge() {
        let mut access = Access::push("team/app");
        access.mount_from = Some("team/base".into());
        assert_eq!(
            access.scopes(Some("repository:team/app:pull,push registry:catalog:*")),
            vec![
                "repository:team/app:pull,push",
                "repository:team/base:pull",
                "registry:catalog:*"
            ]
        );
    }

    #[test]
    fn the_login_ping_asks_for_no_repository_scope() {
        assert!(Access::pull("").scopes(None).is_empty());
        assert_eq!(
            Access::pull("").scopes(Some("registry:catalog:*")),
            vec!["registry:catalog:*"]
        );
    }

    #[test]
    fn push_token_serves_pulls_but_not_the_reverse() {
        let mut auth = HostAuth::default();
        auth.store_token(&Access::pull("a"), "p".into());
        assert_eq!(auth.header(&Access::push("a")), None);
        auth.store_token(&Access::push("a"), "pp".into());
        assert_eq!(
            auth.header(&Access::pull("a")).as_deref(),
            Some("Bearer pp")
        );
        assert_eq!(auth.header(&Access::pull("b")), None);
    }
}
