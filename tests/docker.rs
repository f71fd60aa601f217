//! kiln against a real Docker engine (Debian's docker.io 20.10), the peer most users run:
//! `docker load` of kiln's archives and `kiln load` of docker's, containers run from
//! kiln's images, and `docker push`/`pull` through kiln's registry, with and without
//! htpasswd. Each test starts an engine of its own (see `common::docker`).

mod common;

use std::collections::BTreeMap;

use common::{Kiln, docker::Dockerd, require_tool, servers::Registry, sh, tree_of};

/// Entries docker adds to every container's filesystem (mount points and the files it
/// bind-mounts), which an image's own tree does not hold.
const CONTAINER_ONLY: &[&str] = &[
    ".dockerenv",
    "dev",
    "proc",
    "sys",
    "etc/hostname",
    "etc/hosts",
    "etc/resolv.conf",
    "etc/mtab",
];

fn container_only(path: &str) -> bool {
    let path = path.trim_start_matches("./").trim_end_matches('/');
    // The root directory itself: kiln's export has an entry for it, docker's does not.
    if path.is_empty() || path == "." {
        return true;
    }
    CONTAINER_ONLY
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

/// The tree of an image's filesystem as a container created from it sees it (`docker
/// create` + `docker export`), without what docker adds to every container.
fn docker_tree(docker: &Dockerd, image: &str) -> BTreeMap<String, String> {
    // A command for images without one; the container is never started.
    let id = docker.ok(&["create", "--network", "none", image, "/unused"]);
    let id = id.trim();
    let out = docker.scratch("export.tar");
    docker.ok(&["export", "-o", out.to_str().unwrap(), id]);
    docker.ok(&["rm", id]);
    comparable(tree_of(&std::fs::read(&out).unwrap()))
}

/// Without what docker adds to every container, and with permission bits only: docker's
/// export writes modes without the file-type bits (the entry type says it).
fn comparable(tree: BTreeMap<String, String>) -> BTreeMap<String, String> {
    tree.into_iter()
        .filter(|(p, _)| !container_only(p))
        .map(|(p, entry)| {
            let entry = entry
                .split(' ')
                .map(|field| match field.strip_prefix("mode=") {
                    Some(mode) => {
                        let mode = u32::from_str_radix(mode, 8).unwrap();
                        format!("mode={:o}", mode & 0o7777)
                    }
                    None => field.to_string(),
                })
                .collect::<Vec<_>>()
                .join(" ");
            (p, entry)
        })
        .collect()
}

/// Without `user.*` xattrs: docker's archive code reads only `security.capability` back
/// from a filesystem (moby's `archive.ReadSecurityXattrToTarHeader`), so `docker export`
/// never shows the others. kiln keeps them all; compare what docker can show.
fn security_xattrs_only(tree: BTreeMap<String, String>) -> BTreeMap<String, String> {
    tree.into_iter()
        .map(|(path, entry)| {
            let Some((head, rest)) = entry.split_once("xattrs={") else {
                return (path, entry);
            };
            let (xattrs, tail) = rest.split_once("} sha256=").unwrap();
            let kept: Vec<&str> = xattrs
                .split(", ")
                .filter(|x| !x.is_empty() && !x.starts_with("\"user."))
                .collect();
            (
                path,
                format!("{head}xattrs={{{}}} sha256={tail}", kept.join(", ")),
            )
        })
        .collect()
}

/// Equal trees, or a panic naming only the entries that differ.
fn assert_same_tree(left: &BTreeMap<String, String>, right: &BTreeMap<String, String>, what: &str) {
    let mut diff = Vec::new();
    for (path, entry) in left {
        if right.get(path) != Some(entry) {
            diff.push(format!("{path}: {entry}\n  vs {:?}", right.get(path)));
        }
    }
    for path in right.keys().filter(|p| !left.contains_key(*p)) {
        diff.push(format!("{path}: missing vs {}", right[path]));
    }
    assert!(
        diff.is_empty(),
        "{what}: trees differ:\n{}",
        diff.join("\n")
    );
}

fn kiln_tree(kiln: &Kiln, image: &str) -> BTreeMap<String, String> {
    let out = kiln.scratch("kiln-export.tar");
    kiln.ok(&["export", image, "-o", out.to_str().unwrap()]);
    comparable(tree_of(&std::fs::read(&out).unwrap()))
}

#[test]
fn docker_loads_kiln_archives_and_runs_them_and_kiln_loads_docker_save() {
    let docker = Dockerd::start();
    let kiln = common::with_busybox_as("busybox:kiln");
    let rich = kiln.file("rich.tar", &common::rich_rootfs());
    kiln.ok(&["import", &rich, "rich:1"]);
    let archive = kiln.scratch("both.tar");
    kiln.ok(&[
        "save",
        "-o",
        archive.to_str().unwrap(),
        "busybox:kiln",
        "rich:1",
    ]);

    let loaded = docker.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert!(
        loaded.contains("busybox:kiln") && loaded.contains("rich:1"),
        "{loaded}"
    );
    // Same config bytes, so the same image ID in both.
    assert_eq!(
        docker.inspect("busybox:kiln", "{{.Id}}"),
        kiln.image_id("busybox:kiln")
    );
    assert_eq!(docker.inspect("rich:1", "{{.Id}}"), kiln.image_id("rich:1"));
    assert_eq!(
        docker.inspect("busybox:kiln", "{{json .Config.Cmd}}"),
        r#"["sh"]"#
    );

    // The containers docker makes of them see the trees kiln exports (owners, modes,
    // links, devices, contents).
    for image in ["busybox:kiln", "rich:1"] {
        assert_same_tree(
            &docker_tree(&docker, image),
            &security_xattrs_only(kiln_tree(&kiln, image)),
            image,
        );
    }

    let ran = docker.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox:kiln",
        "sh",
        "-c",
        "echo $((6 * 7)) $(id -un) $(cat /etc/group | head -n 1)",
    ]);
    assert_eq!(ran.trim(), "42 root root:x:0:");

    // And back: docker's own archive (its layer-directory format) into a fresh store.
    let saved = docker.scratch("docker-save.tar");
    docker.ok(&[
        "save",
        "-o",
        saved.to_str().unwrap(),
        "busybox:kiln",
        "rich:1",
    ]);
    let other = Kiln::new();
    let out = other.ok(&["load", "-i", saved.to_str().unwrap()]);
    assert!(
        out.contains("busybox:kiln") && out.contains("rich:1"),
        "{out}"
    );
    for image in ["busybox:kiln", "rich:1"] {
        assert_eq!(other.image_id(image), kiln.image_id(image));
        assert_same_tree(&kiln_tree(&other, image), &kiln_tree(&kiln, image), image);
    }
}

#[test]
fn docker_pulls_what_kiln_pushed_and_kiln_pulls_what_docker_pushed() {
    let docker = Dockerd::start();
    let kiln = common::with_busybox_as("busybox:kiln");
    let registry = Registry::start(&kiln);
    let addr = &registry.addr;

    let pushed = format!("{addr}/lib/busybox:1");
    kiln.ok(&["push", "busybox:kiln", &pushed]);
    kiln.ok(&["tag", "busybox:kiln", &pushed]);
    let digest = kiln.manifest_digest(&pushed);
    docker.ok(&["pull", &pushed]);
    // docker keeps kiln's OCI manifest as it is: same digest, same image.
    assert_eq!(
        docker.inspect(&pushed, "{{index .RepoDigests 0}}"),
        format!("{addr}/lib/busybox@{digest}")
    );
    assert_eq!(
        docker.inspect(&pushed, "{{.Id}}"),
        kiln.image_id("busybox:kiln")
    );
    let ran = docker.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        &pushed,
        "echo",
        "pulled",
    ]);
    assert_eq!(ran.trim(), "pulled");
    docker.ok(&["pull", &format!("{addr}/lib/busybox@{digest}")]);

    // docker pushes Docker schema2 (it converts, recompressing the layer): kiln pulls
    // that into a fresh store as the same image.
    let from_docker = format!("{addr}/from/docker:2");
    docker.ok(&["tag", &pushed, &from_docker]);
    let push = docker.ok(&["push", &from_docker]);
    let docker_digest = push
        .split_whitespace()
        .skip_while(|w| *w != "digest:")
        .nth(1)
        .unwrap_or_else(|| panic!("no digest in {push}"))
        .to_string();
    let other = Kiln::new();
    other.ok(&["pull", &from_docker]);
    assert_eq!(other.manifest_digest(&from_docker), docker_digest);
    assert_eq!(other.image_id(&from_docker), kiln.image_id("busybox:kiln"));
    assert_same_tree(
        &kiln_tree(&other, &from_docker),
        &kiln_tree(&kiln, "busybox:kiln"),
        "pushed by docker",
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&other.ok(&["inspect", &from_docker])).unwrap();
    assert_eq!(
        inspect[0]["Manifest"]["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
}

#[test]
fn docker_login_and_push_with_htpasswd() {
    require_tool("htpasswd");
    let docker = Dockerd::start();
    let kiln = common::with_busybox_as("busybox:kiln");
    let users = kiln.scratch("htpasswd");
    sh(&format!(
        "htpasswd -Bbc {} alice s3cret 2>/dev/null",
        users.display()
    ));
    let registry = Registry::start_with(&kiln, &["--htpasswd", users.to_str().unwrap()]);
    let addr = &registry.addr;
    let target = format!("{addr}/team/app:1");

    let archive = kiln.scratch("bb.tar");
    kiln.ok(&["save", "-o", archive.to_str().unwrap(), "busybox:kiln"]);
    docker.ok(&["load", "-i", archive.to_str().unwrap()]);
    docker.ok(&["tag", "busybox:kiln", &target]);

    let refused = docker.fails(&["push", &target]);
    assert!(
        refused.contains("no basic auth credentials") || refused.contains("unauthorized"),
        "{refused}"
    );
    let wrong = docker.fails(&["login", "-u", "alice", "-p", "wrong", addr]);
    assert!(
        wrong.contains("unauthorized") || wrong.contains("401"),
        "{wrong}"
    );
    let login = docker.ok(&["login", "-u", "alice", "-p", "s3cret", addr]);
    assert!(login.contains("Login Succeeded"), "{login}");
    docker.ok(&["push", &target]);

    // What docker pushed is there for kiln, with the same credentials.
    let other = Kiln::new();
    let denied = other.fails(&["pull", &target]);
    assert!(
        denied.contains("401") || denied.contains("login"),
        "{denied}"
    );
    let config = docker.dir().join("client");
    let out = other
        .cmd()
        .env("DOCKER_CONFIG", &config)
        .args(["pull", &target])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kiln pull with docker's credentials failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(other.image_id(&target), kiln.image_id("busybox:kiln"));
}

/// `kiln import --change` gives the config `docker import --change` gives, and refuses
/// what docker refuses. Known, deliberate differences (kiln follows today's BuildKit,
/// docker 20.10 runs its classic builder) are left out of the cases: kiln sets
/// `ArgsEscaped` with CMD, as BuildKit does (meaningless on Linux; removed before
/// comparing); HEALTHCHECK `--interval=0s` and `--retries=0` mean "inherit" to BuildKit and
/// are errors to 20.10; `--start-interval` is newer than 20.10; an ONBUILD trigger loses
/// trailing spaces in kiln (its parser trims line ends).
#[test]
fn import_changes_give_the_config_docker_import_gives() {
    let docker = Dockerd::start();
    let kiln = Kiln::new();
    let input = kiln.file("in.tar", &common::rich_rootfs());
    let accepted: &[&[&str]] = &[
        &["CMD echo hi", r#"ENTRYPOINT ["/bin/init"]"#],
        &[r#"ENTRYPOINT ["/bin/init"]"#, "CMD echo hi"],
        &["ENTRYPOINT /bin/init --flag"],
        &[
            r#"ENV A=1 B="two words""#,
            "ENV LEGACY some value",
            "ENV A=3 C=$A-${B}",
            "ENV D='$A' E=\"$A\" F=a\\ b",
        ],
        &["EXPOSE 80 53/udp 8000-8003 90/TCP 080 9/sctp 127.0.0.1:81:82"],
        &[r#"ENV P="443 8443""#, "EXPOSE $P"],
        &[
            "ENV U=bob",
            "USER $U:${U}",
            "WORKDIR /home/$U",
            "LABEL k='$U' k2=\"$U\" \"c d\"=e",
        ],
        &["WORKDIR /app/", "WORKDIR sub/../x"],
        &["WORKDIR /a/../b"],
        &["WORKDIR rel"],
        &[r#"VOLUME ["/data", "/a b"]"#, "VOLUME /cache /logs"],
        &[
            "HEALTHCHECK --interval=30s --timeout=1m30s --start-period=1.5s --retries=3 \
             CMD curl -f http://localhost/",
        ],
        &[r#"HEALTHCHECK CMD ["/bin/check", "-v"]"#],
        &["HEALTHCHECK CMD true", "HEALTHCHECK NONE"],
        &[
            "ONBUILD RUN echo   hi",
            "onbuild copy a b",
            "ONBUILD ENV X=$Y",
        ],
        &["LABEL legacy x y", "LABEL a=b", "LABEL a=c"],
        &["CMD []", "ENTRYPOINT []"],
        &["ENV A=1 \\", " B=2"],
        &["CMD [a, b]"],
        &["USER a b"],
        &["cmd [\"lower\"]", "Env k=v"],
    ];
    for changes in accepted {
        let mut docker_args = vec!["import"];
        let mut kiln_args = vec!["import"];
        for change in *changes {
            docker_args.extend(["-c", change]);
            kiln_args.extend(["-c", change]);
        }
        docker_args.push(&input);
        kiln_args.extend([input.as_str(), "changed:1"]);
        let id = docker.ok(&docker_args);
        let want: serde_json::Value =
            serde_json::from_str(&docker.inspect(id.trim(), "{{json .Config}}")).unwrap();
        kiln.ok(&kiln_args);
        let inspect: serde_json::Value =
            serde_json::from_str(&kiln.ok(&["inspect", "changed:1"])).unwrap();
        let mut got = inspect[0]["Config"]["config"].clone();
        if let Some(config) = got.as_object_mut() {
            config.remove("ArgsEscaped");
        }
        assert_eq!(got, want, "--change {changes:?}");
    }
    let refused = [
        "RUN echo",
        "STOPSIGNAL SIGTERM",
        r#"SHELL ["/bin/bash", "-c"]"#,
        "MAINTAINER me",
        "FROM busybox",
        "EXPOSE 80/icmp",
        "EXPOSE 70000",
        "EXPOSE 90-80",
        "ENV A",
        "LABEL =x",
        "ENV A=\"open",
        "VOLUME $NOPE",
        r#"CMD ["a", 1]"#,
        "HEALTHCHECK --interval=500us CMD true",
        "HEALTHCHECK --retries=x CMD true",
        "HEALTHCHECK NONE x",
    ];
    for change in refused {
        docker.fails(&["import", "-c", change, &input]);
        let message = kiln.fails(&["import", "-c", change, &input, "refused:1"]);
        assert!(
            message.contains(&format!("--change {change:?}: ")),
            "{change}: {message}"
        );
    }
    assert!(
        kiln.fails(&["inspect", "refused:1"])
            .contains("no such image")
    );
}
