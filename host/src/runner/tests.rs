use super::*;
use crate::db::stage::NewScene;
use crate::runtime::{Placements, PoolShape};

fn request(project_id: &str) -> StageRequest {
    StageRequest {
        project_id: project_id.to_owned(),
        config: KeyValues::new(),
        limits: Limits::default(),
        progress: Box::new(|_, _, _, _| {}),
        pipeline: None,
        scene: None,
        part: None,
        reason: None,
    }
}

fn scene(index: u32) -> NewScene {
    NewScene {
        index,
        title: format!("Scene {index}"),
        description: String::new(),
        duration_ms: 1000,
    }
}

#[test]
fn a_native_stage_commits_its_rows_and_records_a_succeeded_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut home = Home::init(&dir.path().join("home")).unwrap();
    let project = home.create_project("p", "", &KeyValues::new()).unwrap();
    let _lock = home.lock_project(&project.id, true).unwrap();
    let report = run_native_stage(&mut home, "native", request(&project.id), |ctx, _| {
        for index in 0..3 {
            ctx.db
                .create_scene(scene(index))
                .map_err(|e| e.to_string())?;
        }
        Ok("3 scenes".to_owned())
    })
    .unwrap();
    assert!(report.succeeded());
    assert_eq!(report.run.stage, "native");
    let detail = db::project_detail(home.conn_mut(), &project.id).unwrap();
    assert_eq!(detail.scenes.len(), 3);
}

#[test]
fn a_failing_native_stage_leaves_nothing_and_records_why() {
    let dir = tempfile::tempdir().unwrap();
    let mut home = Home::init(&dir.path().join("home")).unwrap();
    let project = home.create_project("p", "", &KeyValues::new()).unwrap();
    let _lock = home.lock_project(&project.id, true).unwrap();
    let report = run_native_stage(&mut home, "native", request(&project.id), |ctx, _| {
        ctx.db.create_scene(scene(0)).map_err(|e| e.to_string())?;
        Err("gave up".to_owned())
    })
    .unwrap();
    assert!(!report.succeeded());
    assert_eq!(report.run.error.as_deref(), Some("gave up"));
    let detail = db::project_detail(home.conn_mut(), &project.id).unwrap();
    assert!(detail.scenes.is_empty());
}

#[test]
fn a_project_reads_running_while_a_stage_runs_and_a_run_that_changes_no_outcome_leaves_its_row_as_it_was()
 {
    let dir = tempfile::tempdir().unwrap();
    let mut home = Home::init(&dir.path().join("home")).unwrap();
    let project = home.create_project("p", "", &KeyValues::new()).unwrap();
    let _lock = home.lock_project(&project.id, true).unwrap();
    let run = |home: &mut Home, fail: bool| {
        let report = run_native_stage(home, "native", request(&project.id), |ctx, _| {
            let seen = ctx.db.project().map_err(|e| e.to_string())?;
            assert_eq!(seen.status, db::ProjectStatus::Running);
            if fail {
                Err("gave up".to_owned())
            } else {
                Ok(String::new())
            }
        })
        .unwrap();
        assert_eq!(report.succeeded(), !fail);
        db::get_project(home.conn_mut(), &project.id).unwrap()
    };
    assert_eq!(project.status, db::ProjectStatus::Draft);
    let ready = run(&mut home, false);
    assert_eq!(ready.status, db::ProjectStatus::Ready);
    std::thread::sleep(std::time::Duration::from_millis(5));
    // Ready again: nothing about the project changed, so its row was not written.
    let again = run(&mut home, false);
    assert_eq!(again.status, db::ProjectStatus::Ready);
    assert_eq!(again.updated_at, ready.updated_at);
    let failed = run(&mut home, true);
    assert_eq!(failed.status, db::ProjectStatus::Failed);
    assert!(failed.updated_at > ready.updated_at);
    std::thread::sleep(std::time::Duration::from_millis(5));
    let back = run(&mut home, false);
    assert_eq!(back.status, db::ProjectStatus::Ready);
    assert!(back.updated_at > failed.updated_at);
}

const SCRIPT: &str = "A fox wakes.\n\nIt crosses the river.\n\nIt sleeps.\n";

/// Runs the storyboard plugin in a new project of `home` and returns its scene titles.
fn storyboard(home: &mut Home, runtime: &Runtime, plugin: &Plugin, limits: Limits) -> Vec<String> {
    let project = home.create_project("p", SCRIPT, &KeyValues::new()).unwrap();
    let _lock = home.lock_project(&project.id, true).unwrap();
    let mut req = request(&project.id);
    req.limits = limits;
    let report = run_stage(home, runtime, plugin, req).unwrap();
    assert!(report.succeeded(), "{:?}", report.run.error);
    let detail = db::project_detail(home.conn_mut(), &project.id).unwrap();
    detail.scenes.into_iter().map(|s| s.title).collect()
}

#[test]
fn a_stage_gives_the_same_result_in_the_instance_pool_and_on_demand() {
    let dir = tempfile::tempdir().unwrap();
    let mut home = Home::init(&dir.path().join("home")).unwrap();
    let pooled = Runtime::new().unwrap();
    let on_demand = Runtime::with_pool(None).unwrap();
    assert!(pooled.has_pool() && !on_demand.has_pool());
    let a = pooled
        .load("storyboard", vidpipe_example_plugins::STORYBOARD)
        .unwrap();
    let b = on_demand
        .load("storyboard", vidpipe_example_plugins::STORYBOARD)
        .unwrap();
    assert!(a.fits_the_pool() && !b.fits_the_pool());
    let from_pool = storyboard(&mut home, &pooled, &a, Limits::default());
    let from_demand = storyboard(&mut home, &on_demand, &b, Limits::default());
    assert_eq!(from_pool.len(), 3);
    assert_eq!(from_pool, from_demand);
    assert_eq!(
        pooled.placements(),
        Placements {
            pooled: 1,
            on_demand: 0
        }
    );
    assert_eq!(
        on_demand.placements(),
        Placements {
            pooled: 0,
            on_demand: 1
        }
    );
}

#[test]
fn a_run_whose_table_limit_exceeds_the_pools_tables_runs_on_demand() {
    let dir = tempfile::tempdir().unwrap();
    let mut home = Home::init(&dir.path().join("home")).unwrap();
    let runtime = Runtime::new().unwrap();
    let plugin = runtime
        .load("storyboard", vidpipe_example_plugins::STORYBOARD)
        .unwrap();
    let big_tables = Limits {
        max_table_elements: PoolShape::default().table_elements + 1,
        ..Limits::default()
    };
    storyboard(&mut home, &runtime, &plugin, big_tables);
    assert_eq!(
        runtime.placements(),
        Placements {
            pooled: 0,
            on_demand: 1
        }
    );
    // The plugin's code moved to the on-demand engine once; the pool still serves it.
    storyboard(&mut home, &runtime, &plugin, big_tables);
    storyboard(&mut home, &runtime, &plugin, Limits::default());
    assert_eq!(
        runtime.placements(),
        Placements {
            pooled: 1,
            on_demand: 2
        }
    );
}

#[test]
fn a_plugin_bigger_than_a_pool_slot_is_loaded_on_demand_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut home = Home::init(&dir.path().join("home")).unwrap();
    // The demo plugins have three core instances; this pool's slots hold one.
    let runtime = Runtime::with_pool(Some(PoolShape {
        core_instances: 1,
        ..PoolShape::default()
    }))
    .unwrap();
    let plugin = runtime
        .load("storyboard", vidpipe_example_plugins::STORYBOARD)
        .unwrap();
    assert!(!plugin.fits_the_pool());
    assert_eq!(
        storyboard(&mut home, &runtime, &plugin, Limits::default()).len(),
        3
    );
    assert_eq!(
        runtime.placements(),
        Placements {
            pooled: 0,
            on_demand: 1
        }
    );
}

#[test]
fn more_concurrent_runs_than_pool_slots_all_succeed() {
    let runtime = Runtime::with_pool(Some(PoolShape {
        stages: 1,
        ..PoolShape::default()
    }))
    .unwrap();
    let plugin = runtime
        .load("storyboard", vidpipe_example_plugins::STORYBOARD)
        .unwrap();
    let (threads, runs) = (4, 5);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let dir = tempfile::tempdir().unwrap();
                let mut home = Home::init(&dir.path().join("home")).unwrap();
                for _ in 0..runs {
                    let titles = storyboard(&mut home, &runtime, &plugin, Limits::default());
                    assert_eq!(titles.len(), 3);
                }
            });
        }
    });
    let placed = runtime.placements();
    assert_eq!(placed.pooled + placed.on_demand, threads * runs);
    assert!(placed.pooled > 0, "{placed:?}");
}

#[test]
fn a_reused_pool_slot_shows_the_next_run_none_of_the_last_runs_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut home = Home::init(&dir.path().join("home")).unwrap();
    let bytes = std::fs::read(vidpipe_example_plugins::FAULTY_STAGE_PATH).unwrap();
    let project = home.create_project("p", SCRIPT, &KeyValues::new()).unwrap();
    let _lock = home.lock_project(&project.id, true).unwrap();
    // One slot set with one memory: every run reuses the same memory. Reset with nothing
    // kept resident (all returned to the kernel) and with the default amount kept (reset in
    // place, by page scan where the kernel has it).
    for memory_keep_resident in [0, PoolShape::default().memory_keep_resident] {
        let runtime = Runtime::with_pool(Some(PoolShape {
            stages: 1,
            memories: 1,
            memory_keep_resident,
            ..PoolShape::default()
        }))
        .unwrap();
        let plugin = runtime.load("faulty", &bytes).unwrap();
        assert!(plugin.fits_the_pool());
        for _ in 0..3 {
            let mut req = request(&project.id);
            req.config.insert("mode".into(), "residue".into());
            let report = run_stage(&mut home, &runtime, &plugin, req).unwrap();
            assert!(report.succeeded(), "{:?}", report.run.error);
            assert_eq!(
                report.run.summary.as_deref(),
                Some("clean: 8519680 bytes checked")
            );
        }
        assert_eq!(
            runtime.placements(),
            Placements {
                pooled: 3,
                on_demand: 0
            }
        );
    }
}

#[test]
fn a_run_that_finds_every_slot_set_taken_runs_on_demand_and_succeeds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut home = Home::init(&dir.path().join("home")).expect("home");
    let project = home
        .create_project("p", "A fox.\n\nA river.\n", &Default::default())
        .expect("project");
    let _lock = home.lock_project(&project.id, true).expect("lock");
    let rt = Runtime::with_pool(Some(PoolShape {
        stages: 1,
        ..PoolShape::default()
    }))
    .expect("runtime");
    assert!(
        rt.has_pool(),
        "the instance pool could not be reserved on this machine (its log says why)"
    );
    let plugin = rt
        .load("storyboard", vidpipe_example_plugins::STORYBOARD)
        .expect("loads");
    let run = |rt: &Runtime, home: &mut Home| {
        let request = StageRequest {
            project_id: project.id.clone(),
            config: Default::default(),
            limits: Limits::default(),
            progress: Box::new(|_, _, _, _| {}),
            pipeline: None,
            scene: None,
            part: None,
            reason: None,
        };
        let report = run_stage(home, rt, &plugin, request).expect("runs");
        assert!(report.succeeded(), "{:?}", report.run.error);
    };
    let held = rt
        .lease(&plugin, &Limits::default())
        .expect("the only slot set");
    run(&rt, &mut home);
    assert_eq!(
        rt.placements(),
        Placements {
            pooled: 0,
            on_demand: 1
        }
    );
    drop(held);
    run(&rt, &mut home);
    assert_eq!(
        rt.placements(),
        Placements {
            pooled: 1,
            on_demand: 1
        }
    );
}
