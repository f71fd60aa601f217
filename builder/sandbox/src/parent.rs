//! The parent side: start the helper (`kiln __sandbox-init`) with `std::process::Command`
//! — a fork followed at once by exec, safe from a multithreaded tokio process — hand it the
//! spec on a pipe, and collect its reports.

use std::{
    fs::File,
    io::{self, Read, Write},
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
        unix::process::CommandExt,
    },
    path::Path,
    process::{Child, Command},
    sync::Arc,
};

use crate::{
    Error,
    init::INIT_ARG,
    report::{self, Report},
    spec::{Outcome, Spec},
};

/// A running sandbox. Drop it only after [`Sandbox::wait`]: the helper is a child of this
/// process and must be reaped.
pub struct Sandbox {
    child: Child,
    report: File,
    pidfd: Arc<OwnedFd>,
}

/// Stops a running sandbox from another thread (a failed parallel branch, Ctrl-C handled
/// by kiln itself). Safe to use after the sandbox ended: it then does nothing.
#[derive(Clone)]
pub struct Stopper {
    pidfd: Arc<OwnedFd>,
}

impl Stopper {
    /// Sends SIGTERM to the helper, which kills every process of the container; `wait`
    /// then returns [`crate::Status::Interrupted`]`(15)`.
    pub fn stop(&self) -> io::Result<()> {
        // SAFETY: a pidfd we own; the signal goes to that exact process even if its pid
        // number was reused (ESRCH once it is reaped).
        let ret = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                libc::SIGTERM,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        match ret {
            -1 => match io::Error::last_os_error() {
                e if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
                e => Err(e),
            },
            _ => Ok(()),
        }
    }
}

/// Runs `spec` in a sandbox and waits for it. `kiln_exe` is the kiln binary to re-execute
/// as the helper (`std::env::current_exe()`, or `/proc/self/exe`). Output streams are
/// inherited: the command writes straight to this process's stdout and stderr.
///
/// Ctrl-C reaches the helper with the terminal's process group and kills the container;
/// if this process dies, the helper gets SIGTERM (parent-death signal) and does the same.
/// That signal follows the *thread* that spawned the helper, which is why this call
/// blocks that thread until the end.
pub fn run(spec: &Spec, kiln_exe: &Path) -> Result<Outcome, Error> {
    spawn(spec, kiln_exe)?.wait()
}

/// Starts `spec` in a sandbox. The thread that calls this must outlive the sandbox (see
/// [`run`]): call [`Sandbox::wait`] from it.
pub fn spawn(spec: &Spec, kiln_exe: &Path) -> Result<Sandbox, Error> {
    spawn_with_output(spec, kiln_exe, None)
}

/// [`spawn`], with the command's stdout and stderr both going to `output` (the write end
/// of a pipe the caller reads, to show the output and keep its last lines) instead of
/// this process's own.
pub fn spawn_with_output(
    spec: &Spec,
    kiln_exe: &Path,
    output: Option<OwnedFd>,
) -> Result<Sandbox, Error> {
    spec.validate().map_err(Error::InvalidSpec)?;
    let json = serde_json::to_vec(spec).map_err(|e| Error::InvalidSpec(e.to_string()))?;
    let (spec_r, spec_w) = pipe()?;
    let (report_r, report_w) = pipe()?;
    let (spec_fd, report_fd) = (spec_r.as_raw_fd(), report_w.as_raw_fd());
    let parent = std::process::id();

    let mut command = Command::new(kiln_exe);
    command
        .arg(INIT_ARG)
        .arg(spec_fd.to_string())
        .arg(report_fd.to_string());
    if let Some(fd) = output {
        let copy = fd.try_clone().map_err(Error::Io)?;
        command.stdout(copy).stderr(fd);
    }
    // SAFETY: between fork and exec only async-signal-safe calls (fcntl, prctl, getppid).
    unsafe {
        command.pre_exec(move || {
            inherit(spec_fd)?;
            inherit(report_fd)?;
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) == -1 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before the signal was armed.
            if libc::getppid() as u32 != parent {
                return Err(io::Error::other("kiln exited while starting the sandbox"));
            }
            Ok(())
        });
    }
    let child = command.spawn().map_err(|source| Error::Spawn {
        exe: kiln_exe.to_path_buf(),
        source,
    })?;
    drop((spec_r, report_w));
    // SAFETY: pidfd_open of our unreaped child; its pid cannot be reused before we wait.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id(), 0) };
    let pidfd = if pidfd < 0 {
        let err = io::Error::last_os_error();
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
        return Err(Error::Io(err));
    } else {
        // SAFETY: a new descriptor we own.
        Arc::new(unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) })
    };
    // A helper that died early closes the pipe (EPIPE); its report or status tells why.
    let _ = File::from(spec_w).write_all(&json);
    Ok(Sandbox {
        child,
        report: File::from(report_r),
        pidfd,
    })
}

impl Sandbox {
    /// The helper's process id (outside the container's PID namespace).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn stopper(&self) -> Stopper {
        Stopper {
            pidfd: Arc::clone(&self.pidfd),
        }
    }

    /// Waits until the command and every process of its container are gone.
    pub fn wait(mut self) -> Result<Outcome, Error> {
        let mut text = String::new();
        // End-of-file comes when the helper and the container's first process are gone.
        let read = self.report.read_to_string(&mut text);
        let status = self.child.wait()?;
        read?;
        let mut created = Vec::new();
        let mut ended = None;
        for report in report::parse(&text) {
            match report {
                Report::Created(paths) => created = paths,
                Report::Failed(message) => return Err(Error::Setup(message)),
                Report::Ended(s) => ended = Some(s),
            }
        }
        match ended {
            Some(status) => Ok(Outcome { status, created }),
            None => Err(Error::Helper(status)),
        }
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors that we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both were just created.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Clears close-on-exec in the forked child only (the parent's copy keeps it, so no other
/// child kiln starts inherits the pipe).
fn inherit(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor number.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
