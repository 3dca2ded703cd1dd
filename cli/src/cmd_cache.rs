//! `kiln cache du|prune|check`, and the automatic prune after a build.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use kiln_cache::gc::{self, PruneOptions, PruneReport, Usage};

use crate::args::CacheCommand;
use crate::render::human_size;
use crate::usage;

/// Runs a `kiln cache` subcommand.
pub fn run(root: &Path, command: CacheCommand) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        CacheCommand::Du { json } => {
            let usage = gc::disk_usage(root)?;
            if json {
                serde_json::to_writer_pretty(&mut out, &usage)?;
                writeln!(out)?;
            } else {
                print_usage(&mut out, &usage)?;
            }
        }
        CacheCommand::Prune { all, keep_storage, filter, json } => {
            let mut options = PruneOptions { all, ..PruneOptions::default() };
            if let Some(size) = keep_storage {
                options.keep_storage = Some(parse_size(&size).map_err(usage)?);
            }
            for f in filter {
                let (key, value) = f
                    .split_once('=')
                    .ok_or_else(|| usage(format!("--filter {f:?}: expected until=DURATION")))?;
                match key {
                    "until" => {
                        let d = humantime::parse_duration(value).map_err(|e| {
                            usage(format!("--filter until={value}: {e} (e.g. 24h, 7days)"))
                        })?;
                        options.older_than = Some(d);
                    }
                    other => bail!(usage(format!(
                        "--filter {other}=...: unknown filter (supported: until)"
                    ))),
                }
            }
            let report = gc::prune(root, &options)?;
            if json {
                serde_json::to_writer_pretty(&mut out, &report)?;
                writeln!(out)?;
            } else {
                print_prune(&mut out, &report)?;
            }
        }
        CacheCommand::Check { dry_run, json } => {
            let report = gc::check(root, !dry_run)?;
            if json {
                serde_json::to_writer_pretty(&mut out, &report)?;
                writeln!(out)?;
            } else {
                let action = if dry_run { "found" } else { "removed" };
                writeln!(out, "{} blobs verified", report.blobs_checked)?;
                for (what, list) in [
                    ("corrupt blob", &report.corrupt_blobs),
                    ("cache record pointing at a missing blob", &report.dangling_records),
                    ("unreadable cache record", &report.bad_records),
                    ("incomplete snapshot", &report.partial_snapshots),
                ] {
                    for item in list {
                        writeln!(out, "{action} {what}: {item}")?;
                    }
                }
                if report.temporaries > 0 {
                    writeln!(out, "{action} {} leftover temporary files", report.temporaries)?;
                }
                for tag in &report.broken_tags {
                    writeln!(out, "broken image {tag}: rebuild it or remove it with kiln rmi")?;
                }
                writeln!(
                    out,
                    "{}",
                    if report.is_clean() { "the cache is consistent" } else { "problems remain" }
                )?;
            }
            if !report.is_clean() {
                bail!("kiln cache check found problems it did not repair");
            }
        }
    }
    Ok(())
}

fn print_usage(out: &mut impl Write, u: &Usage) -> Result<()> {
    writeln!(out, "{:<28} {:>8} {:>10}", "KIND", "COUNT", "SIZE")?;
    let rows = [
        ("tagged images (blobs)", &u.images),
        ("build cache layers", &u.cache_layers),
        ("unreferenced blobs", &u.unreferenced),
        ("snapshots (unpacked)", &u.snapshots),
    ];
    for (name, a) in rows {
        writeln!(out, "{name:<28} {:>8} {:>10}", a.count, human_size(a.bytes))?;
    }
    writeln!(out, "{:<28} {:>8}", "cache records", u.records)?;
    for (age, a) in &u.cache_by_age {
        writeln!(out, "  cache layers {age:<14} {:>8} {:>10}", a.count, human_size(a.bytes))?;
    }
    Ok(())
}

fn print_prune(out: &mut impl Write, r: &PruneReport) -> Result<()> {
    writeln!(
        out,
        "removed {} cache records, {} blobs ({}), {} snapshots ({}), {} temporaries",
        r.records,
        r.blobs.count,
        human_size(r.blobs.bytes),
        r.snapshots.count,
        human_size(r.snapshots.bytes),
        r.temporaries
    )?;
    Ok(())
}

/// Parses `10GB`, `512MiB`, `1.5G`, `1000` (bytes).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 =
        num.parse().map_err(|_| format!("invalid size {text:?}: expected e.g. 10GB"))?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0f64.powi(4),
        _ => return Err(format!("invalid size {text:?}: unknown unit {unit:?}")),
    };
    Ok((value * factor) as u64)
}

/// After a build: if the root is configured with a size limit (`KILN_GC_KEEP_STORAGE`, or
/// `gc_keep_storage` in `ROOT/config.json`) and no other build runs, prune down to it.
pub fn auto_prune(root: &Path) -> Result<Option<PruneReport>> {
    let Some(limit) = configured_limit(root)? else { return Ok(None) };
    let Some(_lock) = gc::GcLock::try_exclusive(root)? else { return Ok(None) };
    let usage = gc::disk_usage(root)?;
    let total = usage.images.bytes
        + usage.cache_layers.bytes
        + usage.unreferenced.bytes
        + usage.snapshots.bytes;
    if total <= limit {
        return Ok(None);
    }
    let options = PruneOptions { keep_storage: Some(limit), ..PruneOptions::default() };
    Ok(Some(gc::prune_locked(root, &options)?))
}

fn configured_limit(root: &Path) -> Result<Option<u64>> {
    if let Ok(v) = std::env::var("KILN_GC_KEEP_STORAGE")
        && !v.is_empty()
    {
        return parse_size(&v).map(Some).map_err(|e| anyhow::anyhow!("KILN_GC_KEEP_STORAGE: {e}"));
    }
    let path = root.join("config.json");
    let Ok(bytes) = std::fs::read(&path) else { return Ok(None) };
    let config: serde_json::Value =
        serde_json::from_slice(&bytes).with_context(|| format!("reading {}", path.display()))?;
    match config.get("gc_keep_storage").and_then(|v| v.as_str()) {
        Some(v) => parse_size(v)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("{}: gc_keep_storage: {e}", path.display())),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("10GB"), Ok(10_000_000_000));
        assert_eq!(parse_size("1.5g"), Ok(1_500_000_000));
        assert_eq!(parse_size("512MiB"), Ok(512 * 1024 * 1024));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("5XB").is_err());
    }
}
