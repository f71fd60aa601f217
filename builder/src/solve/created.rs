//! `Clock`: the time written into history entries and the config's `created`. With
//! `SOURCE_DATE_EPOCH` set every time is that epoch (reproducible builds); otherwise a
//! step's time is when it first ran, kept by the cache, so a cached rebuild gives the same
//! image.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Clone, Debug)]
pub struct Clock {
    epoch: Option<u64>,
}

impl Clock {
    pub fn new(epoch: Option<u64>) -> Clock {
        Clock { epoch }
    }

    /// From `SOURCE_DATE_EPOCH`, as reproducible-builds.org defines it.
    pub fn from_env() -> Clock {
        Clock::new(
            std::env::var("SOURCE_DATE_EPOCH")
                .ok()
                .and_then(|v| v.trim().parse().ok()),
        )
    }

    pub fn epoch(&self) -> Option<u64> {
        self.epoch
    }

    /// RFC 3339 in UTC, seconds precision (what docker writes, less the nanoseconds).
    pub fn now(&self) -> String {
        let time = match self.epoch {
            Some(s) => UNIX_EPOCH + Duration::from_secs(s),
            None => SystemTime::now(),
        };
        humantime::format_rfc3339_seconds(time).to_string()
    }

    /// A time recorded earlier, clamped to the epoch when one is set.
    pub fn clamp(&self, recorded: &str) -> String {
        match self.epoch {
            Some(_) => self.now(),
            None => recorded.to_string(),
        }
    }
}
