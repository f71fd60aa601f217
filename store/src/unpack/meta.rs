//! `Meta`: what an entry says about mode, owner, mtime and xattrs, read leniently where
//! docker is lenient (an empty numeric field is 0) and with PAX times to the nanosecond.

use std::io::{self, Read};

use super::OverlayXattrs;
use crate::{Error, Result, tar_check::tar_error};

/// mode, owner, mtime (seconds, nanoseconds) and xattrs of one entry.
pub(super) struct Meta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, u32),
    pub xattrs: Vec<(String, Vec<u8>)>,
}

impl Meta {
    pub fn of<R: Read>(entry: &mut tar::Entry<'_, R>, what: &str) -> Result<Meta> {
        let mut xattrs = Vec::new();
        let mut pax_mtime = None;
        let exts = entry.pax_extensions().map_err(|e| tar_error(what, e))?;
        for ext in exts.into_iter().flatten() {
            let ext = ext.map_err(|e| tar_error(what, e))?;
            let Ok(key) = ext.key() else { continue };
            if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                if !OverlayXattrs::is_overlay_xattr(name) {
                    xattrs.push((name.to_string(), ext.value_bytes().to_vec()));
                }
            } else if key == "mtime" {
                pax_mtime = ext.value().ok().and_then(parse_pax_time);
            }
        }
        let h = entry.header();
        let bad = |field: &str, e: io::Error| Error::BadTar {
            what: what.to_string(),
            detail: format!(
                "{:?} has an unreadable {field}: {e}",
                String::from_utf8_lossy(&entry.path_bytes())
            ),
        };
        let id = |v: u64, field: &str| {
            u32::try_from(v).map_err(|_| bad(field, io::Error::other("out of range")))
        };
        // An empty numeric field reads as 0, as Go's archive/tar (docker) reads it.
        let old = h.as_old();
        let number = |field: &[u8], value: io::Result<u64>, name: &str| {
            if field.iter().all(|&b| b == 0 || b == b' ') {
                Ok(0)
            } else {
                value.map_err(|e| bad(name, e))
            }
        };
        let mtime = match pax_mtime {
            Some(t) => t,
            None => {
                let secs = number(&old.mtime, h.mtime(), "mtime")?;
                (i64::try_from(secs).unwrap_or(i64::MAX), 0)
            }
        };
        Ok(Meta {
            mode: number(&old.mode, h.mode().map(u64::from), "mode")? as u32 & 0o7777,
            uid: id(number(&old.uid, h.uid(), "uid")?, "uid")?,
            gid: id(number(&old.gid, h.gid(), "gid")?, "gid")?,
            mtime,
            xattrs,
        })
    }
}

/// A PAX time, `SECONDS[.FRACTION]`.
pub(super) fn parse_pax_time(value: &str) -> Option<(i64, u32)> {
    let (secs, frac) = value.split_once('.').unwrap_or((value, ""));
    let secs: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    let nanos = if digits.is_empty() {
        0
    } else {
        digits.parse::<u32>().ok()? * 10u32.pow(9 - digits.len() as u32)
    };
    // A negative fraction counts back from the second: -1.5 is 1.5 s before the epoch.
    Some(if secs < 0 && nanos > 0 {
        (secs - 1, 1_000_000_000 - nanos)
    } else {
        (secs, nanos)
    })
}
