use super::*;

fn parse(text: &str) -> Result<Manifest, ManifestError> {
    let dir = std::env::temp_dir();
    Manifest::parse(&dir.join("p.toml"), text)
}

#[test]
fn a_manifest_of_builtin_stages_parses_with_config_and_limits() {
    let m = parse(
        r#"
        name = "demo"
        [[stage]]
        name = "storyboard"
        plugin = "builtin:storyboard"
        timeout = 2.5
        max-memory = 64
        max-writers = 3
        max-import-size = 8
        project-quota = 100
        [stage.config]
        seconds-per-scene = 4
        format = "json"
        strict = true
        "#,
    )
    .expect("valid");
    assert_eq!(m.name, "demo");
    let s = &m.stages[0];
    assert_eq!(s.plugin, PluginSource::Builtin("storyboard".into()));
    assert_eq!(
        s.config.get("seconds-per-scene").map(String::as_str),
        Some("4")
    );
    assert_eq!(s.config.get("strict").map(String::as_str), Some("true"));
    assert_eq!(s.limits.timeout, std::time::Duration::from_millis(2500));
    assert_eq!(s.limits.max_memory_bytes, 64 << 20);
    assert_eq!(s.limits.store.max_open_writers, 3);
    assert_eq!(s.limits.max_import_bytes, 8 << 20);
    assert_eq!(s.limits.store.project_quota_bytes, 100 << 20);
}

#[test]
fn a_stage_may_run_once_per_scene_with_the_pipeline_saying_how_many_at_once() {
    let m = parse(
        "jobs = 3\n[[stage]]\nname = \"a\"\nplugin = \"builtin:x\"\nfor-each = \"scene\"\n\
         [[stage]]\nname = \"b\"\nplugin = \"builtin:x\"\n",
    )
    .expect("valid");
    assert_eq!(m.jobs, Some(3));
    assert_eq!(m.stages[0].for_each, Some(ForEach::Scene));
    assert_eq!(m.stages[1].for_each, None);
    assert_eq!((m.stages[0].parts, m.stages[1].parts), (1, 1));
    let cut =
        parse("[[stage]]\nname = \"a\"\nplugin = \"builtin:x\"\nfor-each = \"scene\"\nparts = 4\n")
            .expect("valid");
    assert_eq!(
        cut.stages[0].parts, 4,
        "each scene's work cut into four shards"
    );
    // The flag wins over the manifest, which wins over the machine.
    let options = PipelineOptions::default();
    assert_eq!(options.jobs_for(&m), 3);
    let flag = PipelineOptions {
        jobs: Some(1),
        ..PipelineOptions::default()
    };
    assert_eq!(flag.jobs_for(&m), 1);
    let silent = parse("[[stage]]\nname = \"a\"\nplugin = \"builtin:x\"\n").expect("valid");
    assert_eq!(silent.jobs, None);
    assert!(options.jobs_for(&silent) >= 1);
}

#[test]
fn a_stage_runs_after_the_one_before_it_unless_it_names_the_stages_it_runs_after() {
    let m = parse(
        "[[stage]]\nname = \"a\"\nplugin = \"builtin:x\"\n\
         [[stage]]\nname = \"b\"\nplugin = \"builtin:x\"\n\
         [[stage]]\nname = \"c\"\nplugin = \"builtin:x\"\nafter = [\"a\"]\n\
         [[stage]]\nname = \"d\"\nplugin = \"builtin:x\"\nafter = [\"b\", \"c\", \"b\"]\n\
         [[stage]]\nname = \"e\"\nplugin = \"builtin:x\"\nafter = []\n",
    )
    .expect("valid");
    let after: Vec<Vec<usize>> = m.stages.iter().map(|s| s.after.clone()).collect();
    assert_eq!(after, [vec![], vec![0], vec![0], vec![1, 2], vec![]]);
    // A stage may also run after a stage listed later.
    let later = parse(
        "[[stage]]\nname = \"a\"\nplugin = \"builtin:x\"\nafter = [\"b\"]\n\
         [[stage]]\nname = \"b\"\nplugin = \"builtin:x\"\nafter = []\n",
    )
    .expect("valid");
    assert_eq!(later.stages[0].after, [1]);
}

#[test]
fn bad_manifests_name_the_key_and_the_reason() {
    let cases = [
        (
            "[[stage]]\nname = \"a\"\nplugin = \"builtin:x\"\ncolour = 1\n",
            "colour",
        ),
        ("[[stage]]\nname = \"a\"\n", "plugin"),
        ("name = \"x\"\n", "`stage` is missing"),
        (
            "[[stage]]\nname = \"a b\"\nplugin = \"builtin:x\"\n",
            "stage[0].name",
        ),
        (
            "[[stage]]\nname = \"a\"\nplugin = \"builtin:x\"\n[[stage]]\nname = \"a\"\nplugin = \"builtin:x\"\n",
            "stage[1].name",
        ),
        (
            "[[stage]]\nname = \"a\"\nplugin = \"builtin:x\"\ntimeout = 0\n",
            "stage[0].timeout",
        ),
        (
            "[[stage]]\nname = \"a\"\nplugin = \"builtin:x\"\nmax-memory = 99999\n",
            "stage[0].max-memory",
        ),
        (
            "[[stage]]\nname = \"a\"\nplugin = \"builtin:x\"\nmax-memory = 64.0\n",
            "`stage[0].max-memory` must be a whole number, not 64.0",
        ),
        (
            "[[stage]]\nname = \"a\"\nplugin = \"builtin:x\"\nmax-writers = -3\n",
            "`stage[0].max-writers` must be 1 to 100000, not -3",
        ),
        (
            "[[stage]]\nname = \"a\"\nplugin = \"builtin:x\"\nproject-quota = \"big\"\n",
            "`stage[0].project-quota` must be a number, not a string",
        ),
        (
            "[[stage]]\nname = \"a\"\nplugin = \"builtin:x\"\ntimeout = 1.5\nmax-handles = 1e3\n",
            "`stage[0].max-handles` must be a whole number",
        ),
        (
            "[[stage]]\nname = \"a\"\nplugin = \"builtin:x\"\nconfig = { k = [1] }\n",
            "stage[0].config.k",
        ),
        (
            "[[stage]]\nname = \"a\"\nplugin = \"missing.wasm\"\n",
            "does not exist",
        ),
        (
            "[[stage]]\nname = \"a\"\nplugin = \".\"\n",
            "is a directory",
        ),
        ("this is = not toml", "malformed"),
        (
            "[[stage]]\nname = \"a\"\nplugin = \"builtin:x\"\nafter = [\"nope\"]\n",
            "`stage[0].after` names \"nope\", which is no stage of this pipeline",
        ),
        (
            "[[stage]]\nname = \"a\"\nplugin = \"builtin:x\"\nafter = [\"a\"]\n",
            "makes a cycle: a → a",
        ),
        (
            "[[stage]]\nname = \"a\"\nplugin = \"builtin:x\"\nafter = [\"c\"]\n\
             [[stage]]\nname = \"b\"\nplugin = \"builtin:x\"\n\
             [[stage]]\nname = \"c\"\nplugin = \"builtin:x\"\n",
            "makes a cycle: a → c → b → a",
        ),
        (
            "[[stage]]\nname = \"a\"\nplugin = \"builtin:x\"\nafter = \"b\"\n",
            "malformed",
        ),
        (
            "[[stage]]\nname = \"a\"\nplugin = \"builtin:x\"\nfor-each = \"frame\"\n",
            "`stage[0].for-each` is \"frame\"; the only value is \"scene\"",
        ),
        (
            "[[stage]]\nname = \"a\"\nplugin = \"builtin:x\"\nfor-each = 1\n",
            "malformed",
        ),
        (
            "[[stage]]\nname = \"a\"\nplugin = \"builtin:x\"\nparts = 2\n",
            "`stage[0].parts` cuts each scene's work into parts, so it needs `for-each = \"scene\"`",
        ),
        (
            "[[stage]]\nname = \"a\"\nplugin = \"builtin:x\"\nfor-each = \"scene\"\nparts = 0\n",
            "`stage[0].parts` is 0; it must be 1 to 16",
        ),
        (
            "[[stage]]\nname = \"a\"\nplugin = \"builtin:x\"\nfor-each = \"scene\"\nparts = 17\n",
            "`stage[0].parts` is 17; it must be 1 to 16",
        ),
        (
            "[[stage]]\nname = \"a\"\nplugin = \"builtin:x\"\nfor-each = \"scene\"\nparts = \"2\"\n",
            "malformed",
        ),
        (
            "jobs = 0\n[[stage]]\nname = \"a\"\nplugin = \"builtin:x\"\n",
            "`jobs` is 0; it must be 1 to 256",
        ),
        (
            "jobs = 100000000000\n[[stage]]\nname = \"a\"\nplugin = \"builtin:x\"\n",
            "`jobs` is 100000000000",
        ),
    ];
    for (text, needle) in cases {
        let err = parse(text).expect_err(text).to_string();
        assert!(err.contains(needle), "{needle:?} in {err:?}");
        assert!(err.contains("p.toml"), "names the file: {err}");
    }
}

/// Property tests of the manifest parser: it never panics, and what it accepts is well formed.
mod manifest_properties {
    use proptest::prelude::*;

    use super::super::*;

    fn manifest_text() -> impl Strategy<Value = String> {
        let line = prop_oneof![
            Just("[[stage]]".to_owned()),
            Just("[stage.config]".to_owned()),
            "name = \"[a-z .-]{0,10}\"",
            Just("plugin = \"builtin:storyboard\"".to_owned()),
            "plugin = \"[a-z./]{0,10}\"",
            "timeout = -?[0-9]{1,6}(\\.[0-9])?",
            "max-memory = -?[0-9]{1,6}",
            "[a-z-]{1,8} = \"[a-z]{0,5}\"",
            "[a-z-]{1,8} = [0-9]{1,3}",
            "[a-z-]{1,8} = \\[1, 2\\]",
            ".{0,20}",
        ];
        proptest::collection::vec(line, 0..14).prop_map(|lines| lines.join("\n"))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn the_parser_never_panics_and_accepts_only_well_formed_pipelines(text in manifest_text()) {
            let path = std::env::temp_dir().join("vidpipe-proptest.toml");
            match Manifest::parse(&path, &text) {
                Ok(m) => {
                    prop_assert!(!m.stages.is_empty() && m.stages.len() <= MAX_STAGES);
                    for (i, s) in m.stages.iter().enumerate() {
                        prop_assert!(check_stage_name(&s.name).is_ok());
                        prop_assert!(m.stages[..i].iter().all(|t| t.name != s.name), "names are unique");
                        prop_assert!(s.limits.timeout > std::time::Duration::ZERO);
                        prop_assert!(s.limits.max_memory_bytes >= 1 << 20);
                    }
                }
                Err(e) => prop_assert!(e.to_string().contains("vidpipe-proptest.toml"), "names the file: {e}"),
            }
        }
    }
}

/// An observer that panics, like a host bug would: when the `shard`th shard finishes, or when
/// stage `stage` ends.
#[derive(Default)]
struct Breaks {
    finished: usize,
    shard: Option<usize>,
    stage: Option<usize>,
}

impl Observer for Breaks {
    fn started(&mut self, _: usize, _: &str) -> ProgressSink {
        Box::new(|_, _, _, _| {})
    }
    fn shard_started(
        &mut self,
        _: usize,
        _: &str,
        _: &db::Scene,
        _: Option<db::Part>,
    ) -> ProgressSink {
        Box::new(|_, _, _, _| {})
    }
    fn shard_finished(
        &mut self,
        _: usize,
        _: &str,
        _: &db::Scene,
        _: Option<db::Part>,
        _: &StageReport,
    ) {
        self.finished += 1;
        if let Some(n) = self.shard {
            assert!(self.finished != n, "the observer broke at shard {n}");
        }
    }
    fn finished(&mut self, index: usize, name: &str, _: &StageOutcome) {
        assert!(
            self.stage != Some(index),
            "the observer broke as {name} ended"
        );
    }
}

/// Runs a storyboard and a per-scene keyframes stage on two workers with `observer`, on a
/// thread of its own so that a hang fails the test rather than wedging it; returns how the
/// pipeline ended and the home's path.
fn run_observed(
    observer: impl Observer + 'static,
) -> (
    Result<RunStatus, HomeError>,
    std::path::PathBuf,
    String,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let home_path = dir.path().join("home");
    let mut home = Home::init(&home_path).expect("home");
    let runtime = Runtime::new().expect("runtime");
    let manifest = parse(
        "[[stage]]\nname = \"storyboard\"\nplugin = \"builtin:storyboard\"\n\
         [[stage]]\nname = \"keyframes\"\nplugin = \"builtin:keyframes\"\nfor-each = \"scene\"\n\
         [stage.config]\nwidth = 64\nheight = 36\n",
    )
    .expect("valid");
    let plugins = manifest
        .load_plugins(&runtime, vidpipe_example_plugins::builtin)
        .expect("plugins");
    let script = "One.\n\nTwo.\n\nThree.\n\nFour.\n\nFive.\n";
    let project = home
        .create_project("p", script, &db::KeyValues::new())
        .expect("project");
    let options = PipelineOptions {
        jobs: Some(2),
        ..PipelineOptions::default()
    };
    let (sent, got) = std::sync::mpsc::channel();
    let project_id = project.id.clone();
    std::thread::spawn(move || {
        let mut observer = observer;
        let result = run_pipeline(
            &mut home,
            &runtime,
            &manifest,
            &plugins,
            &project.id,
            options,
            &mut observer,
        );
        let _ = sent.send(result.map(|r| r.pipeline.status));
    });
    let result = got
        .recv_timeout(std::time::Duration::from_secs(300))
        .expect("the pipeline ended");
    (result, home_path, project_id, dir)
}

/// The next command finds the home usable, and the pipeline recorded as failed by the host.
fn assert_recorded_as_host_failure(home_path: &std::path::Path, project_id: &str) {
    let home = Home::open(home_path).expect("home opens");
    let pipelines = db::list_pipelines(home.conn(), project_id).expect("pipelines");
    assert_eq!(pipelines[0].status, RunStatus::Failed);
    assert!(
        pipelines[0]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("the host failed"),
        "{:?}",
        pipelines[0].error
    );
}

#[test]
fn a_host_panic_in_one_shard_ends_the_pipeline_with_an_error_instead_of_hanging_the_others() {
    let (result, home_path, project_id, _dir) = run_observed(Breaks {
        shard: Some(2),
        ..Breaks::default()
    });
    let error = result.expect_err("a panic is the host's failure");
    assert!(
        matches!(&error, HomeError::Panicked { unit, message }
            if unit.starts_with("stage keyframes (2 of 2), scene ") && message.contains("broke at shard 2")),
        "{error}"
    );
    assert_recorded_as_host_failure(&home_path, &project_id);
}

#[test]
fn a_host_panic_while_deciding_what_runs_next_ends_the_pipeline_instead_of_hanging_it() {
    // A per-scene stage ends between units, as the scheduler moves on after its last shard.
    let (result, home_path, project_id, _dir) = run_observed(Breaks {
        stage: Some(1),
        ..Breaks::default()
    });
    let error = result.expect_err("a panic is the host's failure");
    assert!(
        matches!(&error, HomeError::Panicked { unit, message }
            if unit.starts_with("the pipeline's scheduler after the end of stage keyframes (2 of 2), scene ")
                && message.contains("broke as keyframes ended")),
        "{error}"
    );
    assert_recorded_as_host_failure(&home_path, &project_id);
}
