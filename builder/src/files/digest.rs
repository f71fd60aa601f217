//! `input_digest`: the cache input of a transfer — sha256 over its own fields and, for
//! every file it selects, the path, type, mode, owner (tree sources only: the context's
//! owners never reach the image), link target and content. Not mtimes: COPY keeps them
//! but docker and BuildKit leave them out of the key, and so does kiln. Only selected
//! files are opened. URL sources add their checksum, else what remote.rs fetched.

use std::{
    collections::HashMap,
    fs::{File, Metadata},
    io::{self, Read},
    os::unix::fs::{MetadataExt, OpenOptionsExt},
    path::Path,
};

use sha2::{Digest as _, Sha256};

use super::{
    FilesError, Source, Transfer,
    remote::{Downloads, UrlInput},
    select::{self, Exclude, View},
};
use kiln_store::Digest;

pub fn input_digest(
    source: &Source,
    t: &Transfer,
    downloads: &mut Downloads,
) -> Result<Digest, FilesError> {
    let view = View::new(source);
    let excludes = Exclude::new(&t.exclude);
    let matches = select::select(&view, t, &excludes)?;
    let mut h = Hasher {
        sha: Sha256::new(),
        keep_owner: view.keep_owner,
        links: HashMap::new(),
    };
    h.field(t.key_fields().as_bytes());
    for m in &matches {
        h.field(b"match");
        h.field(m.pattern.as_bytes());
        h.field(m.name.as_bytes());
        if let Some((below, dirs)) = &m.parents {
            h.field(below.join("/").as_bytes());
            for d in dirs {
                h.entry(view.root, &d.rel.join("/"), &d.meta)?;
            }
        }
        h.entry(view.root, &m.rel.join("/"), &m.meta)?;
        if m.meta.is_dir() {
            select::walk(&view, m, &excludes, &mut |e| {
                h.entry(view.root, &e.rel.join("/"), e.meta)
            })?;
        }
    }
    url_fields(&mut h, t, downloads)?;
    Ok(Digest::from_hasher(h.sha))
}

/// A `--from` transfer's input: its URLs' only (the stage's key stands for its files).
pub fn url_digest(t: &Transfer, downloads: &mut Downloads) -> Result<Digest, FilesError> {
    let mut h = Hasher {
        sha: Sha256::new(),
        keep_owner: false,
        links: HashMap::new(),
    };
    url_fields(&mut h, t, downloads)?;
    Ok(Digest::from_hasher(h.sha))
}

/// Each URL with its checksum, or its fetched content's digest and Last-Modified
/// (BuildKit's http cache key; the URL is fetched here, once per build).
fn url_fields(h: &mut Hasher, t: &Transfer, downloads: &mut Downloads) -> Result<(), FilesError> {
    for url in t.urls() {
        h.field(b"url");
        h.field(url.as_bytes());
        match downloads.input(url, t.checksum.as_deref())? {
            UrlInput::Pinned(sum) => h.field(sum.to_string().as_bytes()),
            UrlInput::Fetched {
                digest,
                last_modified,
            } => {
                h.field(digest.to_string().as_bytes());
                let time = last_modified
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(String::new(), |d| d.as_secs().to_string());
                h.field(time.as_bytes());
            }
        }
    }
    Ok(())
}

struct Hasher {
    sha: Sha256,
    keep_owner: bool,
    /// Hard-linked files seen: (device, inode) to their first path.
    links: HashMap<(u64, u64), String>,
}

impl Hasher {
    /// A length-prefixed field, so that no two different inputs hash the same bytes.
    fn field(&mut self, bytes: &[u8]) {
        self.sha.update((bytes.len() as u64).to_le_bytes());
        self.sha.update(bytes);
    }

    fn entry(&mut self, root: &Path, rel: &str, meta: &Metadata) -> Result<(), FilesError> {
        self.field(rel.as_bytes());
        // Type and permission bits, setuid/setgid/sticky included.
        self.field(&meta.mode().to_le_bytes());
        if self.keep_owner {
            self.field(&meta.uid().to_le_bytes());
            self.field(&meta.gid().to_le_bytes());
        }
        let path = root.join(rel);
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = std::fs::read_link(&path).map_err(|e| FilesError::io(&path, e))?;
            self.field(target.as_os_str().as_encoded_bytes());
        } else if ft.is_file() {
            if let Some(key) = select::link_key(meta) {
                if let Some(first) = self.links.get(&key) {
                    let first = format!("link:{first}");
                    self.field(first.as_bytes());
                    return Ok(());
                }
                self.links.insert(key, rel.to_string());
            }
            let content = hash_file(&path).map_err(|e| FilesError::io(&path, e))?;
            self.field(&content);
        } else if !meta.is_dir() {
            self.field(&meta.rdev().to_le_bytes());
        }
        Ok(())
    }
}

/// sha256 of a file's content, streamed; the last component is never followed.
fn hash_file(path: &Path) -> io::Result<[u8; 32]> {
    let mut file = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
    }
    Ok(sha.finalize().into())
}
