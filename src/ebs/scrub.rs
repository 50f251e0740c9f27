//! `cofre verify` (scrub a region) and `cofre gc` (remove what nothing references).

use super::block::BlockHash;
use super::volume::read_block;
use super::{BlockMap, Ebs, Lineage, BLOCK_SIZE};
use crate::envelope::Progress;
use crate::error::Result;
use crate::kms::Call;
use rayon::prelude::*;
use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

/// What `verify` found.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VerifyReport {
    pub region: String,
    pub volumes: u64,
    pub snapshots: u64,
    /// Distinct blocks read and checked.
    pub blocks_checked: u64,
    /// Problems, one line each; empty means the region is sound.
    pub problems: Vec<String>,
    /// Lineages whose blocks were checked against their hashes only, because their KMS key
    /// cannot be used now (disabled, pending deletion…): not damage, but not fully verified.
    pub unauthenticated: Vec<String>,
    /// Blocks and maps no record uses (left by an interrupted command; `cofre gc` removes them).
    pub orphans: u64,
    /// Temporary files left by an interrupted command (`cofre gc` removes them).
    pub temporary_files: u64,
}

/// What `gc` removed.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GcReport {
    pub region: String,
    pub blocks_removed: u64,
    pub maps_removed: u64,
    pub temporary_files_removed: u64,
}

impl Ebs<'_> {
    /// Scrubs the region: the head authenticates, every map and block matches its hash, every
    /// encrypted block authenticates at its index, every record's blocks exist.
    pub fn verify(&self, quiet: bool) -> Result<VerifyReport> {
        self.kms.audited(Call::ec2("VerifyStore", true), |_| {
            let mut report = VerifyReport {
                region: self.kms.region().to_string(),
                ..Default::default()
            };
            let _writing = self.region.writing()?;
            let head = match self.region.load_head() {
                Ok(h) => h,
                Err(e) => {
                    report.problems.push(e.to_string());
                    return Ok(report);
                }
            };
            report.volumes = head.volumes.len() as u64;
            report.snapshots = head.snapshots.len() as u64;
            // Every record: its lineage and map.
            let records: Vec<(String, &Lineage, &str)> = head
                .volumes
                .values()
                .map(|v| (v.volume_id.clone(), &v.lineage, v.map.as_str()))
                .chain(
                    head.snapshots
                        .values()
                        .map(|s| (s.snapshot_id.clone(), &s.lineage, s.map.as_str())),
                )
                .collect();
            let mut maps: BTreeMap<&str, BlockMap> = BTreeMap::new();
            // (lineage id, index, hash) → the record that first named it.
            let mut work: BTreeMap<(String, u64, BlockHash), String> = BTreeMap::new();
            let mut lineages = BTreeMap::new();
            for (name, lineage, map) in &records {
                if !maps.contains_key(map) {
                    match self.region.load_map(map) {
                        Ok(m) => {
                            maps.insert(map, m);
                        }
                        Err(e) => {
                            report.problems.push(format!("{name}: {e}"));
                            continue;
                        }
                    }
                }
                lineages.entry(lineage.id.clone()).or_insert_with(|| {
                    match self.open_lineage(lineage) {
                        Ok(o) => Some(o),
                        Err(e @ crate::Error::Kms { .. }) => {
                            report
                                .unauthenticated
                                .push(format!("{name} (lineage {}): {e}", lineage.id));
                            None
                        }
                        Err(e) => {
                            report.problems.push(format!(
                                "{name}: the data key of lineage {} does not open: {e}",
                                lineage.id
                            ));
                            None
                        }
                    }
                });
                for (i, h) in &maps[map].blocks {
                    work.entry((lineage.id.clone(), *i, *h))
                        .or_insert_with(|| name.clone());
                }
            }
            let progress =
                Progress::new("verify", Some(work.len() as u64 * BLOCK_SIZE as u64), quiet);
            let problems = Mutex::new(Vec::new());
            let blocks = &self.region.blocks;
            work.par_iter().for_each_init(
                || (Vec::new(), vec![0u8; BLOCK_SIZE]),
                |(stored, out), ((lineage, i, h), name)| {
                    let r = match lineages.get(lineage).and_then(Option::as_ref) {
                        Some(open) => read_block(blocks, open, *i, Some(h), stored, out),
                        // The key is unavailable: still check the hash.
                        None => blocks.get(h, stored),
                    };
                    if let Err(e) = r {
                        problems
                            .lock()
                            .expect("not poisoned")
                            .push(format!("{name}: block {i}: {e}"));
                    }
                    progress.inc(BLOCK_SIZE as u64);
                },
            );
            drop(progress);
            let mut problems = problems.into_inner().expect("not poisoned");
            problems.sort();
            report.problems.extend(problems);
            report.blocks_checked = work.len() as u64;
            let mut used: HashSet<BlockHash> = work.keys().map(|(_, _, h)| *h).collect();
            match self.pending_blocks(&head) {
                Ok(p) => used.extend(p),
                Err(e) => report.problems.push(e.to_string()),
            }
            for entry in self.region.blocks.scan()? {
                match entry {
                    Ok(h) if !used.contains(&h) => report.orphans += 1,
                    Ok(_) => {}
                    Err(_) => report.temporary_files += 1,
                }
            }
            let live_maps = head.referenced_maps();
            for entry in self.region.maps.scan()? {
                match entry {
                    Ok(h) if !live_maps.contains(&hex::encode(h)) => report.orphans += 1,
                    Ok(_) => {}
                    Err(_) => report.temporary_files += 1,
                }
            }
            report.temporary_files += self.region.stale_head_temporaries()?.len() as u64;
            Ok(report)
        })
    }

    /// Removes blocks and maps no record uses, and temporary files a crash left (in the home
    /// and the region's folders, those whose writer is dead). Never removes
    /// a referenced block: it stops if any record's map cannot be read.
    pub fn gc(&self) -> Result<GcReport> {
        self.kms.audited(Call::ec2("CollectGarbage", false), |_| {
            let _removing = self.region.removing()?;
            self.collect_garbage()
        })
    }

    /// [`Ebs::gc`] with the exclusive `.gc.lock` already held.
    pub(crate) fn collect_garbage(&self) -> Result<GcReport> {
        let mut report = GcReport {
            region: self.kms.region().to_string(),
            ..Default::default()
        };
        let _lock = self.region.lock()?;
        let head = self.region.load_head()?;
        let live_maps = head.referenced_maps();
        let mut used = HashSet::new();
        for m in &live_maps {
            used.extend(self.region.load_map(m)?.blocks.into_values());
        }
        // Blocks written to pending snapshots, and the journals of those no longer pending.
        used.extend(self.pending_blocks(&head)?);
        report.temporary_files_removed += self.remove_stale_journals(&head)?;
        for entry in self.region.blocks.scan()? {
            match entry {
                Ok(h) if !used.contains(&h) => {
                    self.region.blocks.remove(&h)?;
                    report.blocks_removed += 1;
                }
                Ok(_) => {}
                Err(path) => {
                    remove_temp(&path)?;
                    report.temporary_files_removed += 1;
                }
            }
        }
        self.region.remove_stale_attach_locks(&head)?;
        // The head is replaced only under the lock held here: any temporary head is stale.
        for path in self.region.stale_head_temporaries()? {
            remove_temp(&path)?;
            report.temporary_files_removed += 1;
        }
        // Elsewhere in the home and the region, those of writers that died.
        let home = self.kms.home();
        let region_dir = home.region_dir(self.kms.region());
        for dir in [
            home.root().to_path_buf(),
            region_dir.join("keys"),
            region_dir.join("deleted"),
            region_dir.join("audit"),
            region_dir.join("audit").join("digests"),
            region_dir,
        ] {
            report.temporary_files_removed += crate::store::remove_stale_temporaries(&dir)?;
        }
        for entry in self.region.maps.scan()? {
            match entry {
                Ok(h) if !live_maps.contains(&hex::encode(h)) => {
                    self.region.maps.remove(&h)?;
                    report.maps_removed += 1;
                }
                Ok(_) => {}
                Err(path) => {
                    remove_temp(&path)?;
                    report.temporary_files_removed += 1;
                }
            }
        }
        Ok(report)
    }
}

fn remove_temp(path: &std::path::Path) -> Result<()> {
    std::fs::remove_file(path).map_err(|e| crate::Error::io("removing", path, e))
}
