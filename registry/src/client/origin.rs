//! Where credentials may go. A registry is reached at one origin (scheme, host, port);
//! its credentials and tokens are attached only to requests for that origin, and a
//! challenge is answered only when that origin sent it. An upload `Location` or a redirect
//! to another host is followed without them (reqwest drops `Authorization` on a redirect
//! to another host or port; a 401 from there is an error, never a reason to send them),
//! and only http and https URLs are followed at all.

use reqwest::Url;

use super::{ClientError, Result};

/// Redirects followed per request, as browsers and reqwest do by default.
const MAX_REDIRECTS: usize = 10;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origin {
    pub(super) fn of(url: &Url) -> Origin {
        Origin {
            scheme: url.scheme().to_string(),
            host: url.host_str().unwrap_or_default().to_ascii_lowercase(),
            port: url.port_or_known_default(),
        }
    }

    /// Does `url` belong to this origin (scheme, host and port alike)?
    pub(super) fn holds(&self, url: &Url) -> bool {
        *self == Origin::of(url)
    }
}

/// `host:port` of a URL, for messages.
pub(super) fn host_of(url: &Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// Refuse anything but http and https: a registry that names `ftp://` or `file://` is
/// broken or hostile.
pub(super) fn check_scheme(url: &Url, host: &str, action: &str) -> Result<()> {
    match url.scheme() {
        "http" | "https" => Ok(()),
        other => Err(ClientError::Protocol {
            host: host.to_string(),
            action: action.to_string(),
            detail: format!(
                "it named the URL {url}; kiln follows only http and https URLs, not {other}:"
            ),
        }),
    }
}

/// `location` (an absolute URL or a path, as upload answers carry) against `base`, checked
/// to be http or https.
pub(super) fn resolve(base: &str, location: &str, host: &str, action: &str) -> Result<String> {
    let bad = |detail: String| ClientError::Protocol {
        host: host.to_string(),
        action: action.to_string(),
        detail,
    };
    let base = Url::parse(base).map_err(|e| bad(format!("{base} is not a URL: {e}")))?;
    let url = base
        .join(location)
        .map_err(|e| bad(format!("the Location {location:?} is not a URL: {e}")))?;
    check_scheme(&url, host, action)?;
    Ok(url.into())
}

tokio::task_local! {
    /// The host the request in flight was last redirected to: reqwest's errors carry the
    /// URL first asked for, and a failure after a redirect is the other host's.
    static REDIRECTED_TO: std::cell::RefCell<Option<String>>;
}

/// Run a request, keeping track of where its redirects lead (see `blamed`).
pub(super) async fn tracking_redirects<F: std::future::Future>(request: F) -> F::Output {
    REDIRECTED_TO
        .scope(std::cell::RefCell::new(None), request)
        .await
}

/// Who a failure of the request in flight is to be blamed on: `host`, or the host it
/// redirected kiln to, named as such.
pub(super) fn blamed(host: &str) -> String {
    let redirected = REDIRECTED_TO
        .try_with(|to| to.borrow().clone())
        .ok()
        .flatten();
    match redirected {
        Some(other) if other != host => format!("{other} (where {host} redirected kiln)"),
        _ => host.to_string(),
    }
}

/// reqwest's redirect rules (at most 10, `Authorization` dropped on another host or port),
/// and only to http and https.
pub(super) fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        // The policy runs in the task that sends the request (tower's redirect layer,
        // polled by it), so the task-local of `tracking_redirects` is there.
        let _ = REDIRECTED_TO.try_with(|to| *to.borrow_mut() = Some(host_of(attempt.url())));
        let scheme = attempt.url().scheme();
        if scheme != "http" && scheme != "https" {
            let message = format!(
                "redirected to {}; kiln follows only http and https URLs, not {scheme}:",
                attempt.url()
            );
            attempt.error(message)
        } else if attempt.previous().len() >= MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else {
            attempt.follow()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let origin = Origin::of(&Url::parse("https://Registry.example").unwrap());
        assert!(origin.holds(&Url::parse("https://registry.example:443/v2/x").unwrap()));
        assert!(!origin.holds(&Url::parse("http://registry.example/v2/x").unwrap()));
        assert!(!origin.holds(&Url::parse("https://registry.example:5000/v2/").unwrap()));
        assert!(!origin.holds(&Url::parse("https://other.example/v2/").unwrap()));
    }

    #[test]
    fn locations_resolve_and_other_schemes_are_refused() {
        let r = |l| resolve("http://h:1", l, "h:1", "POST");
        assert_eq!(
            r("/v2/a/blobs/uploads/x").unwrap(),
            "http://h:1/v2/a/blobs/uploads/x"
        );
        assert_eq!(r("v2/a/u?x=1").unwrap(), "http://h:1/v2/a/u?x=1");
        assert_eq!(
            r("https://other/x?_state=1").unwrap(),
            "https://other/x?_state=1"
        );
        let err = r("ftp://other/x").unwrap_err().to_string();
        assert!(
            err.contains("ftp://other/x") && err.contains("only http and https"),
            "{err}"
        );
        assert!(r("file:///etc/passwd").is_err());
    }
}
