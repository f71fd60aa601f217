//! Transports, named as skopeo names them: `docker://REF` (a registry), `oci:DIR[:TAG]`,
//! `oci-archive:FILE[:TAG]`, `docker-archive:FILE[:REF]`, and kiln's store (`kiln:REF`,
//! or a bare reference). Archives are staged in a scratch layout under `$KILN_ROOT/tmp`:
//! a source archive is read (and verified) into it first, and a destination archive is
//! written from it afterwards, under a temporary name renamed into place at the end.

use std::{
    fs::File,
    io::BufReader,
    path::{Path, PathBuf},
    sync::Arc,
};

use kiln_store::{
    DurableFile, ImageEntry, ImageLayout, ImageStore, LayoutLock, Readers, Reference,
    archive::{self, SaveOptions, SaveRequest},
    media_type::ANNOTATION_REF_NAME,
};
use tempfile::TempDir;

use super::{Copied, Destination, Source, created::Created};
use crate::client::{Client, ClientError, Repository, Result};

/// The transports `parse` knows, for messages.
const TRANSPORTS: &str = "docker://REF, oci:DIR[:TAG], oci-archive:FILE[:TAG], \
     docker-archive:FILE[:REF], kiln:REF or a bare image name";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    Registry(Reference),
    /// kiln's store: a reference, an image ID or a digest prefix (as `kiln images` shows).
    Store(String),
    OciDir {
        dir: PathBuf,
        tag: Option<String>,
    },
    OciArchive {
        file: PathBuf,
        tag: Option<String>,
    },
    DockerArchive {
        file: PathBuf,
        reference: Option<Reference>,
    },
}

impl Transport {
    pub fn parse(text: &str) -> Result<Transport> {
        let usage = |why: &str| ClientError::Usage(format!("{text:?}: {why}"));
        // skopeo splits `oci:DIR:TAG` at the first ':' after the transport name.
        let split = |rest: &str| -> (PathBuf, Option<String>) {
            match rest.split_once(':') {
                Some((path, name)) if !name.is_empty() => (path.into(), Some(name.to_string())),
                Some((path, _)) => (path.into(), None),
                None => (rest.into(), None),
            }
        };
        let reference = |r: &str| Reference::parse(r).map_err(|e| usage(&e.to_string()));
        if let Some(rest) = text.strip_prefix("docker://") {
            return Ok(Transport::Registry(reference(rest)?));
        }
        if let Some(rest) = text.strip_prefix("kiln:") {
            return Ok(Transport::Store(rest.to_string()));
        }
        for (prefix, kind) in [("oci:", 0), ("oci-archive:", 1), ("docker-archive:", 2)] {
            let Some(rest) = text.strip_prefix(prefix) else {
                continue;
            };
            let (path, name) = split(rest);
            if path.as_os_str().is_empty() {
                return Err(usage("a path is required after the transport name"));
            }
            if let Some(tag) = &name
                && kind < 2
            {
                kiln_store::validate_tag(tag).map_err(|r| usage(&r))?;
            }
            return Ok(match kind {
                0 => Transport::OciDir {
                    dir: path,
                    tag: name,
                },
                1 => Transport::OciArchive {
                    file: path,
                    tag: name,
                },
                _ => Transport::DockerArchive {
                    file: path,
                    reference: name.as_deref().map(reference).transpose()?,
                },
            });
        }
        if let Some((scheme, _)) = text.split_once(':')
            && [
                "dir",
                "docker-daemon",
                "containers-storage",
                "ostree",
                "sif",
            ]
            .contains(&scheme)
        {
            return Err(usage(&format!("the {scheme}: transport is not supported")));
        }
        // No image name holds "://": this is a transport kiln does not know (a typo such
        // as `dockr://`, or a URL), not an image in the store.
        if let Some((scheme, rest)) = text.split_once("://") {
            let hint = if matches!(scheme, "http" | "https") {
                format!(" (a registry is docker://{rest})")
            } else {
                String::new()
            };
            return Err(usage(&format!(
                "unknown transport {scheme:?}{hint}; kiln copy takes {TRANSPORTS}"
            )));
        }
        Ok(Transport::Store(text.to_string()))
    }
}

/// What a command copies with: the local store and a registry client.
pub struct Context {
    pub store: ImageStore,
    pub client: Arc<Client>,
}

impl Context {
    fn scratch(&self) -> Result<TempDir> {
        let dir = self.store.root().join("tmp");
        std::fs::create_dir_all(&dir)
            .map_err(|e| ClientError::io(format!("creating {}", dir.display()), e))?;
        tempfile::Builder::new()
            .prefix("copy-")
            .tempdir_in(&dir)
            .map_err(|e| {
                ClientError::io(
                    format!("creating a scratch directory in {}", dir.display()),
                    e,
                )
            })
    }
}

/// A source ready to copy from, with whatever it needs kept alive.
pub struct OpenedSource {
    pub source: Source,
    /// The image's name where the source has one (used when the destination names none).
    pub name: Option<Reference>,
    _scratch: Option<TempDir>,
    _lock: Option<LayoutLock>,
}

pub fn open_source(transport: &Transport, ctx: &Context) -> Result<OpenedSource> {
    let opened = |source, name, scratch, lock| OpenedSource {
        source,
        name,
        _scratch: scratch,
        _lock: lock,
    };
    match transport {
        Transport::Registry(reference) => {
            let repo = Repository::new(ctx.client.clone(), reference);
            let tag_or_digest = match (reference.digest(), reference.tag()) {
                (Some(d), _) => d.to_string(),
                (None, Some(t)) => t.to_string(),
                (None, None) => kiln_store::DEFAULT_TAG.to_string(),
            };
            Ok(opened(
                Source::Remote {
                    repo,
                    reference: tag_or_digest,
                },
                Some(reference.clone()),
                None,
                None,
            ))
        }
        Transport::Store(name) => {
            let lock = ctx.store.gc_lock(false)?;
            let entry = ctx.store.resolve(name)?;
            Ok(opened(
                Source::Layout {
                    layout: ctx.store.layout().clone(),
                    top: Box::new(entry.descriptor),
                    name: "kiln's store".into(),
                },
                entry.reference,
                None,
                Some(lock),
            ))
        }
        Transport::OciDir { dir, tag } => {
            let scratch = scratch_beside(dir)?;
            if !dir.join("oci-layout").is_file() {
                return Err(ClientError::Usage(format!(
                    "{} is not an OCI image layout (no oci-layout file)",
                    dir.display()
                )));
            }
            let layout = ImageLayout::create(dir, scratch.path())?;
            let what = format!("oci:{}", dir.display());
            tagged_source(layout, tag.as_deref(), &what, scratch)
        }
        Transport::OciArchive { file, tag } => {
            let scratch = ctx.scratch()?;
            let layout = ImageLayout::create(scratch.path().join("layout"), scratch.path())?;
            let what = file.display().to_string();
            let input =
                File::open(file).map_err(|e| ClientError::io(format!("opening {what}"), e))?;
            archive::unpack_layout(&layout, BufReader::new(input), &what)?;
            tagged_source(
                layout,
                tag.as_deref(),
                &format!("oci-archive:{what}"),
                scratch,
            )
        }
        Transport::DockerArchive { file, reference } => {
            let scratch = ctx.scratch()?;
            let store = ImageStore::open(scratch.path())?;
            let what = file.display().to_string();
            let input =
                File::open(file).map_err(|e| ClientError::io(format!("opening {what}"), e))?;
            let report = archive::load(&store, BufReader::new(input), &what)?;
            let entry = match reference {
                Some(r) => store.resolve(&r.to_string()).map_err(|_| {
                    ClientError::Usage(format!("{what} holds no image named {}", r.familiar()))
                })?,
                None => match report.images.as_slice() {
                    [only] => ImageEntry {
                        descriptor: only.descriptor.clone(),
                        reference: only.reference.clone(),
                    },
                    images => {
                        return Err(ClientError::Usage(format!(
                            "{what} holds {} images; name one as docker-archive:{what}:NAME ({})",
                            images.len(),
                            names(images.iter().filter_map(|i| i.reference.as_ref()))
                        )));
                    }
                },
            };
            Ok(opened(
                Source::Layout {
                    layout: store.layout().clone(),
                    top: Box::new(entry.descriptor),
                    name: format!("docker-archive:{what}"),
                },
                entry.reference,
                Some(scratch),
                None,
            ))
        }
    }
}

/// An OCI layout's image by tag, kept alive with its scratch directory.
fn tagged_source(
    layout: ImageLayout,
    tag: Option<&str>,
    what: &str,
    scratch: TempDir,
) -> Result<OpenedSource> {
    let top = pick_by_tag(&layout, tag, what)?;
    Ok(OpenedSource {
        source: Source::Layout {
            layout,
            top: Box::new(top),
            name: what.to_string(),
        },
        name: None,
        _scratch: Some(scratch),
        _lock: None,
    })
}

fn names<'a>(references: impl Iterator<Item = &'a Reference>) -> String {
    let list: Vec<String> = references.map(Reference::familiar).collect();
    if list.is_empty() {
        "none of them is named".into()
    } else {
        list.join(", ")
    }
}

/// The `index.json` entry whose `ref.name` is `tag`; with no tag, the only entry.
fn pick_by_tag(
    layout: &ImageLayout,
    tag: Option<&str>,
    what: &str,
) -> Result<kiln_store::Descriptor> {
    let index = layout.index()?;
    match tag {
        Some(tag) => index
            .manifests
            .iter()
            .find(|d| d.annotation(ANNOTATION_REF_NAME) == Some(tag))
            .cloned()
            .ok_or_else(|| ClientError::Usage(format!("{what} has no image tagged {tag:?}"))),
        None => match index.manifests.as_slice() {
            [only] => Ok(only.clone()),
            all => Err(ClientError::Usage(format!(
                "{what} holds {} images; name one with :TAG ({})",
                all.len(),
                all.iter()
                    .filter_map(|d| d.annotation(ANNOTATION_REF_NAME))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        },
    }
}

/// Staging for an `oci:` directory must share its filesystem (blobs arrive by rename).
fn scratch_beside(dir: &Path) -> Result<TempDir> {
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)
        .map_err(|e| ClientError::io(format!("creating {}", parent.display()), e))?;
    tempfile::Builder::new()
        .prefix(".kiln-staging-")
        .tempdir_in(&parent)
        .map_err(|e| {
            ClientError::io(
                format!("creating a staging directory in {}", parent.display()),
                e,
            )
        })
}

/// A destination ready to copy into; `finish` writes archives once the copy is done.
pub struct OpenedDestination {
    pub destination: Destination,
    finish: Finish,
    _scratch: Option<TempDir>,
    _lock: Option<LayoutLock>,
    /// What opening an `oci:` directory created, removed unless the copy finishes.
    created: Created,
}

enum Finish {
    Nothing,
    DockerArchive {
        store: ImageStore,
        file: PathBuf,
        reference: Option<Reference>,
    },
    OciArchive {
        layout: ImageLayout,
        file: PathBuf,
    },
}

/// `fallback` names the image where the destination leaves the name out (the source's).
pub fn open_destination(
    transport: &Transport,
    ctx: &Context,
    fallback: Option<&Reference>,
) -> Result<OpenedDestination> {
    let opened = |destination, finish, scratch, lock| OpenedDestination {
        destination,
        finish,
        _scratch: scratch,
        _lock: lock,
        created: Created::default(),
    };
    match transport {
        Transport::Registry(reference) => {
            let repo = Repository::new(ctx.client.clone(), reference);
            let tag = match (reference.tag(), reference.digest()) {
                (Some(tag), _) => Some(tag.to_string()),
                (None, Some(_)) => None,
                (None, None) => Some(kiln_store::DEFAULT_TAG.to_string()),
            };
            Ok(opened(
                Destination::Remote { repo, tag },
                Finish::Nothing,
                None,
                None,
            ))
        }
        Transport::Store(name) => {
            let reference = if name.is_empty() {
                fallback.cloned()
            } else {
                Some(Reference::parse(name)?)
            };
            let lock = ctx.store.gc_lock(false)?;
            let name = reference
                .filter(|r| r.tag().is_some())
                .map(|r| r.to_string());
            Ok(opened(
                Destination::Layout {
                    layout: ctx.store.layout().clone(),
                    name,
                    check_layers: true,
                },
                Finish::Nothing,
                None,
                Some(lock),
            ))
        }
        Transport::OciDir { dir, tag } => {
            let created = Created::before_layout(dir);
            let scratch = scratch_beside(dir)?;
            let layout = ImageLayout::create(dir, scratch.path())?;
            Ok(OpenedDestination {
                created,
                ..opened(
                    Destination::Layout {
                        layout,
                        name: tag.clone(),
                        check_layers: false,
                    },
                    Finish::Nothing,
                    Some(scratch),
                    None,
                )
            })
        }
        Transport::OciArchive { file, tag } => {
            let scratch = ctx.scratch()?;
            let layout = ImageLayout::create(scratch.path().join("layout"), scratch.path())?;
            Ok(opened(
                Destination::Layout {
                    layout: layout.clone(),
                    name: tag.clone(),
                    check_layers: false,
                },
                Finish::OciArchive {
                    layout,
                    file: file.clone(),
                },
                Some(scratch),
                None,
            ))
        }
        Transport::DockerArchive { file, reference } => {
            let scratch = ctx.scratch()?;
            let store = ImageStore::open(scratch.path())?;
            let reference = reference
                .clone()
                .or_else(|| fallback.cloned())
                .filter(|r| r.tag().is_some());
            Ok(opened(
                Destination::Layout {
                    layout: store.layout().clone(),
                    name: reference.as_ref().map(ToString::to_string),
                    check_layers: false,
                },
                Finish::DockerArchive {
                    store,
                    file: file.clone(),
                    reference,
                },
                Some(scratch),
                None,
            ))
        }
    }
}

impl OpenedDestination {
    /// Write the archive, if the destination is one; the file appears whole or not at all.
    pub fn finish(mut self, copied: &Copied) -> Result<()> {
        self.created.keep();
        match &self.finish {
            Finish::Nothing => Ok(()),
            Finish::DockerArchive {
                store,
                file,
                reference,
            } => write_atomically(file, |out| {
                let request = SaveRequest {
                    entry: ImageEntry {
                        descriptor: copied.top.clone(),
                        reference: reference.clone(),
                    },
                    reference: reference.clone(),
                };
                archive::save(store, &[request], out, &SaveOptions::default())?;
                Ok(())
            }),
            Finish::OciArchive { layout, file } => write_atomically(file, |out| {
                archive::pack_layout(layout, out, SaveOptions::default().mtime)?;
                Ok(())
            }),
        }
    }
}

/// Write an archive through a `DurableFile`: it appears whole, durable and 0644 (less the
/// umask) like `kiln save -o`'s, or not at all.
fn write_atomically(file: &Path, write: impl FnOnce(&mut DurableFile) -> Result<()>) -> Result<()> {
    let mut out = DurableFile::create(file, Readers::Everyone)?;
    write(&mut out)?;
    out.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_as_skopeo_spells_them() {
        let t = |s: &str| Transport::parse(s).unwrap();
        assert_eq!(
            t("docker://127.0.0.1:5000/team/app:1"),
            Transport::Registry(Reference::parse("127.0.0.1:5000/team/app:1").unwrap())
        );
        assert_eq!(
            t("oci:/tmp/l:v1"),
            Transport::OciDir {
                dir: "/tmp/l".into(),
                tag: Some("v1".into())
            }
        );
        assert_eq!(
            t("oci:/tmp/l"),
            Transport::OciDir {
                dir: "/tmp/l".into(),
                tag: None
            }
        );
        assert_eq!(
            t("docker-archive:b.tar:busybox:1"),
            Transport::DockerArchive {
                file: "b.tar".into(),
                reference: Some(Reference::parse("busybox:1").unwrap())
            }
        );
        assert_eq!(
            t("oci-archive:x.tar"),
            Transport::OciArchive {
                file: "x.tar".into(),
                tag: None
            }
        );
        assert_eq!(t("kiln:busybox"), Transport::Store("busybox".into()));
        assert_eq!(t("busybox:1"), Transport::Store("busybox:1".into()));
    }

    #[test]
    fn bad_names_say_why() {
        let e = |s: &str| Transport::parse(s).unwrap_err().to_string();
        assert!(
            e("docker://h:5000/Bad").contains("Bad"),
            "{}",
            e("docker://h:5000/Bad")
        );
        assert!(e("oci:").contains("path is required"));
        assert!(e("dir:/tmp/x").contains("not supported"));
        assert!(e("oci:/x:bad tag").contains("bad tag"));
    }
}
