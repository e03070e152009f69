//! What every benchmark stands on: the scratch home, the plugin and native sides of a stage
//! run, and the host's own layers called the way it serves a guest.

use std::fs;
use std::io::Write as _;
use std::time::Instant;

use anyhow::{Result, bail};
use vidpipe_host::artifacts::ArtifactKind;
use vidpipe_host::capabilities::StageContext;
use vidpipe_host::db::KeyValues;
use vidpipe_host::home::Home;
use vidpipe_host::runner::{self, StageRequest};
use vidpipe_host::runtime::{Limits, Plugin, Runtime};

/// The bench's scratch home and the plugins it runs.
pub(crate) struct Bench {
    pub home: Home,
    pub runtime: Runtime,
    pub bench: Plugin,
    pub quick: bool,
    /// For the plots: (rows per call, plugin rows/s, native rows/s, raw SQLite rows/s).
    pub rows_curve: Vec<(f64, f64, f64, f64)>,
    /// For the plots: (chunk KiB, plugin write MB/s, native write MB/s, plugin read, native read).
    pub chunk_curve: Vec<(f64, f64, f64, f64, f64)>,
}

pub(crate) fn request(project: &str, config: &[(&str, String)]) -> StageRequest {
    StageRequest {
        project_id: project.to_owned(),
        config: config
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
        limits: Limits::default(),
        progress: Box::new(|_, _, _, _| {}),
        pipeline: None,
        scene: None,
        part: None,
        reason: None,
    }
}

impl Bench {
    pub fn project(&mut self, name: &str) -> Result<String> {
        Ok(self.home.create_project(name, "", &KeyValues::new())?.id)
    }

    /// Runs the bench plugin (or `plugin`) with `config` on `project`; returns its seconds.
    pub fn plugin_run(
        &mut self,
        plugin: Option<&Plugin>,
        project: &str,
        config: &[(&str, String)],
    ) -> Result<f64> {
        let plugin = plugin.unwrap_or(&self.bench);
        let _lock = self.home.lock_project(project, true)?;
        let start = Instant::now();
        let report = runner::run_stage(
            &mut self.home,
            &self.runtime,
            plugin,
            request(project, config),
        )?;
        let seconds = start.elapsed().as_secs_f64();
        if !report.succeeded() {
            bail!(
                "plugin stage {} failed: {:?}",
                plugin.name,
                report.run.error
            );
        }
        Ok(seconds)
    }

    /// Runs `body` as a native stage on `project`; returns its seconds.
    pub fn native_run(
        &mut self,
        project: &str,
        body: impl FnOnce(&mut StageContext) -> std::result::Result<String, String>,
    ) -> Result<f64> {
        let _lock = self.home.lock_project(project, true)?;
        let start = Instant::now();
        let report =
            runner::run_native_stage(&mut self.home, "native", request(project, &[]), |ctx, _| {
                body(ctx)
            })?;
        let seconds = start.elapsed().as_secs_f64();
        if !report.succeeded() {
            bail!("native stage failed: {:?}", report.run.error);
        }
        Ok(seconds)
    }

    /// Rounds of a pair, more unless `--quick`.
    pub fn rounds(&self, full: usize) -> usize {
        if self.quick { 2 } else { full }
    }
}

/// Which side goes first in round `round`: plugin (0) and native (1), alternating.
pub(crate) fn order(round: usize) -> [u8; 2] {
    if round.is_multiple_of(2) {
        [0, 1]
    } else {
        [1, 0]
    }
}

/// What the host does for a guest's `create` + `write`s + `finish`, called natively.
pub(crate) fn native_write(
    ctx: &mut StageContext,
    name: &str,
    bytes: u64,
    chunk: usize,
) -> std::result::Result<String, String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let buffer: Vec<u8> = (0..chunk).map(|i| (i % 251) as u8).collect();
    let mut writer = ctx
        .files
        .begin_write(
            ArtifactKind::Output,
            ctx.artifacts.limits.max_artifact_bytes,
        )
        .map_err(|x| e(&x))?;
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk as u64) as usize;
        writer.write(&buffer[..n]).map_err(|x| e(&x))?;
        left -= n as u64;
    }
    let staged = writer.finish().map_err(|x| e(&x))?;
    ctx.db
        .stage_artifact(
            ArtifactKind::Output.into(),
            name,
            &staged.staged_name,
            staged.size,
            &staged.sha256,
        )
        .map_err(|x| e(&x))?;
    ctx.db
        .artifact(ArtifactKind::Output.into(), name)
        .map_err(|x| e(&x))?;
    Ok(format!("{} bytes", staged.size))
}

/// What the host does for a guest's `read`s to the end, called natively.
pub(crate) fn native_read(
    ctx: &mut StageContext,
    name: &str,
    chunk: usize,
) -> std::result::Result<String, String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let mut offset = 0u64;
    loop {
        let view = ctx
            .db
            .artifact(ArtifactKind::Output.into(), name)
            .map_err(|x| e(&x))?
            .ok_or("no artifact")?;
        let file = view.staged.as_deref().unwrap_or(name).to_owned();
        let len = chunk.min(ctx.artifacts.limits.max_read_bytes as usize);
        let bytes = ctx
            .files
            .read_at(ArtifactKind::Output, &file, offset, len)
            .map_err(|x| e(&x))?;
        if bytes.is_empty() {
            return Ok(format!("{offset} bytes"));
        }
        offset += bytes.len() as u64;
    }
}

/// An [`std::io::Write`] into a staged artifact, in 64 KiB chunks as the stages write.
pub(crate) struct StagedSink<'a>(&'a mut vidpipe_host::artifacts::StagedWriter, Vec<u8>);

impl std::io::Write for StagedSink<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.1.extend_from_slice(data);
        if self.1.len() >= 64 << 10 {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.1.is_empty() {
            self.0.write(&self.1).map_err(std::io::Error::other)?;
            self.1.clear();
        }
        Ok(())
    }
}

/// Writes an artifact the way the host does for a guest: staged writer, finish, staged row.
pub(crate) fn store(
    ctx: &mut StageContext,
    kind: ArtifactKind,
    name: &str,
    fill: impl FnOnce(&mut StagedSink<'_>) -> std::result::Result<(), String>,
) -> std::result::Result<(), String> {
    let mut writer = ctx
        .files
        .begin_write(kind, ctx.artifacts.limits.max_artifact_bytes)
        .map_err(|e| e.to_string())?;
    {
        let mut sink = StagedSink(&mut writer, Vec::with_capacity(64 << 10));
        fill(&mut sink)?;
        sink.flush().map_err(|e| e.to_string())?;
    }
    let staged = writer.finish().map_err(|e| e.to_string())?;
    ctx.db
        .stage_artifact(
            kind.into(),
            name,
            &staged.staged_name,
            staged.size,
            &staged.sha256,
        )
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Reads a whole artifact the way the host serves a guest's ranged reads.
pub(crate) fn load(
    ctx: &mut StageContext,
    kind: ArtifactKind,
    name: &str,
) -> std::result::Result<Vec<u8>, String> {
    let view = ctx
        .db
        .artifact(kind.into(), name)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no artifact {name}"))?;
    let file = view.staged.as_deref().unwrap_or(name).to_owned();
    let mut bytes = Vec::new();
    loop {
        let chunk = ctx
            .files
            .read_at(kind, &file, bytes.len() as u64, 1 << 20)
            .map_err(|e| e.to_string())?;
        if chunk.is_empty() {
            return Ok(bytes);
        }
        bytes.extend_from_slice(&chunk);
    }
}

/// Peak resident memory since the last reset, and the current resident memory, in bytes.
pub(crate) fn rss() -> Option<(u64, u64)> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// Resets the peak resident memory to the current one (Linux: `clear_refs` value 5).
pub(crate) fn reset_peak_rss() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
}
