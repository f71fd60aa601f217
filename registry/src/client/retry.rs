//! Pauses between attempts at a blob: exponential backoff with jitter, so that many
//! clients failing together do not come back together, or the registry's own
//! `Retry-After` when it sent one (bounded, so a registry cannot park a client).

use std::time::Duration;

use reqwest::{Response, StatusCode, header};

use super::ClientError;

/// The first pause; each failure in a row doubles it, up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// The longest `Retry-After` honoured; a registry asking for more is waited on this long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// How long to wait after the `failures`-th failure in a row (1 for the first): the
/// registry's `Retry-After` if the error carries one, else half the exponential step plus
/// a random part of the other half ("equal jitter": never less than half the step).
pub fn pause(failures: u32, error: &ClientError) -> Duration {
    match error {
        ClientError::RetryAfter { after, .. } => (*after).min(MAX_RETRY_AFTER),
        _ => backoff(failures),
    }
}

/// The exponential step with jitter alone.
pub fn backoff(failures: u32) -> Duration {
    let step = FIRST_BACKOFF
        .saturating_mul(1 << failures.saturating_sub(1).min(10))
        .min(MAX_BACKOFF);
    let half = step / 2;
    let mut random = [0u8; 4];
    // Without randomness the pause is still exponential, only not spread.
    let _ = getrandom::fill(&mut random);
    let fraction = f64::from(u32::from_le_bytes(random)) / f64::from(u32::MAX);
    half + half.mul_f64(fraction)
}

/// `Retry-After` of a 429 or 503 answer, in delta-seconds (what registries send; an
/// HTTP-date is ignored and the usual backoff applies).
pub fn retry_after(response: &Response) -> Option<Duration> {
    if !matches!(
        response.status(),
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    ) {
        return None;
    }
    let value = response.headers().get(header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure() -> ClientError {
        ClientError::Status {
            host: "h".into(),
            action: "GET".into(),
            status: 500,
            message: String::new(),
        }
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_bounded() {
        for failures in 1..=12 {
            let step = FIRST_BACKOFF
                .saturating_mul(1 << (failures - 1).min(10))
                .min(MAX_BACKOFF);
            let p = pause(failures, &failure());
            assert!(p >= step / 2 && p <= step, "{failures}: {p:?} for {step:?}");
        }
        let pauses: std::collections::HashSet<Duration> =
            (0..20).map(|_| pause(3, &failure())).collect();
        assert!(pauses.len() > 1, "no jitter: {pauses:?}");
    }

    #[test]
    fn retry_after_is_honoured_up_to_a_bound() {
        let asked = |secs| ClientError::RetryAfter {
            after: Duration::from_secs(secs),
            error: Box::new(failure()),
        };
        assert_eq!(pause(1, &asked(3)), Duration::from_secs(3));
        assert_eq!(pause(1, &asked(3600)), MAX_RETRY_AFTER);
    }
}
