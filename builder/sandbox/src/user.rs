//! `USER` to numeric ids, read from the root's `/etc/passwd` and `/etc/group` with the rules
//! of runc's `GetExecUser`, which docker build uses.

use std::{
    ffi::CString,
    fs::File,
    io::{self, Read},
    os::{
        fd::{FromRawFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
    path::{Path, PathBuf},
};

use crate::spec::User;

/// The highest id runc accepts (it refuses ids that do not fit a signed 32-bit number).
const MAX_ID: u32 = i32::MAX as u32;

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    NoGroup(String),
    #[error("user id {0} is out of range (0 to {MAX_ID})")]
    Range(String),
    #[error("reading {path} in the root: {source}")]
    Read { path: String, source: io::Error },
}

/// One `/etc/passwd` line.
struct Passwd {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

/// One `/etc/group` line.
struct Group {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// Resolves `name|uid[:group|gid]` (`""` means root) against `root`'s passwd and group
/// files, as docker does:
/// - a name must have a passwd entry; a number needs none (the group is then 0, or the
///   entry's group when there is one);
/// - an explicit group replaces the primary group and adds no supplementary groups; a
///   number needs no group entry;
/// - without an explicit group, the supplementary groups are those that list the user's
///   name as a member.
///
/// Files are read with every symlink resolved inside `root`, so an image cannot make kiln
/// read the host's files. A missing file counts as empty.
pub fn resolve_user(root: &Path, spec: &str) -> Result<User, UserError> {
    let (user_arg, group_arg) = spec.split_once(':').unwrap_or((spec, ""));
    let user_arg = if user_arg.is_empty() { "0" } else { user_arg };
    let uid_num = user_arg.parse::<u32>().ok();

    let passwd = parse_passwd(&read_in_root(root, "etc/passwd")?);
    let entry = passwd.iter().find(|p| match uid_num {
        // A numeric argument is always a uid, never a name.
        Some(uid) => p.uid == uid,
        None => p.name == user_arg,
    });

    let mut user = User {
        uid: 0,
        gid: 0,
        groups: Vec::new(),
        home: Some("/".into()),
    };
    match (entry, uid_num) {
        (Some(p), _) => {
            user.uid = p.uid;
            user.gid = p.gid;
            user.home = Some(p.home.clone());
        }
        (None, Some(uid)) if uid <= MAX_ID => user.uid = uid,
        (None, Some(_)) => return Err(UserError::Range(user_arg.into())),
        (None, None) => return Err(UserError::NoUser(user_arg.into())),
    }

    if group_arg.is_empty() && entry.is_none() {
        return Ok(user);
    }
    let groups = parse_group(&read_in_root(root, "etc/group")?);
    if group_arg.is_empty() {
        let name = &entry.expect("checked above").name;
        user.groups = groups
            .iter()
            .filter(|g| g.members.iter().any(|m| m == name))
            .map(|g| g.gid)
            .collect();
        return Ok(user);
    }
    let gid_num = group_arg.parse::<u32>().ok();
    let found = groups.iter().find(|g| match gid_num {
        Some(gid) => g.gid == gid,
        None => g.name == group_arg,
    });
    user.gid = match (found, gid_num) {
        (Some(g), _) => g.gid,
        (None, Some(gid)) if gid <= MAX_ID => gid,
        (None, Some(_)) => return Err(UserError::Range(group_arg.into())),
        (None, None) => return Err(UserError::NoGroup(group_arg.into())),
    };
    Ok(user)
}

fn parse_passwd(text: &str) -> Vec<Passwd> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if line.starts_with('#') || f.len() < 4 {
                return None;
            }
            Some(Passwd {
                name: f[0].to_string(),
                uid: f[2].trim().parse().ok()?,
                gid: f[3].trim().parse().ok()?,
                home: f.get(5).copied().unwrap_or("/").to_string(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<Group> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if line.starts_with('#') || f.len() < 3 {
                return None;
            }
            Some(Group {
                name: f[0].to_string(),
                gid: f[2].trim().parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .map(str::trim)
                            .filter(|m| !m.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Reads `root/rel` with `openat2(RESOLVE_IN_ROOT)`: `..` and symlinks (absolute ones
/// too) stay inside `root`. A missing file reads as empty.
fn read_in_root(root: &Path, rel: &str) -> Result<String, UserError> {
    let err = |source| UserError::Read {
        path: format!("/{rel}"),
        source,
    };
    let file = match open_in_root(root, Path::new(rel)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(err(e)),
    };
    let mut bytes = Vec::new();
    // passwd files are small; a bound keeps a hostile one (a FIFO, /dev/zero) from hanging.
    file.take(16 << 20).read_to_end(&mut bytes).map_err(err)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Opens a regular file at `rel` under `root`, resolving every component inside `root`.
pub(crate) fn open_in_root(root: &Path, rel: &Path) -> io::Result<File> {
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))
    };
    let (root_c, rel_c) = (c(root)?, c(rel)?);
    // SAFETY: root_c is a NUL-terminated path.
    let dirfd = unsafe {
        libc::open(
            root_c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if dirfd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: dirfd was just opened and is owned here.
    let dir = unsafe { OwnedFd::from_raw_fd(dirfd) };
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: `how` is a valid open_how of the size passed; rel_c is NUL-terminated.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            std::os::fd::AsRawFd::as_raw_fd(&dir),
            rel_c.as_ptr(),
            &how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat2 returned a new descriptor we own.
    let file = unsafe { File::from_raw_fd(fd as i32) };
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is not a regular file",
                PathBuf::from("/").join(rel).display()
            ),
        ));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn root() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("etc")).unwrap();
        fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\n\
             app:x:1000:1001:App:/home/app:/bin/sh\n\
             nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nwheel:x:10:root,app\napp:x:1001:\nstaff:x:50:app\nnogroup:x:65534:\n",
        )
        .unwrap();
        dir
    }

    fn ids(u: &User) -> (u32, u32, Vec<u32>) {
        (u.uid, u.gid, u.groups.clone())
    }

    #[test]
    fn names_and_numbers() {
        let r = root();
        let r = r.path();
        assert_eq!(ids(&resolve_user(r, "").unwrap()), (0, 0, vec![10]));
        assert_eq!(
            ids(&resolve_user(r, "app").unwrap()),
            (1000, 1001, vec![10, 50])
        );
        assert_eq!(
            resolve_user(r, "app").unwrap().home.as_deref(),
            Some("/home/app")
        );
        // A uid with an entry takes the entry's group and its memberships.
        assert_eq!(
            ids(&resolve_user(r, "1000").unwrap()),
            (1000, 1001, vec![10, 50])
        );
        // A uid without an entry needs none: group 0, no supplementary groups, HOME /.
        let u = resolve_user(r, "4242").unwrap();
        assert_eq!((ids(&u), u.home.as_deref()), ((4242, 0, vec![]), Some("/")));
        assert_eq!(
            ids(&resolve_user(r, "4242:4343").unwrap()),
            (4242, 4343, vec![])
        );
    }

    #[test]
    fn explicit_group_replaces_and_adds_none() {
        let r = root();
        let r = r.path();
        assert_eq!(
            ids(&resolve_user(r, "app:staff").unwrap()),
            (1000, 50, vec![])
        );
        assert_eq!(ids(&resolve_user(r, "app:7").unwrap()), (1000, 7, vec![]));
        assert_eq!(
            ids(&resolve_user(r, "nobody:nogroup").unwrap()),
            (65534, 65534, vec![])
        );
    }

    #[test]
    fn missing_names_are_clear_errors() {
        let r = root();
        let err = resolve_user(r.path(), "ghost").unwrap_err().to_string();
        assert_eq!(
            err,
            "unable to find user ghost: no matching entries in passwd file"
        );
        let err = resolve_user(r.path(), "app:ghosts")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "unable to find group ghosts: no matching entries in group file"
        );
        assert!(matches!(
            resolve_user(r.path(), "3000000000"),
            Err(UserError::Range(_))
        ));
    }

    #[test]
    fn no_passwd_file_allows_numbers_only() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            ids(&resolve_user(dir.path(), "12:34").unwrap()),
            (12, 34, vec![])
        );
        assert_eq!(ids(&resolve_user(dir.path(), "").unwrap()), (0, 0, vec![]));
        assert!(matches!(
            resolve_user(dir.path(), "root"),
            Err(UserError::NoUser(_))
        ));
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("passwd"), "evil:x:7:7::/:/bin/sh\n").unwrap();
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("etc")).unwrap();
        // An absolute link to a host file, and one climbing out: both stay in the root.
        let abs = outside.path().join("passwd");
        std::os::unix::fs::symlink(&abs, dir.path().join("etc/passwd")).unwrap();
        assert!(matches!(
            resolve_user(dir.path(), "evil"),
            Err(UserError::NoUser(_))
        ));
        fs::remove_file(dir.path().join("etc/passwd")).unwrap();
        let climb = PathBuf::from("../../../../../../..").join(abs.strip_prefix("/").unwrap());
        std::os::unix::fs::symlink(climb, dir.path().join("etc/passwd")).unwrap();
        assert!(matches!(
            resolve_user(dir.path(), "evil"),
            Err(UserError::NoUser(_))
        ));
    }
}
