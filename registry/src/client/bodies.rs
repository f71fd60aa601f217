//! Bodies kiln reads whole (error answers, token answers, manifests), each read only up to
//! a cap: a registry that sends without end gets "sent too much", not kiln's memory.

use futures::StreamExt;
use reqwest::{Response, StatusCode};

use super::{ClientError, Result};
use crate::wire::{ErrorCode, ErrorEnvelope};

/// Error answers: the OCI error envelope, or a line of text.
pub const ERROR_LIMIT: usize = 64 << 10;
/// Token answers: a JWT with its scopes is a few KiB.
pub const TOKEN_LIMIT: usize = 1 << 20;

/// The whole body, or `TooMuch` as soon as it passes `limit` (the rest is never read: the
/// connection is dropped). `what` names the body in the error.
pub(crate) async fn read_capped(
    response: Response,
    limit: usize,
    host: &str,
    what: &str,
) -> Result<Vec<u8>> {
    let too_much = || ClientError::TooMuch {
        host: host.to_string(),
        what: what.to_string(),
        limit: human(limit),
    };
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_much());
    }
    let mut bytes = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|e| ClientError::transport(host, &e))?;
        if bytes.len() + piece.len() > limit {
            return Err(too_much());
        }
        bytes.extend_from_slice(&piece);
    }
    Ok(bytes)
}

fn human(limit: usize) -> String {
    match limit {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

/// The registry's own words for a failed response to `action`: the OCI error body's codes
/// and messages, or the start of whatever text it sent. An error body that is too large,
/// or stalls, is an error of its own.
pub(crate) async fn error_message(response: Response, host: &str, action: &str) -> Result<String> {
    let status = response.status();
    let what = format!("the body of its {} answer to {action}", status.as_u16());
    let body = match read_capped(response, ERROR_LIMIT, host, &what).await {
        Ok(body) => body,
        Err(e @ (ClientError::TooMuch { .. } | ClientError::Timeout { .. })) => return Err(e),
        // A body that broke off says nothing more; the status still does.
        Err(_) => Vec::new(),
    };
    if let Some(envelope) = ErrorEnvelope::parse(&body) {
        return Ok(envelope
            .errors
            .iter()
            .map(|e| {
                let code = e.code.as_ref().map_or("", ErrorCode::as_str);
                match (code.is_empty(), e.message.is_empty()) {
                    (false, false) => format!("{code}: {}", e.message),
                    (false, true) => code.to_string(),
                    _ => e.message.clone(),
                }
            })
            .collect::<Vec<_>>()
            .join("; "));
    }
    let text = String::from_utf8_lossy(&body);
    let text = text.trim();
    Ok(
        if text.is_empty() || text.len() > 300 || text.starts_with('<') {
            status
                .canonical_reason()
                .unwrap_or("no message")
                .to_string()
        } else {
            text.to_string()
        },
    )
}

/// Map a response that is not what `action` wanted to the matching error.
pub async fn failure(host: &str, action: &str, what: &str, response: Response) -> ClientError {
    let status = response.status();
    let message = match error_message(response, host, action).await {
        Ok(message) => message,
        Err(e) => return e,
    };
    let host = host.to_string();
    match status {
        StatusCode::UNAUTHORIZED => ClientError::Unauthorized {
            host,
            message,
            have_credentials: false,
        },
        StatusCode::FORBIDDEN => ClientError::Denied {
            host,
            what: what.to_string(),
            message,
        },
        StatusCode::NOT_FOUND => ClientError::NotFound {
            host,
            what: what.to_string(),
            message,
        },
        _ => ClientError::Status {
            host,
            action: action.to_string(),
            status: status.as_u16(),
            message,
        },
    }
}
