//! `--chown=user[:group]` to ids, with BuildKit's rules (solver/llbsolver/file): a name is
//! looked up in the destination root's `/etc/passwd` (`/etc/group` for a group) and takes
//! the user's primary group; a number needs no entry and, alone, is used for the group
//! too (`--chown=1000` is 1000:1000). Unlike BuildKit, which silently uses 0 for a name it
//! cannot find, an unknown name is an error. Files are read with every symlink resolved
//! inside the root (kiln_sandbox::resolve_user).

use std::path::Path;

use super::FilesError;

pub(crate) fn resolve(root: &Path, spec: &str) -> Result<(u32, u32), FilesError> {
    let err = |source| FilesError::Chown {
        value: spec.to_string(),
        source,
    };
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let (uid, mut gid) = match user.parse::<u32>() {
        Ok(n) => (number(n, user).map_err(err)?, n),
        Err(_) if user.is_empty() => (0, 0),
        Err(_) => {
            let u = kiln_sandbox::resolve_user(root, user).map_err(err)?;
            (u.uid, u.gid)
        }
    };
    if let Some(group) = group.filter(|g| !g.is_empty()) {
        gid = match group.parse::<u32>() {
            Ok(n) => number(n, group).map_err(err)?,
            Err(_) => {
                kiln_sandbox::resolve_user(root, &format!("0:{group}"))
                    .map_err(err)?
                    .gid
            }
        };
    }
    Ok((uid, gid))
}

/// Ids must fit a signed 32-bit number, as runc and the sandbox require.
fn number(n: u32, text: &str) -> Result<u32, kiln_sandbox::UserError> {
    if n <= i32::MAX as u32 {
        Ok(n)
    } else {
        Err(kiln_sandbox::UserError::Range(text.to_string()))
    }
}
