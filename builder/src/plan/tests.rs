//! Stage graph and ARG/ENV scoping tests.

use super::*;

fn plan_of(text: &str, args: &[(&str, &str)], target: Option<&str>) -> Result<Plan, PlanError> {
    let d = dockerfile::parse("Dockerfile", text).unwrap_or_else(|e| panic!("{e}"));
    let options = PlanOptions {
        build_args: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        target: target.map(str::to_string),
        target_platform: Platform::parse("linux/arm64/v8").unwrap(),
        build_platform: Platform::parse("linux/amd64").unwrap(),
    };
    plan(&d, "Dockerfile", &options, &NoImages)
}

fn ok(text: &str, args: &[(&str, &str)]) -> Plan {
    plan_of(text, args, None).unwrap_or_else(|e| panic!("{e}"))
}

fn steps(plan: &Plan, stage: usize) -> Vec<String> {
    plan.stages[stage]
        .steps
        .iter()
        .map(|s| s.instruction.summary())
        .collect()
}

#[test]
fn global_args_serve_from_and_need_redeclaring() {
    let p = ok(
        "ARG BASE=alpine\nARG TAG=3.19\nFROM $BASE:${TAG}\nRUN echo $TAG\nWORKDIR /w/${TAG:-none}\nARG TAG\nWORKDIR /v/$TAG\n",
        &[("TAG", "3.20")],
    );
    assert_eq!(p.stages[0].base, Base::Image("alpine:3.20".into()));
    // RUN is never expanded; WORKDIR before the re-declaration does not see TAG.
    assert_eq!(
        steps(&p, 0),
        vec![
            "RUN echo $TAG",
            "WORKDIR /w/none",
            "ARG TAG=\"3.20\"",
            "WORKDIR /v/3.20"
        ]
    );
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

#[test]
fn stage_args_defaults_overrides_and_env_shadowing() {
    let p = ok(
        "FROM a\nARG V=1\nENV W=$V\nARG X=$V-x\nENV V=env\nLABEL v=$V w=$W x=$X\nARG V=again\nLABEL v2=$V\n",
        &[],
    );
    assert_eq!(
        steps(&p, 0),
        vec![
            "ARG V=\"1\"",
            "ENV W=\"1\"",
            "ARG X=\"1-x\"",
            "ENV V=\"env\"",
            "LABEL v=\"env\" w=\"1\" x=\"1-x\"",
            "ARG V=\"again\"",
            // ENV shadows ARG of the same name.
            "LABEL v2=\"env\"",
        ]
    );
    let p = ok("FROM a\nARG V=1\nENV A=$V B=${V}2\n", &[("V", "given")]);
    assert_eq!(steps(&p, 0)[1], "ENV A=\"given\" B=\"given2\"");
}

#[test]
fn one_env_instruction_sees_the_values_before_it() {
    let p = ok(
        "FROM a\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\n",
        &[],
    );
    assert_eq!(steps(&p, 0)[1], "ENV abc=\"bye\" def=\"hello\"");
    assert_eq!(steps(&p, 0)[2], "ENV ghi=\"bye\"");
}

#[test]
fn platform_args_are_global_and_declared_in_stages() {
    let p = ok(
        "FROM --platform=$BUILDPLATFORM golang AS build\nARG TARGETARCH TARGETOS\nRUN --mount=type=cache,target=/c/$TARGETARCH go build\nCOPY bin/$TARGETOS-$TARGETARCH /out\nWORKDIR /$BUILDARCH\n",
        &[],
    );
    assert_eq!(p.stages[0].platform.as_deref(), Some("linux/amd64"));
    let s = steps(&p, 0);
    assert_eq!(s[1], "RUN --mount=type=cache,target=/c/arm64 go build");
    assert_eq!(s[2], "COPY bin/linux-arm64 /out");
    assert_eq!(s[3], "WORKDIR /", "BUILDARCH was not declared in the stage");
}

#[test]
fn what_buildkit_expands_and_what_it_leaves() {
    let p = ok(
        "FROM a\nARG P=8080 U=app D=/data S=SIGTERM\nEXPOSE $P 9000\nUSER $U\nVOLUME $D\nSTOPSIGNAL $S\nCMD echo $P\nENTRYPOINT [\"run\", \"$P\"]\nCOPY --chown=$U:$U . $D/\nHEALTHCHECK CMD curl localhost:$P\nONBUILD RUN echo $P\nMAINTAINER $U\n",
        &[],
    );
    let s = steps(&p, 0);
    assert_eq!(s[1], "EXPOSE 8080 9000");
    assert_eq!(s[2], "USER app");
    assert_eq!(s[3], "VOLUME /data");
    assert_eq!(s[4], "STOPSIGNAL SIGTERM");
    assert_eq!(s[5], "CMD echo $P");
    assert_eq!(s[6], "ENTRYPOINT [\"run\",\"$P\"]");
    assert_eq!(s[7], "COPY --chown=app:app . /data/");
    assert_eq!(s[8], "HEALTHCHECK CMD curl localhost:$P");
    assert_eq!(s[9], "ONBUILD RUN echo $P");
    assert_eq!(s[10], "MAINTAINER $U");
}

#[test]
fn stages_by_name_and_index_and_target_pruning() {
    let text = "FROM golang AS build\nRUN go build\nFROM node AS web\nRUN npm ci\nFROM alpine AS tools\nFROM build AS test\nRUN go test\nFROM scratch\nCOPY --from=build /app /app\nCOPY --from=2 /bin/x /x\nCOPY --from=nginx:1 /etc/nginx /etc/nginx\nRUN --mount=type=bind,from=web,target=/w true\n";
    let p = ok(text, &[]);
    assert_eq!(p.target, 4);
    assert_eq!(p.stages[3].base, Base::Stage(0));
    assert_eq!(p.stages[4].base, Base::Scratch);
    assert_eq!(p.stages[4].deps, BTreeSet::from([0, 1, 2]));
    assert_eq!(p.needed, vec![0, 1, 2, 4], "test (3) is not needed");

    let p = plan_of(text, &[], Some("test")).unwrap();
    assert_eq!((p.target, p.needed.clone()), (3, vec![0, 3]));
    let e = plan_of(text, &[], Some("nope")).unwrap_err();
    assert!(
        e.message
            .contains("target stage \"nope\" could not be found"),
        "{e}"
    );
}

#[test]
fn bad_references_and_cycles() {
    let e = plan_of("FROM a AS one\nCOPY --from=one x y\n", &[], None).unwrap_err();
    assert!(e.message.contains("reads from itself"), "{e}");
    assert_eq!((e.line, e.column), (2, 13), "points at the stage name");
    assert!(
        e.to_string()
            .ends_with("2 | COPY --from=one x y\n  |             ^"),
        "{e}"
    );
    let e = plan_of("FROM a AS one\nCOPY --from=1 x y\nFROM b\n", &[], None).unwrap_err();
    assert!(e.message.contains("not before this one"), "{e}");
    let e = plan_of(
        "FROM a AS one\nCOPY --from=two x y\nFROM b AS two\nCOPY --from=one x y\n",
        &[],
        None,
    )
    .unwrap_err();
    assert!(
        e.message.contains("circular dependency between stages"),
        "{e}"
    );
    let e = plan_of("RUN x\nFROM a\n", &[], None).unwrap_err();
    assert!(e.message.contains("only ARG may come before FROM"), "{e}");
    let e = plan_of("ARG A\nFROM a\nWORKDIR ${NEED:?set NEED}\n", &[], None).unwrap_err();
    assert!(e.message.contains("NEED: set NEED"), "{e}");
    assert_eq!((e.line, e.column), (3, 9), "points at the word");
}

#[test]
fn onbuild_triggers_run_first_in_the_child() {
    let p = ok(
        "FROM alpine AS base\nONBUILD COPY . /src\nONBUILD RUN make\nRUN echo base\nFROM base\nRUN echo child\n",
        &[],
    );
    let child: Vec<(String, bool)> = p.stages[1]
        .steps
        .iter()
        .map(|s| (s.instruction.summary(), s.triggered))
        .collect();
    assert_eq!(
        child,
        vec![
            ("COPY . /src".into(), true),
            ("RUN make".into(), true),
            ("RUN echo child".into(), false)
        ]
    );
    struct Images;
    impl BaseImages for Images {
        fn onbuild(&self, image: &str) -> Vec<String> {
            if image == "onbuild-base" {
                vec!["RUN from-the-image".into()]
            } else {
                Vec::new()
            }
        }
    }
    let d = dockerfile::parse("Dockerfile", "FROM onbuild-base\nRUN mine\n").unwrap();
    let p = plan(&d, "Dockerfile", &PlanOptions::default(), &Images).unwrap();
    assert_eq!(steps(&p, 0), vec!["RUN from-the-image", "RUN mine"]);
}

#[test]
fn unused_build_args_are_reported_but_proxies_are_not() {
    let p = ok(
        "ARG USED\nFROM a\nARG STAGE\nFROM b AS other\nARG ONLY_OTHER\nFROM a\n",
        &[
            ("USED", "1"),
            ("STAGE", "2"),
            ("NOPE", "3"),
            ("HTTP_PROXY", "x"),
            ("ONLY_OTHER", "4"),
        ],
    );
    assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
    let w = &p.warnings[0];
    assert!(
        w.contains("NOPE") && w.contains("STAGE") && w.contains("ONLY_OTHER"),
        "{w}"
    );
    assert!(!w.contains("USED,") && !w.contains("HTTP_PROXY"), "{w}");
}

#[test]
fn outline_shows_stages_steps_and_args() {
    let p = ok(
        "ARG GO=1.22\nFROM golang:$GO AS build\nARG VERSION=dev\nRUN go build -ldflags=-X=main.v=$VERSION\nFROM scratch\nCOPY --from=build /app /app\n",
        &[("VERSION", "1.0")],
    );
    let text = p.outline();
    assert!(text.contains("TARGET  stage 1"), "{text}");
    assert!(text.contains("GO=\"1.22\"  (default)"), "{text}");
    assert!(text.contains("build (stage 0)  FROM golang:1.22"), "{text}");
    assert!(
        text.contains("ARG VERSION=\"1.0\"  (--build-arg)"),
        "{text}"
    );
    assert!(text.contains("needs: build (stage 0)"), "{text}");
    assert!(text.contains("   6  COPY --from=build /app /app"), "{text}");
}

#[test]
fn copy_words_are_unquoted_one_by_one_after_the_whitespace_split() {
    let p = ok(
        "FROM a\nARG F=x\nCOPY \"$F\" 'b' c\\ /d/\nEXPOSE \"80\"/tcp '443'\n",
        &[],
    );
    assert_eq!(steps(&p, 0)[1], "COPY x b c /d/");
    assert_eq!(steps(&p, 0)[2], "EXPOSE 80/tcp 443");
    // A quoted path with a space is two words, each with an unbalanced quote: BuildKit's
    // error, pointing at the first word.
    for (text, column, quote) in [
        ("FROM a\nCOPY \"a b\" /d\n", 6, "double"),
        ("FROM a\nADD \\conf\\\\\" /.znc\n", 5, "double"),
        ("FROM a\nEXPOSE '80 443'\n", 8, "single"),
        ("FROM a\nVOLUME \"/a b\"\n", 8, "double"),
    ] {
        let e = plan_of(text, &[], None).unwrap_err();
        assert!(
            e.message.contains(&format!(
                "unexpected end of statement while looking for matching {quote}-quote"
            )),
            "{e}"
        );
        assert_eq!((e.line, e.column), (2, column), "{e}");
    }
}

#[test]
fn outline_json_carries_what_the_text_outline_shows() {
    let p = ok(
        "ARG GO=1.22\nARG UNSET\nFROM --platform=$BUILDPLATFORM golang:$GO AS build\nARG VERSION=dev\nRUN go build\nFROM build AS test\nFROM scratch\nCOPY --from=build /app /app\n",
        &[("VERSION", "1.0"), ("UNUSED", "x")],
    );
    let v = p.outline_json();
    assert_eq!(v["target"], 2);
    assert_eq!(v["target_label"], "stage 2");
    let globals = v["global_args"].as_array().unwrap();
    assert!(globals.contains(&serde_json::json!(
        {"name": "GO", "value": "1.22", "source": "default"}
    )));
    assert!(globals.contains(&serde_json::json!(
        {"name": "UNSET", "value": null, "source": "unset"}
    )));
    assert!(globals.contains(&serde_json::json!(
        {"name": "TARGETPLATFORM", "value": "linux/arm64/v8", "source": "platform"}
    )));
    // Only the needed stages: build (0) and the target (2), not test (1).
    let stages = v["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 2);
    let build = &stages[0];
    assert_eq!(build["label"], "build (stage 0)");
    assert_eq!(build["line"], 3);
    assert_eq!(
        build["base"],
        serde_json::json!({"kind": "image", "image": "golang:1.22"})
    );
    assert_eq!(build["platform"], "linux/amd64");
    assert_eq!(
        build["args"][0],
        serde_json::json!({"name": "VERSION", "value": "1.0", "source": "--build-arg"})
    );
    assert_eq!(build["steps"][1]["shell"], "go build");
    assert_eq!(build["steps"][1]["triggered"], false);
    let last = &stages[1];
    assert_eq!(last["base"], serde_json::json!({"kind": "scratch"}));
    assert_eq!(last["needs"], serde_json::json!([0]));
    assert!(
        v["warnings"][0]
            .as_str()
            .unwrap()
            .contains("UNUSED not consumed")
    );
    let p = ok("FROM a AS one\nFROM one\n", &[]);
    assert_eq!(
        p.outline_json()["stages"][1]["base"],
        serde_json::json!({"kind": "stage", "stage": 0, "name": "one"})
    );
}

#[test]
fn copy_heredocs_expand_unless_quoted_and_run_heredocs_never() {
    let p = ok(
        "FROM x\nARG NAME=world\nCOPY <<EOF /a\nhello \"$NAME\" '${NAME}' \\$NAME\nEOF\nADD <<\"RAW\" /b\n$NAME\nRAW\nRUN <<EOF\necho $NAME\nEOF\n",
        &[],
    );
    let doc = |i: usize| p.stages[0].steps[i].instruction.heredocs[0].content.clone();
    // Quotes belong to the file and stay; the escape keeps a `$` literal.
    assert_eq!(doc(1), "hello \"world\" 'world' $NAME\n");
    assert_eq!(doc(2), "$NAME\n");
    assert_eq!(doc(3), "echo $NAME\n");
}
