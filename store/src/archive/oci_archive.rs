//! `oci-archive:` tarballs as skopeo reads and writes them: an OCI image layout in one
//! tar. `pack_layout` writes one from a layout directory; `unpack_layout` reads one into
//! a layout, checking every blob against its name. Files beside the layout (the
//! `manifest.json` and `repositories` of a `kiln save` or `docker save` archive) are
//! allowed and skipped, as the image-layout spec allows them.

use std::io::{self, Read, Write};

use super::{
    INDEX_JSON, OCI_LAYOUT,
    save::{append_blob, append_bytes, append_dir},
};
use crate::{
    Digest, Error, ImageLayout, Index, Result,
    error::IoContext,
    media_type, normalise_path, open_tar_stream,
    spec::{self, OciLayout},
    tar_check::tar_error,
};

/// `index.json` and `oci-layout` are read whole; refuse absurd ones.
const METADATA_LIMIT: u64 = 64 << 20;

/// Write the layout's `oci-layout`, `index.json` and every blob it holds, sorted, with
/// the given mtime: the same layout gives the same bytes.
pub fn pack_layout<W: Write>(layout: &ImageLayout, out: W, mtime: u64) -> Result<W> {
    let mut tar = tar::Builder::new(out);
    let marker = spec::to_json(&OciLayout {
        image_layout_version: media_type::OCI_LAYOUT_VERSION.to_string(),
    });
    append_bytes(&mut tar, OCI_LAYOUT, &marker, mtime)?;
    append_bytes(
        &mut tar,
        INDEX_JSON,
        &spec::to_json(&layout.index()?),
        mtime,
    )?;
    append_dir(&mut tar, "blobs/", mtime)?;
    append_dir(&mut tar, "blobs/sha256/", mtime)?;
    let mut blobs = layout.blobs().list()?;
    blobs.sort();
    for digest in blobs {
        append_blob(&mut tar, layout.blobs(), &digest, mtime)?;
    }
    tar.into_inner().ctx(|| "finishing the archive".into())
}

/// Read an OCI archive (plain, gzip or zstd) into `layout`. Blobs are streamed and
/// become visible only once they hash to their file name; `index.json` is written last,
/// after every manifest it names arrived. Entries outside `oci-layout`, `index.json` and
/// `blobs/` are skipped unread; inside `blobs/` only directories and blob files may be.
pub fn unpack_layout<R: Read + Send>(layout: &ImageLayout, input: R, what: &str) -> Result<()> {
    let (_, reader) = open_tar_stream(input, what)?;
    let mut archive = tar::Archive::new(reader);
    let mut index: Option<Index> = None;
    let mut seen_marker = false;
    for entry in archive.entries().map_err(|e| tar_error(what, e))? {
        let mut entry = entry.map_err(|e| tar_error(what, e))?;
        let raw = entry.path_bytes().into_owned();
        let path = String::from_utf8_lossy(&normalise_path(&raw)).into_owned();
        let kind = entry.header().entry_type();
        let in_layout = path == OCI_LAYOUT || path == INDEX_JSON || path.starts_with("blobs/");
        if !in_layout || (kind.is_dir() && (path == "blobs" || path == "blobs/sha256")) {
            continue;
        }
        if !kind.is_file() {
            return Err(Error::archive(
                what,
                format!("{path:?} is not a regular file (an OCI archive holds only files)"),
            ));
        }
        match path.as_str() {
            OCI_LAYOUT => {
                let doc: OciLayout = spec::from_json(&read_small(&mut entry, what, &path)?, what)?;
                if doc.image_layout_version != media_type::OCI_LAYOUT_VERSION {
                    return Err(Error::archive(
                        what,
                        format!(
                            "imageLayoutVersion {} is not supported",
                            doc.image_layout_version
                        ),
                    ));
                }
                seen_marker = true;
            }
            INDEX_JSON => {
                index = Some(spec::from_json(
                    &read_small(&mut entry, what, &path)?,
                    what,
                )?);
            }
            _ => {
                let hex = path.strip_prefix("blobs/sha256/").ok_or_else(|| {
                    Error::archive(what, format!("{path:?} is not part of an OCI image layout"))
                })?;
                let expected = Digest::from_hex(hex)?;
                let size = entry.size();
                let mut writer = layout.blobs().writer()?;
                let copied = copy_entry(&mut entry, &mut writer, what)?;
                if copied != size {
                    return Err(Error::Truncated {
                        what: what.to_string(),
                        detail: format!(
                            "{path:?} should hold {size} bytes, the archive ends after {copied}"
                        ),
                    });
                }
                writer.finish()?.commit(layout.blobs(), Some(&expected))?;
            }
        }
    }
    let index = index.ok_or_else(|| {
        let docker = if seen_marker {
            ""
        } else {
            " (a Docker archive is read with docker-archive:)"
        };
        Error::archive(
            what,
            format!("it has no index.json, so it is not an OCI image layout{docker}"),
        )
    })?;
    if !seen_marker {
        return Err(Error::MissingFile {
            archive: what.to_string(),
            file: OCI_LAYOUT.into(),
        });
    }
    for entry in &index.manifests {
        if !layout.blobs().contains(&entry.digest) {
            return Err(Error::MissingFile {
                archive: what.to_string(),
                file: format!("blobs/sha256/{}", entry.digest.hex()),
            });
        }
    }
    layout.update_index(|current| {
        *current = index;
        Ok(())
    })
}

/// Copy an entry into a blob writer, telling a failed read of the archive from a failed
/// write of the blob (a full disk is not a broken archive).
fn copy_entry(entry: &mut impl Read, writer: &mut impl Write, what: &str) -> Result<u64> {
    let mut buffer = vec![0u8; 256 << 10];
    let mut copied = 0u64;
    loop {
        let n = match entry.read(&mut buffer) {
            Ok(0) => return Ok(copied),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(tar_error(what, e)),
        };
        writer
            .write_all(&buffer[..n])
            .ctx(|| format!("writing a blob of {what} into the layout"))?;
        copied += n as u64;
    }
}

fn read_small(entry: &mut impl Read, what: &str, path: &str) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    entry
        .take(METADATA_LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| tar_error(what, e))?;
    if bytes.len() as u64 > METADATA_LIMIT {
        return Err(Error::archive(
            what,
            format!("{path} is larger than 64 MiB"),
        ));
    }
    Ok(bytes)
}
