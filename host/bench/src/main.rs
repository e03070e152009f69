//! `vidpipe-bench`: the price of the sandbox and of the storage layer, measured against native
//! code and against raw SQLite and the disk, in one process.
//!
//! Every pair runs the same work twice over: once in a plugin (`bench-stage`, or the demo's own
//! stages) through the WIT boundary, once as native code calling the host's own layers through
//! [`vidpipe_host::runner::run_native_stage`] — the same run record, database session, staged
//! files and commit, with the guest replaced by a closure. The two sides alternate, round by
//! round, so drift in the machine (page cache, CPU frequency, the other core's load) hits both
//! alike. The storage rows also measure the raw floor: rusqlite inserting the same rows into
//! the same schema, and a 64-byte append with `fdatasync`.
//!
//! ```sh
//! cargo run --release -p vidpipe-bench            # writes BENCHMARKS.md and its plots
//! cargo run --release -p vidpipe-bench -- --quick # fewer rounds, smaller sizes, a smoke test
//! ```
//!
//! It prints each row as it goes and rewrites `BENCHMARKS.md` (and the plots under
//! `host/benchmarks/`) at the end. Nothing here is asserted: these are measurements.
//!
//! | module | measures |
//! |---|---|
//! | `storage` | rows and commits against raw rusqlite and the fsync floor, the write-lock hold of the largest legal commit, publishing many artifacts |
//! | `sandbox` | artifact traffic, streaming memory, stage start, the compile cache |
//! | `demo` | the demo's stages in Wasm against the same rendering built natively |
//! | `encode` | the H.264 and AV1 encoders in Wasm against the same encoders built natively |
//! | `harness`, `raw`, `report`, `plot` | what they stand on, and the report |

mod demo;
mod encode;
mod harness;
mod pipelines;
mod plot;
mod raw;
mod report;
mod sandbox;
mod storage;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result};
use clap::Parser;
use vidpipe_host::home::Home;
use vidpipe_host::runtime::Runtime;
use vidpipe_render::Codec;

use harness::Bench;
use raw::percentile;
use report::Row;

/// Measures the sandbox against native code and writes BENCHMARKS.md.
#[derive(Debug, Parser)]
#[command(name = "vidpipe-bench")]
pub(crate) struct Args {
    /// Where to write the report.
    #[arg(long, default_value = "BENCHMARKS.md")]
    pub out: PathBuf,
    /// Where to write the plots (PNG).
    #[arg(long, default_value = "host/benchmarks")]
    pub plots: PathBuf,
    /// Fewer rounds and smaller sizes: a quick check that everything runs.
    #[arg(long)]
    pub quick: bool,
    /// The folder to put the scratch home in (its disk is the one measured).
    #[arg(long)]
    scratch: Option<PathBuf>,
    /// Only time N stage starts and print them, writing no report (for profilers).
    #[arg(long, value_name = "N")]
    only_stage_start: Option<usize>,
    /// Only time N single-row commits (plugin and native, alternating) and print them,
    /// writing no report (for profilers).
    #[arg(long, value_name = "N")]
    only_commits: Option<usize>,
    /// Only time inserting N rows in one stage (plugin, native, raw rusqlite both ways) and
    /// print them, writing no report.
    #[arg(long, value_name = "N")]
    only_rows: Option<u32>,
    /// Only time the H.264 and AV1 encoders (plugin and native, N alternating rounds) on the
    /// demo's frames and print them, writing no report.
    #[arg(long, value_name = "N")]
    only_encode: Option<usize>,
    /// With `--only-encode`: time only this codec (`h264` or `av1`).
    #[arg(long, value_name = "CODEC", requires = "only_encode")]
    codec: Option<String>,
    /// Only time the demo pipeline (by jobs, after an edit, unchanged) and print it, writing
    /// no report.
    #[arg(long)]
    only_pipelines: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let scratch_parent = args.scratch.clone().unwrap_or_else(std::env::temp_dir);
    let scratch = scratch_parent.join(format!("vidpipe-bench-{}", uuid::Uuid::new_v4()));
    fs::create_dir_all(&scratch)?;
    let result = run(&args, &scratch);
    let _ = fs::remove_dir_all(&scratch);
    let Some(rows) = result? else {
        return Ok(());
    };
    let elapsed = started.elapsed();
    report::write_report(&args, &rows, &scratch_parent, elapsed)?;
    println!(
        "wrote {} in {:.0} s",
        args.out.display(),
        elapsed.as_secs_f64()
    );
    Ok(())
}

/// Every row of the report, or `None` after one of the `--only-*` measurements.
fn run(args: &Args, scratch: &Path) -> Result<Option<Vec<Row>>> {
    let home = Home::init(&scratch.join("home"))?;
    let runtime = Runtime::new().map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let bench_bytes =
        fs::read(vidpipe_example_plugins::BENCH_STAGE_PATH).context("the bench-stage plugin")?;
    let bench = runtime.load("bench", &bench_bytes)?;
    let mut b = Bench {
        home,
        runtime,
        bench,
        quick: args.quick,
        rows_curve: Vec::new(),
        chunk_curve: Vec::new(),
    };
    if only(&mut b, args, scratch)? {
        return Ok(None);
    }
    // Warm up: the first stage of a process pays for page faults and lazy initialisation.
    let warm = b.project("warm-up")?;
    b.plugin_run(None, &warm, &[("mode", "noop".into())])?;
    b.native_run(&warm, |_| Ok(String::new()))?;

    let mut rows = Vec::new();
    let mut push = |more: Vec<Row>| {
        for row in more {
            row.print();
            rows.push(row);
        }
    };
    push(storage::rows(&mut b, scratch)?);
    push(sandbox::rows(&mut b, scratch, &bench_bytes)?);
    push(demo::demo_stages(&mut b, args.quick)?);
    push(pipelines::rows(&mut b, args.quick)?);
    plot::plot(&args.plots, &b)?;
    Ok(Some(rows))
}

/// The `--only-*` measurements, printed; whether one was asked for.
fn only(b: &mut Bench, args: &Args, scratch: &Path) -> Result<bool> {
    if let Some(iterations) = args.only_stage_start {
        let project = b.project("start")?;
        let us: Vec<f64> = sandbox::stage_starts(b, None, &project, iterations)?
            .iter()
            .map(|s| s * 1e6)
            .collect();
        println!(
            "stage start: p50 {:.1} µs, p90 {:.1} µs over {iterations} ({:?})",
            percentile(&us, 0.5),
            percentile(&us, 0.9),
            b.runtime.placements()
        );
        return Ok(true);
    }
    if let Some(rows) = args.only_rows {
        let warm = b.project("warm-up")?;
        b.plugin_run(None, &warm, &[("mode", "noop".into())])?;
        let [plugin, native, tuned] = b.rows(scratch, rows, 1, 3)?;
        let plain = raw::rows(scratch, rows, raw::Setup::Plain)?;
        println!(
            "rows: plugin {:.0}/s, native {:.0}/s, raw {plain:.0}/s, raw tuned {:.0}/s: plugin {:.2}× raw tuned",
            plugin.median,
            native.median,
            tuned.median,
            plugin.median / tuned.median
        );
        return Ok(true);
    }
    if let Some(rounds) = args.only_encode {
        let project = demo::keyframed_project(b)?;
        let codecs = match args.codec.as_deref() {
            None => vec![Codec::H264, Codec::Av1],
            Some(name) => vec![
                Codec::from_name(name)
                    .with_context(|| format!("--codec: {name:?} is not a codec (h264 or av1)"))?,
            ],
        };
        for row in encode::rows(b, &project, rounds, &codecs)? {
            row.print();
        }
        return Ok(true);
    }
    if args.only_pipelines {
        for row in pipelines::rows(b, args.quick)? {
            row.print();
        }
        return Ok(true);
    }
    if let Some(count) = args.only_commits {
        let [plugin, native, floor, raw] = b.commits(count, &scratch.join("home"))?;
        let floor = percentile(&floor, 0.5);
        let p50 = percentile(&plugin, 0.5);
        println!(
            "commits: plugin p50 {:.0} µs ({:.2}× the fsync floor of {:.0} µs), native p50 {:.0} µs, raw rusqlite p50 {:.0} µs, over {count}",
            p50 * 1e6,
            p50 / floor,
            floor * 1e6,
            percentile(&native, 0.5) * 1e6,
            percentile(&raw, 0.5) * 1e6
        );
        return Ok(true);
    }
    Ok(false)
}
