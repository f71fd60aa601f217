//! `kiln registry serve` under abuse, through the real binary: wrong passwords run into a
//! 429 as configured (flag, config file, environment), and an internal error answers a
//! request id that leads to the cause in the server's log, never a server path.

mod common;

use std::fs;

use common::{Kiln, require_tool, servers::Registry, sh};

/// Status, headers (lowercase names) and body of a curl request.
fn curl(args: &str) -> (u16, String, String) {
    let out = sh(&format!("curl -s -i {args} | tr -d '\\r'"));
    let (head, body) = out.split_once("\n\n").unwrap_or((&out, ""));
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_lowercase(), body.to_string())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .map(str::trim)
}

#[test]
fn wrong_passwords_run_into_429_as_configured() {
    require_tool("htpasswd");
    require_tool("curl");
    let kiln = Kiln::new();
    let users = kiln.scratch("htpasswd");
    sh(&format!(
        "htpasswd -Bbc {} bob pw 2>/dev/null",
        users.display()
    ));
    let users = users.to_str().unwrap();
    let config = kiln.file(
        "kiln-registry.toml",
        format!("htpasswd = \"{users}\"\nauth_failures_per_minute = 2\n").as_bytes(),
    );
    let by_flag = || {
        let mut cmd = kiln.cmd();
        cmd.args(["registry", "serve", "--listen", "127.0.0.1:0"])
            .args(["--htpasswd", users, "--auth-failures-per-minute", "2"]);
        cmd
    };
    let by_file = || {
        let mut cmd = kiln.cmd();
        cmd.args(["registry", "serve", "--listen", "127.0.0.1:0"])
            .args(["--config", &config]);
        cmd
    };
    let by_env = || {
        let mut cmd = kiln.cmd();
        cmd.args(["registry", "serve", "--listen", "127.0.0.1:0"])
            .args(["--htpasswd", users])
            .env("KILN_REGISTRY_AUTH_FAILURES_PER_MINUTE", "2");
        cmd
    };
    for (how, cmd) in [("flag", by_flag()), ("file", by_file()), ("env", by_env())] {
        let registry = Registry::spawn(cmd);
        let push = format!("-X POST http://{}/v2/c/blobs/uploads/", registry.addr);
        // A budget of 2: the right password spends one (once, then it is remembered)...
        assert_eq!(curl(&format!("-u bob:pw {push}")).0, 202, "{how}");
        assert_eq!(curl(&format!("-u bob:nope {push}")).0, 401, "{how}");
        // ...and the next wrong one is refused before any bcrypt runs.
        let (status, head, body) = curl(&format!("-u bob:again {push}"));
        assert_eq!(status, 429, "{how}: {head}{body}");
        let seconds: u64 = header(&head, "retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&seconds), "{how}: Retry-After {seconds}");
        let error: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["errors"][0]["code"], "TOOMANYREQUESTS", "{how}");
        assert_eq!(
            curl(&format!("-u bob:pw {push}")).0,
            202,
            "{how}: a password found right is not checked again"
        );
    }

    let mut cmd = kiln.cmd();
    cmd.args(["registry", "serve", "--listen", "127.0.0.1:0"])
        .args(["--config", &config, "--auth-failures-per-minute", "0"]);
    let registry = Registry::spawn(cmd);
    let push = format!("-X POST http://{}/v2/c/blobs/uploads/", registry.addr);
    for i in 0..4 {
        assert_eq!(
            curl(&format!("-u bob:no{i} {push}")).0,
            401,
            "0 is no limit"
        );
    }
}

#[test]
fn an_internal_error_answers_a_request_id_and_logs_the_cause() {
    require_tool("curl");
    let kiln = Kiln::new();
    let storage = kiln.scratch("storage");
    let registry = Registry::start_with(&kiln, &["--storage", storage.to_str().unwrap()]);
    // Tests run as root, whom permissions do not stop; a file where the server needs a
    // directory does.
    let _ = fs::remove_dir_all(storage.join("uploads"));
    fs::write(storage.join("uploads"), b"not a directory").unwrap();
    let (status, head, body) = curl(&format!(
        "-X POST http://{}/v2/x/blobs/uploads/",
        registry.addr
    ));
    assert_eq!(status, 500, "{head}{body}");
    let shown = storage.to_str().unwrap();
    assert!(
        !body.contains(shown) && !body.contains("uploads"),
        "a server path in {body}"
    );
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["errors"][0]["code"], "UNKNOWN");
    let id = header(&head, "x-request-id").expect("a request id header");
    let detail = error["errors"][0]["detail"].as_str().unwrap();
    assert!(detail.contains(id), "{detail} does not name request {id}");
    let logged = registry
        .log_line(&format!("request {id}: internal error"))
        .unwrap_or_else(|| panic!("no log line for request {id}"));
    assert!(
        logged.contains(shown),
        "the log keeps the cause, with its path: {logged}"
    );
    let access = registry.log_line("POST /v2/x/blobs/uploads/ 500").unwrap();
    assert!(
        access.ends_with(id),
        "the access log names the request: {access}"
    );
}
