//! Registries the tests start: kiln's own, CNCF Distribution (Debian's docker-registry),
//! a token server in front of one, and a proxy that breaks a connection mid-transfer.
//! All bind 127.0.0.1 on free ports and stop when dropped.

use std::{
    fs,
    io::{BufRead, BufReader, Read, Write},
    net::{Shutdown, TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use super::{Kiln, require_tool};

/// A registry on 127.0.0.1 with a port of its own choosing; SIGTERM on drop.
pub struct Registry {
    child: Child,
    pub addr: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Registry {
    pub fn start(kiln: &Kiln) -> Registry {
        Self::start_with(kiln, &[])
    }

    pub fn start_with(kiln: &Kiln, extra: &[&str]) -> Registry {
        let mut cmd = kiln.cmd();
        cmd.args(["registry", "serve", "--listen", "127.0.0.1:0"])
            .args(extra);
        Self::spawn(cmd)
    }

    /// `kiln registry serve` run by `wrapper` (e.g. strace and its flags), which must pass
    /// the server's standard error through.
    pub fn start_under(kiln: &Kiln, wrapper: &[&str]) -> Registry {
        let mut cmd = Command::new(wrapper[0]);
        cmd.args(&wrapper[1..])
            .arg(env!("CARGO_BIN_EXE_kiln"))
            .args(["registry", "serve", "--listen", "127.0.0.1:0"])
            .env("KILN_ROOT", kiln.root());
        Self::spawn(cmd)
    }

    /// Start `cmd`, a `kiln registry serve --listen 127.0.0.1:0` with whatever else it needs.
    pub fn spawn(mut cmd: Command) -> Registry {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        let addr = line
            .split_whitespace()
            .nth(4)
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .trim_end_matches(',')
            .to_string();
        // Keep draining the log so the server never blocks on a full pipe; keep its lines.
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        Registry { child, addr, log }
    }

    /// The first line of the server's log (after the one naming its address) that holds
    /// `needle`, waiting up to 10 s for it to arrive.
    pub fn log_line(&self, needle: &str) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = self
                .log
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
                .cloned();
            if found.is_some() || Instant::now() > deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process started: the server, or the wrapper of `start_under`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait for the process to end (after the server was told to stop some other way).
    pub fn wait(mut self) -> std::process::ExitStatus {
        self.child.wait().unwrap()
    }

    /// SIGKILL: no chance to clean up, as in a power cut.
    pub fn crash(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on right now (for servers that cannot be told to pick one).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Wait until something accepts connections on `addr`.
fn wait_for(addr: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect(addr).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the server for {addr} exited: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on {addr} after 20 s");
}

/// CNCF Distribution 2.8 (`docker-registry`) with its own config and storage.
pub struct Distribution {
    child: Child,
    pub addr: String,
}

impl Distribution {
    /// `htpasswd`: a file of bcrypt entries to require Basic auth with.
    pub fn start(dir: &Path, htpasswd: Option<&Path>) -> Distribution {
        require_tool("docker-registry");
        fs::create_dir_all(dir).unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let auth = htpasswd.map_or(String::new(), |p| {
            format!(
                "auth:\n  htpasswd:\n    realm: kiln-test\n    path: {}\n",
                p.display()
            )
        });
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: {addr}\n{auth}",
            dir.join("data").display()
        );
        let path = dir.join("config.yml");
        fs::write(&path, config).unwrap();
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for(&addr, &mut child);
        Distribution { child, addr }
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP proxy that cuts the first connection to carry more than `cut_after` bytes
/// towards the server, in the middle of whatever it was sending: the broken transfer a
/// resumable upload must survive. Later connections pass untouched.
pub struct CuttingProxy {
    pub addr: String,
    pub cuts: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl CuttingProxy {
    pub fn start(upstream: &str, cut_after: u64) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let cuts = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let upstream = upstream.to_string();
        let (cuts2, stop2) = (cuts.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let cuts = cuts2.clone();
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || pipe(s2, c2, None));
                std::thread::spawn(move || pipe(client, server, Some((cut_after, cuts))));
            }
        });
        CuttingProxy { addr, cuts, stop }
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
    }
}

/// Copy `from` to `to`; with a limit, cut both sockets once it is passed (only while no
/// other connection has been cut yet).
fn pipe(mut from: TcpStream, mut to: TcpStream, cut: Option<(u64, Arc<AtomicU64>)>) {
    let mut buf = vec![0u8; 64 << 10];
    let mut sent = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some((limit, cuts)) = &cut
            && sent + n as u64 > *limit
            && cuts
                .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            let keep = (*limit - sent) as usize;
            let _ = to.write_all(&buf[..keep]);
            break;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n as u64;
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
