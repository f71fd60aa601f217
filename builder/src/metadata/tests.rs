//! One test per instruction, with docker's rules as cases; instructions come from the real
//! parser and planner, as in a build.

use serde_json::json;

use super::*;
use crate::{
    dockerfile,
    plan::{self, NoImages, PlanOptions},
};

/// The steps of `FROM scratch` + `lines`, as the planner leaves them.
fn steps(lines: &[&str]) -> Vec<Instruction> {
    let text = format!("FROM scratch\n{}\n", lines.join("\n"));
    let parsed = dockerfile::parse("Dockerfile", &text).unwrap();
    let plan = plan::plan(&parsed, "Dockerfile", &PlanOptions::default(), &NoImages).unwrap();
    plan.stages[0]
        .steps
        .iter()
        .map(|s| s.instruction.clone())
        .collect()
}

/// Apply `lines` to `image` in a fresh stage; the history each wrote.
fn run_on(image: &mut ImageConfig, lines: &[&str]) -> Vec<Applied> {
    let mut stage = StageState::default();
    steps(lines)
        .iter()
        .map(|i| apply(image, &mut stage, i).unwrap())
        .collect()
}

fn run(lines: &[&str]) -> (RunConfig, Vec<Applied>) {
    let mut image = ImageConfig::default();
    let applied = run_on(&mut image, lines);
    (image.config.unwrap_or_default(), applied)
}

fn created_by(applied: &[Applied]) -> Vec<String> {
    applied
        .iter()
        .map(|a| a.created_by.clone().unwrap_or_default())
        .collect()
}

fn error(line: &str) -> String {
    let mut image = ImageConfig::default();
    let mut stage = StageState::default();
    apply(&mut image, &mut stage, &steps(&[line])[0])
        .unwrap_err()
        .message
}

#[test]
fn env_replaces_in_place_and_appends_new_names() {
    let (c, applied) = run(&[r#"ENV A=1 B="two words""#, "ENV A=3 C=$B", "ENV D e f"]);
    assert_eq!(
        c.env.unwrap(),
        ["A=3", "B=two words", "C=two words", "D=e f"]
    );
    assert_eq!(
        created_by(&applied),
        ["ENV A=1 B=two words", "ENV A=3 C=two words", "ENV D=e f"]
    );
    assert!(applied.iter().all(Applied::empty_layer));
}

#[test]
fn label_sets_and_overwrites() {
    let (c, applied) = run(&[r#"LABEL a=b "c d"="e f""#, "LABEL a=z"]);
    let labels = c.labels.unwrap();
    assert_eq!(labels["a"], "z");
    assert_eq!(labels["c d"], "e f");
    assert_eq!(created_by(&applied), ["LABEL a=b c d=e f", "LABEL a=z"]);
}

#[test]
fn cmd_shell_form_runs_in_the_current_shell() {
    let (c, applied) = run(&["CMD echo $HOME"]);
    assert_eq!(c.cmd.clone().unwrap(), ["/bin/sh", "-c", "echo $HOME"]);
    assert!(c.args_escaped(), "BuildKit marks CMD ArgsEscaped");
    assert_eq!(
        created_by(&applied),
        [r#"CMD ["/bin/sh" "-c" "echo $HOME"]"#]
    );

    let (c, applied) = run(&[r#"SHELL ["/bin/bash", "-eu", "-c"]"#, "CMD echo hi"]);
    assert_eq!(
        c.cmd.clone().unwrap(),
        ["/bin/bash", "-eu", "-c", "echo hi"]
    );
    assert_eq!(c.shell().unwrap(), ["/bin/bash", "-eu", "-c"]);
    assert_eq!(
        created_by(&applied),
        [
            "SHELL [/bin/bash -eu -c]",
            r#"CMD ["/bin/bash" "-eu" "-c" "echo hi"]"#
        ]
    );

    let (c, _) = run(&[r#"CMD ["echo", "a \"b\""]"#]);
    assert_eq!(c.cmd.unwrap(), ["echo", "a \"b\""]);
    // An empty exec form clears CMD (omitted, as Go's omitempty does).
    let (c, applied) = run(&["CMD [\"x\"]", "CMD []"]);
    assert_eq!(c.cmd, None);
    assert_eq!(created_by(&applied)[1], "CMD []");
}

#[test]
fn entrypoint_resets_an_inherited_cmd_but_not_one_set_in_the_stage() {
    let inherited = || ImageConfig {
        config: Some(RunConfig {
            cmd: Some(vec!["base-cmd".into()]),
            ..RunConfig::default()
        }),
        ..ImageConfig::default()
    };
    // The base image's CMD goes.
    let mut image = inherited();
    let applied = run_on(&mut image, &["ENTRYPOINT /init"]);
    let c = image.config.unwrap();
    assert_eq!(c.cmd, None);
    assert_eq!(c.entrypoint.unwrap(), ["/bin/sh", "-c", "/init"]);
    assert_eq!(
        created_by(&applied),
        [r#"ENTRYPOINT ["/bin/sh" "-c" "/init"]"#]
    );
    // A CMD of this stage, before or after, stays.
    let mut image = inherited();
    run_on(&mut image, &["CMD [\"mine\"]", "ENTRYPOINT [\"/init\"]"]);
    assert_eq!(image.config.unwrap().cmd.unwrap(), ["mine"]);
    let mut image = inherited();
    run_on(&mut image, &["ENTRYPOINT [\"/init\"]", "CMD [\"mine\"]"]);
    let c = image.config.unwrap();
    assert_eq!(
        (c.entrypoint.unwrap(), c.cmd.unwrap()),
        (vec!["/init".to_string()], vec!["mine".to_string()])
    );
    // Even an empty CMD counts as set in the stage (BuildKit's tracker).
    let mut image = inherited();
    run_on(
        &mut image,
        &["CMD []", "CMD [\"again\"]", "ENTRYPOINT [\"/e\"]"],
    );
    assert_eq!(image.config.unwrap().cmd.unwrap(), ["again"]);
    // ENTRYPOINT [] clears it.
    let (c, _) = run(&["ENTRYPOINT [\"/x\"]", "ENTRYPOINT []"]);
    assert_eq!(c.entrypoint, None);
}

#[test]
fn user_is_taken_as_written_after_expansion() {
    let (c, applied) = run(&["ENV U=bob", "USER $U:${U}"]);
    assert_eq!(c.user.unwrap(), "bob:bob");
    assert_eq!(created_by(&applied)[1], "USER bob:bob");
}

#[test]
fn workdir_joins_relative_paths_and_creates_the_directory() {
    let (c, applied) = run(&["WORKDIR /app/", "WORKDIR sub/../x", "WORKDIR ./y/"]);
    assert_eq!(c.working_dir.unwrap(), "/app/x/y");
    assert_eq!(
        created_by(&applied),
        ["WORKDIR /app/", "WORKDIR /app/x", "WORKDIR /app/x/y"]
    );
    // BuildKit creates the directory: the step has a layer, unlike every other one.
    assert_eq!(applied[0].mkdir.as_deref(), Some("/app/"));
    assert!(!applied[0].empty_layer());
    // An absolute path is kept as written; "/" needs no directory.
    let (c, applied) = run(&["WORKDIR /a/../b", "WORKDIR /"]);
    assert_eq!(c.working_dir.unwrap(), "/");
    assert_eq!(created_by(&applied)[0], "WORKDIR /a/../b");
    assert!(applied[1].empty_layer());
    // Relative to nothing is relative to /; `..` stops at the root.
    let (c, _) = run(&["WORKDIR ../../w"]);
    assert_eq!(c.working_dir.unwrap(), "/w");
}

#[test]
fn expose_validates_normalises_and_expands_ranges() {
    let (c, applied) = run(&[
        "ENV P=\"443 8443\"",
        "EXPOSE 80 53/UDP 8000-8002/tcp $P 127.0.0.1:81:82",
    ]);
    let ports: Vec<String> = c.exposed_ports.unwrap().into_keys().collect();
    assert_eq!(
        ports,
        [
            "443/tcp", "53/udp", "80/tcp", "8000/tcp", "8001/tcp", "8002/tcp", "82/tcp", "8443/tcp"
        ]
    );
    assert_eq!(
        created_by(&applied)[1],
        "EXPOSE [80/tcp 53/udp 8000/tcp 8001/tcp 8002/tcp 443/tcp 8443/tcp 82/tcp]"
    );
    assert!(error("EXPOSE 80/icmp").contains("invalid protocol"));
    assert!(error("EXPOSE 70000").contains("invalid port"));
    assert!(error("EXPOSE 90-80").contains("invalid port"));
}

#[test]
fn volume_takes_json_or_words() {
    let (c, applied) = run(&[r#"VOLUME ["/data", "/a b"]"#, "VOLUME /cache /logs"]);
    let volumes: Vec<String> = c.volumes.unwrap().into_keys().collect();
    assert_eq!(volumes, ["/a b", "/cache", "/data", "/logs"]);
    assert_eq!(
        created_by(&applied),
        ["VOLUME [/data /a b]", "VOLUME [/cache /logs]"]
    );
    assert!(error("VOLUME $UNSET").contains("empty path"));
}

#[test]
fn stopsignal_takes_names_and_numbers() {
    for good in [
        "SIGTERM",
        "term",
        "SIGRTMIN+3",
        "RTMAX-14",
        "SIGRTMAX",
        "9",
        "SIGUSR1",
    ] {
        let (c, applied) = run(&[&format!("STOPSIGNAL {good}")]);
        assert_eq!(c.stop_signal.unwrap(), good);
        assert_eq!(created_by(&applied), [format!("STOPSIGNAL {good}")]);
    }
    for bad in ["SIGNOPE", "0", "RTMIN+16", "RTMAX-15", "RTMIN+03", "TERM9"] {
        assert!(
            error(&format!("STOPSIGNAL {bad}")).contains("invalid signal"),
            "{bad}"
        );
    }
}

#[test]
fn healthcheck_fills_docker_s_object_in_nanoseconds() {
    let (c, applied) = run(&[
        "HEALTHCHECK --interval=30s --timeout=1m30s --start-period=1.5s \
         --start-interval=500ms --retries=3 CMD curl -f http://localhost/",
    ]);
    assert_eq!(
        serde_json::to_value(c.healthcheck().unwrap()).unwrap(),
        json!({
            "Test": ["CMD-SHELL", "curl -f http://localhost/"],
            "Interval": 30_000_000_000i64,
            "Timeout": 90_000_000_000i64,
            "StartPeriod": 1_500_000_000i64,
            "StartInterval": 500_000_000i64,
            "Retries": 3,
        })
    );
    assert_eq!(
        created_by(&applied),
        [
            "HEALTHCHECK {Test:[CMD-SHELL curl -f http://localhost/] Interval:30s \
          Timeout:1m30s StartPeriod:1.5s StartInterval:500ms Retries:3}"
        ]
    );
    // Exec form; zero values mean "inherit" and are left out.
    let (c, _) = run(&[r#"HEALTHCHECK --interval=0s --retries=0 CMD ["/check", "-v"]"#]);
    assert_eq!(
        c.extra["Healthcheck"],
        json!({"Test": ["CMD", "/check", "-v"]})
    );
    // NONE disables one inherited from the base.
    let (c, applied) = run(&["HEALTHCHECK CMD true", "HEALTHCHECK NONE"]);
    assert_eq!(c.extra["Healthcheck"], json!({"Test": ["NONE"]}));
    assert_eq!(
        created_by(&applied)[1],
        "HEALTHCHECK {Test:[NONE] Interval:0s Timeout:0s StartPeriod:0s StartInterval:0s Retries:0}"
    );
    assert!(error("HEALTHCHECK --interval=10 CMD true").contains("not a duration"));
    assert!(error("HEALTHCHECK --timeout=999us CMD true").contains("at least 1ms"));
    assert!(error("HEALTHCHECK --retries=x CMD true").contains("whole number"));
    assert!(error("HEALTHCHECK --retries=-2 CMD true").contains("negative"));
    assert!(error("HEALTHCHECK CMD []").contains("needs a command"));
}

#[test]
fn onbuild_keeps_the_trigger_as_written_without_history() {
    let (c, applied) = run(&["ONBUILD RUN echo   $HOME", "onbuild copy --chown=1:1 a b"]);
    assert_eq!(c.on_build(), ["RUN echo   $HOME", "copy --chown=1:1 a b"]);
    assert_eq!(
        applied[0].created_by, None,
        "BuildKit writes no history for ONBUILD"
    );
    assert!(applied.iter().all(Applied::empty_layer));
}

#[test]
fn maintainer_sets_the_author() {
    let mut image = ImageConfig::default();
    let applied = run_on(&mut image, &["MAINTAINER Jane <jane@example.com>"]);
    assert_eq!(image.author.as_deref(), Some("Jane <jane@example.com>"));
    assert_eq!(created_by(&applied), ["MAINTAINER Jane <jane@example.com>"]);
}

#[test]
fn other_instructions_are_refused() {
    assert_eq!(error("RUN true"), "RUN is not a metadata instruction");
    assert_eq!(error("ARG x"), "ARG is not a metadata instruction");
    assert!(!is_metadata(Keyword::Copy));
    assert!(KEYWORDS.iter().all(|k| is_metadata(*k)));
}

#[test]
fn the_config_round_trips_byte_for_byte() {
    let (c, _) = run(&[
        "ENV A=1",
        "CMD x",
        "HEALTHCHECK --interval=1s CMD true",
        r#"SHELL ["/bin/ash", "-c"]"#,
        "ONBUILD RUN x",
    ]);
    let bytes = kiln_store::spec::to_json(&c);
    let again: RunConfig = kiln_store::spec::from_json(&bytes, "config").unwrap();
    assert_eq!(kiln_store::spec::to_json(&again), bytes);
    // Docker's extensions follow the OCI fields, in BuildKit's order.
    let text = String::from_utf8(bytes).unwrap();
    let at = |k: &str| text.find(k).unwrap();
    assert!(at("\"Cmd\"") < at("\"ArgsEscaped\""));
    assert!(at("\"ArgsEscaped\"") < at("\"Healthcheck\""));
    assert!(at("\"Healthcheck\"") < at("\"OnBuild\""));
    assert!(at("\"OnBuild\"") < at("\"Shell\""));
}
