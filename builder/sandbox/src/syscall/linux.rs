//! The real system calls, through libc. std is used where it makes the same call.

use std::{
    ffi::CString,
    fs,
    io::{self, Write},
    os::unix::{
        ffi::OsStrExt,
        fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    },
    path::Path,
    ptr,
};

use super::{BpfProgram, Kind, Meta, Syscall};

/// Makes the calls for real; only the sandbox helper's single-threaded child uses it.
#[derive(Debug, Default, Clone, Copy)]
pub struct Linux;

fn cstr(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn check_long(ret: libc::c_long) -> io::Result<()> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `struct __user_cap_header_struct` and `__user_cap_data_struct` (linux/capability.h).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// `struct ifreq` with the `ifr_flags` member: 16 bytes of name, then the union (24 bytes).
#[repr(C)]
struct IfreqFlags {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

impl Syscall for Linux {
    fn unshare(&self, flags: libc::c_int) -> io::Result<()> {
        // SAFETY: unshare takes no pointers.
        check(unsafe { libc::unshare(flags) })
    }

    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: libc::c_ulong,
        data: Option<&str>,
    ) -> io::Result<()> {
        let source = source.map(cstr).transpose()?;
        let target = cstr(target)?;
        let fstype = fstype.map(|s| CString::new(s).unwrap_or_default());
        let data = data.map(|s| CString::new(s).unwrap_or_default());
        let opt = |s: &Option<CString>| s.as_ref().map_or(ptr::null(), |s| s.as_ptr());
        // SAFETY: every pointer is a NUL-terminated string that outlives the call, or null.
        check(unsafe {
            libc::mount(
                opt(&source),
                target.as_ptr(),
                opt(&fstype),
                flags,
                opt(&data).cast(),
            )
        })
    }

    fn umount2(&self, target: &Path, flags: libc::c_int) -> io::Result<()> {
        let target = cstr(target)?;
        // SAFETY: target is a NUL-terminated string.
        check(unsafe { libc::umount2(target.as_ptr(), flags) })
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()> {
        let (new_root, put_old) = (cstr(new_root)?, cstr(put_old)?);
        // SAFETY: both are NUL-terminated strings; glibc has no wrapper for pivot_root.
        check_long(unsafe {
            libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr())
        })
    }

    fn chdir(&self, path: &Path) -> io::Result<()> {
        std::env::set_current_dir(path)
    }

    fn stat(&self, path: &Path) -> io::Result<Option<Meta>> {
        match fs::metadata(path) {
            Ok(m) => {
                let kind = if m.is_dir() {
                    Kind::Dir
                } else if m.is_file() {
                    Kind::File
                } else {
                    Kind::Other
                };
                Ok(Some(Meta {
                    kind,
                    mode: m.permissions().mode() & 0o7777,
                }))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn mkdir(&self, path: &Path, mode: u32) -> io::Result<()> {
        fs::DirBuilder::new().mode(mode).create(path)
    }

    fn write_file(&self, path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(path)?;
        f.write_all(contents)
    }

    fn mknod(&self, path: &Path, mode: u32, major: u32, minor: u32) -> io::Result<()> {
        let path = cstr(path)?;
        // SAFETY: path is a NUL-terminated string.
        check(unsafe { libc::mknod(path.as_ptr(), mode, libc::makedev(major, minor)) })
    }

    fn chmod(&self, path: &Path, mode: u32) -> io::Result<()> {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
    }

    fn chown(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()> {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        std::os::unix::fs::symlink(target, link)
    }

    fn sethostname(&self, name: &str) -> io::Result<()> {
        // SAFETY: the pointer and length describe `name`'s bytes.
        check(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) })
    }

    fn loopback_up(&self) -> io::Result<()> {
        // SAFETY: a plain socket for the interface ioctls; closed below.
        let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if sock == -1 {
            return Err(io::Error::last_os_error());
        }
        let mut req = IfreqFlags {
            name: [0; libc::IFNAMSIZ],
            flags: 0,
            _pad: [0; 22],
        };
        req.name[..2].copy_from_slice(b"lo");
        // SAFETY: req is a valid ifreq for SIOCGIFFLAGS/SIOCSIFFLAGS and outlives both calls.
        let result = unsafe {
            check(libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req)).and_then(|()| {
                req.flags |= libc::IFF_UP as libc::c_short;
                check(libc::ioctl(sock, libc::SIOCSIFFLAGS, &req))
            })
        };
        // SAFETY: sock is ours.
        unsafe { libc::close(sock) };
        result
    }

    fn set_parent_death_signal(&self, signal: libc::c_int) -> io::Result<()> {
        // SAFETY: PR_SET_PDEATHSIG takes an integer.
        check(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong) })
    }

    fn close_fds_on_exec(&self, first: u32) -> io::Result<()> {
        // SAFETY: close_range takes integers; the raw syscall avoids needing glibc 2.34.
        check_long(unsafe {
            libc::syscall(
                libc::SYS_close_range,
                first,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            )
        })
    }

    fn restrict_bounding_set(&self, keep: u64) -> io::Result<()> {
        for cap in 0..64u32 {
            // SAFETY: PR_CAPBSET_READ/DROP take integers. EINVAL means the kernel has no
            // capability with this number, and none above it.
            let present = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong) };
            if present == -1 {
                let err = io::Error::last_os_error();
                if err.raw_os_error() == Some(libc::EINVAL) {
                    return Ok(());
                }
                return Err(err);
            }
            if keep & (1 << cap) == 0 {
                check(unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong) })?;
            }
        }
        Ok(())
    }

    fn clear_ambient_capabilities(&self) -> io::Result<()> {
        // SAFETY: integer arguments only.
        check(unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            )
        })
    }

    fn setgroups(&self, gids: &[u32]) -> io::Result<()> {
        // SAFETY: the pointer and length describe `gids`.
        check(unsafe { libc::setgroups(gids.len(), gids.as_ptr()) })
    }

    fn setresgid(&self, gid: u32) -> io::Result<()> {
        // SAFETY: integer arguments only.
        check(unsafe { libc::setresgid(gid, gid, gid) })
    }

    fn setresuid(&self, uid: u32) -> io::Result<()> {
        // SAFETY: integer arguments only.
        check(unsafe { libc::setresuid(uid, uid, uid) })
    }

    fn capset(&self, effective: u64, permitted: u64, inheritable: u64) -> io::Result<()> {
        let header = CapHeader {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        let split = |mask: u64, half: u32| (mask >> (32 * half)) as u32;
        let data = [0, 1].map(|half| CapData {
            effective: split(effective, half),
            permitted: split(permitted, half),
            inheritable: split(inheritable, half),
        });
        // SAFETY: version 3 takes a header and an array of two data structs, both live here.
        check_long(unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) })
    }

    fn set_no_new_privs(&self) -> io::Result<()> {
        // SAFETY: integer arguments only.
        check(unsafe {
            libc::prctl(
                libc::PR_SET_NO_NEW_PRIVS,
                1 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            )
        })
    }

    fn seccomp(&self, filter: &BpfProgram) -> io::Result<()> {
        seccompiler::apply_filter(filter).map_err(io::Error::other)
    }

    fn execve(&self, path: &Path, argv: &[String], env: &[String]) -> io::Error {
        let to_c = |v: &[String]| -> Option<Vec<CString>> {
            v.iter().map(|s| CString::new(s.as_str()).ok()).collect()
        };
        let (Ok(path), Some(argv), Some(env)) = (cstr(path), to_c(argv), to_c(env)) else {
            return io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in argv or env");
        };
        let ptrs = |v: &[CString]| -> Vec<*const libc::c_char> {
            v.iter()
                .map(|s| s.as_ptr())
                .chain(std::iter::once(ptr::null()))
                .collect()
        };
        let (argv_p, env_p) = (ptrs(&argv), ptrs(&env));
        // SAFETY: NUL-terminated strings in null-terminated arrays, all alive across the call.
        unsafe { libc::execve(path.as_ptr(), argv_p.as_ptr(), env_p.as_ptr()) };
        io::Error::last_os_error()
    }
}
