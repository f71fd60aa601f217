//! The child side: `kiln __sandbox-init SPEC_FD REPORT_FD`, run by `main` before anything
//! else, while the process has one thread.
//!
//! The helper reads the spec, unshares the namespaces and forks the container's first
//! process (PID 1 of the new PID namespace), which builds the file system and execs the
//! command: the command *is* PID 1, as in a `docker build` RUN, and orphans it leaves are
//! reaped by it or die with it. The helper stays outside, in the host's PID namespace,
//! as the supervisor: it waits for PID 1, turns SIGINT, SIGTERM, SIGHUP and SIGQUIT
//! into a SIGKILL of PID 1 (which kills every process of the namespace, as its init
//! exits), and reports how the command ended.

use std::{
    fs::File,
    io::Read,
    os::fd::{FromRawFd, RawFd},
};

use crate::{
    container,
    report::{self, Report},
    seccomp,
    spec::{Spec, Status},
    syscall::Linux,
};

/// The hidden first argument that makes `kiln` the sandbox helper.
pub const INIT_ARG: &str = "__sandbox-init";

/// Exit code of the helper when setup failed (docker uses 125 for its own errors).
const SETUP_FAILED: i32 = 125;

/// The signals the helper forwards as a kill of the whole container.
const STOP_SIGNALS: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// Runs the helper; never returns. Call it first thing in `main` when `argv[1]` is
/// [`INIT_ARG`], before any thread or async runtime exists.
pub fn init_main() -> ! {
    let args: Vec<String> = std::env::args().collect();
    let fds = (args.get(2), args.get(3));
    let (Some(Ok(spec_fd)), Some(Ok(report_fd))) = (
        fds.0.map(|s| s.parse::<RawFd>()),
        fds.1.map(|s| s.parse::<RawFd>()),
    ) else {
        eprintln!("kiln: {INIT_ARG} is internal to kiln (usage: {INIT_ARG} SPEC_FD REPORT_FD)");
        std::process::exit(SETUP_FAILED);
    };
    // Only this process and the container's first one may hold the report pipe.
    // SAFETY: fcntl on a descriptor number; a bad one fails with EBADF, handled below.
    if unsafe { libc::fcntl(report_fd, libc::F_SETFD, libc::FD_CLOEXEC) } == -1 {
        eprintln!("kiln: {INIT_ARG}: report descriptor {report_fd} is not open");
        std::process::exit(SETUP_FAILED);
    }
    let code = match helper(spec_fd, report_fd) {
        Ok(status) => {
            report::send(report_fd, &Report::Ended(status));
            status.code()
        }
        Err(message) => {
            report::send(report_fd, &Report::Failed(message));
            SETUP_FAILED
        }
    };
    std::process::exit(code)
}

fn helper(spec_fd: RawFd, report_fd: RawFd) -> Result<Status, String> {
    let mut text = Vec::new();
    // SAFETY: the parent passed us this pipe's read end; we own and close it.
    let mut spec_file = unsafe { File::from_raw_fd(spec_fd) };
    spec_file
        .read_to_end(&mut text)
        .map_err(|e| format!("reading the sandbox spec: {e}"))?;
    drop(spec_file);
    let spec: Spec =
        serde_json::from_slice(&text).map_err(|e| format!("parsing the sandbox spec: {e}"))?;
    let filter = seccomp::default_filter().map_err(|e| e.to_string())?;

    // Block the signals we wait for before forking, so none is lost in between.
    let waited = signal_set(&[&STOP_SIGNALS[..], &[libc::SIGCHLD]].concat());
    // SAFETY: sigprocmask/signal with valid sets; this process has one thread.
    unsafe {
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
        libc::sigprocmask(libc::SIG_BLOCK, &waited, std::ptr::null_mut());
    }
    container::enter_namespaces(&Linux, &spec).map_err(|e| e.to_string())?;

    // SAFETY: single-threaded, so the child may run any code.
    let pid = unsafe { libc::fork() };
    if pid == -1 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        container_main(&spec, &filter, report_fd);
    }
    Ok(supervise(pid, &waited))
}

/// PID 1 of the container: set up, report the created mount points, exec.
fn container_main(spec: &Spec, filter: &crate::syscall::BpfProgram, report_fd: RawFd) -> ! {
    reset_signals();
    let err = match container::prepare(&Linux, spec) {
        Ok(created) => {
            report::send(report_fd, &Report::Created(created));
            container::exec(&Linux, spec, filter)
        }
        Err(e) => e,
    };
    report::send(report_fd, &Report::Failed(err.to_string()));
    // SAFETY: leave without running the helper's exit handlers twice.
    unsafe { libc::_exit(SETUP_FAILED) }
}

/// Waits for PID 1; a stop signal kills it (and with it the whole namespace).
fn supervise(pid: libc::pid_t, waited: &libc::sigset_t) -> Status {
    let mut interrupted = None;
    loop {
        // SAFETY: waited is a valid set of blocked signals.
        let sig = unsafe { libc::sigwaitinfo(waited, std::ptr::null_mut()) };
        if sig == -1 {
            continue; // EINTR
        }
        if sig != libc::SIGCHLD {
            interrupted.get_or_insert(sig);
            // SAFETY: pid is our child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            continue;
        }
        let mut status = 0;
        // SAFETY: waiting for our own child. It returns once the namespace's last process
        // is gone: an exiting init first kills and reaps every other member.
        let done = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if done != pid {
            continue;
        }
        return match interrupted {
            Some(sig) => Status::Interrupted(sig),
            None if libc::WIFSIGNALED(status) => Status::Signaled(libc::WTERMSIG(status)),
            None => Status::Exited(libc::WEXITSTATUS(status)),
        };
    }
}

fn signal_set(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &sig in signals {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// The command starts with default dispositions and nothing blocked. Rust ignores SIGPIPE
/// at startup, and an ignored signal stays ignored across exec (`yes | head` would hang).
fn reset_signals() {
    // SAFETY: plain signal-state calls in a single-threaded process.
    unsafe {
        for sig in 1..libc::SIGRTMAX() {
            libc::signal(sig, libc::SIG_DFL);
        }
        let empty = signal_set(&[]);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
}
